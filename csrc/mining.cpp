// See mining.hpp.
#include "mining.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "error_slot.hpp"

namespace fastregen {

namespace {

inline void add_progress(int64_t* progress, int64_t amount) {
  if (progress == nullptr || amount == 0) return;
#if FASTREGEN_HAVE_OPENMP
#pragma omp atomic
#endif
  *progress += amount;
}

// Largest item id, after checking that every id is >= 1 (ids index tables).
int32_t checked_max_item(const int32_t* items, int64_t n, const char* what) {
  int32_t hi = 0;
  for (int64_t k = 0; k < n; ++k) {
    const int32_t x = items[k];
    if (x < 1)
      throw std::invalid_argument(std::string(what) + " must hold item ids >= 1; found " +
                                  std::to_string(x) + " at position " + std::to_string(k));
    if (x > hi) hi = x;
  }
  return hi;
}

// ------------------------------------------------------------------ mining

// One occurrence of a prefix: sequence `seq`, the earliest position `last`
// (global index into items) its last item matches at for a given start, and
// the last position `wend` the window of that start allows.
struct State {
  int64_t last;
  int64_t wend;
  int32_t seq;
};

struct MinerOutput {
  std::vector<int32_t> items;
  std::vector<int32_t> lens;
  std::vector<int64_t> support;
};

class Miner {
 public:
  Miner(const CsrView& data, const MiningParams& p, int32_t max_item, std::atomic<int64_t>& found)
      : data_(data), p_(p), slot_(static_cast<size_t>(max_item) + 1), found_(found) {}

  // Publish this thread's pattern count; throws once the limit is passed.
  void flush_count() {
    const int64_t total = found_.fetch_add(unflushed_) + unflushed_;
    unflushed_ = 0;
    if (p_.max_patterns > 0 && total > p_.max_patterns)
      throw std::length_error("more than max_patterns = " + std::to_string(p_.max_patterns) +
                              " patterns; raise min_support or lower max_span / max_len");
  }

  // Mine the subtree of patterns starting with `item` from its states.
  //
  // Depth-first over the pattern tree with an explicit stack (levels_[d]
  // holds the frequent extensions of the prefix of length d + 1 and a cursor
  // into them), not recursion: a pattern may be as long as max_span, and an
  // OpenMP worker's stack (a few MiB) must not bound how long that can be.
  void mine_item(int32_t item, const std::vector<State>& states, int64_t item_support, MinerOutput& out) {
    prefix_.assign(1, item);
    if (p_.min_len <= 1) emit(item_support, out);
    if (p_.max_len < 2 || !expand(states, 0, out)) return;
    size_t depth = 0;
    for (;;) {
      // expand() may grow levels_ (moving the Level objects): index afresh.
      // The child vectors themselves stay put: a moved outer vector keeps
      // its buffer, and with it the inner vectors and their elements.
      Level& lv = levels_[depth];
      if (lv.next == lv.frequent.size()) {  // this level is done: back to the parent's next child
        if (depth == 0) return;
        --depth;
        leave_child(depth);
        continue;
      }
      const size_t r = lv.next;
      prefix_.push_back(lv.frequent[r]);
      if (static_cast<int64_t>(prefix_.size()) >= p_.min_len) emit(lv.support[r], out);
      if (expand(levels_[depth].children[r], depth + 1, out)) {
        ++depth;
      } else {
        leave_child(depth);
      }
    }
  }

 private:
  // Per-item scratch, packed so that one visit touches one cache line.
  struct Slot {
    int32_t count = 0;      // sequences supporting prefix + item (pass 1)
    int32_t last_seq = -1;  // last sequence counted (a sequence counts once)
    int32_t rank = -1;      // index among the frequent extensions (pass 2)
    uint32_t stamp = 0;     // last state that produced this item (pass 2)
  };
  // One depth of the search, kept between calls to avoid reallocating.
  struct Level {
    std::vector<int32_t> touched;
    std::vector<int32_t> frequent;
    std::vector<int64_t> support;
    std::vector<std::vector<State>> children;
    size_t next = 0;  // the next frequent extension to descend into
  };

  void emit(int64_t support, MinerOutput& out) {
    out.items.insert(out.items.end(), prefix_.begin(), prefix_.end());
    out.lens.push_back(static_cast<int32_t>(prefix_.size()));
    out.support.push_back(support);
    if (++unflushed_ == 4096) flush_count();  // batched: no shared write per pattern
  }

