// Full-ranking evaluation: the rank of each row's target among the candidate
// items, counted straight from a block of the score matrix, without the
// B x C boolean comparison matrix that torch's `(s >= t).sum(1)` builds.
//
// Plain C++17, no Python; re-entrant (no global state); OpenMP over rows.
#pragma once

#include <cstdint>
#include <vector>

namespace fastregen {

// One block of columns [c0, c0 + width) of a row-major score matrix with
// `rows` rows: row r's score of item j is scores[r * width + (j - c0)]. The
// full matrix has n_columns columns (item ids 0..n_columns-1, 0 = padding).
//
// For each row r, with target t_r, threshold thr_r and excluded items
// E_r = ex_items[ex_offsets[r] .. ex_offsets[r+1]) (any order, duplicates
// allowed, ids in 1..n_columns-1):
//   count[r]    = #{j in block : j != 0, j != t_r, j not in E_r, s_rj >= thr_r}
//   excluded[r] = #{distinct j in block ∩ E_r : j != t_r}
// Comparisons are IEEE `>=` (false when either side is NaN), as torch's.
// With thr_r = s_{r,t_r}, count is the target's 0-based pessimistic rank
// within the block, and summing count / excluded over the blocks of a row
// gives fastregen.evaluation.target_ranks' rank / (n_columns - 1 - n_candidates).
//
// Band (optional, lo != nullptr): the candidates scoring in [lo_r, thr_r)
// are also returned, as (row, score) pairs ordered by row then column. The
// item-chunked evaluation compares the chunks before a row's target against
// an interval [lo, hi] known to hold the target's score: it counts s > hi
// (thr = the float just above hi) and keeps the scores inside [lo, hi] to
// compare once the target's own score is known. lo_r >= thr_r: no band.
template <typename T>
struct RankBlock {
  const T* scores = nullptr;
  int64_t rows = 0;
  int64_t width = 0;
  int64_t c0 = 0;
  int64_t n_columns = 0;
  const int64_t* targets = nullptr;     // (rows,)
  const T* thresholds = nullptr;        // (rows,)
  const T* lo = nullptr;                // (rows,) or nullptr
  const int64_t* ex_offsets = nullptr;  // (rows + 1,)
  const int64_t* ex_items = nullptr;    // (ex_offsets[rows],)
};

template <typename T>
struct RankCounts {
  std::vector<int64_t> count;
  std::vector<int64_t> excluded;
  std::vector<int64_t> band_rows;
  std::vector<T> band_values;
};

// The caller has validated: ex_offsets[0] == 0, non-decreasing, and every
// id in ex_items lies in 1..n_columns-1 (the kernel still only indexes a
// score after checking the column lies inside the block). threads <= 0: the
// OpenMP default. The result never depends on the thread count.
template <typename T>
RankCounts<T> rank_counts(const RankBlock<T>& block, int threads);

extern template RankCounts<float> rank_counts<float>(const RankBlock<float>&, int);
extern template RankCounts<double> rank_counts<double>(const RankBlock<double>&, int);

}  // namespace fastregen
