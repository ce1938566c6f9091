#include "attention.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "csr.hpp"
#include "dropout.hpp"
#include "error_slot.hpp"
#include "vectorize.hpp"

namespace fastregen {
namespace {

// exp(x) for x <= 0 in float, in plain arithmetic the compiler vectorises (std::exp is a call per
// element, most of a forward pass): Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, Cephes'
// degree-6 polynomial for e^r (~1 ulp), times 2^n built in the exponent bits. x < -87 is taken as -87
// (e^-87 ~ 1.6e-38 next to the row's largest weight, e^0 = 1).
FASTREGEN_INLINE float exp_nonpositive(float x) {
  x = std::max(x, -87.0f);
  float n = x * 1.44269504088896341f;
  n = (n + 12582912.0f) - 12582912.0f;  // round to nearest: 1.5 * 2^23 pushes the fraction out
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}
FASTREGEN_INLINE double exp_nonpositive(double x) { return std::exp(std::max(x, -745.0)); }

template <typename T>
FASTREGEN_INLINE void axpy(T alpha, const T* x, T* y, int64_t n) {
  FASTREGEN_SIMD
  for (int64_t d = 0; d < n; ++d) y[d] += alpha * x[d];
}

// Keys are handled 16 at a time (a float vector of AVX-512): the scratch rows are padded to a multiple
// of 16 with zeros, so the loops over keys have no scalar tails.
inline int64_t padded(int64_t n) { return (n + 15) / 16 * 16; }

template <typename T>
struct Scratch {
  std::vector<T> t;        // one head of the group's keys (forward) or values (backward), transposed (dh, n16)
  std::vector<T> s, w;     // per key: scores / weights, gradients (n16)
  std::vector<T> seen;     // 1 for a visible key, 0 for an ignored one or padding (n16)
  void size(int64_t dh, int64_t n16) {
    t.assign(static_cast<size_t>(dh * n16), T(0));
    s.resize(static_cast<size_t>(n16));
    w.resize(static_cast<size_t>(n16));
    seen.assign(static_cast<size_t>(n16), T(0));
  }
};

// (dh, n16) <- head h of rows 0..n-1 (zeros beyond n): the score loops then run over keys, in
// vectors, with no horizontal sums.
template <typename T>
FASTREGEN_INLINE void transpose_head(const T* rows, int64_t stride, int64_t n, int64_t n16, int64_t dh, T* t) {
  // over keys innermost: strided loads (gathered in vectors) and contiguous stores
  for (int64_t d = 0; d < dh; ++d) {
    T* td = t + d * n16;
    const T* col = rows + d;
    FASTREGEN_SIMD
    for (int64_t j = 0; j < n; ++j) td[j] = col[j * stride];
  }
}

// s[j] = sum_d x[d] t[d, j], j < n16, 16 keys at a time in registers (two accumulators over d: the
// sum's float order is fixed, whatever the vector width)
template <typename T>
FASTREGEN_INLINE void scores(const T* x, const T* t, int64_t n16, int64_t dh, T* s) {
  for (int64_t jb = 0; jb < n16; jb += 16) {
    T even[16] = {}, odd[16] = {};
    int64_t d = 0;
    for (; d + 1 < dh; d += 2) {
      const T x0 = x[d], x1 = x[d + 1];
      const T* t0 = t + d * n16 + jb;
      const T* t1 = t0 + n16;
      FASTREGEN_SIMD
      for (int jj = 0; jj < 16; ++jj) {
        even[jj] += x0 * t0[jj];
        odd[jj] += x1 * t1[jj];
      }
    }
    if (d < dh) {
      const T x0 = x[d];
      const T* t0 = t + d * n16 + jb;
      FASTREGEN_SIMD
      for (int jj = 0; jj < 16; ++jj) even[jj] += x0 * t0[jj];
    }
    FASTREGEN_SIMD
    for (int jj = 0; jj < 16; ++jj) s[jb + jj] = even[jj] + odd[jj];
  }
}

// DH > 0: the head width known at compile time (32, the regenerator's 64 / 2 heads), so a query's output and
// gradient sums stay in registers; DH = 0: any width, the sums in memory.
template <typename T, int DH>
FASTREGEN_INLINE void forward_group(const RaggedAttention<T>& a, const DropoutKeep& keep, int64_t g, T* out, T* probs,
                                    Scratch<T>& sc) {
  const int64_t H = a.heads, dh = DH > 0 ? DH : a.head_dim, W = a.width;
  const int64_t k0 = a.k_offsets[g], n = a.k_offsets[g + 1] - k0, n16 = padded(n);
  sc.size(dh, n16);
  for (int64_t j = 0; j < n; ++j) sc.seen[j] = (a.key_ignore == nullptr || a.key_ignore[k0 + j] == 0) ? T(1) : T(0);
  const T ninf = -std::numeric_limits<T>::infinity();
  const T scale = a.scale;  // a local: a load through `a` could alias s, and kept the loops scalar
  T* s = sc.s.data();
  for (int64_t h = 0; h < H; ++h) {
    transpose_head(a.k + k0 * a.k_stride + h * dh, a.k_stride, n, n16, dh, sc.t.data());
    for (int64_t r = a.q_offsets[g]; r < a.q_offsets[g + 1]; ++r) {
      const int64_t lim = a.causal ? std::min(n, r - a.q_offsets[g] + 1) : n;
      T* o = out + (r * H + h) * dh;
      T* p = probs + (r * H + h) * W;
      const T* seen = sc.seen.data();
      T local[DH > 0 ? DH : 1];
      T* acc = DH > 0 ? local : o;
      std::fill(acc, acc + dh, T(0));
      scores(a.q + r * a.q_stride + h * dh, sc.t.data(), n16, dh, s);
      // branch-free loops the compiler vectorises: mask, the causal tail, the maximum
      FASTREGEN_SIMD
      for (int64_t j = 0; j < n16; ++j) s[j] = seen[j] != T(0) ? s[j] * scale : ninf;
      std::fill(s + lim, s + n16, ninf);
      T top = ninf;
      FASTREGEN_SIMD_REDUCE(max, top)
      for (int64_t j = 0; j < n16; ++j) top = s[j] > top ? s[j] : top;
      if (top == ninf) {  // no visible key: torch's softmax gives NaN
        std::fill(p, p + W, T(0));
        std::fill(o, o + dh, std::numeric_limits<T>::quiet_NaN());
        continue;
      }
      T sum = 0;
      FASTREGEN_SIMD_REDUCE(+, sum)
      for (int64_t j = 0; j < n16; ++j) {
        const T e = exp_nonpositive(s[j] - top) * T(s[j] != ninf);  // exp(-inf) is clamped: masked to 0
        s[j] = e;
        sum += e;
      }
      const T inv = T(1) / sum;
      FASTREGEN_SIMD
      for (int64_t j = 0; j < lim; ++j) p[j] = s[j] * inv;
      std::fill(p + lim, p + W, T(0));
      const int64_t e0 = (r * H + h) * W;
      for (int64_t j = 0; j < lim; ++j) {
        const T w = p[j] * keep.at<T>(e0 + j);
        if (w != T(0)) axpy(w, a.v + (k0 + j) * a.v_stride + h * dh, acc, dh);
      }
      if (DH > 0) std::copy(acc, acc + dh, o);
    }
  }
}

template <typename T, int DH>
FASTREGEN_INLINE void backward_group(const RaggedAttention<T>& a, const DropoutKeep& keep, int64_t g, const T* probs,
                                     const T* dout, T* dq, int64_t dq_stride, T* dk, int64_t dk_stride, T* dv,
                                     int64_t dv_stride, Scratch<T>& sc) {
  const int64_t H = a.heads, dh = DH > 0 ? DH : a.head_dim, W = a.width;
  const T scale = a.scale;
  const int64_t k0 = a.k_offsets[g], n = a.k_offsets[g + 1] - k0, n16 = padded(n);
  sc.size(dh, n16);
  // the group's keys are its own: their gradients start here, so the caller need not zero them
  for (int64_t j = 0; j < n; ++j) {
    std::fill(dk + (k0 + j) * dk_stride, dk + (k0 + j) * dk_stride + H * dh, T(0));
    std::fill(dv + (k0 + j) * dv_stride, dv + (k0 + j) * dv_stride + H * dh, T(0));
  }
  for (int64_t h = 0; h < H; ++h) {
    transpose_head(a.v + k0 * a.v_stride + h * dh, a.v_stride, n, n16, dh, sc.t.data());
    for (int64_t r = a.q_offsets[g]; r < a.q_offsets[g + 1]; ++r) {
      const int64_t lim = a.causal ? std::min(n, r - a.q_offsets[g] + 1) : n;
      const T* p = probs + (r * H + h) * W;
      const T* go = dout + (r * H + h) * dh;
      const T* qr = a.q + r * a.q_stride + h * dh;
      T* gq = dq + r * dq_stride + h * dh;
      T* w = sc.w.data();
      const int64_t e0 = (r * H + h) * W;
      // out = sum_j keep_j p_j v_j: d p_j = keep_j (go . v_j), d v_j += keep_j p_j go
      scores(go, sc.t.data(), n16, dh, w);
      T inner = 0;
      for (int64_t j = 0; j < lim; ++j) {
        const T kp = p[j] == T(0) ? T(0) : keep.at<T>(e0 + j);  // p = 0: invisible, no gradient either way
        w[j] *= kp;
        if (kp != T(0)) axpy(kp * p[j], go, dv + (k0 + j) * dv_stride + h * dh, dh);
        inner += p[j] * w[j];
      }
      // softmax: d s_j = p_j (d p_j - sum_i p_i d p_i); s_j = scale q . k_j
      T local[DH > 0 ? DH : 1];
      T* acc = DH > 0 ? local : gq;
      std::fill(acc, acc + dh, T(0));
      for (int64_t j = 0; j < lim; ++j) {
        const T ds = scale * p[j] * (w[j] - inner);
        if (ds == T(0)) continue;
        axpy(ds, a.k + (k0 + j) * a.k_stride + h * dh, acc, dh);
        axpy(ds, qr, dk + (k0 + j) * dk_stride + h * dh, dh);
      }
      if (DH > 0) std::copy(acc, acc + dh, gq);
    }
  }
}

// The multi-versioned entry points (target_clones needs plain functions, not templates).
FASTREGEN_CLONES void run_forward(const RaggedAttention<float>& a, const DropoutKeep& keep, int64_t g, float* out,
                                  float* probs, Scratch<float>& sc) {
  if (a.head_dim == 32) forward_group<float, 32>(a, keep, g, out, probs, sc);
  else forward_group<float, 0>(a, keep, g, out, probs, sc);
}
FASTREGEN_CLONES void run_forward(const RaggedAttention<double>& a, const DropoutKeep& keep, int64_t g, double* out,
                                  double* probs, Scratch<double>& sc) {
  forward_group<double, 0>(a, keep, g, out, probs, sc);
}
FASTREGEN_CLONES void run_backward(const RaggedAttention<float>& a, const DropoutKeep& keep, int64_t g,
                                   const float* probs, const float* dout, float* dq, int64_t dqs, float* dk,
                                   int64_t dks, float* dv, int64_t dvs, Scratch<float>& sc) {
  if (a.head_dim == 32) backward_group<float, 32>(a, keep, g, probs, dout, dq, dqs, dk, dks, dv, dvs, sc);
  else backward_group<float, 0>(a, keep, g, probs, dout, dq, dqs, dk, dks, dv, dvs, sc);
}
FASTREGEN_CLONES void run_backward(const RaggedAttention<double>& a, const DropoutKeep& keep, int64_t g,
                                   const double* probs, const double* dout, double* dq, int64_t dqs, double* dk,
                                   int64_t dks, double* dv, int64_t dvs, Scratch<double>& sc) {
  backward_group<double, 0>(a, keep, g, probs, dout, dq, dqs, dk, dks, dv, dvs, sc);
}

template <typename T>
int threads_for(const RaggedAttention<T>& a, int threads) {
  const int64_t rows = a.q_offsets[a.groups];
  // a parallel region costs more than a few thousand (query, head) pairs
  if (rows * a.heads < 4096) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(resolve_threads(threads), a.groups)));
}

