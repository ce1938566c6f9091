// Edge cases of the span miner, the window counts and the pre-training pairs
// (csrc/mining.*): no sequences, length-1 sequences, repeated items, the
// span's boundary, the largest id the tables allow, bad parameters; and the
// miner against a brute-force enumeration on small random data.
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "csr_data.hpp"
#include "mining.hpp"

using namespace fastregen;

namespace {

using check::Csr;
using check::Seqs;
using Pattern = std::vector<int32_t>;
using Found = std::vector<std::pair<Pattern, int64_t>>;

Found unpack(const PatternSet& p) {
  Found out;
  for (size_t k = 0; k + 1 < p.offsets.size(); ++k)
    out.emplace_back(Pattern(p.items.begin() + p.offsets[k], p.items.begin() + p.offsets[k + 1]), p.support[k]);
  return out;
}

Found mine(const Seqs& seqs, int64_t span, int64_t support, int64_t min_len, int64_t max_len, int threads = 1) {
  const Csr csr(seqs);
  MiningParams p;
  p.max_span = span;
  p.min_support = support;
  p.min_len = min_len;
  p.max_len = max_len;
  p.threads = threads;
  return unpack(mine_patterns(csr.view(), p));
}

// The definition, enumerated: every subsequence starting at i1 with its other
// positions in (i1, i1 + span), each distinct pattern once per sequence.
Found brute_mine(const Seqs& seqs, int64_t span, int64_t support, int64_t min_len, int64_t max_len) {
  std::map<Pattern, int64_t> count;
  for (const auto& s : seqs) {
    std::set<Pattern> in;
    const int64_t n = static_cast<int64_t>(s.size());
    for (int64_t i1 = 0; i1 < n; ++i1) {
      const int64_t last = std::min(n, i1 + span);  // positions i1 + 1 .. i1 + span - 1
      const int64_t m = last - i1 - 1;
      for (int64_t mask = 0; mask < (int64_t{1} << m); ++mask) {
        Pattern p{s[i1]};
        for (int64_t b = 0; b < m; ++b)
          if (mask >> b & 1) p.push_back(s[i1 + 1 + b]);
        if (static_cast<int64_t>(p.size()) <= max_len) in.insert(p);
      }
    }
    for (const auto& p : in) ++count[p];
  }
  Found out;
  for (const auto& [p, c] : count)
    if (c >= support && static_cast<int64_t>(p.size()) >= min_len) out.emplace_back(p, c);
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first.size() < b.first.size(); });
  return out;
}

void test_mine_edges() {
  CHECK(mine({}, 5, 1, 1, 5).empty());             // no sequences
  CHECK(mine({{}, {}}, 5, 1, 1, 5).empty());       // empty sequences
  CHECK(mine({{7}, {7}}, 5, 2, 2, 5).empty());     // length 1: no pair
  CHECK((mine({{7}, {7}}, 5, 2, 1, 5) == Found{{{7}, 2}}));
  // repeats: a sequence counts once; (1,1,1) lies in one sequence only
  CHECK((mine({{1, 1, 1}, {1, 1}}, 5, 2, 1, 3) == Found{{{1}, 2}, {{1, 1}, 2}}));
  // the span: positions 0 and 4 fit alpha = 5 (4 <= alpha - 1), 0 and 5 do not
  CHECK((mine({{1, 9, 9, 9, 2}, {1, 8, 8, 8, 2}}, 5, 2, 2, 2) == Found{{{1, 2}, 2}}));
  CHECK(mine({{1, 9, 9, 9, 9, 2}, {1, 8, 8, 8, 8, 2}}, 5, 2, 2, 2).empty());
  // order: by length, then lexicographically
  CHECK((mine({{1, 2, 3}, {1, 2, 3}}, 5, 2, 2, 5) == Found{{{1, 2}, 2}, {{1, 3}, 2}, {{2, 3}, 2}, {{1, 2, 3}, 2}}));
  // max_len above max_span is cut to max_span
  CHECK(mine({{1, 2, 3}, {1, 2, 3}}, 2, 2, 3, 9).empty());
}

void test_mine_ids_and_params() {
  // a large id indexes the miner's tables (ids up to csr.hpp's kFreeIdSpace = 2^24 are allowed
  // whatever the density; 2^20 keeps this test's tables small)
  const int32_t big = int32_t{1} << 20;
  CHECK((mine({{big, 1}, {big, 1}}, 2, 2, 2, 2) == Found{{{big, 1}, 2}}));
  // a sparse id beyond kFreeIdSpace, up to the largest int32, is refused before any table is
  // allocated; so are ids < 1
  CHECK_THROWS(mine({{static_cast<int32_t>(kFreeIdSpace) + 1, 1}}, 2, 1, 1, 2), std::invalid_argument);
  CHECK_THROWS(mine({{INT32_MAX, 1}}, 2, 1, 1, 2), std::invalid_argument);
  CHECK_THROWS(mine({{0, 1}}, 2, 1, 1, 2), std::invalid_argument);
  CHECK_THROWS(mine({{-3}}, 2, 1, 1, 2), std::invalid_argument);
  CHECK_THROWS(mine({{1, 2}}, 1, 1, 1, 2), std::invalid_argument);  // max_span < 2
  CHECK_THROWS(mine({{1, 2}}, 2, 0, 1, 2), std::invalid_argument);  // min_support < 1
  CHECK_THROWS(mine({{1, 2}}, 2, 1, 0, 2), std::invalid_argument);  // min_len < 1
  CHECK_THROWS(mine({{1, 2}}, 2, 1, 3, 2), std::invalid_argument);  // max_len < min_len
  // the pattern limit
  const Csr csr(Seqs{{1, 2, 3, 4}, {1, 2, 3, 4}});
  MiningParams p;
  p.min_len = 1;
  p.max_patterns = 3;
  CHECK_THROWS(mine_patterns(csr.view(), p), std::length_error);
}

