// The entropy core (UniDS): Lempel-Ziv "real entropy" of item sequences, an
// order-k Markov model with interpolated Witten-Bell backoff, and the
// conditional-entropy pattern miner / segmenter built on it.
//
// Plain C++17, no Python. Every kernel is re-entrant (no global state); the
// per-sequence loops run under OpenMP.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "csr.hpp"

namespace fastregen {

// ---------------------------------------------------------------- real entropy

// sum_i Lambda_i of one sequence (Kontoyiannis et al. 1998; Song et al. 2010):
// Lambda_i is the length of the shortest substring starting at i that does not
// occur entirely inside s[0:i], or n - i + 1 when every prefix of s[i:] does.
// Equivalently Lambda_i = L_i + 1 with L_i the longest prefix of s[i:] that
// occurs inside s[0:i]. Suffix automaton + matching-statistics sweep:
// amortised O(n) hash lookups. Items are compared as whole int32 symbols.
int64_t lz_lambda_sum(const int32_t* s, int64_t n);

// The same sum by the O(n^2)-time, O(n)-memory LCP recurrence
// L_i = max_{j<i} min(lcp(s[i:], s[j:]), i - j): faster below a few dozen items.
int64_t lz_lambda_sum_quadratic(const int32_t* s, int64_t n);

// Which algorithm lz_lambda_sums uses: kAuto picks the quadratic recurrence
// for sequences of at most kLzQuadraticMaxLen items and the automaton above.
enum class LzMethod { kAuto = 0, kAutomaton = 1, kQuadratic = 2 };
constexpr int64_t kLzQuadraticMaxLen = 32;

// lz_lambda_sum of every sequence (OpenMP across sequences).
std::vector<int64_t> lz_lambda_sums(const CsrView& data, int threads, LzMethod method = LzMethod::kAuto);

// S = n log2(n) / sum Lambda, divided by log2(base); NaN for n = 0 and 0 for
// n = 1. The formula is evaluated in exactly this order so that the Python
// reference (math.log2, same libm) gives bit-identical values.
double lz_entropy_from_sum(int64_t n, int64_t lambda_sum, double base);

std::vector<double> real_entropy(const CsrView& data, double base, int threads,
                                 LzMethod method = LzMethod::kAuto);

// Number of distinct items of every sequence.
std::vector<int64_t> n_distinct(const CsrView& data, int threads);

// ---------------------------------------------------------------- Markov model

// Order-k Markov model of the next item with interpolated Witten-Bell
// smoothing (Witten & Bell 1991; Chen & Goodman 1998, eq. 16):
//   P_{-1}(s)     = 1 / V
//   P_j(s | h_j)  = (c(h_j, s) + T(h_j) P_{j-1}(s | h_{j-1})) / (c(h_j) + T(h_j))
// with h_j the last j context items, c(h_j) the number of times h_j is followed
// by an item in the training data, c(h_j, s) the times it is followed by s and
// T(h_j) the number of distinct followers; an unseen h_j backs off
// (P_j = P_{j-1}). Contexts never cross sequence boundaries (no padding), so a
// position t contributes to orders 0..min(k, t). Every probability lies in
// (0, 1] for s in 1..V.
class MarkovModel {
 public:
  MarkovModel(int order, int32_t num_items);

  void fit(const CsrView& data);

  // P(s | ctx) using the last min(order, ctx_len) items of ctx.
  double prob(const int32_t* ctx, int64_t ctx_len, int32_t s) const;
  // prob(context c, next[c]) for every context of a CSR batch (OpenMP).
  std::vector<double> prob_batch(const CsrView& contexts, const int32_t* next, int threads) const;

  int order() const { return order_; }
  int32_t num_items() const { return num_items_; }
  int64_t num_tokens() const { return n_tokens_; }
  bool fitted() const { return fitted_; }
  // Number of distinct contexts of each order 1..k.
  std::vector<int64_t> context_counts() const;

 private:
  struct CtxStats {
    int64_t id = 0;
    int64_t count = 0;     // c(h)
    int64_t distinct = 0;  // T(h)
  };
  int order_;
  int32_t num_items_;
  bool fitted_ = false;
  int64_t n_tokens_ = 0;
  int64_t n_distinct0_ = 0;
  std::vector<int64_t> unigram_;
  std::unordered_map<uint64_t, CtxStats> contexts_;  // (id of h_{j-1}, s_{t-j}) -> stats of h_j
  std::unordered_map<uint64_t, int64_t> pairs_;      // ctx id * (V + 1) + s -> c(h, s)
  std::vector<int64_t> per_order_;                   // distinct contexts of each order 1..k
};

// ------------------------------------------------------------- pattern miner

struct EntropyPatterns {
  std::vector<int64_t> offsets{0};  // pattern p is items[offsets[p] .. offsets[p+1])
  std::vector<int32_t> items;
  std::vector<double> entropy;      // H(P)
  std::vector<int64_t> count;       // contiguous (overlapping) occurrences
};

// Scores a batch of extensions P -> P + [s]: fills prob[c] = p_m(s_c | P_c)
// for candidate c, whose context P_c is ctx_items[ctx_offsets[c] ..
// ctx_offsets[c+1]). Used for models that live outside C++ (a Python callable).
using ExtensionScorer =
    std::function<void(const std::vector<int64_t>& ctx_offsets, const std::vector<int32_t>& ctx_items,
                       const std::vector<int32_t>& next, std::vector<double>& prob)>;

struct MinerParams {
  double theta = 0.0;     // keep P while H(P) < theta
  int64_t min_count = 2;  // occurrences(P) >= min_count
  int64_t max_len = 8;    // |P| <= max_len
  int threads = 0;
};

// Exactly one of `markov`, `position_probs`, `scorer` is set.
//  - markov:          h(s | P) = -log2 P_markov(s | last k items of P)
//  - position_probs:  probs[g] = p_m(items[g] | the sequence before g), aligned
//                     with data.items; p_m(s | P) = mean of probs[g] over the
//                     occurrences of P + [s] (g = the position of s), summed in
//                     increasing g.
//  - scorer:          called once per level with every candidate extension.
// Seeds are single items with H([i]) = -log2(f_i / F) < theta and f_i >=
// min_count (f_i: occurrences of i, F: all interactions). Output is ordered by
// length, then lexicographically by item ids.
EntropyPatterns mine_entropy_patterns(const CsrView& data, int32_t num_items, const MinerParams& params,
                                      const MarkovModel* markov, const double* position_probs,
                                      const ExtensionScorer* scorer);

// Occurrences of every item 1..num_items (index 0 unused) and -log2(f_i / F)
// (+inf for items that never occur).
void item_entropies(const CsrView& data, int32_t num_items, std::vector<int64_t>& counts,
                    std::vector<double>& entropy);

// ----------------------------------------------------------------- segmenter

struct Segmentation {
  std::vector<int64_t> offsets;     // sequence u owns segments offsets[u] .. offsets[u+1]
  std::vector<int64_t> bounds;      // segment k is items[bounds[k] .. bounds[k+1]) (global positions)
  std::vector<int64_t> pattern_id;  // index into the pattern set, -1 for a fallback single item
};

// Cuts each sequence into consecutive patterns, greedily taking the longest
// pattern that matches at the current position; an item that starts no
// pattern becomes a single-item segment. Duplicate patterns resolve to the
// first index.
Segmentation segment_sequences(const CsrView& data, const CsrView& patterns, int threads);

}  // namespace fastregen