// fn(g, scratch) for every group, OpenMP over groups (each group's rows of out / dq and of dk / dv are
// written by one thread: its keys belong to it alone); the first exception is re-raised here.
template <typename T, typename Fn>
void for_each_group(const RaggedAttention<T>& a, int threads, Fn&& fn) {
  const int nt = threads_for(a, threads);
  ErrorSlot error;
  (void)nt;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(nt)
#endif
  {
    Scratch<T> sc;
#if FASTREGEN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
    for (int64_t g = 0; g < a.groups; ++g) {
      if (error.failed()) continue;
      try {
        fn(g, sc);
      } catch (...) {
        error.capture();
      }
    }
  }
  error.rethrow();
}

}  // namespace

template <typename T>
void ragged_attention_forward(const RaggedAttention<T>& a, T* out, T* probs, int threads) {
  const DropoutKeep keep(a.drop, a.drop_threshold);
  for_each_group(a, threads, [&](int64_t g, Scratch<T>& sc) { run_forward(a, keep, g, out, probs, sc); });
}

template <typename T>
void ragged_attention_backward(const RaggedAttention<T>& a, const T* probs, const T* dout, T* dq,
                               int64_t dq_stride, T* dk, int64_t dk_stride, T* dv, int64_t dv_stride,
                               int threads) {
  const DropoutKeep keep(a.drop, a.drop_threshold);
  for_each_group(a, threads, [&](int64_t g, Scratch<T>& sc) {
    run_backward(a, keep, g, probs, dout, dq, dq_stride, dk, dk_stride, dv, dv_stride, sc);
  });
}

template void ragged_attention_forward<float>(const RaggedAttention<float>&, float*, float*, int);
template void ragged_attention_forward<double>(const RaggedAttention<double>&, double*, double*, int);
template void ragged_attention_backward<float>(const RaggedAttention<float>&, const float*, const float*, float*,
                                               int64_t, float*, int64_t, float*, int64_t, int);
template void ragged_attention_backward<double>(const RaggedAttention<double>&, const double*, const double*,
                                                double*, int64_t, double*, int64_t, double*, int64_t, int);

}  // namespace fastregen
