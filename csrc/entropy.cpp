// See entropy.hpp.
#include "entropy.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <stdexcept>

#include "error_slot.hpp"

namespace fastregen {

namespace {

#if FASTREGEN_HAVE_OPENMP
// Below this many items of work a parallel region costs more than it saves
// (thread wake-up is ~10-100 us, far more on an oversubscribed machine).
constexpr int64_t kSerialBelow = 32768;

int team_size(int threads, int64_t n, int64_t work) {
  if (work < kSerialBelow) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(resolve_threads(threads), n)));
}
#endif

// Runs body(u) for u in [0, n) across threads (serially when `work`, the
// number of items it touches, is small); the first exception thrown by a
// worker is re-raised on the calling thread once the loop has finished.
template <typename Body>
void parallel_for(int64_t n, int64_t work, int threads, Body&& body) {
  ErrorSlot error;
#if FASTREGEN_HAVE_OPENMP
  const int nt = team_size(threads, n, work);
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt)
  for (int64_t u = 0; u < n; ++u) {
    try {
      body(u);
    } catch (...) {
      error.capture();
    }
  }
#else
  (void)threads;
  (void)work;
  for (int64_t u = 0; u < n; ++u) {
    try {
      body(u);
    } catch (...) {
      error.capture();
      break;
    }
  }
#endif
  error.rethrow();
}

// Suffix automaton over int32 symbols. Item ids reach ~10^6, so per-state
// transition arrays are out. Most states have a single out-transition, so the
// first one is stored inline in the state (one cache line holds everything a
// step of the sweep needs); the others go to an open-addressing table keyed by
// (state, symbol), with a per-state list of their symbols so that clones can
// copy them. Buffers are reused across the sequences a thread handles.
class SuffixAutomaton {
 public:
  struct State {
    int32_t len;
    int32_t link;
    int32_t firstpos;  // end index (inclusive) of the first occurrence
    int32_t head;      // first entry of this state's overflow symbol list, -1: none
    int32_t sym0;      // the inline transition (to0 = -1: none)
    int32_t to0;
  };

  void build(const int32_t* s, int64_t n) {
    states_.clear();
    states_.reserve(static_cast<std::size_t>(2 * n + 1));
    states_.push_back(State{0, -1, -1, -1, 0, -1});
    list_sym_.clear();
    list_next_.clear();
    // At most 3n - 4 transitions (n >= 3); keep the table at most ~3/4 full.
    std::size_t cap = 16;
    int bits = 4;
    while (cap < static_cast<std::size_t>(4 * n + 16)) {
      cap <<= 1;
      ++bits;
    }
    table_.assign(cap, Slot{kEmpty, -1});
    mask_ = cap - 1;
    shift_ = 64 - bits;
    last_ = 0;
    for (int64_t i = 0; i < n; ++i) extend(s[i], static_cast<int32_t>(i));
  }

  // Next state from `v` on symbol c, or -1.
  int32_t next(int32_t v, int32_t c) const {
    const State& st = states_[v];
    if (st.to0 >= 0 && st.sym0 == c) return st.to0;
    if (st.head < 0) return -1;
    return table_[find(key(v, c))].to;
  }
  const State& state(int32_t v) const { return states_[v]; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key;
    int32_t to;
  };

