#include "dropout.hpp"

#include <algorithm>
#include <vector>

#include "csr.hpp"
#include "vectorize.hpp"

namespace fastregen {
namespace {

// Byte b's 8 keep factors 2 * ((b >> k) & 1), k = 0..7, for every b (8 KiB of floats: stays in L1). Built
// once, read-only after (a function-local static: thread-safe initialisation, no mutable state).
template <typename T>
const T* bit_factors() {
  static const std::vector<T> table = [] {
    std::vector<T> t(256 * 8);
    for (unsigned b = 0; b < 256; ++b)
      for (unsigned k = 0; k < 8; ++k) t[b * 8 + k] = static_cast<T>(((b >> k) & 1u) * 2u);
    return t;
  }();
  return table.data();
}

// Elements [e0, e1), e0 a multiple of 8: at p = 0.5 each byte holds 8 elements' coins.
template <typename T>
inline void bits_block(const T* x, int64_t e0, int64_t e1, const uint8_t* raw, T* out) {
  const T* factors = bit_factors<T>();
  int64_t e = e0;
  for (; e + 8 <= e1; e += 8) {
    const T* f = factors + 8 * static_cast<int64_t>(raw[e >> 3]);
    // out may be x itself: each element is read before it is written, so the lanes are independent
    FASTREGEN_SIMD
    for (int k = 0; k < 8; ++k) out[e + k] = x[e + k] * f[k];
  }
  const DropoutKeep keep(raw, 128);
  for (; e < e1; ++e) out[e] = x[e] * keep.at<T>(e);
}

template <typename T>
inline void bytes_block(const T* x, int64_t e0, int64_t e1, const uint8_t* raw, int threshold, T scale, T* out) {
  FASTREGEN_SIMD
  for (int64_t e = e0; e < e1; ++e) out[e] = x[e] * (raw[e] >= threshold ? scale : T(0));
}

FASTREGEN_CLONES void block(const float* x, int64_t e0, int64_t e1, const uint8_t* raw, int threshold, float scale,
                            float* out) {
  if (threshold == 128) bits_block(x, e0, e1, raw, out);
  else bytes_block(x, e0, e1, raw, threshold, scale, out);
}
FASTREGEN_CLONES void block(const double* x, int64_t e0, int64_t e1, const uint8_t* raw, int threshold, double scale,
                            double* out) {
  if (threshold == 128) bits_block(x, e0, e1, raw, out);
  else bytes_block(x, e0, e1, raw, threshold, scale, out);
}

}  // namespace

template <typename T>
void apply_dropout(const T* x, int64_t n, const uint8_t* raw, int threshold, T* out, int threads) {
  // Dropout.keep scales in the tensor's dtype: float(256 / (256 - t)) for float32
  const T scale = static_cast<T>(256.0 / (256 - threshold));
  constexpr int64_t kBlock = int64_t{1} << 14;  // a multiple of 8: blocks start on a byte at p = 0.5
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  // below ~1M elements a parallel region costs more than the pass
  const int nt = n < (int64_t{1} << 20) ? 1 : static_cast<int>(std::min<int64_t>(resolve_threads(threads), blocks));
  (void)nt;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
  for (int64_t b = 0; b < blocks; ++b) block(x, b * kBlock, std::min(n, (b + 1) * kBlock), raw, threshold, scale, out);
}

template void apply_dropout<float>(const float*, int64_t, const uint8_t*, int, float*, int);
template void apply_dropout<double>(const double*, int64_t, const uint8_t*, int, double*, int);

}  // namespace fastregen