  uint32_t next_stamp() {
    if (stamp_counter_ == UINT32_MAX) {
      for (Slot& s : slot_) s.stamp = 0;
      stamp_counter_ = 0;
    }
    return ++stamp_counter_;
  }

  // The child levels_[depth].next of the current prefix is finished: drop
  // its item from the prefix, free its projected database, move on.
  void leave_child(size_t depth) {
    Level& lv = levels_[depth];
    prefix_.pop_back();
    lv.children[lv.next].clear();
    ++lv.next;
  }

  // Extend the current prefix (whose occurrences are `states`, grouped by
  // sequence) by one item into levels_[depth]. Emits the extensions itself
  // when they are leaves (max_len reached) and returns false; otherwise
  // builds their projected databases and returns true, with the cursor at
  // the first (the caller emits and descends).
  bool expand(const std::vector<State>& states, size_t depth, MinerOutput& out) {
    if (levels_.size() <= depth) levels_.resize(depth + 1);
    Level& lv = levels_[depth];
    lv.next = 0;
    const int32_t* items = data_.items;
    // Pass 1: support of every one-item extension.
    lv.touched.clear();
    for (const State& st : states) {
      for (int64_t j = st.last + 1; j <= st.wend; ++j) {
        Slot& s = slot_[items[j]];
        if (s.last_seq != st.seq) {
          s.last_seq = st.seq;
          if (s.count++ == 0) lv.touched.push_back(items[j]);
        }
      }
    }
    // Only the (few) frequent extensions need sorting, not every touched item.
    lv.frequent.clear();
    lv.support.clear();
    for (int32_t x : lv.touched) {
      Slot& s = slot_[x];
      if (s.count >= p_.min_support) lv.frequent.push_back(x);
      else s.count = 0;
      s.last_seq = -1;
    }
    std::sort(lv.frequent.begin(), lv.frequent.end());
    for (int32_t x : lv.frequent) {
      lv.support.push_back(slot_[x].count);
      slot_[x].count = 0;
    }
    const size_t n_freq = lv.frequent.size();
    if (n_freq == 0) return false;
    const int64_t child_len = static_cast<int64_t>(prefix_.size()) + 1;
    if (child_len >= p_.max_len) {
      // Leaves: supports suffice, no projected database is needed.
      if (child_len >= p_.min_len) {
        for (size_t r = 0; r < n_freq; ++r) {
          prefix_.push_back(lv.frequent[r]);
          emit(lv.support[r], out);
          prefix_.pop_back();
        }
      }
      return false;
    }
    // Pass 2: the projected database of every frequent extension, keeping
    // the earliest match of each item per state.
    if (lv.children.size() < n_freq) lv.children.resize(n_freq);
    for (size_t r = 0; r < n_freq; ++r) {
      slot_[lv.frequent[r]].rank = static_cast<int32_t>(r);
      lv.children[r].clear();
    }
    for (const State& st : states) {
      const uint32_t tag = next_stamp();
      for (int64_t j = st.last + 1; j <= st.wend; ++j) {
        Slot& s = slot_[items[j]];
        if (s.rank >= 0 && s.stamp != tag) {
          s.stamp = tag;
          lv.children[s.rank].push_back(State{j, st.wend, st.seq});
        }
      }
    }
    for (size_t r = 0; r < n_freq; ++r) slot_[lv.frequent[r]].rank = -1;
    return true;
  }