  static uint64_t key(int32_t v, int32_t c) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(v)) << 32) | static_cast<uint32_t>(c);
  }
  // Fibonacci hashing: the top bits of the product mix the state (high word)
  // and the symbol (low word); the low bits would ignore the state entirely.
  std::size_t slot(uint64_t k) const {
    return static_cast<std::size_t>(((k ^ (k >> 29)) * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  // Slot holding k, or the empty slot where it would go (its `to` is -1).
  std::size_t find(uint64_t k) const {
    std::size_t i = slot(k);
    while (table_[i].key != k && table_[i].key != kEmpty) i = (i + 1) & mask_;
    return i;
  }
  void add_edge(int32_t v, int32_t c, int32_t to) {
    State& st = states_[v];
    if (st.to0 < 0) {
      st.sym0 = c;
      st.to0 = to;
      return;
    }
    list_sym_.push_back(c);
    list_next_.push_back(st.head);
    st.head = static_cast<int32_t>(list_sym_.size() - 1);
    const uint64_t k = key(v, c);
    table_[find(k)] = Slot{k, to};
  }
  // Repoint the existing transition (v, c) from q to `to`; false if it does not lead to q.
  bool redirect(int32_t v, int32_t c, int32_t q, int32_t to) {
    State& st = states_[v];
    if (st.to0 >= 0 && st.sym0 == c) {
      if (st.to0 != q) return false;
      st.to0 = to;
      return true;
    }
    if (st.head < 0) return false;
    Slot& sl = table_[find(key(v, c))];
    if (sl.to != q) return false;
    sl.to = to;
    return true;
  }
  int32_t new_state(int32_t len, int32_t link, int32_t firstpos) {
    states_.push_back(State{len, link, firstpos, -1, 0, -1});
    return static_cast<int32_t>(states_.size() - 1);
  }
  void extend(int32_t c, int32_t pos) {
    const int32_t cur = new_state(states_[last_].len + 1, 0, pos);
    int32_t p = last_;
    while (p != -1 && next(p, c) < 0) {
      add_edge(p, c, cur);
      p = states_[p].link;
    }
    if (p != -1) {
      const int32_t q = next(p, c);
      if (states_[p].len + 1 == states_[q].len) {
        states_[cur].link = q;
      } else {
        // A clone's strings first end where q's do: firstpos is copied.
        const int32_t clone = new_state(states_[p].len + 1, states_[q].link, states_[q].firstpos);
        states_[clone].sym0 = states_[q].sym0;
        states_[clone].to0 = states_[q].to0;
        for (int32_t e = states_[q].head; e >= 0; e = list_next_[e])
          add_edge(clone, list_sym_[e], table_[find(key(q, list_sym_[e]))].to);
        for (; p != -1 && redirect(p, c, q, clone); p = states_[p].link) {
        }
        states_[q].link = clone;
        states_[cur].link = clone;
      }
    }
    last_ = cur;
  }

  std::vector<State> states_;
  std::vector<int32_t> list_sym_, list_next_;
  std::vector<Slot> table_;
  std::size_t mask_ = 0;
  int shift_ = 60;
  int32_t last_ = 0;
};

int64_t lambda_sum_with(SuffixAutomaton& sam, const int32_t* s, int64_t n) {
  if (n == 0) return 0;
  if (n > (int64_t{1} << 30)) throw std::length_error("sequence too long for the suffix automaton (> 2^30 items)");
  sam.build(s, n);
  // (v, l): s[i : i+l] is the longest prefix of s[i:] inside s[0:i], and v its
  // state. A string lies inside s[0:i] iff its first occurrence ends before i;
  // extending a string never moves its first end earlier, so the valid lengths
  // form a prefix 0..L_i and the greedy extension below finds L_i. Dropping the
  // first character keeps the rest valid for i + 1 (L_{i+1} >= L_i - 1), which
  // makes the sweep amortised linear.
  int32_t v = 0;
  int64_t l = 0;
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    while (i + l < n) {
      const int32_t w = sam.next(v, s[i + l]);
      if (w < 0 || sam.state(w).firstpos >= i) break;
      v = w;
      ++l;
    }
    total += l + 1;  // Lambda_i = L_i + 1 (also when s[i:] occurs whole: n - i + 1)
    if (l > 0) {
      --l;
      const int32_t up = sam.state(v).link;
      if (l <= sam.state(up).len) v = up;
    }
  }
  return total;
}

}  // namespace

int64_t lz_lambda_sum(const int32_t* s, int64_t n) {
  SuffixAutomaton sam;
  return lambda_sum_with(sam, s, n);
}

