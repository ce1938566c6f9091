#include "amx_ranks.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <climits>
#include <limits>
#include <stdexcept>

#include "csr.hpp"
#include "error_slot.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FASTREGEN_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define FASTREGEN_AMX 0
#endif

namespace fastregen {

namespace {

// Inputs whose bf16 parts and products stay clear of denormals and overflow
// (see amx_ranks.hpp): every nonzero |x| in [2^-60, 2^50].
constexpr float kSafeMin = 0x1p-60f;
constexpr float kSafeMax = 0x1p50f;

bool in_safe_range(const float* x, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float a = std::fabs(x[k]);
    if (!(a <= kSafeMax) || (a != 0.0f && a < kSafeMin)) return false;  // NaN fails the first test
  }
  return true;
}

// float32 -> bf16, round to nearest even (finite inputs in the safe range: no overflow to inf).
uint16_t to_bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  b += 0x7FFFu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t b = static_cast<uint32_t>(h) << 16;
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// The smallest float32 >= v (v >= 0, finite double), +inf beyond float range.
float round_up(double v) {
  float f = static_cast<float>(v);
  if (static_cast<double>(f) < v) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

double norm2(const float* x, int64_t n) {
  double s = 0.0;
  for (int64_t k = 0; k < n; ++k) s += static_cast<double>(x[k]) * static_cast<double>(x[k]);
  return std::sqrt(s) * (1.0 + static_cast<double>(n + 2) * 0x1p-53);  // the sum's and sqrt's roundings
}

// gamma(n) = n w / (1 - n w): the relative error bound of n roundings of unit w.
double gamma(double n, double w) { return n * w / (1.0 - n * w); }

// The bound's constant c of amx_ranks.hpp (doubled for safety).
double bound_constant(int64_t dim, int64_t kpad) {
  return 2.0 * (4.1 * 0x1p-16 + 1.03 * gamma(static_cast<double>(3 * kpad + 2), 0x1p-23) +
                gamma(static_cast<double>(dim), 0x1p-24));
}

// The bf16 parts of one vector into `out` (3 kpad values): [hi | lo | hi] for
// a user (A operand), [hi | hi | lo] for an item (B operand). Zeros when the
// vector is outside the safe range (the caller then never trusts its scores).
void split3(const float* x, int64_t dim, int64_t kpad, bool item, uint16_t* out) {
  std::fill(out, out + 3 * kpad, uint16_t{0});
  if (!in_safe_range(x, dim)) return;
  for (int64_t k = 0; k < dim; ++k) {
    const uint16_t hi = to_bf16(x[k]);
    const uint16_t lo = to_bf16(x[k] - from_bf16(hi));  // x - hi is exact in float32
    out[k] = hi;
    out[kpad + k] = item ? hi : lo;
    out[2 * kpad + k] = item ? lo : hi;
  }
}

#if FASTREGEN_AMX
#define FASTREGEN_AMX_TARGET \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,popcnt,fma")))

bool cpu_has_amx() {
  unsigned a, b, c, d;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool avx512 = (b & (1u << 16)) && (b & (1u << 30)) && (b & (1u << 17)) && (b & (1u << 31));
  const bool amx = (d & (1u << 22)) && (d & (1u << 24));
  if (!avx512 || !amx) return false;
  // the OS must save the ZMM and tile state (XCR0 bits 5-7 and 17-18)
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const uint64_t xcr0 = (static_cast<uint64_t>(hi) << 32) | lo;
  return (xcr0 & 0xE6u) == 0xE6u && (xcr0 & (3ull << 17)) == (3ull << 17);
}

bool request_tile_permission() {
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

// The exact score: the float32 fma chain over k in order (hardware fma).
__attribute__((target("fma"))) float fma_chain(const float* u, const float* v, int64_t dim) {
  float s = 0.0f;
  for (int64_t k = 0; k < dim; ++k) s = __builtin_fmaf(u[k], v[k], s);
  return s;
}

// Eight chains at once (u[l] . v[l] for l < 8, each still in order): one chain is a string of dependent
// fmas, latency-bound; eight independent ones fill the pipeline.
__attribute__((target("fma"))) void fma_chain8(const float* const* u, const float* const* v, int64_t dim,
                                               float* out) {
  float s[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  for (int64_t k = 0; k < dim; ++k)
    for (int l = 0; l < 8; ++l) s[l] = __builtin_fmaf(u[l][k], v[l][k], s[l]);
  for (int l = 0; l < 8; ++l) out[l] = s[l];
}

// #{i < n : score(hidden[rows[i]], table[items[i]]) >= thresholds[rows[i]]} added to count[rows[i]].
void count_exact(const float* hidden, const float* table, int64_t dim, const int64_t* rows, const int64_t* items,
                 int64_t n, const float* thresholds, int64_t* count) {
  const float* u[8];
  const float* v[8];
  float s[8];
  for (int64_t i = 0; i < n; i += 8) {
    const int64_t m = std::min<int64_t>(8, n - i);
    for (int64_t l = 0; l < 8; ++l) {  // lanes past n repeat the first pair, unused
      const int64_t q = i + (l < m ? l : 0);
      u[l] = hidden + rows[q] * dim;
      v[l] = table + items[q] * dim;
    }
    fma_chain8(u, v, dim, s);
    for (int64_t l = 0; l < m; ++l)
      if (s[l] >= thresholds[rows[i + l]]) ++count[rows[i + l]];
  }
}

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Per-user state of the count.
struct RowState {
  float a;        // c ||u||_2, rounded up
  float hi, lo;   // s_t + tau rounded up, s_t - tau rounded down (tau: see amx_rank_counts)
  bool exact;
};

// A 32 x 32 block of bf16-pass scores waiting to be counted: the users of tile ut, items j0 + [0, 32).
struct Window {
  const float* scores = nullptr;  // 32 x 32, row-major
  int64_t ut = -1, j0 = 0;
  uint32_t valid = 0;  // the items of the segment (and < n_items)
};

// What a thread's count reads and writes besides the window.
struct CountState {
  const AmxRankInput* in;
  const RowState* st;
  const float* norms;  // padded to whole windows
  const int64_t* slots;  // the user row of each tile slot (slot = 32 ut + i)
  int64_t n_slots;
  int64_t ut0;
  int64_t* cursor;     // per slot of the thread: the next excluded item not yet passed
  int64_t* next;       // ... and the next item to skip (that one or the target), INT64_MAX for none
  int64_t* count;
  std::vector<int64_t>* band_rows;
  std::vector<int64_t>* band_items;
};

// Rows [i0, i1) of a window: the candidates surely above the target's score are counted, those the
// bound leaves open (or NaN) go to the band.
FASTREGEN_AMX_TARGET void count_rows(const CountState& cs, const Window& w, int64_t i0, int64_t i1) {
  const AmxRankInput& in = *cs.in;
  const int64_t j0 = w.j0;
  const __m512 n_lo = _mm512_loadu_ps(cs.norms + j0);
  const __m512 n_hi = _mm512_loadu_ps(cs.norms + j0 + 16);
  i1 = std::min<int64_t>(i1, cs.n_slots - w.ut * 32);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t slot = w.ut * 32 + i;
    const int64_t r = cs.slots[slot];
    const RowState& rs = cs.st[r];
    if (rs.exact) continue;
    // padding (item 0), the target and the excluded items of this window; most windows hold none
    uint32_t skip = j0 == 0 ? 1u : 0u;
    int64_t& next = cs.next[slot - cs.ut0 * 32];
    if (next < j0 + 32) {
      const int64_t t = in.targets[r];
      if (t >= j0 && t < j0 + 32) skip |= 1u << (t - j0);
      int64_t& cur = cs.cursor[slot - cs.ut0 * 32];
      const int64_t ex_end = in.ex_offsets[r + 1];
      while (cur < ex_end && in.ex_items[cur] < j0 + 32) skip |= 1u << (in.ex_items[cur++] - j0);
      next = std::min(t >= j0 + 32 ? t : INT64_MAX, cur < ex_end ? in.ex_items[cur] : INT64_MAX);
    }
    // thresholds s_t +- (a n_j + tau), one rounding each (fma): tau covers it
    const __m512 a = _mm512_set1_ps(rs.a), hi = _mm512_set1_ps(rs.hi), lo = _mm512_set1_ps(rs.lo);
    const __m512 x0 = _mm512_load_ps(w.scores + i * 32), x1 = _mm512_load_ps(w.scores + i * 32 + 16);
    const uint32_t above =
        static_cast<uint32_t>(_mm512_cmp_ps_mask(x0, _mm512_fmadd_ps(a, n_lo, hi), _CMP_GT_OQ)) |
        static_cast<uint32_t>(_mm512_cmp_ps_mask(x1, _mm512_fmadd_ps(a, n_hi, hi), _CMP_GT_OQ)) << 16;
    const uint32_t below =
        static_cast<uint32_t>(_mm512_cmp_ps_mask(x0, _mm512_fnmadd_ps(a, n_lo, lo), _CMP_LT_OQ)) |
        static_cast<uint32_t>(_mm512_cmp_ps_mask(x1, _mm512_fnmadd_ps(a, n_hi, lo), _CMP_LT_OQ)) << 16;
    const uint32_t keep = w.valid & ~skip;
    cs.count[r] += __builtin_popcount(above & keep);
    // neither surely above nor surely below (NaN, inf, or within the bound): the exact chain decides
    for (uint32_t band = ~(above | below) & keep; band; band &= band - 1) {
      cs.band_rows->push_back(r);
      cs.band_items->push_back(j0 + __builtin_ctz(band));
    }
  }
}

// The bits of the items [lo, hi) of the window starting at j0 (j0 <= lo <= hi <= j0 + 32).
uint32_t item_bits(int64_t j0, int64_t lo, int64_t hi) {
  const int64_t a = lo - j0, b = hi - j0;
  const uint32_t upto = b >= 32 ? 0xFFFFFFFFu : ((1u << b) - 1u);
  return upto & ~((1u << a) - 1u);
}

// One thread's share of a segment: the user tiles [ut0, ut1) of the slots (32 users each, their bf16
// parts A: 32 rows of 3 kpad per tile) against the items [jb, je).
FASTREGEN_AMX_TARGET void count_tiles(const AmxRankInput& in, const uint16_t* A, const int64_t* slots,
                                      int64_t n_slots, int64_t ut0, int64_t ut1, int64_t jb, int64_t je,
                                      const std::vector<RowState>& st, const float* norms_padded,
                                      std::vector<int64_t>& count, std::vector<int64_t>& band_rows,
                                      std::vector<int64_t>& band_items) {
  const PackedItems& P = *in.packed;
  const int64_t K3 = 3 * P.kpad, steps = K3 / 32;
  const int64_t gb = jb / 16, ge = (je + 15) / 16;  // the groups holding the segment's items
  const int64_t a_stride = K3 * 2;  // bytes per user row
  const int64_t group_elems = steps * 16 * 32;
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
  alignas(64) float buf[2][32 * 32];
  // each slot's exclusions from the segment's first item on (the row's CSR is ascending)
  std::vector<int64_t> cursor(static_cast<size_t>((ut1 - ut0) * 32)), next(cursor.size(), INT64_MAX);
  for (int64_t slot = ut0 * 32; slot < std::min(ut1 * 32, n_slots); ++slot) {
    const int64_t r = slots[slot], t = in.targets[r];
    const int64_t* b = in.ex_items + in.ex_offsets[r];
    const int64_t* e = in.ex_items + in.ex_offsets[r + 1];
    const int64_t* c = std::lower_bound(b, e, jb);
    cursor[static_cast<size_t>(slot - ut0 * 32)] = c - in.ex_items;
    next[static_cast<size_t>(slot - ut0 * 32)] = std::min(t >= jb ? t : INT64_MAX, c != e ? *c : INT64_MAX);
  }
  const CountState cs{&in,           st.data(),    norms_padded, slots,      n_slots,    ut0,
                      cursor.data(), next.data(),  count.data(), &band_rows, &band_items};
  // Software pipeline: block n's scores are counted, a slice of rows after each step of block n + 1's
  // products, so that the vector units count while the tile unit multiplies (the count of a whole
  // block is more instructions than the core looks ahead). Each row's windows stay in item order.
  Window pending;
  int which = 0;
  // Items in chunks that stay in the L2 cache while every user tile of the thread passes over them.
  constexpr int64_t kChunkGroups = 32;  // 512 items, 192 KiB of tiles at d = 64
  for (int64_t g0 = gb; g0 < ge; g0 += kChunkGroups) {
    const int64_t g1 = std::min(ge, g0 + kChunkGroups);
    for (int64_t ut = ut0; ut < ut1; ++ut) {
      const uint16_t* a0 = A + ut * 32 * K3;
      const uint16_t* a1 = a0 + 16 * K3;
      for (int64_t g = g0; g < g1; g += 2) {
        const uint16_t* b0 = P.tiles.data() + g * group_elems;
        const bool two = g + 1 < ge;
        const uint16_t* b1 = two ? b0 + group_elems : b0;  // a lone last group is scored twice, the copy unused
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t s = 0; s < steps; ++s) {
          // each load as late as its first use: a tile register is not renamed, so a load waits until
          // the products reading the register's previous contents are done
          _tile_loadd(4, a0 + s * 32, a_stride);
          _tile_loadd(6, b0 + s * 512, 64);
          _tile_dpbf16ps(0, 4, 6);
          _tile_loadd(7, b1 + s * 512, 64);
          _tile_dpbf16ps(1, 4, 7);
          _tile_loadd(5, a1 + s * 32, a_stride);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
          if (pending.ut >= 0) count_rows(cs, pending, 32 * s / steps, 32 * (s + 1) / steps);
        }
        float* out = buf[which];
        which ^= 1;
        _tile_stored(0, out, 128);
        _tile_stored(1, out + 16, 128);
        _tile_stored(2, out + 16 * 32, 128);
        _tile_stored(3, out + 16 * 32 + 16, 128);
        const int64_t j0 = g * 16;
        pending = Window{out, ut, j0, item_bits(j0, std::max(j0, jb), std::min(j0 + (two ? 32 : 16), je))};
      }
    }
  }
  if (pending.ut >= 0) count_rows(cs, pending, 0, 32);
  _tile_release();
}
#endif  // FASTREGEN_AMX

}  // namespace

bool amx_available() {
#if FASTREGEN_AMX
  return cpu_has_amx() && request_tile_permission();
#else
  return false;
#endif
}

PackedItems pack_items(const float* table, int64_t n_items, int64_t dim, int threads) {
  PackedItems p;
  p.n_items = n_items;
  p.dim = dim;
  p.kpad = std::max<int64_t>(32, (dim + 31) / 32 * 32);
  const int64_t K3 = 3 * p.kpad, steps = K3 / 32, n_groups = (n_items + 15) / 16;
  p.tiles.assign(static_cast<size_t>(n_groups * steps * 512), 0);
  p.norms.assign(static_cast<size_t>(n_items), 0.0f);
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(resolve_threads(threads), n_groups)));
  (void)nt;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
    std::vector<uint16_t> col(static_cast<size_t>(K3));