  const CsrView& data_;
  const MiningParams& p_;
  std::vector<Slot> slot_;
  uint32_t stamp_counter_ = 0;
  std::vector<Level> levels_;
  std::vector<int32_t> prefix_;
  std::atomic<int64_t>& found_;
  int64_t unflushed_ = 0;
};

void check_mining_params(const MiningParams& p) {
  if (p.max_span < 2) throw std::invalid_argument("max_span must be >= 2, got " + std::to_string(p.max_span));
  if (p.min_support < 1)
    throw std::invalid_argument("min_support must be >= 1, got " + std::to_string(p.min_support));
  if (p.min_len < 1) throw std::invalid_argument("min_len must be >= 1, got " + std::to_string(p.min_len));
  if (p.max_len < p.min_len)
    throw std::invalid_argument("max_len = " + std::to_string(p.max_len) + " is smaller than min_len = " +
                                std::to_string(p.min_len));
}

// Counting sort of all positions by item: positions of item x are
// occ_pos[start[x] .. start[x+1]) (ascending), occ_seq the sequence of each.
// Parallel over contiguous blocks of sequences, each with its own counts, so
// the order within an item is the serial one.
void build_occurrences(const CsrView& data, int32_t max_item, int threads, std::vector<int64_t>& start,
                       std::vector<int64_t>& occ_pos, std::vector<int32_t>& occ_seq) {
  const int64_t n_total = data.n_items_total();
  const int64_t width = static_cast<int64_t>(max_item) + 1;
  // Blocks of at least ~1M interactions: below that a parallel pass costs more than it saves.
  const int blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n_total / (1 << 20) + 1)));
  std::vector<int64_t> seq_begin(static_cast<size_t>(blocks) + 1, data.n_seq);
  for (int b = 0; b < blocks; ++b) {
    const int64_t target = n_total / blocks * b;
    seq_begin[b] = std::lower_bound(data.offsets, data.offsets + data.n_seq, target) - data.offsets;
  }
  std::vector<int64_t> fill(static_cast<size_t>(blocks * width), 0);  // counts, then write cursors
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(blocks) schedule(static, 1)
#endif
  for (int b = 0; b < blocks; ++b) {
    int64_t* cnt = fill.data() + b * width;
    for (int64_t k = data.offsets[seq_begin[b]]; k < data.offsets[seq_begin[b + 1]]; ++k) cnt[data.items[k]] += 1;
  }
  start.assign(static_cast<size_t>(width) + 1, 0);
  int64_t running = 0;
  for (int64_t x = 0; x < width; ++x) {
    start[x] = running;
    for (int b = 0; b < blocks; ++b) {
      const int64_t c = fill[b * width + x];
      fill[b * width + x] = running;
      running += c;
    }
  }
  start[width] = running;
  occ_pos.resize(static_cast<size_t>(n_total));
  occ_seq.resize(static_cast<size_t>(n_total));
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(blocks) schedule(static, 1)
#endif
  for (int b = 0; b < blocks; ++b) {
    int64_t* cursor = fill.data() + b * width;
    for (int64_t u = seq_begin[b]; u < seq_begin[b + 1]; ++u) {
      for (int64_t k = data.begin(u); k < data.end(u); ++k) {
        const int64_t at = cursor[data.items[k]]++;
        occ_pos[at] = k;
        occ_seq[at] = static_cast<int32_t>(u);
      }
    }
  }
}

}  // namespace