int64_t lz_lambda_sum_quadratic(const int32_t* s, int64_t n) {
  // row[j] = lcp(s[i:], s[j:]) for j < i, rewritten in place as i falls from
  // n - 1 (row[j + 1] still holds lcp(s[i+1:], s[j+1:]) when row[j] is
  // written). An occurrence at j lies inside s[0:i] for lengths <= i - j.
  std::vector<int64_t> row(static_cast<std::size_t>(n) + 1, 0);
  int64_t total = 0;
  for (int64_t i = n - 1; i >= 0; --i) {
    int64_t best = 0;
    const int32_t si = s[i];
    for (int64_t j = 0; j < i; ++j) {
      const int64_t v = s[j] == si ? row[j + 1] + 1 : 0;
      row[j] = v;
      best = std::max(best, std::min(v, i - j));
    }
    total += best + 1;
  }
  return total;
}

namespace {
int64_t lambda_sum_auto(SuffixAutomaton& sam, const int32_t* s, int64_t n, LzMethod method) {
  if (method == LzMethod::kQuadratic || (method == LzMethod::kAuto && n <= kLzQuadraticMaxLen))
    return lz_lambda_sum_quadratic(s, n);
  return lambda_sum_with(sam, s, n);
}
}  // namespace

std::vector<int64_t> lz_lambda_sums(const CsrView& data, int threads, LzMethod method) {
  std::vector<int64_t> out(static_cast<std::size_t>(data.n_seq), 0);
  ErrorSlot error;
#if FASTREGEN_HAVE_OPENMP
  const int nt = team_size(threads, data.n_seq, data.n_items_total());
#pragma omp parallel num_threads(nt)
  {
    SuffixAutomaton sam;  // one per thread, buffers reused across sequences
#pragma omp for schedule(dynamic, 64)
    for (int64_t u = 0; u < data.n_seq; ++u) {
      try {
        out[u] = lambda_sum_auto(sam, data.seq(u), data.length(u), method);
      } catch (...) {
        error.capture();
      }
    }
  }
#else
  (void)threads;
  SuffixAutomaton sam;
  for (int64_t u = 0; u < data.n_seq; ++u) out[u] = lambda_sum_auto(sam, data.seq(u), data.length(u), method);
#endif
  error.rethrow();
  return out;
}

double lz_entropy_from_sum(int64_t n, int64_t lambda_sum, double base) {
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  const double nd = static_cast<double>(n);
  const double bits = nd * std::log2(nd) / static_cast<double>(lambda_sum);
  return base == 2.0 ? bits : bits / std::log2(base);
}

std::vector<double> real_entropy(const CsrView& data, double base, int threads, LzMethod method) {
  const std::vector<int64_t> sums = lz_lambda_sums(data, threads, method);
  std::vector<double> out(sums.size());
  for (int64_t u = 0; u < data.n_seq; ++u) out[u] = lz_entropy_from_sum(data.length(u), sums[u], base);
  return out;
}

std::vector<int64_t> n_distinct(const CsrView& data, int threads) {
  std::vector<int64_t> out(static_cast<std::size_t>(data.n_seq), 0);
  parallel_for(data.n_seq, data.n_items_total(), threads, [&](int64_t u) {
    std::vector<int32_t> buf(data.seq(u), data.seq(u) + data.length(u));
    std::sort(buf.begin(), buf.end());
    out[u] = std::unique(buf.begin(), buf.end()) - buf.begin();
  });
  return out;
}

// ---------------------------------------------------------------- Markov model

MarkovModel::MarkovModel(int order, int32_t num_items) : order_(order), num_items_(num_items) {
  if (order < 0) throw std::invalid_argument("order must be >= 0, got " + std::to_string(order));
  if (num_items < 1) throw std::invalid_argument("num_items must be >= 1, got " + std::to_string(num_items));
}

