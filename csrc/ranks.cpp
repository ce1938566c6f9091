#include "ranks.hpp"

#include <algorithm>
#include <exception>
#include <new>
#include <utility>

#include "csr.hpp"
#include "error_slot.hpp"

namespace fastregen {

namespace {

// #{j < n : s[j] >= thr}. A 32-bit counter over blocks of 2^30 lets the
// compiler vectorise the compare-and-add (packed compares, no 64-bit lanes).
template <typename T>
int64_t count_ge(const T* s, int64_t n, T thr) {
  int64_t total = 0;
  constexpr int64_t kBlock = int64_t{1} << 30;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    uint32_t c = 0;
    for (int64_t j = b; j < e; ++j) c += static_cast<uint32_t>(s[j] >= thr);
    total += c;
  }
  return total;
}

// (#{j < n : s[j] >= hi}, #{j < n : s[j] >= lo}) in one vectorised pass.
template <typename T>
std::pair<int64_t, int64_t> count_ge2(const T* s, int64_t n, T hi, T lo) {
  int64_t total_hi = 0, total_lo = 0;
  constexpr int64_t kBlock = int64_t{1} << 30;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    uint32_t c_hi = 0, c_lo = 0;
    for (int64_t j = b; j < e; ++j) {
      c_hi += static_cast<uint32_t>(s[j] >= hi);
      c_lo += static_cast<uint32_t>(s[j] >= lo);
    }
    total_hi += c_hi;
    total_lo += c_lo;
  }
  return {total_hi, total_lo};
}

// Row r's excluded items inside [c0, c1), other than 0 and the target, each
// once, ascending, into `out`. A sorted list (what the Python layer passes)
// is cut by binary search; any other order is filtered, sorted and deduplicated.
void block_exclusions(const int64_t* b, const int64_t* e, int64_t c0, int64_t c1, int64_t target,
                      std::vector<int64_t>& out) {
  out.clear();
  if (std::is_sorted(b, e)) {
    for (const int64_t* p = std::lower_bound(b, e, c0); p != e && *p < c1; ++p)
      if (*p != 0 && *p != target && (out.empty() || out.back() != *p)) out.push_back(*p);
    return;
  }
  for (const int64_t* p = b; p != e; ++p)
    if (*p >= c0 && *p < c1 && *p != 0 && *p != target) out.push_back(*p);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

}  // namespace

template <typename T>
RankCounts<T> rank_counts(const RankBlock<T>& k, int threads) {
  RankCounts<T> res;
  const int64_t B = k.rows;
  res.count.assign(static_cast<size_t>(B), 0);
  res.excluded.assign(static_cast<size_t>(B), 0);
  const int64_t c0 = k.c0, c1 = k.c0 + k.width;
  // Below ~256 KiB of scores a parallel region costs more than the count.
  const int nt = static_cast<int>(std::max<int64_t>(
      1, std::min<int64_t>(B * k.width < (int64_t{1} << 16) ? 1 : resolve_threads(threads), B)));
  std::vector<std::vector<int64_t>> band_rows(static_cast<size_t>(nt));
  std::vector<std::vector<T>> band_values(static_cast<size_t>(nt));
  ErrorSlot error;
  (void)nt;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
    const int tid = thread_index();
    std::vector<int64_t> ex;
    std::vector<int64_t>& my_rows = band_rows[static_cast<size_t>(tid)];
    std::vector<T>& my_values = band_values[static_cast<size_t>(tid)];
    // schedule(static): each thread takes one contiguous range of rows, in
    // thread order, so concatenating the threads' bands keeps row order.
#if FASTREGEN_HAVE_OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t r = 0; r < B; ++r) {
      try {
        const T* s = k.scores + r * k.width;
        const T thr = k.thresholds[r];
        const int64_t t = k.targets[r];
        block_exclusions(k.ex_items + k.ex_offsets[r], k.ex_items + k.ex_offsets[r + 1], c0, c1, t, ex);
        // Count every column, then take back padding, the target and the
        // excluded items: the main loop stays branch-free.
        // With a band: both counts in one pass; the scalar scan for the band's
        // scores only runs when some score lies in [lo, thr) (rare: the band is
        // a few float32 steps wide).
        const bool band = k.lo != nullptr && k.lo[r] < thr;
        int64_t cnt = 0, in_band = 0;
        if (band) {
          const auto both = count_ge2(s, k.width, thr, k.lo[r]);
          cnt = both.first;
          in_band = both.second - both.first;
        } else {
          cnt = count_ge(s, k.width, thr);
        }
        if (c0 == 0 && k.width > 0 && s[0] >= thr) --cnt;
        if (t >= c0 && t < c1 && s[t - c0] >= thr) --cnt;
        for (const int64_t j : ex)
          if (s[j - c0] >= thr) --cnt;
        res.count[static_cast<size_t>(r)] = cnt;
        res.excluded[static_cast<size_t>(r)] = static_cast<int64_t>(ex.size());
        if (band && in_band > 0) {
          const T lo = k.lo[r];
          for (int64_t j = 0; j < k.width; ++j) {
            const T v = s[j];
            if (!(v >= lo && v < thr)) continue;
            const int64_t item = c0 + j;
            if (item == 0 || item == t || std::binary_search(ex.begin(), ex.end(), item)) continue;
            my_rows.push_back(r);
            my_values.push_back(v);
          }
        }
      } catch (...) {  // bad_alloc: never let an exception leave the parallel region
        error.capture();
      }
    }
  }
  error.rethrow();
  for (int i = 0; i < nt; ++i) {
    res.band_rows.insert(res.band_rows.end(), band_rows[static_cast<size_t>(i)].begin(),
                         band_rows[static_cast<size_t>(i)].end());
    res.band_values.insert(res.band_values.end(), band_values[static_cast<size_t>(i)].begin(),
                           band_values[static_cast<size_t>(i)].end());
  }
  return res;
}

template RankCounts<float> rank_counts<float>(const RankBlock<float>&, int);
template RankCounts<double> rank_counts<double>(const RankBlock<double>&, int);

}  // namespace fastregen