PatternSet mine_patterns(const CsrView& data, const MiningParams& params, int64_t* progress) {
  check_mining_params(params);
  MiningParams p = params;
  // No occurrence fits more than max_span items.
  p.max_len = std::min(p.max_len, p.max_span);
  // Items are checked even when no pattern can come out: bad input is an
  // error whatever the parameters (found by tests/fuzz_core.py).
  const int64_t n_total = data.n_items_total();
  const int32_t max_item = checked_max_item(data.items, n_total, "the sequences");
  check_id_space(max_item, n_total, "the item ids");
  PatternSet empty;
  if (p.min_len > p.max_len || n_total == 0) return empty;
  if (data.n_seq > INT32_MAX)
    throw std::invalid_argument("at most 2^31 - 1 sequences are supported, got " + std::to_string(data.n_seq));
  // A window never reaches past the data (and the sum below cannot overflow).
  const int64_t reach = std::min(p.max_span - 1, n_total);

  const int threads = resolve_threads(p.threads);

  // Occurrence lists of every item (counting sort by item, positions ascending),
  // and the support of each item (distinct sequences in its list).
  std::vector<int64_t> start;
  std::vector<int64_t> occ_pos;
  std::vector<int32_t> occ_seq;
  build_occurrences(data, max_item, threads, start, occ_pos, occ_seq);
  std::vector<int64_t> item_support(static_cast<size_t>(max_item) + 1, 0);
  // Loops over item ids count in int64: `x <= max_item` with an int32 x
  // never becomes false when max_item is INT32_MAX.
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static)
#endif
  for (int64_t x = 1; x <= max_item; ++x) {
    int64_t s = 0;
    int32_t prev = -1;
    for (int64_t k = start[x]; k < start[x + 1]; ++k) {
      if (occ_seq[k] != prev) {
        ++s;
        prev = occ_seq[k];
      }
    }
    item_support[x] = s;
  }
  std::vector<int32_t> order;  // frequent items, most occurrences first (load balance)
  int64_t skipped = 0;         // occurrences of infrequent items: no pattern starts there
  for (int64_t x = 1; x <= max_item; ++x) {
    if (item_support[x] >= p.min_support)
      order.push_back(static_cast<int32_t>(x));
    else
      skipped += start[x + 1] - start[x];
  }
  add_progress(progress, skipped);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return start[a + 1] - start[a] > start[b + 1] - start[b];
  });

  // Each thread appends to its own buffer (no false sharing) and records
  // where each first item's subtree landed; the subtrees are put back in item
  // order afterwards, so the result does not depend on the schedule.
  struct Segment {
    int thread = -1;
    size_t item_begin = 0, item_end = 0, pat_begin = 0, pat_end = 0;
  };
  const int64_t n_order = static_cast<int64_t>(order.size());
  std::vector<Segment> segment(order.size());  // indexed like `order`
  struct alignas(64) Buffer {  // one cache line apart: the vectors' ends move on every emit
    MinerOutput out;
  };
  std::vector<Buffer> buffer(static_cast<size_t>(threads));
  std::atomic<int64_t> found{0};
  ErrorSlot error;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    const int tid = thread_index();
    try {
      Miner miner(data, p, max_item, found);
      MinerOutput& out = buffer[tid].out;
      std::vector<State> states;
#if FASTREGEN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t r = 0; r < n_order; ++r) {
        if (error.failed()) continue;
        try {
          const int32_t x = order[r];
          states.clear();
          for (int64_t k = start[x]; k < start[x + 1]; ++k) {
            const int32_t u = occ_seq[k];
            const int64_t wend = std::min(occ_pos[k] + reach, data.end(u) - 1);
            states.push_back(State{occ_pos[k], wend, u});
          }
          Segment seg;
          seg.thread = tid;
          seg.item_begin = out.items.size();
          seg.pat_begin = out.lens.size();
          miner.mine_item(x, states, item_support[x], out);
          seg.item_end = out.items.size();
          seg.pat_end = out.lens.size();
          segment[r] = seg;
          add_progress(progress, start[x + 1] - start[x]);
        } catch (...) {
          error.capture();
        }
      }
      if (!error.failed()) miner.flush_count();
    } catch (...) {
      error.capture();
    }
  }
  error.rethrow();
  {
    std::vector<int64_t>().swap(occ_pos);
    std::vector<int32_t>().swap(occ_seq);
  }

  // Subtrees in item order are lexicographic overall (prefixes first); a
  // stable scatter by length then gives "by length, then lexicographic".
  // It reads the thread buffers directly, so the output is built in one copy.
  std::vector<const Segment*> in_order;
  in_order.reserve(order.size());
  {
    std::vector<int64_t> rank_of_item(static_cast<size_t>(max_item) + 1, -1);
    for (int64_t r = 0; r < n_order; ++r) rank_of_item[order[r]] = r;
    for (int64_t x = 1; x <= max_item; ++x)
      if (rank_of_item[x] >= 0) in_order.push_back(&segment[rank_of_item[x]]);
  }
  int32_t longest = 0;
  for (const auto& b : buffer)
    for (int32_t l : b.out.lens) longest = std::max(longest, l);
  std::vector<int64_t> next_pat(static_cast<size_t>(longest) + 1, 0);   // next slot of each length
  std::vector<int64_t> next_item(static_cast<size_t>(longest) + 1, 0);  // its first item
  {
    std::vector<int64_t> count(static_cast<size_t>(longest) + 1, 0);
    for (const auto& b : buffer)
      for (int32_t l : b.out.lens) count[l] += 1;
    int64_t pats = 0, items = 0;
    for (int32_t l = 0; l <= longest; ++l) {
      next_pat[l] = pats;
      next_item[l] = items;
      pats += count[l];
      items += count[l] * l;
    }
  }
  PatternSet result;
  size_t total_pats = 0, total_items = 0;
  for (const auto& b : buffer) {
    total_pats += b.out.lens.size();
    total_items += b.out.items.size();
  }
  result.offsets.assign(total_pats + 1, 0);
  result.items.resize(total_items);
  result.support.resize(total_pats);
  for (const Segment* seg : in_order) {
    const MinerOutput& o = buffer[seg->thread].out;
    size_t src = seg->item_begin;
    for (size_t k = seg->pat_begin; k < seg->pat_end; ++k) {
      const int32_t l = o.lens[k];
      const int64_t dst = next_pat[l]++;
      result.support[dst] = o.support[k];
      std::copy(o.items.begin() + src, o.items.begin() + src + l, result.items.begin() + next_item[l]);
      next_item[l] += l;
      result.offsets[dst + 1] = next_item[l];
      src += l;
    }
  }
  return result;
}