// Contexts form a trie read right to left: h_j = [s_{t-j}] + h_{j-1}, so the
// key of h_j is (id of h_{j-1}, s_{t-j}) packed into 64 bits (id 0 = the empty
// context). One integer hash per order instead of hashing j items.
namespace {
inline uint64_t ctx_key(int64_t parent, int32_t item) {
  return (static_cast<uint64_t>(parent) << 32) | static_cast<uint32_t>(item);
}
}  // namespace

void MarkovModel::fit(const CsrView& data) {
  check_id_space(num_items_, data.n_items_total(), "the item ids (num_items)");
  unigram_.assign(static_cast<std::size_t>(num_items_) + 1, 0);
  contexts_.clear();
  pairs_.clear();
  per_order_.assign(static_cast<std::size_t>(order_), 0);
  n_tokens_ = 0;
  n_distinct0_ = 0;
  int64_t next_id = 1;
  const uint64_t stride = static_cast<uint64_t>(num_items_) + 1;
  for (int64_t u = 0; u < data.n_seq; ++u) {
    const int32_t* s = data.seq(u);
    const int64_t n = data.length(u);
    for (int64_t t = 0; t < n; ++t) {
      const int32_t x = s[t];
      if (x < 1 || x > num_items_)
        throw std::invalid_argument("item id " + std::to_string(x) + " outside 1.." + std::to_string(num_items_));
      if (unigram_[x]++ == 0) ++n_distinct0_;
      ++n_tokens_;
      const int64_t jmax = std::min<int64_t>(order_, t);
      int64_t parent = 0;
      for (int64_t j = 1; j <= jmax; ++j) {
        auto [it, inserted] = contexts_.try_emplace(ctx_key(parent, s[t - j]));
        if (inserted) {
          if (next_id >= (int64_t{1} << 32)) throw std::length_error("more than 2^32 Markov contexts");
          it->second.id = next_id++;
          ++per_order_[j - 1];
        }
        it->second.count += 1;
        if (pairs_[static_cast<uint64_t>(it->second.id) * stride + static_cast<uint64_t>(x)]++ == 0)
          it->second.distinct += 1;
        parent = it->second.id;
      }
    }
  }
  fitted_ = true;
}

double MarkovModel::prob(const int32_t* ctx, int64_t ctx_len, int32_t s) const {
  if (!fitted_) throw std::logic_error("MarkovModel.prob called before fit");
  if (s < 1 || s > num_items_)
    throw std::invalid_argument("item id " + std::to_string(s) + " outside 1.." + std::to_string(num_items_));
  double p = 1.0 / static_cast<double>(num_items_);
  if (n_tokens_ > 0)
    p = (static_cast<double>(unigram_[s]) + static_cast<double>(n_distinct0_) * p) /
        static_cast<double>(n_tokens_ + n_distinct0_);
  const uint64_t stride = static_cast<uint64_t>(num_items_) + 1;
  const int64_t jmax = std::min<int64_t>(order_, ctx_len);
  int64_t parent = 0;
  for (int64_t j = 1; j <= jmax; ++j) {
    const auto it = contexts_.find(ctx_key(parent, ctx[ctx_len - j]));
    // An unseen context has no seen extension either: every higher order backs off too.
    if (it == contexts_.end()) break;
    const auto pit = pairs_.find(static_cast<uint64_t>(it->second.id) * stride + static_cast<uint64_t>(s));
    const double c_hs = pit == pairs_.end() ? 0.0 : static_cast<double>(pit->second);
    const double t_h = static_cast<double>(it->second.distinct);
    p = (c_hs + t_h * p) / (static_cast<double>(it->second.count) + t_h);
    parent = it->second.id;
  }
  return p;
}

std::vector<double> MarkovModel::prob_batch(const CsrView& contexts, const int32_t* next, int threads) const {
  std::vector<double> out(static_cast<std::size_t>(contexts.n_seq));
  parallel_for(contexts.n_seq, contexts.n_seq + contexts.n_items_total(), threads,
               [&](int64_t c) { out[c] = prob(contexts.seq(c), contexts.length(c), next[c]); });
  return out;
}

