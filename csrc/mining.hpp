// Span-constrained sequential pattern mining (DR4SR §4.2.1) and the kernels
// around it: the pre-training (sequence, pattern) pairs and the UniDS
// contiguous-window counts.
//
// Semantics (the pure-Python oracle is fastregen/reference/mining.py):
//   a pattern p = (p1..pm) is *contained within span alpha* in a sequence s
//   if there are positions i1 < ... < im with s[ij] = pj and im - i1 <= alpha-1;
//   its support is the number of sequences containing it (each counts once).
//   This is Seq2Pat's `max_span=alpha` (built-in constraint
//   1 <= span(positions) <= alpha - 1) with `min_frequency=beta` as an int.
//
// Algorithm: depth-first prefix growth over a pseudo-projected database
// (PrefixSpan-style, with Apriori pruning since a pattern's prefix is at least
// as frequent). A prefix is represented by one state per (sequence, start i1)
// holding the *earliest* position its last item can be matched at: any
// extension reachable from a later match is reachable from the earliest one,
// so one state per start suffices and the projected database of a prefix is
// never larger than the occurrence list of its first item times the window.
// Work is split across first items (OpenMP, dynamic schedule, largest first);
// each thread owns its scratch tables, and results are reassembled in item
// order, so the output is identical for every thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "csr.hpp"

namespace fastregen {

struct MiningParams {
  int64_t max_span = 5;     // alpha >= 2
  int64_t min_support = 2;  // beta >= 1 (number of sequences)
  int64_t min_len = 2;      // >= 1
  int64_t max_len = 5;      // >= min_len
  int threads = 0;          // <= 0: the OpenMP default
  // Stop with std::length_error once more patterns than this are found
  // (0: no limit). The number of frequent patterns can grow exponentially
  // with max_span (two identical long sequences share 2^n subsequences).
  int64_t max_patterns = 0;
};

// Patterns in CSR form: pattern k is items[offsets[k] .. offsets[k+1]),
// support[k] its support (or count). Ordered by length, then lexicographically.
struct PatternSet {
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> items;
  std::vector<int64_t> support;
};

// Mine every pattern with min_len <= length <= max_len contained within span
// max_span in at least min_support sequences. Item ids must be >= 1.
// `progress`, when not null, is advanced (atomically) by the number of
// interactions whose first-item subtree has been mined; it ends at
// data.n_items_total(). Throws std::invalid_argument on bad parameters/items
// and std::length_error when more than params.max_patterns patterns are found.
PatternSet mine_patterns(const CsrView& data, const MiningParams& params, int64_t* progress = nullptr);

// UniDS variant: every contiguous window of `window` items, counted over all
// occurrences (not sequences); keep windows with count >= min_count.
// Ordered lexicographically.
PatternSet window_counts(const CsrView& data, int64_t window, int64_t min_count, int threads = 0);

struct PairParams {
  int64_t span = 0;               // 0: plain subsequence; else alpha >= 2
  int64_t max_per_sequence = 10;  // >= 1
  uint64_t seed = 0;
  int threads = 0;
};

struct PairResult {
  std::vector<int64_t> source;   // index of the sequence in `data`
  std::vector<int64_t> pattern;  // index of the pattern in `patterns`
};

// For each sequence u of `data`, the patterns of `patterns` (CSR) it contains
// (within `span`, or anywhere when span == 0); when there are more than
// max_per_sequence, a uniform random subset of that size drawn with a
// per-sequence splitmix64 stream (see pair_rng_* below), so the choice does
// not depend on the thread count. Pairs are ordered by sequence, then pattern
// index. Duplicate patterns or empty patterns are an std::invalid_argument.
PairResult pretrain_pairs(const CsrView& data, const CsrView& patterns, const PairParams& params,
                          int64_t* progress = nullptr);

// The random stream of pretrain_pairs, exposed so that the Python reference
// and the tests can reproduce the draw exactly.
//   state_u = seed ^ ((u + 1) * 0xD1B54A32D192ED03)   (mod 2^64)
//   next(): splitmix64 step
//   bounded(m): rejection sampling, uniform on [0, m)
// Selection: partial Fisher-Yates over the ascending candidate list, then
// the k chosen indices sorted ascending.
struct SplitMix64 {
  uint64_t state;
  explicit SplitMix64(uint64_t s) : state(s) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t bounded(uint64_t m) {
    // Reject the top (2^64 mod m) values so every residue is equally likely.
    const uint64_t threshold = (0 - m) % m;
    for (;;) {
      const uint64_t r = next();
      if (r >= threshold) return r % m;
    }
  }
};

inline uint64_t pair_rng_state(uint64_t seed, uint64_t u) {
  return seed ^ ((u + 1) * 0xD1B54A32D192ED03ULL);
}

}  // namespace fastregen
