// Inverted dropout from random bytes, applied in one pass (CPU).
//
// Why: fastregen.models.base.Dropout draws one random byte per element (one
// bit at p = 0.5) and in torch turns the bytes into a float mask (a widening
// copy, a table lookup) before multiplying; each of those is a pass over
// memory, and the backward pass multiplies by the kept mask again. Here the
// mask is never built: out = x * keep(e), forward and backward alike, with
// the bytes kept for the backward pass.
//
// keep(e), e the element's index (row-major):
//   threshold 128: 2 * bit (e % 8) of raw[e / 8]
//   otherwise:     (raw[e] >= threshold) * float(256 / (256 - threshold))
// the very values Dropout.keep multiplies by, so out is bit for bit torch's
// x * Dropout.keep(raw, ...). Reference: fastregen.reference.dropout.
//
// Plain C++17, no Python; re-entrant; OpenMP over blocks of elements.
#pragma once

#include <cstdint>

namespace fastregen {

// keep(e) above, one element at a time (the ragged attention's dropout on its weights reads the same
// bytes). threshold 0 or no bytes: no dropout, keep(e) = 1.
struct DropoutKeep {
  const uint8_t* drop;
  int threshold;
  double scale;
  DropoutKeep(const uint8_t* d, int t)
      : drop(t > 0 ? d : nullptr), threshold(t), scale(t > 0 ? 256.0 / (256 - t) : 1.0) {}
  template <typename T>
  T at(int64_t e) const {
    if (drop == nullptr) return T(1);
    if (threshold == 128) return ((drop[e >> 3] >> (e & 7)) & 1) ? T(2) : T(0);
    return drop[e] >= threshold ? static_cast<T>(scale) : T(0);
  }
};

// threshold in 1..255 and raw long enough (n / 8 rounded up bytes at 128, else n): the caller checks.
// threads <= 0: the OpenMP default; the result never depends on it.
template <typename T>
void apply_dropout(const T* x, int64_t n, const uint8_t* raw, int threshold, T* out, int threads);

}  // namespace fastregen
