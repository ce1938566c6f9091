// Edge cases of the rank count (csrc/ranks.*) against a brute-force count
// written from the header's definition: no rows, one column, all-tied scores,
// the target and the largest id in the block, repeated and unsorted
// exclusions, NaN, a block split in two, the band, and thread independence.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "check.hpp"
#include "ranks.hpp"

using namespace fastregen;

namespace {

using V = std::vector<int64_t>;

struct Case {
  int64_t rows = 0, n_columns = 0;
  std::vector<float> scores;  // rows x n_columns, the whole matrix
  V targets;
  V ex_offsets{0}, ex_items;
};

// Block [c0, c0 + width) of the case, counted by the kernel.
RankCounts<float> kernel(const Case& c, int64_t c0, int64_t width, const std::vector<float>& thr, int threads,
                         const std::vector<float>* lo = nullptr) {
  std::vector<float> block(static_cast<size_t>(c.rows * width));
  for (int64_t r = 0; r < c.rows; ++r)
    for (int64_t j = 0; j < width; ++j) block[r * width + j] = c.scores[r * c.n_columns + c0 + j];
  RankBlock<float> k;
  k.scores = block.data();
  k.rows = c.rows;
  k.width = width;
  k.c0 = c0;
  k.n_columns = c.n_columns;
  k.targets = c.targets.data();
  k.thresholds = thr.data();
  k.lo = lo ? lo->data() : nullptr;
  k.ex_offsets = c.ex_offsets.data();
  k.ex_items = c.ex_items.data();
  return rank_counts(k, threads);
}

std::vector<float> target_scores(const Case& c) {
  std::vector<float> t(static_cast<size_t>(c.rows));
  for (int64_t r = 0; r < c.rows; ++r) t[r] = c.scores[r * c.n_columns + c.targets[r]];
  return t;
}

// The header's definition over the whole row: (count, distinct excluded).
std::pair<V, V> brute(const Case& c, const std::vector<float>& thr) {
  V count(static_cast<size_t>(c.rows)), excluded(static_cast<size_t>(c.rows));
  for (int64_t r = 0; r < c.rows; ++r) {
    const std::set<int64_t> ex(c.ex_items.begin() + c.ex_offsets[r], c.ex_items.begin() + c.ex_offsets[r + 1]);
    for (int64_t j = 1; j < c.n_columns; ++j) {
      if (j == c.targets[r]) continue;
      if (ex.count(j)) {
        ++excluded[r];
        continue;
      }
      if (c.scores[r * c.n_columns + j] >= thr[r]) ++count[r];
    }
  }
  return {count, excluded};
}

Case random_case(std::mt19937_64& rng, int64_t rows, int64_t n_columns, int levels, int max_ex) {
  Case c;
  c.rows = rows;
  c.n_columns = n_columns;
  // few distinct values: ties everywhere
  std::uniform_int_distribution<int> level(0, levels - 1);
  for (int64_t i = 0; i < rows * n_columns; ++i) c.scores.push_back(static_cast<float>(level(rng)) * 0.5f);
  std::uniform_int_distribution<int64_t> item(1, n_columns - 1);
  std::uniform_int_distribution<int> n_ex(0, max_ex);
  for (int64_t r = 0; r < rows; ++r) {
    c.targets.push_back(item(rng));
    const int m = n_ex(rng);
    for (int e = 0; e < m; ++e) c.ex_items.push_back(item(rng));  // unsorted, repeats, maybe the target
    if (m > 1 && r % 2 == 0) std::sort(c.ex_items.end() - m, c.ex_items.end());  // both code paths
    c.ex_offsets.push_back(static_cast<int64_t>(c.ex_items.size()));
  }
  return c;
}

void test_empty_and_tiny() {
  Case none;  // no rows
  none.n_columns = 5;
  const RankCounts<float> r0 = kernel(none, 0, 5, {}, 1);
  CHECK(r0.count.empty() && r0.excluded.empty() && r0.band_rows.empty());

  Case one;  // one row, two columns: padding and the target; no other candidate
  one.rows = 1;
  one.n_columns = 2;
  one.scores = {5.0f, 1.0f};
  one.targets = {1};
  one.ex_offsets = {0, 1};
  one.ex_items = {1};  // the target itself: never excluded
  const RankCounts<float> r1 = kernel(one, 0, 2, target_scores(one), 1);
  CHECK_EQ(r1.count[0], 0);
  CHECK_EQ(r1.excluded[0], 0);
  const RankCounts<float> w0 = kernel(one, 1, 0, target_scores(one), 1);  // an empty block of columns
  CHECK_EQ(w0.count[0], 0);
}

void test_ties_and_max_id() {
  // every score equal: pessimistic ties put the target behind every candidate
  Case c;
  c.rows = 2;
  c.n_columns = 6;
  c.scores.assign(12, 1.0f);
  c.targets = {5, 1};  // the largest id, the smallest
  c.ex_offsets = {0, 3, 5};
  c.ex_items = {5, 3, 3, 5, 5};  // row 0: target + a repeat; row 1: the largest id twice
  const RankCounts<float> r = kernel(c, 0, 6, target_scores(c), 1);
  CHECK_EQ(r.count[0], 3);  // 1, 2, 4
  CHECK_EQ(r.excluded[0], 1);
  CHECK_EQ(r.count[1], 3);  // 2, 3, 4
  CHECK_EQ(r.excluded[1], 1);

  // NaN never counts, and a NaN threshold counts nothing
  Case n = c;
  n.scores[0 * 6 + 2] = std::numeric_limits<float>::quiet_NaN();
  const RankCounts<float> rn = kernel(n, 0, 6, target_scores(n), 1);
  CHECK_EQ(rn.count[0], 2);
  std::vector<float> nan_thr{std::numeric_limits<float>::quiet_NaN(), 1.0f};
  CHECK_EQ(kernel(n, 0, 6, nan_thr, 1).count[0], 0);
}

void test_random_blocks_and_threads() {
  std::mt19937_64 rng(20261206);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t rows = 1 + static_cast<int64_t>(rng() % 9);
    const int64_t cols = 2 + static_cast<int64_t>(rng() % 40);
    const Case c = random_case(rng, rows, cols, 1 + static_cast<int>(rng() % 4), 6);
    const std::vector<float> thr = target_scores(c);
    const auto [want_count, want_excluded] = brute(c, thr);
    const RankCounts<float> whole = kernel(c, 0, cols, thr, 1);
    CHECK(whole.count == want_count);
    CHECK(whole.excluded == want_excluded);
    // two blocks sum to the whole row
    const int64_t cut = static_cast<int64_t>(rng() % static_cast<uint64_t>(cols + 1));
    const RankCounts<float> a = kernel(c, 0, cut, thr, 1), b = kernel(c, cut, cols - cut, thr, 1);
    for (int64_t r = 0; r < rows; ++r) {
      CHECK_EQ(a.count[r] + b.count[r], want_count[r]);
      CHECK_EQ(a.excluded[r] + b.excluded[r], want_excluded[r]);
    }
  }
  // enough scores for the parallel region (>= 2^16): 2 threads give what 1 gives
  const Case big = random_case(rng, 64, 2048, 3, 20);
  const std::vector<float> thr = target_scores(big);
  const RankCounts<float> one = kernel(big, 0, 2048, thr, 1), two = kernel(big, 0, 2048, thr, 2);
  CHECK(one.count == two.count);
  CHECK(one.count == brute(big, thr).first);
}

void test_band() {
  // band [lo, thr): the kernel counts >= thr and returns the candidates scoring inside the band,
  // ordered by row then column, never padding, the target or an excluded item
  Case c;
  c.rows = 2;
  c.n_columns = 6;
  c.scores = {9.0f, 1.0f, 2.0f, 3.0f, 2.5f, 0.0f,  //
              9.0f, 3.0f, 3.0f, 3.0f, 3.0f, 3.0f};
  c.targets = {5, 1};
  c.ex_offsets = {0, 1, 1};
  c.ex_items = {4};
  const std::vector<float> thr{3.0f, 3.0f}, lo{2.0f, 4.0f};  // row 1: lo >= thr, no band
  const RankCounts<float> r = kernel(c, 0, 6, thr, 2, &lo);
  CHECK_EQ(r.count[0], 1);  // item 3
  CHECK_EQ(r.count[1], 4);
  CHECK(r.band_rows == V{0});
  CHECK(r.band_values == std::vector<float>{2.0f});  // item 2; item 4 (2.5) is excluded
}

}  // namespace

int main() {
  test_empty_and_tiny();
  test_ties_and_max_id();
  test_random_blocks_and_threads();
  test_band();
  return check::report("test_ranks");
}