std::vector<int64_t> MarkovModel::context_counts() const {
  return per_order_;
}

// ------------------------------------------------------------- pattern miner

void item_entropies(const CsrView& data, int32_t num_items, std::vector<int64_t>& counts,
                    std::vector<double>& entropy) {
  check_id_space(num_items, data.n_items_total(), "the item ids (num_items)");
  counts.assign(static_cast<std::size_t>(num_items) + 1, 0);
  const int64_t total = data.n_items_total();
  for (int64_t g = 0; g < total; ++g) {
    const int32_t x = data.items[g];
    if (x < 1 || x > num_items)
      throw std::invalid_argument("item id " + std::to_string(x) + " outside 1.." + std::to_string(num_items));
    ++counts[x];
  }
  entropy.assign(counts.size(), std::numeric_limits<double>::infinity());
  for (std::size_t i = 1; i < counts.size(); ++i)
    if (counts[i] > 0) entropy[i] = -std::log2(static_cast<double>(counts[i]) / static_cast<double>(total));
}

namespace {

// All patterns of one length, with the global position of the last item of
// each of their occurrences (ascending).
struct Level {
  int64_t length = 0;
  std::vector<int32_t> items;  // n_patterns * length
  std::vector<double> entropy;
  std::vector<int64_t> occ_offsets{0};
  std::vector<int64_t> occ;
  int64_t size() const { return static_cast<int64_t>(entropy.size()); }
};

struct Candidate {
  int64_t parent;
  int32_t next;
  std::vector<int64_t> occ;  // positions of `next`, ascending
};

void emit(const Level& level, EntropyPatterns& out) {
  for (int64_t p = 0; p < level.size(); ++p) {
    out.items.insert(out.items.end(), level.items.begin() + p * level.length,
                     level.items.begin() + (p + 1) * level.length);
    out.offsets.push_back(static_cast<int64_t>(out.items.size()));
    out.entropy.push_back(level.entropy[p]);
    out.count.push_back(level.occ_offsets[p + 1] - level.occ_offsets[p]);
  }
}

}  // namespace

