// CSR view of a sequence dataset: the one representation every kernel reads.
// offsets has n_seq + 1 entries (offsets[0] == 0, non-decreasing), sequence u is
// items[offsets[u] .. offsets[u+1]). Views never own memory: the caller (the
// bindings) keeps the numpy buffers alive and has validated them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#if FASTREGEN_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastregen {

// The calling thread's index in the enclosing OpenMP parallel region (0 without OpenMP), for
// per-thread buffers.
inline int thread_index() {
#if FASTREGEN_HAVE_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

struct CsrView {
  const int64_t* offsets = nullptr;
  const int32_t* items = nullptr;
  int64_t n_seq = 0;

  int64_t begin(int64_t u) const { return offsets[u]; }
  int64_t end(int64_t u) const { return offsets[u + 1]; }
  int64_t length(int64_t u) const { return offsets[u + 1] - offsets[u]; }
  const int32_t* seq(int64_t u) const { return items + offsets[u]; }
  int64_t n_items_total() const { return n_seq == 0 ? 0 : offsets[n_seq]; }
};

// Owning CSR result (kernels return these; the bindings hand them to numpy).
struct CsrResult {
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> items;
};

// Requests above this many threads per core are clamped: oversubscribing
// further never pays, kernels keep per-thread scratch (the miner: 16 bytes per
// item per thread), and libgomp ends the whole process when the OS refuses a
// thread, so an absurd `threads=` must not reach it. No result depends on the
// thread count, so clamping changes nothing but resources.
constexpr int kMaxThreadsPerCore = 4;

// Number of OpenMP threads to use: `requested` <= 0 means "the runtime default".
inline int resolve_threads(int requested) {
#if FASTREGEN_HAVE_OPENMP
  if (requested <= 0) return omp_get_max_threads();
  return std::min(requested, std::max(omp_get_max_threads(), kMaxThreadsPerCore * omp_get_num_procs()));
#else
  (void)requested;
  return 1;
#endif
}

inline bool have_openmp() { return FASTREGEN_HAVE_OPENMP != 0; }

// Kernels keep tables indexed by item id (a few to 24 bytes per id, per
// thread), so their memory follows the largest id, not the data. Up to this
// many ids any such table is small; beyond it the ids must be dense enough
// that at least half a table could be used (at most n_interactions distinct
// ids exist). The Python layer applies a stricter test with a remap hint
// (fastregen.data.dataset.check_dense_ids); this one keeps a direct call from
// asking the OS for tens of GiB.
constexpr int64_t kFreeIdSpace = int64_t{1} << 24;

inline void check_id_space(int64_t max_item, int64_t n_interactions, const char* what) {
  if (max_item > kFreeIdSpace && max_item / 2 > n_interactions)
    throw std::invalid_argument(std::string(what) + " are too sparse to index tables by: the largest id is " +
                                std::to_string(max_item) + " for " + std::to_string(n_interactions) +
                                " interactions; renumber the items 1..N first (fastregen.data.remap)");
}

// Concatenation of values[starts[k] .. ends[k]) for k in [0, n): the gather
// behind SequenceDataset.subset / slice_sequences (numpy's equivalent,
// fancy indexing with a materialised int64 index per element, spends most of
// its time building that index). out_offsets has n + 1 entries, the running
// sum of the range lengths, and `out` room for out_offsets[n] values. The
// caller has checked 0 <= starts[k] <= ends[k] <= len(values). Nothing in the
// loop can throw.
template <typename T>
void gather_ranges(const T* values, const int64_t* starts, const int64_t* ends, int64_t n,
                   const int64_t* out_offsets, T* out, int threads) {
  // Below ~1 MiB of output a parallel region costs more than the copy.
  const int nt = out_offsets[n] < (int64_t{1} << 18) ? 1 : resolve_threads(threads);
  (void)nt;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
  for (int64_t k = 0; k < n; ++k) std::copy(values + starts[k], values + ends[k], out + out_offsets[k]);
}

}  // namespace fastregen
