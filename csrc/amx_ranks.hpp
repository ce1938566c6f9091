// Full-ranking counts in two passes (issue 28): a bf16 pass on the AMX tile
// unit that decides almost every (user, item) comparison with a proven error
// bound, and an exact float32 recheck of the few it cannot decide. The ranks
// are those of the exact float32 scores, whatever the bf16 pass did.
//
// The exact score. score(u, v) = the float32 fused-multiply-add chain
//   s = 0; for k in 0..d-1: s = fmaf(u[k], v[k], s)
// in that order. It does not depend on blocking, and on this project's
// x86-64 machines it is bit for bit what MKL's sgemm (torch.mm) returns for
// d <= 300 and blocks of >= 16 rows, i.e. the scores the earlier evaluation
// path ranked (tests/test_ranks_amx.py checks both claims; reference:
// fastregen.reference.ranks.fma_scores).
//
// The ranks. For user row r with target t_r and excluded items E_r:
//   count[r]    = #{j in 1..n_items-1 : j != t_r, j not in E_r, score(h_r, v_j) >= score(h_r, v_t)}
//   excluded[r] = #{distinct j in E_r : j != t_r}
// (fastregen.evaluation.target_ranks on the exact scores; IEEE >=, so a NaN
// target score ranks 0 and a NaN candidate never counts).
//
// The bf16 pass. Each float32 x is split x = hi(x) + lo(x) + rho(x), with
// hi = bf16(x), lo = bf16(x - hi) (round to nearest even, computed here, not
// by the hardware), |rho| <= 2^-16 |x|. The tile unit accumulates, in float32,
//   a(u, v) = hi(u).hi(v) + lo(u).hi(v) + hi(u).lo(v)
// (one product of depth 3 * kpad, kpad = d rounded up to 32). With
// S = sum_k |u_k v_k| <= ||u||_2 ||v||_2 (Cauchy-Schwarz):
//   |u.v - a_exact|     <= (4 * 2^-16 + 2^-22) S          (the neglected terms)
//   |a_exact - a_amx|   <= 1.03 * gamma(3 kpad + 2) S + E0 (float32 accumulation in
//                          any order, rounding to nearest or towards zero: unit 2^-23;
//                          flushed denormals: E0)
//   |u.v - score(u, v)| <= gamma(d) S + E0                 (the exact chain, unit 2^-24)
// gamma(n) = n w / (1 - n w). The bound used, doubled for safety, is
//   eps(u, v) = c ||u||_2 ||v||_2 + tau_u,
// c = 2 (4.1 * 2^-16 + 1.03 gamma_{2^-23}(3 kpad + 2) + gamma_{2^-24}(d)), norms
// computed in float64 and rounded up to float32, and tau_u (a per-user slack)
// covering E0 = (8 kpad + 2 d + 8) 2^-126 and the rounding of the float32
// thresholds themselves: the kernel compares a(u, v) with fma(+-a_u, n_v, s_t +- tau_u),
// a_u = c ||u||_2 and n_v = ||v||_2 rounded up, s_t +- tau_u rounded outwards, and
// tau_u = 2^-20 (|s_t| + a_u max_v n_v) + 3 E0 exceeds the fma's one rounding
// (<= 2^-24 (|s_t| + tau_u + a_u n_v)) by at least the 2 E0 of the bound. The E0 terms need every nonzero
// |x| in [2^-60, 2^50] (no bf16 denormal reaches the tile unit, no product
// overflows): a user outside that range is ranked by the exact chain alone, an
// item outside it is always rechecked.
// An item with a(u, v) > s_t + eps is counted, one with a(u, v) < s_t - eps is
// not, any other (in the band, or NaN) is recomputed by the exact chain.
//
// Plain C++17, no Python; re-entrant (no global state; AMX tile
// configuration is per thread and released on exit); OpenMP over users.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

namespace fastregen {

// Cache-line aligned storage: a tile row split over two cache lines takes two loads (tile loads of
// unaligned rows ran at half speed on the Sapphire Rapids VM of the benchmarks).
template <typename T>
struct CacheAligned {
  using value_type = T;
  CacheAligned() = default;
  template <typename U>
  CacheAligned(const CacheAligned<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64})); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t{64}); }
  template <typename U>
  bool operator==(const CacheAligned<U>&) const { return true; }
  template <typename U>
  bool operator!=(const CacheAligned<U>&) const { return false; }
};

