#include "attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "csr.hpp"
#include "error_slot.hpp"

namespace fastregen {
namespace {

// `omp simd reduction` lets the compiler vectorise a float sum without
// -ffast-math (which would reassociate every other loop of the core too).
template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T acc = 0;
#if FASTREGEN_HAVE_OPENMP
#pragma omp simd reduction(+ : acc)
#endif
  for (int64_t d = 0; d < n; ++d) acc += a[d] * b[d];
  return acc;
}

template <typename T>
inline void axpy(T alpha, const T* x, T* y, int64_t n) {
#if FASTREGEN_HAVE_OPENMP
#pragma omp simd
#endif
  for (int64_t d = 0; d < n; ++d) y[d] += alpha * x[d];
}

// Dropout's keep factor of element e (see attention.hpp).
struct Keep {
  const uint8_t* drop;
  int threshold;
  double scale;
  Keep(const uint8_t* d, int t) : drop(t > 0 ? d : nullptr), threshold(t), scale(t > 0 ? 256.0 / (256 - t) : 1.0) {}
  template <typename T>
  inline T operator()(int64_t e) const {
    if (drop == nullptr) return T(1);
    if (threshold == 128) return ((drop[e >> 3] >> (e & 7)) & 1) ? T(2) : T(0);
    return drop[e] >= threshold ? static_cast<T>(scale) : T(0);
  }
};

// Keys query i of group g sees: j < limit, skipping ignored ones.
template <typename T>
inline int64_t key_limit(const RaggedAttention<T>& a, int64_t g, int64_t i) {
  const int64_t n = a.k_offsets[g + 1] - a.k_offsets[g];
  return a.causal ? std::min(n, i + 1) : n;
}

template <typename T>
int threads_for(const RaggedAttention<T>& a, int threads) {
  const int64_t rows = a.q_offsets[a.groups];
  // a parallel region costs more than a few thousand (query, head) pairs
  if (rows * a.heads < 4096) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(resolve_threads(threads), a.groups)));
}

}  // namespace

template <typename T>
void ragged_attention_forward(const RaggedAttention<T>& a, T* out, T* probs, int threads) {
  const int64_t H = a.heads, dh = a.head_dim, W = a.width;
  const Keep keep(a.drop, a.drop_threshold);
  const int nt = threads_for(a, threads);
  ErrorSlot error;
  (void)nt;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
    std::vector<T> s;
    std::vector<uint8_t> seen;
#if FASTREGEN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
    for (int64_t g = 0; g < a.groups; ++g) {
      if (error.failed()) continue;
      try {
        s.resize(static_cast<size_t>(W));
        seen.resize(static_cast<size_t>(W));
        const int64_t k0 = a.k_offsets[g];
        for (int64_t r = a.q_offsets[g]; r < a.q_offsets[g + 1]; ++r) {
          const int64_t lim = key_limit(a, g, r - a.q_offsets[g]);
          for (int64_t j = 0; j < lim; ++j) seen[j] = a.key_ignore == nullptr || a.key_ignore[k0 + j] == 0;
          for (int64_t h = 0; h < H; ++h) {
            const T* qr = a.q + r * a.q_stride + h * dh;
            T* o = out + (r * H + h) * dh;
            T* p = probs + (r * H + h) * W;
            std::fill(p, p + W, T(0));
            std::fill(o, o + dh, T(0));
            T top = -std::numeric_limits<T>::infinity();
            for (int64_t j = 0; j < lim; ++j) {
              if (!seen[j]) continue;
              s[j] = a.scale * dot(qr, a.k + (k0 + j) * a.k_stride + h * dh, dh);
              top = std::max(top, s[j]);
            }
            if (top == -std::numeric_limits<T>::infinity()) {  // no visible key: torch's softmax gives NaN
              std::fill(o, o + dh, std::numeric_limits<T>::quiet_NaN());
              continue;
            }
            T sum = 0;
            for (int64_t j = 0; j < lim; ++j) {
              if (!seen[j]) continue;
              p[j] = std::exp(s[j] - top);
              sum += p[j];
            }
            const T inv = T(1) / sum;
            const int64_t e0 = (r * H + h) * W;
            for (int64_t j = 0; j < lim; ++j) {
              if (!seen[j]) continue;
              p[j] *= inv;
              const T w = p[j] * keep.template operator()<T>(e0 + j);
              if (w != T(0)) axpy(w, a.v + (k0 + j) * a.v_stride + h * dh, o, dh);
            }
          }
        }
      } catch (...) {
        error.capture();
      }
    }
  }
  error.rethrow();
}