EntropyPatterns mine_entropy_patterns(const CsrView& data, int32_t num_items, const MinerParams& params,
                                      const MarkovModel* markov, const double* position_probs,
                                      const ExtensionScorer* scorer) {
  if (!(params.theta > 0.0)) throw std::invalid_argument("theta must be > 0, got " + std::to_string(params.theta));
  if (params.max_len < 1) throw std::invalid_argument("max_len must be >= 1, got " + std::to_string(params.max_len));
  if (params.min_count < 1)
    throw std::invalid_argument("min_count must be >= 1, got " + std::to_string(params.min_count));
  if ((markov != nullptr) + (position_probs != nullptr) + (scorer != nullptr) != 1)
    throw std::invalid_argument("exactly one extension model must be given");
  if (markov != nullptr && !markov->fitted()) throw std::invalid_argument("the Markov model is not fitted");

  EntropyPatterns out;
  std::vector<int64_t> counts;
  std::vector<double> item_h;
  item_entropies(data, num_items, counts, item_h);
  const int64_t total = data.n_items_total();

  // has_next[g]: position g is not the last of its sequence.
  std::vector<uint8_t> has_next(static_cast<std::size_t>(total), 0);
  for (int64_t u = 0; u < data.n_seq; ++u)
    for (int64_t g = data.begin(u); g + 1 < data.end(u); ++g) has_next[g] = 1;

  // Level 1: seeds, with occurrences by a counting sort.
  Level level;
  level.length = 1;
  std::vector<int64_t> seed_index(counts.size(), -1);
  for (std::size_t i = 1; i < counts.size(); ++i) {
    if (counts[i] >= params.min_count && item_h[i] < params.theta) {
      seed_index[i] = level.size();
      level.items.push_back(static_cast<int32_t>(i));
      level.entropy.push_back(item_h[i]);
      level.occ_offsets.push_back(level.occ_offsets.back() + counts[i]);
    }
  }
  level.occ.resize(static_cast<std::size_t>(level.occ_offsets.back()));
  {
    std::vector<int64_t> fill(level.occ_offsets.begin(), level.occ_offsets.end() - 1);
    for (int64_t g = 0; g < total; ++g) {
      const int64_t k = seed_index[data.items[g]];
      if (k >= 0) level.occ[fill[k]++] = g;
    }
  }

  while (level.size() > 0) {
    emit(level, out);
    if (level.length >= params.max_len) break;

    // Extensions of each pattern by the items seen right after its occurrences.
    std::vector<std::vector<Candidate>> per_parent(static_cast<std::size_t>(level.size()));
    parallel_for(level.size(), static_cast<int64_t>(level.occ.size()), params.threads, [&](int64_t p) {
      std::vector<std::pair<int32_t, int64_t>> follow;
      for (int64_t k = level.occ_offsets[p]; k < level.occ_offsets[p + 1]; ++k) {
        const int64_t g = level.occ[k];
        if (has_next[g]) follow.emplace_back(data.items[g + 1], g + 1);
      }
      std::sort(follow.begin(), follow.end());
      auto& mine = per_parent[p];
      for (std::size_t a = 0; a < follow.size();) {
        std::size_t b = a;
        while (b < follow.size() && follow[b].first == follow[a].first) ++b;
        if (static_cast<int64_t>(b - a) >= params.min_count) {
          Candidate c{p, follow[a].first, {}};
          c.occ.reserve(b - a);
          for (std::size_t k = a; k < b; ++k) c.occ.push_back(follow[k].second);
          mine.push_back(std::move(c));
        }
        a = b;
      }
    });
    std::vector<Candidate> cands;
    for (auto& v : per_parent)
      for (auto& c : v) cands.push_back(std::move(c));
    per_parent.clear();
    const int64_t nc = static_cast<int64_t>(cands.size());
    if (nc == 0) break;

    // p_m(s | P) for every candidate.
    std::vector<double> prob(static_cast<std::size_t>(nc), 0.0);
    const int64_t L = level.length;
    if (markov != nullptr) {
      parallel_for(nc, nc * L, params.threads, [&](int64_t c) {
        prob[c] = markov->prob(level.items.data() + cands[c].parent * L, L, cands[c].next);
      });
    } else if (position_probs != nullptr) {
      for (int64_t c = 0; c < nc; ++c) {
        double sum = 0.0;
        for (const int64_t g : cands[c].occ) sum += position_probs[g];
        prob[c] = sum / static_cast<double>(cands[c].occ.size());
      }
    } else {
      std::vector<int64_t> ctx_offsets(static_cast<std::size_t>(nc) + 1, 0);
      std::vector<int32_t> ctx_items;
      std::vector<int32_t> next(static_cast<std::size_t>(nc));
      ctx_items.reserve(static_cast<std::size_t>(nc * L));
      for (int64_t c = 0; c < nc; ++c) {
        ctx_items.insert(ctx_items.end(), level.items.begin() + cands[c].parent * L,
                         level.items.begin() + (cands[c].parent + 1) * L);
        ctx_offsets[c + 1] = static_cast<int64_t>(ctx_items.size());
        next[c] = cands[c].next;
      }
      (*scorer)(ctx_offsets, ctx_items, next, prob);
      if (static_cast<int64_t>(prob.size()) != nc)
        throw std::invalid_argument("the scorer returned " + std::to_string(prob.size()) + " probabilities for " +
                                    std::to_string(nc) + " extensions");
      for (int64_t c = 0; c < nc; ++c)
        if (!(prob[c] > 0.0 && prob[c] <= 1.0))
          throw std::invalid_argument("the scorer returned probability " + std::to_string(prob[c]) +
                                      " (must be in (0, 1]) for extension " + std::to_string(c));
    }

    Level nextl;
    nextl.length = L + 1;
    for (int64_t c = 0; c < nc; ++c) {
      const double h = level.entropy[cands[c].parent] + (-std::log2(prob[c]));
      if (!(h < params.theta)) continue;
      nextl.items.insert(nextl.items.end(), level.items.begin() + cands[c].parent * L,
                         level.items.begin() + (cands[c].parent + 1) * L);
      nextl.items.push_back(cands[c].next);
      nextl.entropy.push_back(h);
      nextl.occ.insert(nextl.occ.end(), cands[c].occ.begin(), cands[c].occ.end());
      nextl.occ_offsets.push_back(static_cast<int64_t>(nextl.occ.size()));
    }
    level = std::move(nextl);
  }
  return out;
}