// Whether the bf16 tile pass can run here: an x86-64 build, a CPU with
// AMX-TILE, AMX-BF16 and AVX512F/BW, and the OS granting this process the
// tile data state (Linux arch_prctl ARCH_REQ_XCOMP_PERM; asked once per call,
// the grant is the kernel's, per process).
bool amx_available();

// The item table in the tile unit's layout (bf16 pairs, VNNI), built once per
// table: n_items rows of dim float32.
struct PackedItems {
  int64_t n_items = 0;
  int64_t dim = 0;
  int64_t kpad = 0;                 // dim rounded up to a multiple of 32
  std::vector<uint16_t, CacheAligned<uint16_t>> tiles;  // ceil(n_items / 16) groups x (3 kpad / 32) tiles x 16 x 32 bf16
  std::vector<float> norms;         // ||v_j||_2 rounded up, +inf for items outside the safe range
};

// threads <= 0: the OpenMP default.
PackedItems pack_items(const float* table, int64_t n_items, int64_t dim, int threads);

// The capped count (issue 28, validation). With max_rank = m the kernel
// returns min(count[r], m): the items are scanned a segment at a time
// ([bounds[s], bounds[s + 1]), any item boundaries), and after each segment a
// user whose exact count over the items scanned so far (the surely-above
// pairs plus its band of the segment, rechecked) has reached m is dropped: its
// full count is at least that. The users still counting are compacted into
// full 32-user tiles for the next segment, so that one unfinished user does
// not keep a whole tile scanning. Every @k metric with k <= m of min(rank, m)
// is that of the rank. A user is also dropped, its count then final, once no
// later item can reach its target's score: score(u, v) <= ||u|| ||v||
// (1 + gamma_{2^-24}(d)) + E0 for the exact chain, so when s_t exceeds that
// for the largest norm among the items after the segment, none of them
// counts (with the items in descending norm order this ends the users ranked
// below m, whom the cap cannot end, after a small share of the items; with
// several segments it applies without a cap too). The order of the items is
// the caller's; the result is min(count, m) whatever the segments and the
// order.
struct AmxRankInput {
  const float* hidden = nullptr;      // (rows, dim)
  int64_t rows = 0;
  const float* table = nullptr;       // (n_items, dim), the exact scores' items
  const PackedItems* packed = nullptr;
  const int64_t* targets = nullptr;   // (rows,), in 1..n_items-1
  const int64_t* ex_offsets = nullptr;  // (rows + 1,), ex_offsets[0] == 0
  const int64_t* ex_items = nullptr;    // ids in 1..n_items-1; per row ascending, distinct
  int64_t max_rank = INT64_MAX;         // m >= 1; INT64_MAX: no cap
  const int64_t* bounds = nullptr;      // (n_segments + 1,): 0 = bounds[0] < ... < bounds[n_segments] = n_items;
  int64_t n_segments = 0;               // null / 0: one segment, all items
};

struct AmxRankCounts {
  std::vector<int64_t> count;     // min(count, max_rank)
  std::vector<int64_t> excluded;  // never capped
  int64_t rechecked = 0;   // (user, item) pairs scored by the exact chain in the band
  int64_t exact_rows = 0;  // users ranked by the exact chain alone
  int64_t scanned = 0;     // (user, item) pairs of the segments scanned: rows * n_items in one segment
};

// The caller has validated the shapes, ids, the CSR (per row ascending and
// distinct), max_rank >= 1 and the bounds. Throws std::runtime_error when
// !amx_available(). threads <= 0: the OpenMP default. The result (counts and
// statistics) never depends on the thread count.
AmxRankCounts amx_rank_counts(const AmxRankInput& in, int threads);

// score(hidden[r], table[items[i]]) for the pairs (rows[i], items[i]): the
// exact chain above (the reference of fastregen.reference.ranks.fma_scores).
std::vector<float> exact_scores(const float* hidden, const float* table, int64_t dim, const int64_t* rows,
                                const int64_t* items, int64_t n);

}  // namespace fastregen