// ------------------------------------------------------------ window counts

PatternSet window_counts(const CsrView& data, int64_t window, int64_t min_count, int threads) {
  if (window < 1) throw std::invalid_argument("window must be >= 1, got " + std::to_string(window));
  if (min_count < 1) throw std::invalid_argument("min_count must be >= 1, got " + std::to_string(min_count));
  const int64_t n_total = data.n_items_total();
  const int32_t max_item = checked_max_item(data.items, n_total, "the sequences");
  check_id_space(max_item, n_total, "the item ids");
  const int32_t* items = data.items;
  // Bucket the window starts by first item (counting sort), then sort each
  // bucket by the rest of the window: small independent sorts, in parallel,
  // and the buckets in item order are already lexicographic overall.
  std::vector<int64_t> start(static_cast<size_t>(max_item) + 2, 0);
  for (int64_t u = 0; u < data.n_seq; ++u)
    for (int64_t k = data.begin(u); data.end(u) - k >= window; ++k) start[items[k] + 1] += 1;
  for (size_t x = 1; x < start.size(); ++x) start[x] += start[x - 1];
  std::vector<int64_t> pos(static_cast<size_t>(start.back()));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t u = 0; u < data.n_seq; ++u)
      for (int64_t k = data.begin(u); data.end(u) - k >= window; ++k) pos[fill[items[k]]++] = k;
  }
  auto less = [&](int64_t a, int64_t b) {
    for (int64_t t = 1; t < window; ++t)
      if (items[a + t] != items[b + t]) return items[a + t] < items[b + t];
    return false;
  };
  auto equal = [&](int64_t a, int64_t b) {
    for (int64_t t = 1; t < window; ++t)
      if (items[a + t] != items[b + t]) return false;
    return true;
  };
  // Pass 1: sort each bucket in place, count its kept windows.
  std::vector<int64_t> kept(static_cast<size_t>(max_item) + 2, 0);
  const int n_threads = resolve_threads(threads);
  (void)n_threads;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 64)
#endif
  for (int64_t x = 1; x <= max_item; ++x) {
    const auto b = pos.begin() + start[x], e = pos.begin() + start[x + 1];
    if (e - b < min_count) continue;
    if (window > 1) std::sort(b, e, less);
    int64_t n = 0;
    for (auto i = b; i != e;) {
      auto j = i + 1;
      while (j != e && equal(*i, *j)) ++j;
      if (j - i >= min_count) ++n;
      i = j;
    }
    kept[x + 1] = n;
  }
  for (size_t x = 1; x < kept.size(); ++x) kept[x] += kept[x - 1];
  // Pass 2: write each bucket's kept windows at its place in the output.
  const int64_t n_out = kept.back();
  PatternSet out;
  out.offsets.resize(static_cast<size_t>(n_out) + 1);
  for (int64_t k = 0; k <= n_out; ++k) out.offsets[k] = k * window;
  out.items.resize(static_cast<size_t>(n_out * window));
  out.support.resize(static_cast<size_t>(n_out));
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 64)
#endif
  for (int64_t x = 1; x <= max_item; ++x) {
    int64_t slot = kept[x];
    if (kept[x + 1] == slot) continue;
    const auto b = pos.begin() + start[x], e = pos.begin() + start[x + 1];
    for (auto i = b; i != e;) {
      auto j = i + 1;
      while (j != e && equal(*i, *j)) ++j;
      if (j - i >= min_count) {
        std::copy(items + *i, items + *i + window, out.items.begin() + slot * window);
        out.support[slot++] = j - i;
      }
      i = j;
    }
  }
  return out;
}