#if FASTREGEN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t j = 0; j < n_items; ++j) {
      const float* v = table + j * dim;
      split3(v, dim, p.kpad, true, col.data());
      p.norms[static_cast<size_t>(j)] =
          in_safe_range(v, dim) ? round_up(norm2(v, dim)) : std::numeric_limits<float>::infinity();
      // VNNI layout: tile s of group g, row q holds (k = 32 s + 2 q, 32 s + 2 q + 1) of its 16 items
      const int64_t g = j / 16, n = j % 16;
      uint16_t* base = p.tiles.data() + g * steps * 512;
      for (int64_t t = 0; t < steps; ++t)
        for (int64_t q = 0; q < 16; ++q) {
          base[t * 512 + q * 32 + n * 2] = col[static_cast<size_t>(t * 32 + 2 * q)];
          base[t * 512 + q * 32 + n * 2 + 1] = col[static_cast<size_t>(t * 32 + 2 * q + 1)];
        }
    }
  }
  return p;
}

std::vector<float> exact_scores(const float* hidden, const float* table, int64_t dim, const int64_t* rows,
                                const int64_t* items, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* u = hidden + rows[i] * dim;
    const float* v = table + items[i] * dim;
    float s = 0.0f;
    for (int64_t k = 0; k < dim; ++k) s = std::fma(u[k], v[k], s);  // std::fma: the same single rounding
    out[static_cast<size_t>(i)] = s;
  }
  return out;
}

