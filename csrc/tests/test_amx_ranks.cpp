// The two-pass AMX rank count (csrc/amx_ranks.*) in plain C++: exact_scores
// against an in-order std::fma chain written here (random, length-1, zero,
// non-finite, a halfway case, an order-sensitive case); pack_items' layout
// sizes and item norms; and, where the CPU offers AMX tiles, amx_rank_counts
// against a brute-force count from the header's definition (ties from
// duplicated items, targets tied with other items, items one float32 step
// from the target, exclusions naming the target, item 0 scoring highest,
// users and items outside the safe range, zero users) for 1 and 2 threads,
// and with a rank cap over segments of any size (min(count, cap) exactly).
// Without AMX the kernel must throw std::runtime_error, and that part is
// reported as skipped (CI's machine may have no AMX).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "amx_ranks.hpp"
#include "check.hpp"

using namespace fastregen;

namespace {

using V = std::vector<int64_t>;
using F = std::vector<float>;

// The header's exact score, written out: s = 0; s = fma(u[k], v[k], s) for k in order.
float fma_chain(const float* u, const float* v, int64_t d) {
  float s = 0.0f;
  for (int64_t k = 0; k < d; ++k) s = std::fma(u[k], v[k], s);
  return s;
}

// Bit for bit (so -0 != +0), except that any NaN equals any NaN: the payload
// of a NaN may differ between the FMA instruction and libm's fma.
bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

// The header's safe range: every nonzero |x| in [2^-60, 2^50] (NaN is outside).
bool in_safe_range(const float* x, int64_t d) {
  for (int64_t k = 0; k < d; ++k) {
    const float a = std::fabs(x[k]);
    if (!(a <= 0x1p50f) || (a != 0.0f && a < 0x1p-60f)) return false;
  }
  return true;
}

F normal_vectors(std::mt19937_64& rng, int64_t n, int64_t d, float scale = 1.0f) {
  std::normal_distribution<float> g(0.0f, 1.0f);
  F x(static_cast<size_t>(n * d));
  for (float& v : x) v = g(rng) * scale;
  return x;
}

// All pairs of exact_scores: (rows x n_items), row-major.
F all_scores(const F& hidden, const F& table, int64_t rows, int64_t n_items, int64_t d) {
  V r, j;
  for (int64_t a = 0; a < rows; ++a)
    for (int64_t b = 0; b < n_items; ++b) {
      r.push_back(a);
      j.push_back(b);
    }
  return exact_scores(hidden.data(), table.data(), d, r.data(), j.data(), rows * n_items);
}

void test_exact_scores() {
  std::mt19937_64 rng(20261207);
  for (const int64_t d : {1, 2, 16, 33, 100}) {
    const int64_t B = 5, C = 9;
    F hidden = normal_vectors(rng, B, d), table = normal_vectors(rng, C, d);
    std::fill(hidden.begin() + 2 * d, hidden.begin() + 3 * d, 0.0f);  // a zero user
    std::fill(table.begin() + 4 * d, table.begin() + 5 * d, 0.0f);    // a zero item
    for (int64_t k = 0; k < d; ++k) table[static_cast<size_t>(6 * d + k)] *= 0x1p100f;  // products near overflow
    table[static_cast<size_t>(7 * d)] = std::numeric_limits<float>::infinity();
    table[static_cast<size_t>(8 * d)] = std::numeric_limits<float>::quiet_NaN();
    // the pairs in a shuffled order, with repeats: each score is its own pair's, not a position's
    V r, j;
    for (int i = 0; i < 60; ++i) {
      r.push_back(static_cast<int64_t>(rng() % B));
      j.push_back(static_cast<int64_t>(rng() % C));
    }
    const F got = exact_scores(hidden.data(), table.data(), d, r.data(), j.data(), 60);
    CHECK_EQ(got.size(), size_t{60});
    for (size_t i = 0; i < got.size(); ++i)
      CHECK(same_float(got[i], fma_chain(&hidden[r[i] * d], &table[j[i] * d], d)));
  }
  // fl(fl(u0 v0) + u1 v1) in float64 then float32 would round twice: 1 + 2^-23 + 2^-24 - 2^-70 is
  // float64's 1 + 2^-23 + 2^-24, halfway, and ties-to-even would give 1 + 2^-22 (tests/test_ranks_amx.py)
  const F u{1.0f + 0x1p-23f, 0x1p-24f * (1.0f + 0x1p-23f)}, v{1.0f, 1.0f - 0x1p-23f};
  const V zero{0};
  const float half = exact_scores(u.data(), v.data(), 2, zero.data(), zero.data(), 1)[0];
  CHECK_EQ(half, 1.0f + 0x1p-23f);
  CHECK(half == fma_chain(u.data(), v.data(), 2));
  CHECK(half != static_cast<float>(static_cast<double>(u[0]) * v[0] + static_cast<double>(u[1]) * v[1]));
  // the order is k = 0, 1, 2: (1 + 1e8) rounds to 1e8, then - 1e8 gives 0 (the reverse order gives 1)
  const F a{1.0f, 1e8f, -1e8f}, ones{1.0f, 1.0f, 1.0f};
  CHECK_EQ(exact_scores(a.data(), ones.data(), 3, zero.data(), zero.data(), 1)[0], 0.0f);
  CHECK(exact_scores(a.data(), ones.data(), 3, zero.data(), zero.data(), 0).empty());
}

void test_pack_items() {
  std::mt19937_64 rng(7);
  for (const int64_t d : {1, 16, 32, 33, 100}) {
    const int64_t C = 37;  // not a multiple of 16
    F table = normal_vectors(rng, C, d);
    std::fill(table.begin() + 3 * d, table.begin() + 4 * d, 0.0f);  // zero: in range, norm 0
    table[static_cast<size_t>(5 * d)] = 0x1p51f;                    // above the safe range
    table[static_cast<size_t>(6 * d)] = 0x1p-61f;                   // below it
    table[static_cast<size_t>(7 * d)] = std::numeric_limits<float>::quiet_NaN();
    table[static_cast<size_t>(8 * d)] = 0x1p50f;                    // the edges themselves are inside
    table[static_cast<size_t>(9 * d)] = 0x1p-60f;
    const PackedItems one = pack_items(table.data(), C, d, 1), two = pack_items(table.data(), C, d, 2);
    const int64_t kpad = std::max<int64_t>(32, (d + 31) / 32 * 32);
    CHECK_EQ(one.n_items, C);
    CHECK_EQ(one.dim, d);
    CHECK_EQ(one.kpad, kpad);
    CHECK_EQ(one.tiles.size(), static_cast<size_t>((C + 15) / 16 * (3 * kpad / 32) * 16 * 32));
    CHECK(one.tiles == two.tiles);
    CHECK(one.norms == two.norms);
    CHECK_EQ(one.norms.size(), static_cast<size_t>(C));
    for (int64_t j = 0; j < C; ++j) {
      const float* x = &table[static_cast<size_t>(j * d)];
      const float n = one.norms[static_cast<size_t>(j)];
      if (!in_safe_range(x, d)) {
        CHECK(std::isinf(n));
        continue;
      }
      // ||v||_2 in float64, rounded up to float32: the smallest float32 >= it
      double s = 0.0;
      for (int64_t k = 0; k < d; ++k) s += static_cast<double>(x[k]) * x[k];
      const double exact = std::sqrt(s);
      // an upper bound (the kernel's bound needs one), and a close one
      CHECK(static_cast<double>(n) >= exact);
      CHECK(static_cast<double>(n) <= exact * (1.0 + 0x1p-21));
    }
    CHECK_EQ(one.norms[3], 0.0f);
  }
}

struct Problem {
  int64_t B = 0, C = 0, d = 0;
  F hidden, table;
  V targets, ex_offsets{0}, ex_items;
  int64_t outside = 0;  // users outside the safe range
};

// The header's definition, on exact_scores of every pair:
//   count[r]    = #{j in 1..C-1 : j != t_r, j not in E_r, score(h_r, v_j) >= score(h_r, v_t)}
//   excluded[r] = #{distinct j in E_r : j != t_r}
std::pair<V, V> brute(const Problem& p) {
  const F s = all_scores(p.hidden, p.table, p.B, p.C, p.d);
  V count(static_cast<size_t>(p.B)), excluded(static_cast<size_t>(p.B));
  for (int64_t r = 0; r < p.B; ++r) {
    const int64_t t = p.targets[r];
    const auto b = p.ex_items.begin() + p.ex_offsets[r], e = p.ex_items.begin() + p.ex_offsets[r + 1];
    for (auto it = b; it != e; ++it) excluded[r] += *it != t ? 1 : 0;
    for (int64_t j = 1; j < p.C; ++j) {
      if (j == t || std::find(b, e, j) != e) continue;
      if (s[r * p.C + j] >= s[r * p.C + t]) ++count[r];
    }
  }
  return {count, excluded};
}

Problem random_problem(std::mt19937_64& rng, int64_t B, int64_t C, int64_t d) {
  Problem p;
  p.B = B;
  p.C = C;
  p.d = d;
  p.hidden = normal_vectors(rng, B, d);
  p.table = normal_vectors(rng, C, d, 0.3f);
  auto item = [&](int64_t j) { return p.table.begin() + j * d; };
  auto user = [&](int64_t r) { return p.hidden.begin() + r * d; };
  auto pick = [&](int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo)); };
  for (int64_t r = 0; r < B; ++r) p.targets.push_back(pick(1, C));
  p.targets[8] = 1;  // an item of ordinary scale (never one of the extreme items below): the padding case
  // tied items: copies of a few targets (a target scoring exactly like other items) and of others
  for (int i = 0; i < 12; ++i) {
    const int64_t src = i < 6 ? p.targets[static_cast<size_t>(pick(0, B))] : pick(1, C), dst = pick(1, C);
    if (src != dst) std::copy(item(src), item(src) + d, item(dst));
  }
  // near-ties: a target one float32 step away in one component
  for (int i = 0; i < 8; ++i) {
    const int64_t src = p.targets[static_cast<size_t>(pick(0, B))], dst = pick(1, C);
    if (src == dst) continue;
    std::copy(item(src), item(src) + d, item(dst));
    float& x = item(dst)[pick(0, d)];
    x = std::nextafter(x, (rng() & 1) ? 1e30f : -1e30f);
  }
  // items outside the safe range (always rechecked) and a large one inside it
  item(pick(2, C))[0] = 0x1p55f;
  item(pick(2, C))[0] = 0x1p-62f;
  const int64_t large = pick(2, C);
  for (int64_t k = 0; k < d; ++k) item(large)[k] *= 0x1p40f;
  // users: zero (every item in the band), large and small but in range (the tile pass with
  // extreme norms), outside the range (the exact chain alone), non-finite
  std::fill(user(0), user(0) + d, 0.0f);
  for (int64_t k = 0; k < d; ++k) user(1)[k] *= 0x1p45f;
  for (int64_t k = 0; k < d; ++k) user(2)[k] *= 0x1p-55f;
  for (int64_t k = 0; k < d; ++k) user(3)[k] *= 0x1p55f;
  for (int64_t k = 0; k < d; ++k) user(4)[k] *= 0x1p-62f;
  for (int64_t k = 0; k < d; ++k) user(5)[k] *= 0x1p-130f;  // subnormals
  user(6)[0] = std::numeric_limits<float>::infinity();
  user(7)[d - 1] = std::numeric_limits<float>::quiet_NaN();
  for (int64_t r = 0; r < B; ++r) p.outside += in_safe_range(&p.hidden[r * d], d) ? 0 : 1;
  // item 0 is padding: user 8's own direction, scaled up, so that it would beat user 8's target
  for (int64_t k = 0; k < d; ++k) item(0)[k] = user(8)[k] * 64.0f;
  // exclusions: per row ascending and distinct (the caller's promise), every other row naming its target
  for (int64_t r = 0; r < B; ++r) {
    std::vector<int64_t> ex;
    const int64_t n = pick(0, 7);
    for (int64_t i = 0; i < n; ++i) ex.push_back(pick(1, C));
    if (r % 2 == 0) ex.push_back(p.targets[r]);
    std::sort(ex.begin(), ex.end());
    ex.erase(std::unique(ex.begin(), ex.end()), ex.end());
    p.ex_items.insert(p.ex_items.end(), ex.begin(), ex.end());
    p.ex_offsets.push_back(static_cast<int64_t>(p.ex_items.size()));
  }
  return p;
}