void test_mine_random() {
  std::mt19937_64 rng(7);
  for (int trial = 0; trial < 60; ++trial) {
    Seqs seqs(1 + rng() % 6);
    const int32_t n_items = 1 + static_cast<int32_t>(rng() % 5);  // few items: repeats
    for (auto& s : seqs) {
      s.resize(rng() % 9);
      for (auto& x : s) x = 1 + static_cast<int32_t>(rng() % static_cast<uint64_t>(n_items));
    }
    const int64_t span = 2 + static_cast<int64_t>(rng() % 4), support = 1 + static_cast<int64_t>(rng() % 3);
    const int64_t min_len = 1 + static_cast<int64_t>(rng() % 3), max_len = min_len + static_cast<int64_t>(rng() % 3);
    const Found want = brute_mine(seqs, span, support, min_len, std::min(max_len, span));
    CHECK(mine(seqs, span, support, min_len, max_len, 1) == want);
    CHECK(mine(seqs, span, support, min_len, max_len, 2) == want);
  }
}

void test_window_counts() {
  const Csr none(Seqs{});
  CHECK(window_counts(none.view(), 2, 1).offsets.size() == 1);
  const Csr one(Seqs{{5}});
  CHECK(window_counts(one.view(), 2, 1).offsets.size() == 1);  // shorter than the window
  CHECK((unpack(window_counts(one.view(), 1, 1)) == Found{{{5}, 1}}));
  // every occurrence counts, overlapping ones too
  const Csr rep(Seqs{{1, 2, 1, 2}, {1, 1, 1}});
  CHECK((unpack(window_counts(rep.view(), 2, 1)) == Found{{{1, 1}, 2}, {{1, 2}, 2}, {{2, 1}, 1}}));
  CHECK((unpack(window_counts(rep.view(), 2, 2)) == Found{{{1, 1}, 2}, {{1, 2}, 2}}));
  CHECK_THROWS(window_counts(rep.view(), 0, 1), std::invalid_argument);
  CHECK_THROWS(window_counts(rep.view(), 2, 0), std::invalid_argument);
}

std::vector<std::pair<int64_t, int64_t>> pairs(const Seqs& data, const Seqs& patterns, int64_t span, int64_t per,
                                              uint64_t seed, int threads) {
  const Csr d(data), p(patterns);
  PairParams params;
  params.span = span;
  params.max_per_sequence = per;
  params.seed = seed;
  params.threads = threads;
  const PairResult r = pretrain_pairs(d.view(), p.view(), params);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (size_t k = 0; k < r.source.size(); ++k) out.emplace_back(r.source[k], r.pattern[k]);
  return out;
}

void test_pretrain_pairs() {
  using P = std::vector<std::pair<int64_t, int64_t>>;
  CHECK(pairs({}, {{1, 2}}, 0, 10, 0, 1).empty());
  CHECK(pairs({{1, 2}}, {}, 0, 10, 0, 1).empty());
  const Seqs patterns{{1, 3}, {2, 4}, {1, 2, 3}, {3}};
  CHECK((pairs({{1, 2, 3}, {}, {3}}, patterns, 0, 10, 0, 1) == P{{0, 0}, {0, 2}, {0, 3}, {2, 3}}));
  // within span 2 only adjacent items: (1,3) is out
  CHECK((pairs({{1, 2, 3}}, patterns, 2, 10, 0, 1) == P{{0, 3}}));
  // repeats in the sequence: a pattern pairs once
  CHECK((pairs({{3, 3, 3}}, patterns, 0, 10, 0, 1) == P{{0, 3}}));
  // more matches than max_per_sequence: a seeded subset, the same for every thread count
  Seqs many(600, Pattern{1, 2, 3});
  const P one = pairs(many, patterns, 0, 1, 42, 1), two = pairs(many, patterns, 0, 1, 42, 2);
  CHECK_EQ(one.size(), size_t{600});
  CHECK(one == two);
  std::set<int64_t> chosen;
  for (const auto& [s, p] : one) chosen.insert(p);
  CHECK(chosen.size() > 1 && !chosen.count(1));  // the draw varies by sequence; never a non-match
  CHECK_THROWS(pairs({{1}}, {{1}, {1}}, 0, 1, 0, 1), std::invalid_argument);  // duplicate pattern
  CHECK_THROWS(pairs({{1}}, {{}}, 0, 1, 0, 1), std::invalid_argument);        // empty pattern
  CHECK_THROWS(pairs({{1}}, {{1}}, 1, 1, 0, 1), std::invalid_argument);       // span 1
  CHECK_THROWS(pairs({{1}}, {{1}}, 0, 0, 0, 1), std::invalid_argument);       // max_per_sequence 0
  // SplitMix64: the published first output for state 0 (Vigna's reference implementation)
  SplitMix64 g(0);
  CHECK_EQ(g.next(), uint64_t{0xE220A8397B1DCDAFULL});
  for (int i = 0; i < 100; ++i) CHECK(g.bounded(3) < 3);
}

}  // namespace

int main() {
  test_mine_edges();
  test_mine_ids_and_params();
  test_mine_random();
  test_window_counts();
  test_pretrain_pairs();
  return check::report("test_mining");
}