// ------------------------------------------------------------ pretrain pairs

namespace {

// A trie over the patterns, prefixes included; children sorted by item.
struct Trie {
  std::vector<int32_t> root_child;        // item -> node (-1: none)
  std::vector<int64_t> child_begin{0};    // CSR of the children of each node
  std::vector<int32_t> child_item;
  std::vector<int32_t> child_node;
  std::vector<int64_t> pattern_of;        // node -> pattern index (-1: a bare prefix)

  int32_t child(int32_t node, int32_t item) const {
    auto b = child_item.begin() + child_begin[node];
    auto e = child_item.begin() + child_begin[node + 1];
    auto it = std::lower_bound(b, e, item);
    if (it == e || *it != item) return -1;
    return child_node[static_cast<size_t>(it - child_item.begin())];
  }
};

Trie build_trie(const CsrView& patterns, int32_t max_item) {
  // Nodes are numbered on insertion; edges go through a hash map first.
  std::unordered_map<uint64_t, int32_t> edges;  // (parent + 1) << 32 | item
  std::vector<int64_t> pattern_of;
  std::vector<int32_t> parent;
  std::vector<int32_t> item_of;
  edges.reserve(static_cast<size_t>(patterns.n_items_total()) * 2 + 16);
  for (int64_t k = 0; k < patterns.n_seq; ++k) {
    if (patterns.length(k) == 0)
      throw std::invalid_argument("pattern " + std::to_string(k) + " is empty");
    int32_t node = -1;
    for (int64_t t = patterns.begin(k); t < patterns.end(k); ++t) {
      const int32_t x = patterns.items[t];
      const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(node + 1)) << 32) | static_cast<uint32_t>(x);
      auto it = edges.find(key);
      if (it == edges.end()) {
        const int32_t fresh = static_cast<int32_t>(pattern_of.size());
        edges.emplace(key, fresh);
        pattern_of.push_back(-1);
        parent.push_back(node);
        item_of.push_back(x);
        node = fresh;
      } else {
        node = it->second;
      }
    }
    if (pattern_of[node] >= 0)
      throw std::invalid_argument("patterns " + std::to_string(pattern_of[node]) + " and " + std::to_string(k) +
                                  " are the same pattern (duplicates are not allowed)");
    pattern_of[node] = k;
  }
  Trie t;
  const size_t n_nodes = pattern_of.size();
  t.root_child.assign(static_cast<size_t>(max_item) + 1, -1);
  std::vector<int64_t> deg(n_nodes + 1, 0);
  for (size_t v = 0; v < n_nodes; ++v) {
    if (parent[v] < 0)
      t.root_child[item_of[v]] = static_cast<int32_t>(v);
    else
      deg[parent[v] + 1] += 1;
  }
  t.child_begin.assign(n_nodes + 1, 0);
  for (size_t v = 0; v < n_nodes; ++v) t.child_begin[v + 1] = t.child_begin[v] + deg[v + 1];
  t.child_item.resize(static_cast<size_t>(t.child_begin[n_nodes]));
  t.child_node.resize(t.child_item.size());
  std::vector<int64_t> fill(t.child_begin.begin(), t.child_begin.end() - 1);
  for (size_t v = 0; v < n_nodes; ++v) {
    if (parent[v] < 0) continue;
    const int64_t at = fill[parent[v]]++;
    t.child_item[at] = item_of[v];
    t.child_node[at] = static_cast<int32_t>(v);
  }
  for (size_t v = 0; v < n_nodes; ++v) {
    // Sort each node's children by item (pairs sorted together).
    const int64_t b = t.child_begin[v], e = t.child_begin[v + 1];
    std::vector<std::pair<int32_t, int32_t>> kids;
    kids.reserve(static_cast<size_t>(e - b));
    for (int64_t k = b; k < e; ++k) kids.emplace_back(t.child_item[k], t.child_node[k]);
    std::sort(kids.begin(), kids.end());
    for (int64_t k = b; k < e; ++k) {
      t.child_item[k] = kids[k - b].first;
      t.child_node[k] = kids[k - b].second;
    }
  }
  t.pattern_of = std::move(pattern_of);
  return t;
}

