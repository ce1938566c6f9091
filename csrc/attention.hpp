// Multi-head attention over many short, ragged groups (CPU), forward and
// backward, with dropout on the attention weights.
//
// Why: the regenerator attends over groups of 2..50 tokens (a pattern, a
// source sequence). In torch that is ~15 small ops per direction (batched
// matmuls below torch's blocked-kernel size, masks, softmax, dropout,
// head split and merge copies), each a pass over memory; here it is one
// pass per (group, head), the group's keys staying in cache.
//
// Plain C++17, no Python; re-entrant (no global state); OpenMP over groups.
//
// Layout. Group g's queries are rows q_offsets[g] .. q_offsets[g+1] of q,
// its keys and values rows k_offsets[g] .. k_offsets[g+1] of k and v. A row
// holds the heads side by side: head h of row r is the head_dim values at
// q + r * q_stride + h * head_dim (the same for k, v). Row strides let the
// caller pass column slices of one projection ([q | k | v]) without copies.
//
// The function. For query row r (position i = r - q_offsets[g] in its group)
// and head h, the visible keys are j = 0 .. n_g - 1 (n_g = k_offsets[g+1] -
// k_offsets[g]) with key_ignore[k_offsets[g] + j] == 0 and, when causal,
// j <= i. With s_j = scale * q_r . k_j over visible j,
//   p_j   = exp(s_j - max s) / sum exp(s - max s)   (0 at invisible keys)
//   out_r = sum_j d_j p_j v_j
// where d_j is dropout's keep factor of element e = (r * heads + h) * width + j:
//   threshold 0:   d = 1
//   threshold 128: d = 2 * bit (e % 8) of drop[e / 8]           (a fair coin per bit)
//   otherwise:     d = (drop[e] >= threshold) * 256 / (256 - threshold)
// exactly the masks of fastregen.models.base.Dropout given the same bytes.
// A query with no visible key gets NaN (torch's softmax of all -inf).
// probs[(r * heads + h) * width + j] = p_j (0 at invisible keys and j >= n_g).
//
// Reference: fastregen.reference.attention (NumPy), and the torch reference
// fastregen.ops.attention.ragged_attention_torch.
#pragma once

#include <cstdint>

namespace fastregen {

template <typename T>
struct RaggedAttention {
  const T* q = nullptr;
  const T* k = nullptr;
  const T* v = nullptr;
  int64_t q_stride = 0, k_stride = 0, v_stride = 0;  // elements between rows
  int64_t groups = 0, heads = 0, head_dim = 0;
  const int64_t* q_offsets = nullptr;  // (groups + 1,), non-decreasing, from 0
  const int64_t* k_offsets = nullptr;  // (groups + 1,), non-decreasing, from 0
  const uint8_t* key_ignore = nullptr; // (k_offsets[groups],) or nullptr: every key visible
  bool causal = false;
  T scale = 1;
  int64_t width = 0;                   // >= every n_g
  const uint8_t* drop = nullptr;       // random bytes, or nullptr (no dropout)
  int drop_threshold = 0;              // 0..255; 0: no dropout
};

// The caller has validated the offsets (non-decreasing, within the arrays,
// every n_g <= width) and sized the buffers: out (q rows, heads * head_dim),
// probs (q rows, heads, width), drop (q rows * heads * width elements: bytes,
// or bits when the threshold is 128). threads <= 0: the OpenMP default; the
// result never depends on the thread count.
template <typename T>
void ragged_attention_forward(const RaggedAttention<T>& a, T* out, T* probs, int threads);

// Gradients given dout (q rows, heads * head_dim) contiguous and the forward's probs:
// every row of dq, dk and dv is written (row strides dq_stride, dk_stride, dv_stride;
// a query with no visible key gets 0, and so does a key no query sees), so the buffers
// need no zeroing, and a caller whose q, k, v are slices of one tensor passes slices
// of one gradient buffer (the slices must not overlap).
template <typename T>
void ragged_attention_backward(const RaggedAttention<T>& a, const T* probs, const T* dout, T* dq,
                               int64_t dq_stride, T* dk, int64_t dk_stride, T* dv, int64_t dv_stride,
                               int threads);

}  // namespace fastregen