// ----------------------------------------------------------------- segmenter

Segmentation segment_sequences(const CsrView& data, const CsrView& patterns, int threads) {
  // Trie of the patterns: node 0 is the root; terminal[v] = pattern id or -1.
  std::unordered_map<uint64_t, int32_t> child;
  std::vector<int64_t> terminal{-1};
  for (int64_t p = 0; p < patterns.n_seq; ++p) {
    const int32_t* it = patterns.seq(p);
    const int64_t len = patterns.length(p);
    if (len == 0) throw std::invalid_argument("pattern " + std::to_string(p) + " is empty");
    uint32_t v = 0;
    for (int64_t k = 0; k < len; ++k) {
      const uint64_t key = (static_cast<uint64_t>(v) << 32) | static_cast<uint32_t>(it[k]);
      auto [pos, inserted] = child.try_emplace(key, static_cast<int32_t>(terminal.size()));
      if (inserted) terminal.push_back(-1);
      v = static_cast<uint32_t>(pos->second);
    }
    if (terminal[v] < 0) terminal[v] = p;
  }

  auto walk = [&](const int32_t* s, int64_t n, int64_t t, int64_t& id) -> int64_t {
    // Length of the longest pattern matching s[t:], or 1 (id -1) for none.
    int64_t best = 1;
    id = -1;
    uint32_t v = 0;
    for (int64_t k = t; k < n; ++k) {
      const auto it = child.find((static_cast<uint64_t>(v) << 32) | static_cast<uint32_t>(s[k]));
      if (it == child.end()) break;
      v = static_cast<uint32_t>(it->second);
      if (terminal[v] >= 0) {
        best = k - t + 1;
        id = terminal[v];
      }
    }
    return best;
  };

  Segmentation seg;
  std::vector<int64_t> nseg(static_cast<std::size_t>(data.n_seq), 0);
  parallel_for(data.n_seq, data.n_items_total(), threads, [&](int64_t u) {
    const int32_t* s = data.seq(u);
    const int64_t n = data.length(u);
    int64_t id;
    for (int64_t t = 0; t < n; t += walk(s, n, t, id)) ++nseg[u];
  });
  seg.offsets.assign(static_cast<std::size_t>(data.n_seq) + 1, 0);
  for (int64_t u = 0; u < data.n_seq; ++u) seg.offsets[u + 1] = seg.offsets[u] + nseg[u];
  const int64_t total = seg.offsets.back();
  seg.bounds.assign(static_cast<std::size_t>(total) + 1, data.n_items_total());
  seg.pattern_id.assign(static_cast<std::size_t>(total), -1);
  parallel_for(data.n_seq, data.n_items_total(), threads, [&](int64_t u) {
    const int32_t* s = data.seq(u);
    const int64_t n = data.length(u);
    int64_t k = seg.offsets[u];
    for (int64_t t = 0; t < n; ++k) {
      int64_t id;
      const int64_t len = walk(s, n, t, id);
      seg.bounds[k] = data.begin(u) + t;
      seg.pattern_id[k] = id;
      t += len;
    }
  });
  return seg;
}

}  // namespace fastregen