// Finds the patterns of the trie that one sequence contains.
//
// For a fixed start position, matching every next pattern item as early as
// possible is optimal, so a trie node (a pattern prefix) reached from a start
// has one earliest match position: the search from a start visits each trie
// node at most once, and the work per sequence is polynomial (at most
// nodes x starts x window), whatever the repetitions in the sequence. The
// "first occurrence of an item after position p" test is stateless
// (prev_[j] <= p), so no marks have to survive a descent, and the descent
// uses an explicit stack: a pattern may be as long as the sequence.
class PairFinder {
 public:
  PairFinder(const Trie& trie, int32_t max_item)
      : trie_(trie),
        node_stamp_(trie.pattern_of.size(), -1),
        seen_(static_cast<size_t>(max_item) + 1) {}

  // Ascending indices of the patterns that sequence u (items s[0..len)) contains.
  const std::vector<int64_t>& contained(int64_t u, const int32_t* s, int64_t len, int64_t span) {
    found_.clear();
    seq_ = u;
    s_ = s;
    len_ = len;
    index_built_ = false;
    // prev_[j]: the previous position of item s[j] in this sequence (-1: none).
    prev_.resize(static_cast<size_t>(len));
    for (int64_t j = 0; j < len; ++j) {
      Seen& e = seen_[s[j]];
      prev_[j] = e.seq == u ? e.pos : -1;
      e.seq = u;
      e.pos = j;
    }
    for (int64_t i = 0; i < len; ++i) {
      const int32_t node = trie_.root_child[s[i]];
      if (node < 0) continue;
      // Without a window the earliest start of an item dominates every later one.
      if (span == 0 && prev_[i] >= 0) continue;
      const int64_t wend = span == 0 ? len - 1 : i + std::min(span - 1, len - 1 - i);
      search(node, i, wend);
    }
    std::sort(found_.begin(), found_.end());
    return found_;
  }

 private:
  struct Seen {  // where an item was last seen (one cache line holds both)
    int64_t seq = -1;
    int64_t pos = 0;
  };
  struct Frame {
    int32_t node;  // a trie node (pattern prefix) ...
    int64_t last;  // ... matched earliest at this position
  };

  // Every trie node reachable from `root` matched at `first`, within wend.
  void search(int32_t root, int64_t first, int64_t wend) {
    stack_.clear();
    stack_.push_back(Frame{root, first});
    while (!stack_.empty()) {
      const Frame f = stack_.back();
      stack_.pop_back();
      if (node_stamp_[f.node] != seq_) {
        node_stamp_[f.node] = seq_;
        if (trie_.pattern_of[f.node] >= 0) found_.push_back(trie_.pattern_of[f.node]);
      }
      const int64_t cb = trie_.child_begin[f.node], ce = trie_.child_begin[f.node + 1];
      const int64_t window = wend - f.last;
      if (cb == ce || window <= 0) continue;
      // Two ways to find each child's earliest match after f.last: scan the
      // window, or look every child item up in the sequence's occurrence
      // index (a binary search each). Take the cheaper one: a long window
      // with few children (long patterns, span=None) would make the scan
      // quadratic in the sequence length.
      if ((ce - cb) * kLookupCost < window) {
        build_index();
        for (int64_t k = cb; k < ce; ++k) {
          const int64_t j = next_occurrence(trie_.child_item[k], f.last);
          if (j >= 0 && j <= wend) stack_.push_back(Frame{trie_.child_node[k], j});
        }
      } else {
        for (int64_t j = f.last + 1; j <= wend; ++j) {
          if (prev_[j] > f.last) continue;  // not the earliest s[j] after f.last
          const int32_t c = trie_.child(f.node, s_[j]);
          if (c >= 0) stack_.push_back(Frame{c, j});
        }
      }
    }
  }

  // (item, position) of every position of the current sequence, sorted: the
  // occurrence index next_occurrence searches. Built once per sequence, and
  // only for sequences that need it.
  void build_index() {
    if (index_built_) return;
    index_built_ = true;
    index_.resize(static_cast<size_t>(len_));
    for (int64_t j = 0; j < len_; ++j) index_[j] = {s_[j], j};
    std::sort(index_.begin(), index_.end());
  }

