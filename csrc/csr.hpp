// CSR view of a sequence dataset: the one representation every kernel reads.
// offsets has n_seq + 1 entries (offsets[0] == 0, non-decreasing), sequence u is
// items[offsets[u] .. offsets[u+1]). Views never own memory: the caller (the
// bindings) keeps the numpy buffers alive and has validated them.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#if FASTREGEN_HAVE_OPENMP
#include <omp.h>
#endif

namespace fastregen {

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

// Number of OpenMP threads to use: `requested` <= 0 means "the runtime default".
inline int resolve_threads(int requested) {
#if FASTREGEN_HAVE_OPENMP
  return requested > 0 ? requested : omp_get_max_threads();
#else
  (void)requested;
  return 1;
#endif
}

inline bool have_openmp() { return FASTREGEN_HAVE_OPENMP != 0; }

}  // namespace fastregen