AmxRankCounts amx_rank_counts(const AmxRankInput& in, int threads) {
#if !FASTREGEN_AMX
  (void)in;
  (void)threads;
  throw std::runtime_error("amx_rank_counts: this build has no AMX support");
#else
  if (!amx_available()) throw std::runtime_error("amx_rank_counts: the CPU or the OS offers no AMX tiles");
  const PackedItems& P = *in.packed;
  const int64_t B = in.rows, C = P.n_items, d = P.dim, K3 = 3 * P.kpad, m = in.max_rank;
  AmxRankCounts res;
  res.count.assign(static_cast<size_t>(B), 0);
  res.excluded.assign(static_cast<size_t>(B), 0);
  const int64_t n_ut = (B + 31) / 32;
  // every user's bf16 parts, in tiles of 32 rows (rows of 3 kpad: 64-byte multiples)
  std::vector<uint16_t, CacheAligned<uint16_t>> A(static_cast<size_t>(n_ut * 32 * K3), 0);
  std::vector<RowState> st(static_cast<size_t>(B));
  // norms padded to whole 32-item windows (pad items are masked out anyway)
  std::vector<float> norms(static_cast<size_t>((C + 47) / 16 * 16), 0.0f);
  std::copy(P.norms.begin(), P.norms.end(), norms.begin());
  double n_max = 0.0;
  for (const float v : P.norms)
    if (std::isfinite(v)) n_max = std::max(n_max, static_cast<double>(v));
  const double c = bound_constant(d, P.kpad);
  const double e0 = static_cast<double>(8 * P.kpad + 2 * d + 8) * 0x1p-126;
  std::vector<float> target_score(static_cast<size_t>(B));
  std::vector<double> reach(static_cast<size_t>(B));  // score(u, v) <= reach * ||v||_2 + 2 E0 (see below)
  const double reach_factor = (1.0 + 2.0 * gamma(static_cast<double>(d), 0x1p-24)) * (1.0 + 0x1p-40);
  std::vector<int64_t> tiled, exact;  // the users of the tile pass, those of the exact chain alone
  for (int64_t r = 0; r < B; ++r) {
    const float* u = in.hidden + r * d;
    RowState& s = st[static_cast<size_t>(r)];
    const float s_t = target_score[static_cast<size_t>(r)] = fma_chain(u, in.table + in.targets[r] * d, d);
    const bool safe = in_safe_range(u, d);
    if (safe) split3(u, d, P.kpad, false, A.data() + r * K3);
    const double nu = norm2(u, d);
    s.a = round_up(c * nu);
    reach[static_cast<size_t>(r)] = nu * reach_factor;
    // The kernel's thresholds fma(+-a, n_j, s_t +- tau) round once (<= 2^-24 (|s_t| + tau + a n_j)); tau =
    // 2^-20 (|s_t| + a n_max) + 3 E0 leaves, after that rounding, at least the 2 E0 of the bound
    // (amx_ranks.hpp). s_t +- tau themselves are rounded outwards.
    const double tau = 0x1p-20 * (std::fabs(static_cast<double>(s_t)) + static_cast<double>(s.a) * n_max) + 3.0 * e0;
    s.hi = round_up(static_cast<double>(s_t) + tau);
    s.lo = -round_up(-(static_cast<double>(s_t) - tau));
    s.exact = !safe || !std::isfinite(s_t) || !std::isfinite(s.a) || !std::isfinite(s.hi) || !std::isfinite(s.lo);
    (s.exact ? exact : tiled).push_back(r);
    const int64_t* e = in.ex_items + in.ex_offsets[r + 1];
    const int64_t* b = in.ex_items + in.ex_offsets[r];
    res.excluded[static_cast<size_t>(r)] = (e - b) - (std::binary_search(b, e, in.targets[r]) ? 1 : 0);
  }
  res.exact_rows = static_cast<int64_t>(exact.size());
  // Slots of the tile pass: at first every row in its own place (exact rows' slots are skipped), A as
  // it is; once a segment has dropped users, the rest in full tiles of `compact`.
  std::vector<int64_t> slots(static_cast<size_t>(B));
  for (int64_t r = 0; r < B; ++r) slots[static_cast<size_t>(r)] = r;
  std::vector<uint16_t, CacheAligned<uint16_t>> compact;
  const uint16_t* tiles_a = A.data();
  const int64_t one_segment[2] = {0, C};
  const int64_t* bounds = in.bounds != nullptr && in.n_segments > 0 ? in.bounds : one_segment;
  const int64_t n_segments = in.bounds != nullptr && in.n_segments > 0 ? in.n_segments : 1;
  // The largest item norm from each segment boundary on (items outside the safe range: +inf). A user
  // whose target scores above reach * that + 2 E0 has every later item below it: the exact chain's
  // score(u, v) <= ||u|| ||v|| (1 + gamma_{2^-24}(d)) + E0 (amx_ranks.hpp), so its count is final
  // there. With the items in descending norm order this ends the users whose target scores high
  // (those the cap cannot end, ranked < max_rank) after a small share of the items.
  std::vector<double> norm_after(static_cast<size_t>(n_segments + 1), 0.0);
  for (int64_t seg = n_segments - 1; seg >= 0 && n_segments > 1; --seg) {  // one segment: never read
    float mx = 0.0f;
    for (int64_t j = bounds[seg]; j < bounds[seg + 1]; ++j) mx = std::max(mx, P.norms[static_cast<size_t>(j)]);
    norm_after[static_cast<size_t>(seg)] = std::max(norm_after[static_cast<size_t>(seg + 1)], static_cast<double>(mx));
  }
  const int nt_max = static_cast<int>(std::max<int64_t>(1, resolve_threads(threads)));
  std::vector<int64_t> rechecked(static_cast<size_t>(nt_max), 0);
  ErrorSlot error;
  for (int64_t seg = 0; seg < n_segments && !(slots.empty() && exact.empty()); ++seg) {
    const int64_t jb = bounds[seg], je = bounds[seg + 1];
    const int64_t n_slots = static_cast<int64_t>(slots.size()), n_tiles = (n_slots + 31) / 32;
    const int64_t n_exact = static_cast<int64_t>(exact.size());
    // before the first compaction the slots are every row (exact ones skipped), and every row counts
    const int64_t n_tiled = tiles_a == A.data() ? static_cast<int64_t>(tiled.size()) : n_slots;
    res.scanned += (n_tiled + n_exact) * (je - jb);
    const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(nt_max, std::max(n_tiles, n_exact))));
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
      const int tid = thread_index();
      try {
        std::vector<int64_t> band_rows, band_items;
        // contiguous user tiles per thread: rows are disjoint, so counts need no synchronisation
        const int64_t ut0 = n_tiles * tid / nt, ut1 = n_tiles * (tid + 1) / nt;
        if (ut1 > ut0)
          count_tiles(in, tiles_a, slots.data(), n_slots, ut0, ut1, jb, je, st, norms.data(), res.count, band_rows,
                      band_items);
        // users outside the safe range: every candidate of the segment by the exact chain
        for (int64_t q = n_exact * tid / nt; q < n_exact * (tid + 1) / nt; ++q) {
          const int64_t r = exact[static_cast<size_t>(q)];
          const int64_t* ex_end = in.ex_items + in.ex_offsets[r + 1];
          const int64_t* ex = std::lower_bound(in.ex_items + in.ex_offsets[r], ex_end, jb);
          for (int64_t j = std::max<int64_t>(jb, 1); j < je; ++j) {
            if (ex != ex_end && *ex == j) {
              ++ex;
              continue;
            }
            if (j == in.targets[r]) continue;
            band_rows.push_back(r);
            band_items.push_back(j);
          }
        }
        rechecked[static_cast<size_t>(tid)] += static_cast<int64_t>(band_rows.size());
        count_exact(in.hidden, in.table, d, band_rows.data(), band_items.data(),
                    static_cast<int64_t>(band_rows.size()), target_score.data(), res.count.data());
      } catch (...) {  // bad_alloc: never let an exception leave the parallel region
        error.capture();
      }
    }
    error.rethrow();
    if (seg + 1 == n_segments) continue;
    // drop the users whose count over the items so far reached m (their full count is at least m)
    // and those no later item can beat (their count is final)
    const double later = norm_after[static_cast<size_t>(seg + 1)] * (1.0 + 0x1p-40);
    auto done = [&](int64_t r) {
      const float s_t = target_score[static_cast<size_t>(r)];
      return res.count[static_cast<size_t>(r)] >= m ||
             (std::isfinite(s_t) && reach[static_cast<size_t>(r)] * later + 2.0 * e0 < static_cast<double>(s_t));
    };
    exact.erase(std::remove_if(exact.begin(), exact.end(), done), exact.end());
    std::vector<int64_t> kept;
    kept.reserve(slots.size());
    for (const int64_t r : slots)
      if (!st[static_cast<size_t>(r)].exact && !done(r)) kept.push_back(r);
    if (kept.size() == slots.size()) continue;
    // the users left, in full tiles (their bf16 parts copied from A, 6 kpad bytes each)
    slots.swap(kept);
    compact.resize(static_cast<size_t>((static_cast<int64_t>(slots.size()) + 31) / 32 * 32 * K3));
    for (size_t q = 0; q < slots.size(); ++q)
      std::memcpy(compact.data() + q * K3, A.data() + slots[q] * K3, static_cast<size_t>(K3) * sizeof(uint16_t));
    tiles_a = compact.data();
  }
  for (const int64_t v : rechecked) res.rechecked += v;
  if (m != INT64_MAX)
    for (int64_t& v : res.count) v = std::min(v, m);
  return res;
#endif
}

}  // namespace fastregen