AmxRankCounts run(const Problem& p, const PackedItems& packed, int threads) {
  AmxRankInput in;
  in.hidden = p.hidden.data();
  in.rows = p.B;
  in.table = p.table.data();
  in.packed = &packed;
  in.targets = p.targets.data();
  in.ex_offsets = p.ex_offsets.data();
  in.ex_items = p.ex_items.data();
  return amx_rank_counts(in, threads);
}

void test_amx_rank_counts() {
  std::mt19937_64 rng(28);
  int64_t rechecked = 0;
  for (const int64_t d : {1, 16, 33, 64, 100}) {
    for (const int64_t B : {9, 70}) {  // one user tile (part-filled), several
      const int64_t C = B == 9 ? 17 : 301;  // one item group and one padding item over; several groups
      const Problem p = random_problem(rng, B, C, d);
      const PackedItems packed = pack_items(p.table.data(), C, d, 1);
      const auto [want_count, want_excluded] = brute(p);
      for (const int threads : {1, 2}) {
        const AmxRankCounts got = run(p, packed, threads);
        CHECK(got.count == want_count);
        CHECK(got.excluded == want_excluded);
        CHECK_EQ(got.exact_rows, p.outside);
        rechecked += got.rechecked;
      }
      // the premise of the padding case: item 0 outscores user 8's target (so counting it would show)
      const V r8{8, 8}, j8{0, p.targets[8]};
      const F s8 = exact_scores(p.hidden.data(), p.table.data(), d, r8.data(), j8.data(), 2);
      CHECK(s8[0] > s8[1]);
    }
  }
  CHECK(rechecked > 0);  // the zero user alone puts every item in the band
}

