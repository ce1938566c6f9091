// Edge cases of the entropy core (csrc/entropy.*): the LZ sums of empty,
// length-1 and repeated sequences (both algorithms), the entropy formula's
// special cases, the Markov model's probabilities (a hand-computed value,
// normalisation, unseen contexts, bad ids), item entropies, the entropy
// miner's invariants and the segmenter.
#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "check.hpp"
#include "csr_data.hpp"
#include "entropy.hpp"

using namespace fastregen;

namespace {

using check::Csr;
using check::Seqs;


bool near(double a, double b) { return std::fabs(a - b) <= 1e-12 * std::max(1.0, std::fabs(b)); }

// sum_i (L_i + 1), L_i = max_{j<i} min(lcp(s[i:], s[j:]), i - j): the header's definition, cubic.
int64_t brute_lambda(const std::vector<int32_t>& s) {
  const int64_t n = static_cast<int64_t>(s.size());
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t j = 0; j < i; ++j) {
      int64_t l = 0;
      while (i + l < n && s[j + l] == s[i + l] && l < i - j) ++l;
      best = std::max(best, l);
    }
    sum += best + 1;
  }
  return sum;
}

void test_lz() {
  const std::vector<int32_t> empty, one{5}, rep{1, 1, 1, 1};
  for (LzMethod m : {LzMethod::kAutomaton, LzMethod::kQuadratic}) {
    const Csr csr({empty, one, rep});
    const std::vector<int64_t> sums = lz_lambda_sums(csr.view(), 1, m);
    CHECK_EQ(sums[0], 0);
    CHECK_EQ(sums[1], 1);
    CHECK_EQ(sums[2], 8);  // 1 + 2 + 3 + 2
  }
  CHECK(std::isnan(lz_entropy_from_sum(0, 0, 2.0)));
  CHECK_EQ(lz_entropy_from_sum(1, 1, 2.0), 0.0);
  CHECK_EQ(lz_entropy_from_sum(4, 8, 2.0), 1.0);
  CHECK(near(lz_entropy_from_sum(4, 8, 4.0), 0.5));
  // both algorithms agree with the definition on random sequences over few symbols, short and long
  std::mt19937_64 rng(3);
  Seqs seqs;
  for (int k = 0; k < 80; ++k) {
    std::vector<int32_t> s(rng() % (k < 60 ? 20 : 90));
    const uint64_t alphabet = 1 + rng() % 4;
    for (auto& x : s) x = 1 + static_cast<int32_t>(rng() % alphabet);
    seqs.push_back(s);
  }
  const Csr csr(seqs);
  const std::vector<int64_t> a = lz_lambda_sums(csr.view(), 1, LzMethod::kAutomaton);
  const std::vector<int64_t> q = lz_lambda_sums(csr.view(), 2, LzMethod::kQuadratic);
  const std::vector<int64_t> auto2 = lz_lambda_sums(csr.view(), 2, LzMethod::kAuto);
  for (size_t u = 0; u < seqs.size(); ++u) {
    const int64_t want = brute_lambda(seqs[u]);
    CHECK_EQ(a[u], want);
    CHECK_EQ(q[u], want);
    CHECK_EQ(auto2[u], want);
  }
  const std::vector<int64_t> d = n_distinct(Csr({empty, one, rep, {3, 1, 3, 2}}).view(), 1);
  CHECK((d == std::vector<int64_t>{0, 1, 1, 3}));
}

void test_markov() {
  MarkovModel m(1, 3);
  CHECK_THROWS(m.prob(nullptr, 0, 1), std::logic_error);  // before fit
  const Csr csr({{1, 2}, {1, 2}});
  m.fit(csr.view());
  const int32_t ctx1[] = {1}, ctx3[] = {3};
  // P_0(2) = (2 + 2/3) / (4 + 2) = 4/9;  P_1(2 | 1) = (2 + 1 * 4/9) / (2 + 1) = 22/27
  CHECK(near(m.prob(ctx1, 1, 2), 22.0 / 27.0));
  CHECK(near(m.prob(ctx1, 0, 2), 4.0 / 9.0));  // no context: order 0
  CHECK(near(m.prob(ctx3, 1, 2), 4.0 / 9.0));  // an unseen context backs off
  CHECK(near(m.prob(ctx3, 1, 3), 1.0 / 9.0));  // an unseen item keeps the uniform share
  for (const int32_t* ctx : {ctx1, ctx3}) {
    double total = 0.0;
    for (int32_t s = 1; s <= 3; ++s) total += m.prob(ctx, 1, s);
    CHECK(near(total, 1.0));
  }
  CHECK((m.context_counts() == std::vector<int64_t>{1}));
  CHECK_THROWS(m.prob(ctx1, 1, 0), std::invalid_argument);
  CHECK_THROWS(m.prob(ctx1, 1, 4), std::invalid_argument);  // beyond num_items
  MarkovModel bad(2, 2);
  CHECK_THROWS(bad.fit(Csr({{1, 3}}).view()), std::invalid_argument);
  CHECK_THROWS(MarkovModel(-1, 3), std::invalid_argument);
  CHECK_THROWS(MarkovModel(1, 0), std::invalid_argument);
  // an empty training set: every item 1 / V
  MarkovModel e(2, 4);
  e.fit(Csr(Seqs{}).view());
  CHECK(near(e.prob(ctx1, 1, 4), 0.25));  // the largest id
}