template <typename T>
void ragged_attention_backward(const RaggedAttention<T>& a, const T* probs, const T* dout, T* dq,
                               int64_t dq_stride, T* dk, int64_t dk_stride, T* dv, int64_t dv_stride,
                               int threads) {
  const int64_t H = a.heads, dh = a.head_dim, W = a.width;
  const Keep keep(a.drop, a.drop_threshold);
  const int nt = threads_for(a, threads);
  ErrorSlot error;
  (void)nt;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
    std::vector<T> w;
#if FASTREGEN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
    // each group's keys belong to it alone, so the dk / dv sums of a group are one thread's
    for (int64_t g = 0; g < a.groups; ++g) {
      if (error.failed()) continue;
      try {
        w.resize(static_cast<size_t>(W));
        const int64_t k0 = a.k_offsets[g];
        for (int64_t r = a.q_offsets[g]; r < a.q_offsets[g + 1]; ++r) {
          const int64_t lim = key_limit(a, g, r - a.q_offsets[g]);
          for (int64_t h = 0; h < H; ++h) {
            const T* p = probs + (r * H + h) * W;
            const T* go = dout + (r * H + h) * dh;
            const T* qr = a.q + r * a.q_stride + h * dh;
            T* gq = dq + r * dq_stride + h * dh;
            const int64_t e0 = (r * H + h) * W;
            // out = sum_j keep_j p_j v_j: d p_j = keep_j (go . v_j), d v_j += keep_j p_j go
            T inner = 0;
            for (int64_t j = 0; j < lim; ++j) {
              w[j] = T(0);
              if (p[j] == T(0)) continue;  // invisible (or an underflowed weight: no gradient either way)
              const T kp = keep.template operator()<T>(e0 + j);
              if (kp == T(0)) continue;
              w[j] = kp * dot(go, a.v + (k0 + j) * a.v_stride + h * dh, dh);
              axpy(kp * p[j], go, dv + (k0 + j) * dv_stride + h * dh, dh);
              inner += p[j] * w[j];
            }
            // softmax: d s_j = p_j (d p_j - sum_i p_i d p_i); s_j = scale q . k_j
            std::fill(gq, gq + dh, T(0));
            for (int64_t j = 0; j < lim; ++j) {
              if (p[j] == T(0)) continue;
              const T ds = a.scale * p[j] * (w[j] - inner);
              if (ds == T(0)) continue;
              axpy(ds, a.k + (k0 + j) * a.k_stride + h * dh, gq, dh);
              axpy(ds, qr, dk + (k0 + j) * dk_stride + h * dh, dh);
            }
          }
        }
      } catch (...) {
        error.capture();
      }
    }
  }
  error.rethrow();
}

template void ragged_attention_forward<float>(const RaggedAttention<float>&, float*, float*, int);
template void ragged_attention_forward<double>(const RaggedAttention<double>&, double*, double*, int);
template void ragged_attention_backward<float>(const RaggedAttention<float>&, const float*, const float*, float*,
                                               int64_t, float*, int64_t, float*, int64_t, int);
template void ragged_attention_backward<double>(const RaggedAttention<double>&, const double*, const double*,
                                                double*, int64_t, double*, int64_t, double*, int64_t, int);

}  // namespace fastregen