// The capped count: min(count, m) of the brute force, whatever the segments (sizes not multiples of
// the 16-item groups) and the threads; users stop (fewer pairs scanned than rows x items); without a
// cap, one segment scans every pair and several change no count.
void test_capped_counts() {
  std::mt19937_64 rng(2028);
  for (const int64_t d : {16, 64}) {
    const int64_t B = 70, C = 301;
    const Problem p = random_problem(rng, B, C, d);
    const PackedItems packed = pack_items(p.table.data(), C, d, 1);
    const V want = brute(p).first;
    const V bounds{0, 5, 37, 38, 150, C};
    for (const int64_t m : {int64_t{1}, int64_t{3}, int64_t{50}, C, INT64_MAX}) {
      for (const int threads : {1, 2}) {
        AmxRankInput in;
        in.hidden = p.hidden.data();
        in.rows = B;
        in.table = p.table.data();
        in.packed = &packed;
        in.targets = p.targets.data();
        in.ex_offsets = p.ex_offsets.data();
        in.ex_items = p.ex_items.data();
        in.max_rank = m;
        in.bounds = bounds.data();
        in.n_segments = static_cast<int64_t>(bounds.size()) - 1;
        const AmxRankCounts got = amx_rank_counts(in, threads);
        for (int64_t r = 0; r < B; ++r) CHECK_EQ(got.count[r], std::min(want[r], m));
        CHECK_EQ(got.exact_rows, p.outside);
        CHECK(got.scanned <= B * C);
        if (m <= 3) CHECK(got.scanned < B * C);
      }
    }
    CHECK_EQ(run(p, packed, 1).scanned, B * C);
  }
}

}  // namespace

int main() {
  test_exact_scores();
  test_pack_items();
  if (amx_available()) {
    test_amx_rank_counts();
    test_capped_counts();
  } else {
    std::fprintf(stderr, "test_amx_ranks: no AMX tiles here (CPU or OS): amx_rank_counts skipped\n");
    const Problem p = [] {
      std::mt19937_64 rng(1);
      return random_problem(rng, 9, 17, 16);
    }();
    const PackedItems packed = pack_items(p.table.data(), p.C, p.d, 1);
    CHECK_THROWS(run(p, packed, 1), std::runtime_error);
  }
  return check::report("test_amx_ranks");
}