void test_item_entropies_and_miner() {
  const Seqs seqs{{1, 2, 1, 2, 1, 2}, {1, 2, 3}, {4}};
  const Csr csr(seqs);
  std::vector<int64_t> counts;
  std::vector<double> ent;
  item_entropies(csr.view(), 5, counts, ent);
  CHECK((counts == std::vector<int64_t>{0, 4, 4, 1, 1, 0}));
  CHECK(near(ent[1], -std::log2(4.0 / 10.0)));
  CHECK(std::isinf(ent[5]));  // never seen
  CHECK_THROWS(item_entropies(csr.view(), 3, counts, ent), std::invalid_argument);  // id 4 > 3

  MarkovModel m(1, 5);
  m.fit(csr.view());
  MinerParams p;
  p.theta = 3.0;
  p.min_count = 2;
  p.max_len = 4;
  const EntropyPatterns out = mine_entropy_patterns(csr.view(), 5, p, &m, nullptr, nullptr);
  CHECK(out.entropy.size() > 0);
  for (size_t k = 0; k + 1 < out.offsets.size(); ++k) {
    const std::vector<int32_t> pat(out.items.begin() + out.offsets[k], out.items.begin() + out.offsets[k + 1]);
    CHECK(out.entropy[k] < p.theta);
    CHECK(static_cast<int64_t>(pat.size()) <= p.max_len);
    // count = contiguous, overlapping occurrences
    int64_t occ = 0;
    for (const auto& s : seqs)
      for (size_t i = 0; i + pat.size() <= s.size(); ++i) occ += std::equal(pat.begin(), pat.end(), s.begin() + i);
    CHECK_EQ(out.count[k], occ);
    CHECK(occ >= p.min_count);
  }
  p.theta = 1e-9;  // nothing is that predictable
  CHECK(mine_entropy_patterns(csr.view(), 5, p, &m, nullptr, nullptr).entropy.empty());
  CHECK(mine_entropy_patterns(Csr(Seqs{}).view(), 5, MinerParams{3.0, 1, 3, 1}, &m, nullptr, nullptr).entropy.empty());
  p.theta = 0.0;
  CHECK_THROWS(mine_entropy_patterns(csr.view(), 5, p, &m, nullptr, nullptr), std::invalid_argument);
  p.theta = 3.0;
  CHECK_THROWS(mine_entropy_patterns(csr.view(), 5, p, nullptr, nullptr, nullptr), std::invalid_argument);
}

void test_segmenter() {
  const Csr data({{1, 2, 3, 4}, {}, {5}, {1, 2, 1, 2}});
  const Csr patterns({{1, 2}, {1, 2, 3}, {4}, {1, 2}});  // a duplicate resolves to the first index
  for (int threads : {1, 2}) {
    const Segmentation s = segment_sequences(data.view(), patterns.view(), threads);
    CHECK((s.offsets == std::vector<int64_t>{0, 2, 2, 3, 5}));
    CHECK((s.bounds == std::vector<int64_t>{0, 3, 4, 5, 7, 9}));
    CHECK((s.pattern_id == std::vector<int64_t>{1, 2, -1, 0, 0}));
  }
  CHECK_THROWS(segment_sequences(data.view(), Csr({{1}, {}}).view(), 1), std::invalid_argument);
  const Segmentation none = segment_sequences(Csr(Seqs{}).view(), patterns.view(), 1);
  CHECK((none.offsets == std::vector<int64_t>{0}));
}

}  // namespace

int main() {
  test_lz();
  test_markov();
  test_item_entropies_and_miner();
  test_segmenter();
  return check::report("test_entropy");
}