  // First position > after holding item x, or -1.
  int64_t next_occurrence(int32_t x, int64_t after) const {
    auto it = std::lower_bound(index_.begin(), index_.end(), std::pair<int32_t, int64_t>{x, after + 1});
    return it != index_.end() && it->first == x ? it->second : -1;
  }

  // A lookup costs a binary search plus a cache miss or two; a scanned
  // position a table read and a (usually failing) child search.
  static constexpr int64_t kLookupCost = 16;

  const Trie& trie_;
  std::vector<int64_t> node_stamp_;
  std::vector<Seen> seen_;
  std::vector<int64_t> prev_;
  std::vector<Frame> stack_;
  std::vector<std::pair<int32_t, int64_t>> index_;
  bool index_built_ = false;
  std::vector<int64_t> found_;
  int64_t seq_ = -1;
  int64_t len_ = 0;
  const int32_t* s_ = nullptr;
};

}  // namespace

PairResult pretrain_pairs(const CsrView& data, const CsrView& patterns, const PairParams& params,
                          int64_t* progress) {
  if (params.span != 0 && params.span < 2)
    throw std::invalid_argument("span must be 0 (no window) or >= 2, got " + std::to_string(params.span));
  if (params.max_per_sequence < 1)
    throw std::invalid_argument("max_per_sequence must be >= 1, got " + std::to_string(params.max_per_sequence));
  const int32_t max_data = checked_max_item(data.items, data.n_items_total(), "the sequences");
  const int32_t max_pat = checked_max_item(patterns.items, patterns.n_items_total(), "the patterns");
  const int32_t max_item = std::max(max_data, max_pat);
  check_id_space(max_item, data.n_items_total() + patterns.n_items_total(), "the item ids");
  const Trie trie = build_trie(patterns, max_item);

  // Sequences are processed in fixed chunks; each chunk's pairs are kept
  // apart and concatenated in order, so the output is thread-independent.
  const int64_t chunk = 512;
  const int64_t n_chunks = (data.n_seq + chunk - 1) / chunk;
  std::vector<std::vector<int64_t>> chunk_source(static_cast<size_t>(n_chunks));
  std::vector<std::vector<int64_t>> chunk_pattern(static_cast<size_t>(n_chunks));
  ErrorSlot error;
  const int threads = resolve_threads(params.threads);
  (void)threads;
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    try {
      PairFinder finder(trie, max_item);
      std::vector<int64_t> cand;
#if FASTREGEN_HAVE_OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t c = 0; c < n_chunks; ++c) {
        if (error.failed()) continue;
        try {
          const int64_t u_end = std::min(data.n_seq, (c + 1) * chunk);
          auto& src = chunk_source[c];
          auto& pat = chunk_pattern[c];
          for (int64_t u = c * chunk; u < u_end; ++u) {
            const auto& found = finder.contained(u, data.seq(u), data.length(u), params.span);
            const int64_t n = static_cast<int64_t>(found.size());
            if (n == 0) continue;
            const int64_t k = std::min(n, params.max_per_sequence);
            cand.assign(found.begin(), found.end());
            if (k < n) {
              SplitMix64 rng(pair_rng_state(params.seed, static_cast<uint64_t>(u)));
              for (int64_t i = 0; i < k; ++i) {
                const int64_t j = i + static_cast<int64_t>(rng.bounded(static_cast<uint64_t>(n - i)));
                std::swap(cand[i], cand[j]);
              }
              std::sort(cand.begin(), cand.begin() + k);
            }
            for (int64_t i = 0; i < k; ++i) {
              src.push_back(u);
              pat.push_back(cand[i]);
            }
          }
          add_progress(progress, u_end - c * chunk);
        } catch (...) {
          error.capture();
        }
      }
    } catch (...) {
      error.capture();
    }
  }
  error.rethrow();
  PairResult out;
  size_t total = 0;
  for (const auto& v : chunk_source) total += v.size();
  out.source.reserve(total);
  out.pattern.reserve(total);
  for (int64_t c = 0; c < n_chunks; ++c) {
    out.source.insert(out.source.end(), chunk_source[c].begin(), chunk_source[c].end());
    out.pattern.insert(out.pattern.end(), chunk_pattern[c].begin(), chunk_pattern[c].end());
  }
  return out;
}

}  // namespace fastregen
