// The only file that knows about Python. It parses and validates numpy
// buffers, releases the GIL around long loops, and converts C++ results into
// numpy arrays. The kernels themselves live in plain C++ headers beside it.
//
// Sections are owned by topic; keep each topic's bindings inside its block.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "amx_ranks.hpp"
#include "attention.hpp"
#include "dropout.hpp"
#include "csr.hpp"
#include "entropy.hpp"
#include "mining.hpp"
#include "ranks.hpp"
#include "textio.hpp"

namespace py = pybind11;
using namespace fastregen;

namespace {

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

// Move a std::vector into a numpy array without copying its buffer.
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

// What a kernel reads while another Python thread may run: with the GIL
// released (or while a Python callback runs), other code may write into an
// input array or resize it, and a kernel that validated the values first
// (ids index tables, offsets bound every loop) would then read out of
// bounds. A guard lives for the whole call and
//   * freezes value inputs: the array itself when nothing but C code can
//     change its values (a read-only array whose owners are read-only
//     arrays, or an immutable / buffer-less object such as bytes or a
//     capsule; SequenceDataset's arrays are like that), else a private copy;
//   * pins every array the kernel touches: numpy refuses
//     resize(refcheck=False) on an array with weak references, so it holds
//     one on the array and on each array it views.
// It must be destroyed with the GIL held (it owns Python references): keep
// it outside the gil_scoped_release block.
class InputGuard {
 public:
  template <typename T>
  carray<T> frozen(const carray<T>& a) {
    carray<T> use = a;
    if (!immutable(a)) {
      use = carray<T>(static_cast<py::ssize_t>(a.size()));
      if (a.size() > 0) std::memcpy(use.mutable_data(), a.data(), static_cast<std::size_t>(a.size()) * sizeof(T));
    }
    pin(use);
    keep_.push_back(use);
    return use;
  }

  void pin(py::handle obj) {
    py::object cur = py::reinterpret_borrow<py::object>(obj);
    for (int depth = 0; depth < 64 && py::isinstance<py::array>(cur); ++depth) {
      keep_.push_back(py::weakref(cur));
      cur = cur.attr("base");
    }
  }

 private:
  static bool immutable(const py::array& a) {
    // Only the argument converter holds a converted copy: nobody else can write it.
    if (Py_REFCNT(a.ptr()) == 1 && a.attr("base").is_none()) return true;
    py::object cur = py::reinterpret_borrow<py::object>(a);
    for (int depth = 0; depth < 64; ++depth) {
      if (!py::isinstance<py::array>(cur)) {
        // The owner of the memory: writeable through Python only if it
        // exports a writable buffer (a bytearray, a writable mmap, ...).
        if (!PyObject_CheckBuffer(cur.ptr())) return true;
        Py_buffer view;
        if (PyObject_GetBuffer(cur.ptr(), &view, PyBUF_WRITABLE) == 0) {
          PyBuffer_Release(&view);
          return false;
        }
        PyErr_Clear();
        return true;
      }
      if (py::reinterpret_borrow<py::array>(cur).writeable()) return false;
      py::object base = cur.attr("base");
      if (base.is_none()) return true;  // a read-only array that owns its memory
      cur = base;
    }
    return false;
  }

  std::vector<py::object> keep_;
};

// The bound Markov model. fit() counts into a new model without the GIL and
// swaps it in with the GIL held; every reader takes its own reference (with
// the GIL) before releasing it, so a fit in one Python thread never frees
// the model a prob() in another is reading.
struct MarkovHandle {
  std::shared_ptr<const MarkovModel> model;
};

// Validate a CSR pair coming from Python and build a view over (frozen
// versions of) it. Python-side validation already ran; this is the last line
// of defence so that nothing out of range ever reaches a kernel.
CsrView make_view(InputGuard& guard, const carray<int64_t>& offsets_in, const carray<int32_t>& items_in) {
  if (offsets_in.ndim() != 1 || items_in.ndim() != 1)
    throw py::value_error("offsets and items must be 1-D arrays");
  const carray<int64_t> offsets = guard.frozen(offsets_in);
  const carray<int32_t> items = guard.frozen(items_in);
  if (offsets.size() < 1) throw py::value_error("offsets must have at least one entry (n_seq + 1)");
  const int64_t* o = offsets.data();
  const int64_t n = static_cast<int64_t>(offsets.size()) - 1;
  if (o[0] != 0) throw py::value_error("offsets[0] must be 0, got " + std::to_string(o[0]));
  for (int64_t u = 0; u < n; ++u)
    if (o[u + 1] < o[u])
      throw py::value_error("offsets must be non-decreasing; offsets[" + std::to_string(u + 1) +
                            "] = " + std::to_string(o[u + 1]) + " < " + std::to_string(o[u]));
  if (o[n] != static_cast<int64_t>(items.size()))
    throw py::value_error("offsets[-1] = " + std::to_string(o[n]) + " does not match len(items) = " +
                          std::to_string(items.size()));
  CsrView v;
  v.offsets = o;
  v.items = items.data();
  v.n_seq = n;
  return v;
}

py::tuple csr_to_numpy(CsrResult&& r) {
  return py::make_tuple(to_numpy(std::move(r.offsets)), to_numpy(std::move(r.items)));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastregen's compiled core (private; use the fastregen.* Python API).";
#ifdef FASTREGEN_VERSION
  m.attr("__version__") = FASTREGEN_VERSION;
#else
  m.attr("__version__") = "dev";
#endif
  m.def("have_openmp", &have_openmp, "Whether the core was built with OpenMP.");
  m.def(
      "max_threads", []() { return resolve_threads(0); },
      "Threads an OpenMP loop uses by default (1 without OpenMP).");

  // ===== section: textio (data layer) =====
  m.def(
      "tokenize_int_lines",
      [](py::buffer data, int n_threads) {
        // The buffer export blocks resizing a bytearray or closing an mmap;
        // the guard blocks resizing a numpy array. Values that change
        // meanwhile change the result, never where the parser reads.
        InputGuard guard;
        guard.pin(data);
        py::buffer_info info = data.request();
        if (info.ndim != 1 || info.itemsize != 1 || (info.size > 1 && info.strides[0] != 1))
          throw py::type_error("tokenize_int_lines expects a contiguous bytes-like object");
        const char* ptr = static_cast<const char*>(info.ptr);
        const std::size_t n = static_cast<std::size_t>(info.size);
        TokenizedLines r;
        {
          py::gil_scoped_release nogil;
          r = tokenize_int_lines(ptr, n, n_threads);
        }
        py::object err = py::none();
        if (!r.error.ok)
          err = py::make_tuple(r.error.line, py::bytes(r.error.token), r.error.reason);
        return py::make_tuple(to_numpy(std::move(r.counts)), to_numpy(std::move(r.tokens)), err);
      },
      py::arg("data"), py::arg("n_threads") = 0,
      "Tokenize whitespace-separated int64 lines.\n\n"
      "Returns (counts, tokens, error): counts (int64, one per line, blank lines 0), the\n"
      "tokens (int64, line after line) and None, or on the first bad token\n"
      "(line_index_in_chunk, token_bytes, reason) with counts/tokens covering the lines\n"
      "before it. n_threads <= 0: OpenMP threads for inputs >= 4 MiB, else one; the result\n"
      "never depends on it. The GIL is released; do not mutate `data` meanwhile.");
  m.def(
      "parse_user_lines",
      [](py::buffer data, int n_threads, py::object out) -> py::tuple {
        InputGuard guard;  // as in tokenize_int_lines; `out` is pinned too
        guard.pin(data);
        py::buffer_info info = data.request();
        if (info.ndim != 1 || info.itemsize != 1 || (info.size > 1 && info.strides[0] != 1))
          throw py::type_error("parse_user_lines expects a contiguous bytes-like object");
        const char* ptr = static_cast<const char*>(info.ptr);
        const std::size_t n = static_cast<std::size_t>(info.size);
        int32_t* out_ptr = nullptr;
        if (!out.is_none()) {
          // Exactly a writeable C-contiguous int32 array (no converted copy:
          // the caller must see what is written).
          if (!py::isinstance<py::array_t<int32_t>>(out))
            throw py::type_error("out must be None or an int32 numpy array");
          auto arr = py::reinterpret_borrow<py::array>(out);
          if (arr.ndim() != 1 || !(arr.flags() & py::array::c_style) || !arr.writeable())
            throw py::value_error("out must be a writeable 1-D C-contiguous int32 array");
          if (static_cast<std::size_t>(arr.size()) < n / 2 + 1)
            throw py::value_error("out has room for " + std::to_string(arr.size()) + " items; " +
                                  std::to_string(n) + " bytes may hold " + std::to_string(n / 2 + 1));
          guard.pin(out);
          out_ptr = static_cast<int32_t*>(arr.mutable_data());
        }
        UserLines r;
        {
          py::gil_scoped_release nogil;
          r = parse_user_lines(ptr, n, n_threads, out_ptr);
        }
        if (!r.error.ok)
          return py::make_tuple(py::none(), py::none(), py::none(), py::none(), r.n_lines,
                                py::make_tuple(r.error.line, py::bytes(r.error.token), r.error.reason));
        py::object items = out_ptr ? py::object(py::int_(r.n_items)) : py::object(to_numpy(std::move(r.items)));
        return py::make_tuple(to_numpy(std::move(r.users)), to_numpy(std::move(r.lines)),
                              to_numpy(std::move(r.lengths)), items, r.n_lines, py::none());
      },
      py::arg("data"), py::arg("n_threads") = 0, py::arg("out") = py::none(),
      "Parse and validate `user item item ...` lines (blank lines skipped).\n\n"
      "Returns (users int64, lines int64 (0-based, per user), lengths int64, items int32,\n"
      "n_lines, None), or (None, None, None, None, n_lines, (line, token_bytes, reason)) for\n"
      "the first bad line; reasons: 'not an integer', 'out of int64 range', 'no items',\n"
      "'negative user id', 'negative item id', 'item id 0', 'item id beyond int32'.\n"
      "With `out` (a writeable int32 array with room for len(data) // 2 + 1 items) the\n"
      "items are written into out[:k] and k is returned in place of the items array.\n"
      "Threads and GIL as in tokenize_int_lines.");
  m.def(
      "format_int_rows",
      [](const carray<int64_t>& offsets_in, const carray<int64_t>& values, int64_t row_begin,
         int64_t row_end, const std::string& sep) {
        if (offsets_in.ndim() != 1 || values.ndim() != 1)
          throw py::value_error("offsets and values must be 1-D arrays");
        // The offsets bound every write: frozen. Values only change digits
        // (any int64 fits the 21 bytes reserved for it): pinned, not copied.
        InputGuard guard;
        const carray<int64_t> offsets = guard.frozen(offsets_in);
        guard.pin(values);
        if (sep.size() != 1) throw py::value_error("sep must be one character, got '" + sep + "'");
        const int64_t n_rows = static_cast<int64_t>(offsets.size()) - 1;
        if (n_rows < 0) throw py::value_error("offsets must have n_rows + 1 entries, got 0");
        if (row_begin < 0 || row_end > n_rows || row_begin > row_end)
          throw py::value_error("rows [" + std::to_string(row_begin) + ", " + std::to_string(row_end) +
                                ") out of range for " + std::to_string(n_rows) + " rows");
        const int64_t* o = offsets.data();
        const int64_t n_values = static_cast<int64_t>(values.size());
        for (int64_t r = row_begin; r < row_end; ++r)
          if (o[r] < 0 || o[r + 1] < o[r] || o[r + 1] > n_values)
            throw py::value_error("offsets[" + std::to_string(r) + ":" + std::to_string(r + 2) +
                                  "] = (" + std::to_string(o[r]) + ", " + std::to_string(o[r + 1]) +
                                  ") is not a valid range of " + std::to_string(n_values) + " values");
        std::string out;
        {
          py::gil_scoped_release nogil;
          out = format_int_rows(o, values.data(), row_begin, row_end, sep[0]);
        }
        return py::bytes(out);
      },
      py::arg("offsets"), py::arg("values"), py::arg("row_begin"), py::arg("row_end"),
      py::arg("sep") = " ",
      "Format rows [row_begin, row_end) of a CSR int64 array as text lines.\n\n"
      "Row r is values[offsets[r]:offsets[r+1]] joined by `sep` (one character) and\n"
      "ended by a newline. Returns bytes.");
  {
    // values: exactly int32 or int64 (the CSR items / timestamps), never a
    // converted copy, so nothing is ever truncated on the way in.
    auto gather = [](const auto& values, const carray<int64_t>& starts_in, const carray<int64_t>& ends_in,
                     int threads) -> py::tuple {
      using T = typename std::decay_t<decltype(values)>::value_type;
      if (values.ndim() != 1 || starts_in.ndim() != 1 || ends_in.ndim() != 1)
        throw py::value_error("values, starts and ends must be 1-D arrays");
      // The ranges are checked in one pass and copied in another: frozen.
      // The values are only copied (any value is fine): pinned, not copied,
      // since they are usually a whole dataset.
      InputGuard guard;
      const carray<int64_t> starts = guard.frozen(starts_in);
      const carray<int64_t> ends = guard.frozen(ends_in);
      guard.pin(values);
      if (starts.size() != ends.size())
        throw py::value_error("starts has " + std::to_string(starts.size()) + " entries, ends has " +
                              std::to_string(ends.size()));
      const int64_t n = static_cast<int64_t>(starts.size());
      const int64_t len = static_cast<int64_t>(values.size());
      const int64_t* s = starts.data();
      const int64_t* e = ends.data();
      std::vector<int64_t> offsets(static_cast<size_t>(n) + 1, 0);
      int64_t bad = -1;
      {
        py::gil_scoped_release nogil;
        for (int64_t k = 0; k < n && bad < 0; ++k) {
          // Each range lies inside `values`, so the running sum stays below
          // n * len; guard it anyway rather than wrap.
          if (s[k] < 0 || e[k] < s[k] || e[k] > len || offsets[k] > INT64_MAX - (e[k] - s[k])) bad = k;
          else offsets[k + 1] = offsets[k] + (e[k] - s[k]);
        }
      }
      if (bad >= 0)
        throw py::value_error("range " + std::to_string(bad) + " = [" + std::to_string(s[bad]) + ", " +
                              std::to_string(e[bad]) + ") is not inside [0, " + std::to_string(len) + ")");
      // Uninitialised numpy buffer: a std::vector would zero it first, a
      // second full pass over the largest array.
      py::array_t<T> out(static_cast<py::ssize_t>(offsets[n]));
      T* dst = out.mutable_data();
      {
        py::gil_scoped_release nogil;
        gather_ranges(values.data(), s, e, n, offsets.data(), dst, threads);
      }
      return py::make_tuple(to_numpy(std::move(offsets)), out);
    };
    m.def(
        "gather_ranges",
        [gather](const py::array& values, const carray<int64_t>& starts, const carray<int64_t>& ends,
                 int threads) -> py::tuple {
          if (py::isinstance<carray<int32_t>>(values))
            return gather(values.cast<carray<int32_t>>(), starts, ends, threads);
          if (py::isinstance<carray<int64_t>>(values))
            return gather(values.cast<carray<int64_t>>(), starts, ends, threads);
          throw py::type_error("values must be a C-contiguous int32 or int64 array, got dtype " +
                               std::string(py::str(values.dtype())));
        },
        py::arg("values"), py::arg("starts"), py::arg("ends"), py::arg("threads") = 0,
        "Concatenate values[starts[k]:ends[k]] for every k -> (offsets int64 (n + 1,), gathered).\n\n"
        "values: int32 or int64 (kept); starts/ends: int64 of equal length with\n"
        "0 <= starts[k] <= ends[k] <= len(values), else ValueError naming the range. The\n"
        "offsets are the running sum of the range lengths. GIL released; OpenMP for large\n"
        "outputs; the result never depends on `threads`.");
  }
  // ===== end section: textio =====

  // ===== section: mining =====
  {
    // Optional progress counter: a writeable int64 numpy array of >= 1 entry
    // that the kernel advances while it runs without the GIL (a Python thread
    // polls it to draw a progress bar).
    auto progress_ptr = [](InputGuard& guard, py::object progress) -> int64_t* {
      if (progress.is_none()) return nullptr;
      if (!py::isinstance<py::array_t<int64_t>>(progress))
        throw py::type_error("progress must be None or an int64 numpy array");
      auto arr = progress.cast<py::array_t<int64_t>>();
      if (arr.size() < 1 || !arr.writeable())
        throw py::value_error("progress must be a writeable int64 array with at least one entry");
      guard.pin(progress);
      return arr.mutable_data();
    };
    auto pattern_tuple = [](PatternSet&& r) {
      return py::make_tuple(to_numpy(std::move(r.offsets)), to_numpy(std::move(r.items)),
                            to_numpy(std::move(r.support)));
    };

    m.def(
        "mine_patterns",
        [progress_ptr, pattern_tuple](const carray<int64_t>& offsets, const carray<int32_t>& items,
                                      int64_t max_span, int64_t min_support, int64_t min_len, int64_t max_len,
                                      int threads, py::object progress, int64_t max_patterns) {
          InputGuard guard;
          const CsrView view = make_view(guard, offsets, items);
          int64_t* counter = progress_ptr(guard, progress);
          MiningParams p;
          p.max_span = max_span;
          p.min_support = min_support;
          p.min_len = min_len;
          p.max_len = max_len;
          p.threads = threads;
          p.max_patterns = max_patterns;
          PatternSet r;
          {
            py::gil_scoped_release nogil;
            r = mine_patterns(view, p, counter);
          }
          return pattern_tuple(std::move(r));
        },
        py::arg("offsets"), py::arg("items"), py::arg("max_span"), py::arg("min_support"), py::arg("min_len"),
        py::arg("max_len"), py::arg("threads") = 0, py::arg("progress") = py::none(), py::arg("max_patterns") = 0,
        "Span-constrained sequential patterns of a CSR dataset -> (offsets int64, items int32, support int64),\n"
        "ordered by length then lexicographically; ValueError past max_patterns (0: no limit).\n"
        "See fastregen.mining.mine_patterns.");

    m.def(
        "window_counts",
        [pattern_tuple](const carray<int64_t>& offsets, const carray<int32_t>& items, int64_t window,
                        int64_t min_count, int threads) {
          InputGuard guard;
          const CsrView view = make_view(guard, offsets, items);
          PatternSet r;
          {
            py::gil_scoped_release nogil;
            r = window_counts(view, window, min_count, threads);
          }
          return pattern_tuple(std::move(r));
        },
        py::arg("offsets"), py::arg("items"), py::arg("window"), py::arg("min_count"), py::arg("threads") = 0,
        "Counts of contiguous windows -> (offsets int64, items int32, count int64), lexicographic.\n"
        "See fastregen.mining.window_counts.");

    m.def(
        "pretrain_pairs",
        [progress_ptr](const carray<int64_t>& offsets, const carray<int32_t>& items,
                       const carray<int64_t>& pattern_offsets, const carray<int32_t>& pattern_items, int64_t span,
                       int64_t max_per_sequence, uint64_t seed, int threads, py::object progress) {
          InputGuard guard;
          const CsrView data = make_view(guard, offsets, items);
          const CsrView pats = make_view(guard, pattern_offsets, pattern_items);
          int64_t* counter = progress_ptr(guard, progress);
          PairParams p;
          p.span = span;
          p.max_per_sequence = max_per_sequence;
          p.seed = seed;
          p.threads = threads;
          PairResult r;
          {
            py::gil_scoped_release nogil;
            r = pretrain_pairs(data, pats, p, counter);
          }
          return py::make_tuple(to_numpy(std::move(r.source)), to_numpy(std::move(r.pattern)));
        },
        py::arg("offsets"), py::arg("items"), py::arg("pattern_offsets"), py::arg("pattern_items"),
        py::arg("span"), py::arg("max_per_sequence"), py::arg("seed"), py::arg("threads") = 0,
        py::arg("progress") = py::none(),
        "(sequence, pattern) pre-training pairs -> (source int64, pattern int64), ordered by sequence then\n"
        "pattern. span=0: plain subsequence. See fastregen.mining.pretrain_pairs.");
  }
  // ===== end section: mining =====

  // ===== section: entropy =====
  m.def(
      "lz_lambda_sums",
      [](const carray<int64_t>& offsets, const carray<int32_t>& items, int threads, int method) {
        if (method < 0 || method > 2)
          throw py::value_error("method must be 0 (auto), 1 (automaton) or 2 (quadratic), got " +
                                std::to_string(method));
        InputGuard guard;
        const CsrView v = make_view(guard, offsets, items);
        std::vector<int64_t> out;
        {
          py::gil_scoped_release nogil;
          out = lz_lambda_sums(v, threads, static_cast<LzMethod>(method));
        }
        return to_numpy(std::move(out));
      },
      py::arg("offsets"), py::arg("items"), py::arg("threads") = 0, py::arg("method") = 0,
      "sum_i Lambda_i (Lempel-Ziv match lengths) of every sequence, int64 (n_seq,). method: 0 auto, "
      "1 suffix automaton, 2 quadratic LCP recurrence.");
  m.def(
      "real_entropy",
      [](const carray<int64_t>& offsets, const carray<int32_t>& items, double base, int threads) {
        if (!(base > 1.0) || !std::isfinite(base))  // (0, 1) would give negative entropies
          throw py::value_error("base must be a finite number > 1, got " + std::to_string(base));
        InputGuard guard;
        const CsrView v = make_view(guard, offsets, items);
        std::vector<double> out;
        {
          py::gil_scoped_release nogil;
          out = real_entropy(v, base, threads);
        }
        return to_numpy(std::move(out));
      },
      py::arg("offsets"), py::arg("items"), py::arg("base") = 2.0, py::arg("threads") = 0,
      "Lempel-Ziv real entropy n log2(n) / sum Lambda / log2(base) of every sequence, float64 (n_seq,).");
  m.def(
      "n_distinct",
      [](const carray<int64_t>& offsets, const carray<int32_t>& items, int threads) {
        InputGuard guard;
        const CsrView v = make_view(guard, offsets, items);
        std::vector<int64_t> out;
        {
          py::gil_scoped_release nogil;
          out = n_distinct(v, threads);
        }
        return to_numpy(std::move(out));
      },
      py::arg("offsets"), py::arg("items"), py::arg("threads") = 0,
      "Number of distinct items of every sequence, int64 (n_seq,).");
  m.def(
      "item_entropies",
      [](const carray<int64_t>& offsets, const carray<int32_t>& items, int32_t num_items) {
        if (num_items < 1) throw py::value_error("num_items must be >= 1, got " + std::to_string(num_items));
        InputGuard guard;
        const CsrView v = make_view(guard, offsets, items);
        std::vector<int64_t> counts;
        std::vector<double> h;
        try {
          py::gil_scoped_release nogil;  // one pass over every interaction
          item_entropies(v, num_items, counts, h);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
        return py::make_tuple(to_numpy(std::move(counts)), to_numpy(std::move(h)));
      },
      py::arg("offsets"), py::arg("items"), py::arg("num_items"),
      "(counts int64 (num_items+1,), -log2(count / total) float64 (num_items+1,), inf when unseen).");

  py::class_<MarkovHandle>(m, "MarkovModel",
                           "Order-k Markov model with interpolated Witten-Bell backoff (see entropy.hpp).")
      .def(py::init([](int order, int32_t num_items) {
             if (order < 0) throw py::value_error("order must be >= 0, got " + std::to_string(order));
             if (num_items < 1) throw py::value_error("num_items must be >= 1, got " + std::to_string(num_items));
             return MarkovHandle{std::make_shared<const MarkovModel>(order, num_items)};
           }),
           py::arg("order"), py::arg("num_items"))
      .def(
          "fit",
          [](MarkovHandle& self, const carray<int64_t>& offsets, const carray<int32_t>& items) {
            InputGuard guard;
            const CsrView v = make_view(guard, offsets, items);
            auto fresh = std::make_shared<MarkovModel>(self.model->order(), self.model->num_items());
            try {
              py::gil_scoped_release nogil;
              fresh->fit(v);
            } catch (const std::invalid_argument& e) {
              throw py::value_error(e.what());
            }
            self.model = std::move(fresh);  // with the GIL held: see MarkovHandle
          },
          py::arg("offsets"), py::arg("items"), "Count the n-grams of the sequences (replaces earlier counts).")
      .def(
          "prob",
          [](const MarkovHandle& self, const carray<int64_t>& ctx_offsets, const carray<int32_t>& ctx_items,
             const carray<int32_t>& next_in, int threads) {
            const std::shared_ptr<const MarkovModel> model = self.model;  // this call's own reference
            if (!model->fitted()) throw py::value_error("the Markov model is not fitted");
            InputGuard guard;
            const CsrView v = make_view(guard, ctx_offsets, ctx_items);
            if (next_in.ndim() != 1 || next_in.size() != v.n_seq)
              throw py::value_error("next must have one item per context (" + std::to_string(v.n_seq) + "), got " +
                                    std::to_string(next_in.size()));
            const carray<int32_t> next = guard.frozen(next_in);
            const int32_t* nx = next.data();
            for (int64_t c = 0; c < v.n_seq; ++c)
              if (nx[c] < 1 || nx[c] > model->num_items())
                throw py::value_error("next[" + std::to_string(c) + "] = " + std::to_string(nx[c]) +
                                      " outside 1.." + std::to_string(model->num_items()));
            std::vector<double> out;
            {
              py::gil_scoped_release nogil;
              out = model->prob_batch(v, nx, threads);
            }
            return to_numpy(std::move(out));
          },
          py::arg("ctx_offsets"), py::arg("ctx_items"), py::arg("next"), py::arg("threads") = 0,
          "P(next[c] | context c) for contexts in CSR form, float64 (n_contexts,).")
      .def_property_readonly("order", [](const MarkovHandle& self) { return self.model->order(); })
      .def_property_readonly("num_items", [](const MarkovHandle& self) { return self.model->num_items(); })
      .def_property_readonly("num_tokens", [](const MarkovHandle& self) { return self.model->num_tokens(); })
      .def_property_readonly("fitted", [](const MarkovHandle& self) { return self.model->fitted(); })
      .def(
          "context_counts", [](const MarkovHandle& self) { return self.model->context_counts(); },
          "Distinct contexts of each order 1..k.");

  m.def(
      "mine_entropy_patterns",
      [](const carray<int64_t>& offsets, const carray<int32_t>& items, int32_t num_items, double theta,
         int64_t min_count, int64_t max_len, const MarkovHandle* markov_handle, std::optional<carray<double>> probs_in,
         std::optional<py::function> scorer, int threads) {
        if (!(theta > 0.0) || !std::isfinite(theta))
          throw py::value_error("theta must be a finite number > 0, got " + std::to_string(theta));
        if (max_len < 1) throw py::value_error("max_len must be >= 1, got " + std::to_string(max_len));
        if (min_count < 1) throw py::value_error("min_count must be >= 1, got " + std::to_string(min_count));
        if (num_items < 1) throw py::value_error("num_items must be >= 1, got " + std::to_string(num_items));
        InputGuard guard;
        const CsrView v = make_view(guard, offsets, items);
        const double* pp = nullptr;
        if (probs_in) {
          if (probs_in->ndim() != 1 || probs_in->size() != v.n_items_total())
            throw py::value_error("probs must have shape (len(items),) = (" + std::to_string(v.n_items_total()) +
                                  ",), got " + std::to_string(probs_in->size()) + " values");
          pp = guard.frozen(*probs_in).data();  // the guard keeps the frozen array alive
          for (int64_t g = 0; g < v.n_items_total(); ++g)
            if (!(pp[g] > 0.0 && pp[g] <= 1.0))
              throw py::value_error("probs[" + std::to_string(g) + "] = " + std::to_string(pp[g]) +
                                    " is not in (0, 1]");
        }
        // This call's own reference to the model (see MarkovHandle).
        const std::shared_ptr<const MarkovModel> markov =
            markov_handle ? markov_handle->model : std::shared_ptr<const MarkovModel>();
        MinerParams params;
        params.theta = theta;
        params.min_count = min_count;
        params.max_len = max_len;
        params.threads = threads;
        EntropyPatterns res;
        try {
          if (scorer) {
            // The scorer is Python: keep the GIL (the miner calls it once per level).
            py::function fn = *scorer;
            ExtensionScorer call = [&fn](const std::vector<int64_t>& co, const std::vector<int32_t>& ci,
                                         const std::vector<int32_t>& nx, std::vector<double>& prob) {
              py::object r = fn(to_numpy(std::vector<int64_t>(co)), to_numpy(std::vector<int32_t>(ci)),
                                to_numpy(std::vector<int32_t>(nx)));
              auto arr = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(r);
              if (!arr || arr.ndim() != 1)
                throw py::value_error("the extension scorer must return a 1-D float array");
              prob.assign(arr.data(), arr.data() + arr.size());
            };
            res = mine_entropy_patterns(v, num_items, params, nullptr, nullptr, &call);
          } else {
            py::gil_scoped_release nogil;
            res = mine_entropy_patterns(v, num_items, params, markov.get(), pp, nullptr);
          }
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
        return py::make_tuple(to_numpy(std::move(res.offsets)), to_numpy(std::move(res.items)),
                              to_numpy(std::move(res.entropy)), to_numpy(std::move(res.count)));
      },
      py::arg("offsets"), py::arg("items"), py::arg("num_items"), py::arg("theta"), py::arg("min_count"),
      py::arg("max_len"), py::arg("markov").none(true), py::arg("probs").none(true),
      py::arg("scorer").none(true), py::arg("threads") = 0,
      "Conditional-entropy pattern miner (UniDS 4.2); returns (offsets, items, entropy, count).");
  m.def(
      "segment",
      [](const carray<int64_t>& offsets, const carray<int32_t>& items, const carray<int64_t>& pat_offsets,
         const carray<int32_t>& pat_items, int threads) {
        InputGuard guard;
        const CsrView v = make_view(guard, offsets, items);
        const CsrView p = make_view(guard, pat_offsets, pat_items);
        Segmentation s;
        try {
          py::gil_scoped_release nogil;
          s = segment_sequences(v, p, threads);
        } catch (const std::invalid_argument& e) {
          throw py::value_error(e.what());
        }
        return py::make_tuple(to_numpy(std::move(s.offsets)), to_numpy(std::move(s.bounds)),
                              to_numpy(std::move(s.pattern_id)));
      },
      py::arg("offsets"), py::arg("items"), py::arg("pat_offsets"), py::arg("pat_items"), py::arg("threads") = 0,
      "Greedy longest-match segmentation; returns (offsets, bounds, pattern_id).");
  // ===== end section: entropy =====

  // ===== section: ranks (evaluation) =====
  {
    // scores: exactly float32 or float64, C-contiguous, never a converted
    // copy (a silent copy of a B x C block would cost what the kernel saves).
    // The scores are pinned, not frozen: values changed meanwhile change the
    // counts, never where the kernel reads. Everything that indexes (targets,
    // offsets, excluded ids) and the thresholds are frozen.
    auto run = [](const auto& scores, int64_t c0, int64_t n_columns, const py::array& targets_in,
                  const py::array& thresholds_in, const py::array& ex_offsets_in, const py::array& ex_items_in,
                  const py::object& lo_in, int threads) -> py::tuple {
      using T = typename std::decay_t<decltype(scores)>::value_type;
      const char* tname = sizeof(T) == 4 ? "float32" : "float64";
      if (scores.ndim() != 2)
        throw py::value_error("scores must be a 2-D (rows, width) array, got " + std::to_string(scores.ndim()) +
                              " dimensions");
      const int64_t B = static_cast<int64_t>(scores.shape(0));
      const int64_t W = static_cast<int64_t>(scores.shape(1));
      if (c0 < 0 || n_columns < 1 || W > n_columns || c0 > n_columns - W)
        throw py::value_error("the block [c0, c0 + width) = [" + std::to_string(c0) + ", " + std::to_string(c0 + W) +
                              ") does not lie inside n_columns = " + std::to_string(n_columns));
      auto exact = [](const py::array& a, const char* what, const char* dtype, bool ok) {
        if (!ok)
          throw py::type_error(std::string(what) + " must be a C-contiguous " + dtype + " array, got dtype " +
                               std::string(py::str(a.dtype())));
      };
      exact(targets_in, "targets", "int64", py::isinstance<carray<int64_t>>(targets_in));
      exact(thresholds_in, "thresholds", tname, py::isinstance<carray<T>>(thresholds_in));
      exact(ex_offsets_in, "ex_offsets", "int64", py::isinstance<carray<int64_t>>(ex_offsets_in));
      exact(ex_items_in, "ex_items", "int64", py::isinstance<carray<int64_t>>(ex_items_in));
      InputGuard guard;
      guard.pin(scores);
      const carray<int64_t> targets = guard.frozen(targets_in.cast<carray<int64_t>>());
      const carray<T> thr = guard.frozen(thresholds_in.cast<carray<T>>());
      const carray<int64_t> offsets = guard.frozen(ex_offsets_in.cast<carray<int64_t>>());
      const carray<int64_t> items = guard.frozen(ex_items_in.cast<carray<int64_t>>());
      if (targets.ndim() != 1 || targets.size() != B)
        throw py::value_error("targets must have shape (" + std::to_string(B) + ",), got " +
                              std::to_string(targets.size()) + " values");
      if (thr.ndim() != 1 || thr.size() != B)
        throw py::value_error("thresholds must have shape (" + std::to_string(B) + ",), got " +
                              std::to_string(thr.size()) + " values");
      if (offsets.ndim() != 1 || offsets.size() != B + 1)
        throw py::value_error("ex_offsets must have shape (" + std::to_string(B + 1) + ",), got " +
                              std::to_string(offsets.size()) + " values");
      if (items.ndim() != 1) throw py::value_error("ex_items must be a 1-D array");
      const int64_t* t = targets.data();
      for (int64_t r = 0; r < B; ++r)
        if (t[r] < 1 || t[r] >= n_columns)
          throw py::value_error("targets[" + std::to_string(r) + "] = " + std::to_string(t[r]) +
                                " is not an item id in 1.." + std::to_string(n_columns - 1));
      const int64_t* o = offsets.data();
      if (o[0] != 0) throw py::value_error("ex_offsets[0] must be 0, got " + std::to_string(o[0]));
      for (int64_t r = 0; r < B; ++r)
        if (o[r + 1] < o[r])
          throw py::value_error("ex_offsets must be non-decreasing; ex_offsets[" + std::to_string(r + 1) + "] = " +
                                std::to_string(o[r + 1]) + " < " + std::to_string(o[r]));
      if (o[B] != static_cast<int64_t>(items.size()))
        throw py::value_error("ex_offsets[-1] = " + std::to_string(o[B]) + " does not match len(ex_items) = " +
                              std::to_string(items.size()));
      const int64_t* it = items.data();
      for (int64_t g = 0; g < o[B]; ++g)
        if (it[g] < 1 || it[g] >= n_columns)
          throw py::value_error("ex_items[" + std::to_string(g) + "] = " + std::to_string(it[g]) +
                                " is not an item id in 1.." + std::to_string(n_columns - 1));
      RankBlock<T> k;
      if (!lo_in.is_none()) {
        if (!py::isinstance<carray<T>>(lo_in))
          throw py::type_error(std::string("lo must be None or a C-contiguous ") + tname + " array (the dtype of scores)");
        const carray<T> lo = guard.frozen(lo_in.cast<carray<T>>());
        if (lo.ndim() != 1 || lo.size() != B)
          throw py::value_error("lo must have shape (" + std::to_string(B) + ",), got " + std::to_string(lo.size()) +
                                " values");
        k.lo = lo.data();  // the guard keeps the frozen array alive
      }
      k.scores = scores.data();
      k.rows = B;
      k.width = W;
      k.c0 = c0;
      k.n_columns = n_columns;
      k.targets = t;
      k.thresholds = thr.data();
      k.ex_offsets = o;
      k.ex_items = it;
      RankCounts<T> res;
      {
        py::gil_scoped_release nogil;
        res = rank_counts(k, threads);
      }
      return py::make_tuple(to_numpy(std::move(res.count)), to_numpy(std::move(res.excluded)),
                            to_numpy(std::move(res.band_rows)), to_numpy(std::move(res.band_values)));
    };
    m.def(
        "rank_counts",
        [run](const py::array& scores, const py::array& targets, const py::array& thresholds,
              const py::array& ex_offsets, const py::array& ex_items, int64_t c0, int64_t n_columns,
              const py::object& lo, int threads) -> py::tuple {
          if (py::isinstance<carray<float>>(scores))
            return run(scores.cast<carray<float>>(), c0, n_columns, targets, thresholds, ex_offsets, ex_items, lo,
                       threads);
          if (py::isinstance<carray<double>>(scores))
            return run(scores.cast<carray<double>>(), c0, n_columns, targets, thresholds, ex_offsets, ex_items, lo,
                       threads);
          throw py::type_error("scores must be a C-contiguous float32 or float64 array, got dtype " +
                               std::string(py::str(scores.dtype())));
        },
        py::arg("scores"), py::arg("targets"), py::arg("thresholds"), py::arg("ex_offsets"), py::arg("ex_items"),
        py::arg("c0"), py::arg("n_columns"), py::arg("lo") = py::none(), py::arg("threads") = 0,
        "Per-row candidate counts of a block of columns [c0, c0 + width) of a score matrix.\n\n"
        "-> (count int64 (B,), excluded int64 (B,), band_rows int64, band_values).\n"
        "count[r] = #{j in block: j != 0, j != targets[r], j not excluded: scores[r, j - c0] >= thresholds[r]},\n"
        "excluded[r] = distinct excluded items of row r in the block other than its target; row r's excluded\n"
        "items are ex_items[ex_offsets[r]:ex_offsets[r+1]] (ids 1..n_columns-1, any order, repeats allowed).\n"
        "With lo, the candidates scoring in [lo[r], thresholds[r]) come back as (row, score), by row then\n"
        "column. scores float32 or float64 (thresholds and lo of the same dtype), C-contiguous, never copied.\n"
        "GIL released; OpenMP over rows; the result never depends on `threads`.\n"
        "See fastregen.evaluation.target_ranks and fastregen.reference.ranks.");
  }
  // ===== end section: ranks =====

  // ===== section: amx ranks (two-pass exact full ranking) =====
  {
    // (rows, dim) float32, C-contiguous; pinned, not copied (the item table is hundreds of MiB at
    // Books' scale): a value changed meanwhile changes a score, never an index.
    auto matrix = [](InputGuard& guard, const py::array& a, const char* what) {
      if (!py::isinstance<carray<float>>(a))
        throw py::type_error(std::string(what) + " must be a C-contiguous float32 array, got dtype " +
                             std::string(py::str(a.dtype())));
      carray<float> m = a.cast<carray<float>>();
      if (m.ndim() != 2)
        throw py::value_error(std::string(what) + " must be 2-D, got " + std::to_string(m.ndim()) + " dimensions");
      guard.pin(a);
      return m;
    };
    auto ids = [](InputGuard& guard, const py::array& a, const char* what) {
      if (!py::isinstance<carray<int64_t>>(a))
        throw py::type_error(std::string(what) + " must be a C-contiguous int64 array, got dtype " +
                             std::string(py::str(a.dtype())));
      carray<int64_t> v = guard.frozen(a.cast<carray<int64_t>>());
      if (v.ndim() != 1) throw py::value_error(std::string(what) + " must be 1-D");
      return v;
    };
    py::class_<PackedItems>(m, "PackedItems",
                            "An item table in the AMX tile layout (bf16 parts, VNNI pairs) and its items' norms; "
                            "built by pack_items, read by amx_rank_counts.")
        .def_property_readonly("n_items", [](const PackedItems& p) { return p.n_items; })
        .def_property_readonly("dim", [](const PackedItems& p) { return p.dim; });
    m.def("amx_available", &amx_available,
          "Whether amx_rank_counts can run here (x86-64 build, AMX-BF16 CPU, tile state granted by the OS).");
    m.def(
        "pack_items",
        [matrix](const py::array& table_in, int threads) {
          InputGuard guard;
          const carray<float> table = matrix(guard, table_in, "table");
          const int64_t C = static_cast<int64_t>(table.shape(0)), d = static_cast<int64_t>(table.shape(1));
          if (d < 1) throw py::value_error("table must have at least one column");
          py::gil_scoped_release nogil;
          return pack_items(table.data(), C, d, threads);
        },
        py::arg("table"), py::arg("threads") = 0,
        "The item table (n_items, dim) float32 in the tile layout of amx_rank_counts: each row's bf16 parts\n"
        "[hi | hi | lo] and its norm (rounded up; +inf outside the safe range). GIL released.");
    m.def(
        "amx_rank_counts",
        [matrix, ids](const py::array& hidden_in, const py::array& table_in, const PackedItems& packed,
                      const py::array& targets_in, const py::array& ex_offsets_in, const py::array& ex_items_in,
                      int threads, const py::object& max_rank_in, const py::object& bounds_in) -> py::tuple {
          InputGuard guard;
          const carray<float> hidden = matrix(guard, hidden_in, "hidden");
          const carray<float> table = matrix(guard, table_in, "table");
          const int64_t B = static_cast<int64_t>(hidden.shape(0)), C = static_cast<int64_t>(table.shape(0));
          const int64_t d = static_cast<int64_t>(table.shape(1));
          if (hidden.shape(1) != d || packed.n_items != C || packed.dim != d)
            throw py::value_error("hidden (" + std::to_string(B) + ", " + std::to_string(hidden.shape(1)) +
                                  "), table (" + std::to_string(C) + ", " + std::to_string(d) + ") and packed (" +
                                  std::to_string(packed.n_items) + ", " + std::to_string(packed.dim) +
                                  ") do not match");
          const carray<int64_t> targets = ids(guard, targets_in, "targets");
          const carray<int64_t> offsets = ids(guard, ex_offsets_in, "ex_offsets");
          const carray<int64_t> items = ids(guard, ex_items_in, "ex_items");
          if (targets.size() != B || offsets.size() != B + 1)
            throw py::value_error("targets must have " + std::to_string(B) + " values and ex_offsets " +
                                  std::to_string(B + 1) + ", got " + std::to_string(targets.size()) + " and " +
                                  std::to_string(offsets.size()));
          const int64_t* t = targets.data();
          for (int64_t r = 0; r < B; ++r)
            if (t[r] < 1 || t[r] >= C)
              throw py::value_error("targets[" + std::to_string(r) + "] = " + std::to_string(t[r]) +
                                    " is not an item id in 1.." + std::to_string(C - 1));
          const int64_t* o = offsets.data();
          if (o[0] != 0 || o[B] != static_cast<int64_t>(items.size()))
            throw py::value_error("ex_offsets must run from 0 to len(ex_items) = " + std::to_string(items.size()));
          const int64_t* it = items.data();
          for (int64_t r = 0; r < B; ++r) {
            if (o[r + 1] < o[r])
              throw py::value_error("ex_offsets must be non-decreasing; ex_offsets[" + std::to_string(r + 1) +
                                    "] = " + std::to_string(o[r + 1]) + " < " + std::to_string(o[r]));
            for (int64_t g = o[r]; g < o[r + 1]; ++g) {
              if (it[g] < 1 || it[g] >= C)
                throw py::value_error("ex_items[" + std::to_string(g) + "] = " + std::to_string(it[g]) +
                                      " is not an item id in 1.." + std::to_string(C - 1));
              if (g > o[r] && it[g] <= it[g - 1])
                throw py::value_error("each row's ex_items must be strictly ascending; ex_items[" +
                                      std::to_string(g) + "] = " + std::to_string(it[g]) + " follows " +
                                      std::to_string(it[g - 1]));
            }
          }
          int64_t max_rank = INT64_MAX;
          if (!max_rank_in.is_none()) {
            if (py::isinstance<py::bool_>(max_rank_in) || !py::isinstance<py::int_>(max_rank_in))
              throw py::type_error("max_rank must be an int or None, got " + std::string(py::repr(max_rank_in)));
            max_rank = max_rank_in.cast<int64_t>();
            if (max_rank < 1) throw py::value_error("max_rank must be >= 1, got " + std::to_string(max_rank));
          }
          carray<int64_t> bounds;
          int64_t n_segments = 0;
          if (!bounds_in.is_none()) {
            if (!py::isinstance<py::array>(bounds_in))
              throw py::type_error("bounds must be an int64 array or None, got " + std::string(py::repr(bounds_in)));
            bounds = ids(guard, bounds_in.cast<py::array>(), "bounds");
            n_segments = static_cast<int64_t>(bounds.size()) - 1;
            const int64_t* q = bounds.data();
            if (n_segments < 1 || q[0] != 0 || q[n_segments] != C)
              throw py::value_error("bounds must run from 0 to n_items = " + std::to_string(C) + " in >= 2 values");
            for (int64_t i = 1; i <= n_segments; ++i)
              if (q[i] <= q[i - 1])
                throw py::value_error("bounds must be strictly ascending; bounds[" + std::to_string(i) +
                                      "] = " + std::to_string(q[i]) + " follows " + std::to_string(q[i - 1]));
          }
          if (!amx_available()) throw py::value_error("amx_rank_counts: the CPU or the OS offers no AMX tiles");
          AmxRankInput in;
          in.max_rank = max_rank;
          in.bounds = n_segments > 0 ? bounds.data() : nullptr;
          in.n_segments = n_segments;
          in.hidden = hidden.data();
          in.rows = B;
          in.table = table.data();
          in.packed = &packed;
          in.targets = t;
          in.ex_offsets = o;
          in.ex_items = it;
          AmxRankCounts res;
          {
            py::gil_scoped_release nogil;
            res = amx_rank_counts(in, threads);
          }
          return py::make_tuple(to_numpy(std::move(res.count)), to_numpy(std::move(res.excluded)), res.rechecked,
                                res.exact_rows, res.scanned);
        },
        py::arg("hidden"), py::arg("table"), py::arg("packed"), py::arg("targets"), py::arg("ex_offsets"),
        py::arg("ex_items"), py::arg("threads") = 0, py::arg("max_rank") = py::none(), py::arg("bounds") = py::none(),
        "Exact full-ranking counts by a bf16 AMX pass and an exact recheck of its undecided pairs.\n\n"
        "-> (count int64 (B,), excluded int64 (B,), rechecked int, exact_rows int, scanned int).\n"
        "count[r] = #{j in 1..C-1, j != targets[r], j not in row r's ex_items: score(hidden[r], table[j]) >=\n"
        "score(hidden[r], table[targets[r]])}, score the float32 fma chain (exact_scores); excluded[r] = row r's\n"
        "ex_items other than its target (per row strictly ascending, ids 1..C-1). packed = pack_items(table)\n"
        "of this very table. GIL released; OpenMP over users; the result never depends on `threads`.\n"
        "max_rank = m (int >= 1): count[r] is min(count[r], m), items scanned a segment at a time (bounds: int64\n"
        "0 = b0 < ... < bn = C; default one segment), a user dropped once m items of the segments so far beat its\n"
        "target; scanned = the (user, item) pairs of the segments each user took part in.\n"
        "See csrc/amx_ranks.hpp for the error bound and fastregen.evaluation.ranks.");
    m.def(
        "exact_scores",
        [matrix, ids](const py::array& hidden_in, const py::array& table_in, const py::array& rows_in,
                      const py::array& items_in) {
          InputGuard guard;
          const carray<float> hidden = matrix(guard, hidden_in, "hidden");
          const carray<float> table = matrix(guard, table_in, "table");
          const carray<int64_t> rows = ids(guard, rows_in, "rows");
          const carray<int64_t> items = ids(guard, items_in, "items");
          const int64_t d = static_cast<int64_t>(table.shape(1));
          if (hidden.shape(1) != d || rows.size() != items.size())
            throw py::value_error("hidden and table must have the same columns and rows, items the same length");
          for (py::ssize_t i = 0; i < rows.size(); ++i)
            if (rows.data()[i] < 0 || rows.data()[i] >= hidden.shape(0) || items.data()[i] < 0 ||
                items.data()[i] >= table.shape(0))
              throw py::value_error("pair " + std::to_string(i) + " = (" + std::to_string(rows.data()[i]) + ", " +
                                    std::to_string(items.data()[i]) + ") is outside hidden or table");
          std::vector<float> out;
          {
            py::gil_scoped_release nogil;
            out = exact_scores(hidden.data(), table.data(), d, rows.data(), items.data(),
                               static_cast<int64_t>(rows.size()));
          }
          return to_numpy(std::move(out));
        },
        py::arg("hidden"), py::arg("table"), py::arg("rows"), py::arg("items"),
        "score(hidden[rows[i]], table[items[i]]) float32: s = 0; s = fma(u[k], v[k], s) for k in order.\n"
        "See fastregen.reference.ranks.fma_scores.");
  }
  // ===== end section: amx ranks =====

  // ===== section: ragged attention (regenerator training) =====
  {
    // A (rows, width) float matrix whose rows may be spaced apart (a column slice of a wider
    // projection): pinned, never copied; its row stride in elements.
    struct Rows {
      py::array a;
      int64_t rows = 0, width = 0, stride = 0;
    };
    auto rows_of = [](InputGuard& guard, const py::object& obj, const py::dtype& dtype, const char* what,
                      bool writable) {
      if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(what) + " must be a numpy array, got " +
                             std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
      py::array a = py::reinterpret_borrow<py::array>(obj);
      if (!a.dtype().is(dtype))
        throw py::type_error(std::string(what) + " must have dtype " + std::string(py::str(dtype)) + ", got " +
                             std::string(py::str(a.dtype())));
      if (a.ndim() != 2)
        throw py::value_error(std::string(what) + " must be 2-D (rows, heads * head_dim), got " +
                              std::to_string(a.ndim()) + " dimensions");
      const auto item = static_cast<py::ssize_t>(dtype.itemsize());
      if (a.shape(0) > 0 && a.shape(1) > 1 && a.strides(1) != item)
        throw py::value_error(std::string(what) + " must have contiguous rows (column stride " +
                              std::to_string(item) + " bytes), got " + std::to_string(a.strides(1)));
      if (a.shape(0) > 1 && (a.strides(0) < a.shape(1) * item || a.strides(0) % item != 0))
        throw py::value_error(std::string(what) + " rows must not overlap, got a row stride of " +
                              std::to_string(a.strides(0)) + " bytes");
      if (writable && !a.writeable()) throw py::value_error(std::string(what) + " must be writable");
      guard.pin(a);
      Rows r;
      r.a = a;
      r.rows = a.shape(0);
      r.width = a.shape(1);
      r.stride = a.shape(0) > 1 ? a.strides(0) / item : a.shape(1);
      return r;
    };
    auto offsets_of = [](InputGuard& guard, const py::object& obj, const char* what, int64_t last,
                         const char* rows_what) {
      if (!py::isinstance<carray<int64_t>>(obj))
        throw py::type_error(std::string(what) + " must be a C-contiguous int64 array");
      carray<int64_t> o = guard.frozen(obj.cast<carray<int64_t>>());
      if (o.ndim() != 1 || o.size() < 1) throw py::value_error(std::string(what) + " must be 1-D with groups + 1 entries");
      const int64_t* p = o.data();
      if (p[0] != 0) throw py::value_error(std::string(what) + "[0] must be 0, got " + std::to_string(p[0]));
      for (py::ssize_t g = 1; g < o.size(); ++g)
        if (p[g] < p[g - 1])
          throw py::value_error(std::string(what) + " must be non-decreasing, got " + what + "[" + std::to_string(g) +
                                "] = " + std::to_string(p[g]) + " < " + std::to_string(p[g - 1]));
      if (p[o.size() - 1] != last)
        throw py::value_error(std::string(what) + "[-1] = " + std::to_string(p[o.size() - 1]) + " must equal the " +
                              rows_what + " (" + std::to_string(last) + ")");
      return o;
    };
    // What forward and backward share, checked once.
    struct Parsed {
      Rows q, k, v;
      carray<int64_t> qo, ko;
      const uint8_t* ignore = nullptr;
      const uint8_t* drop = nullptr;
    };
    auto setup = [rows_of, offsets_of](InputGuard& guard, const py::object& q_in, const py::object& k_in,
                                       const py::object& v_in, const py::object& q_off_in, const py::object& k_off_in,
                                       int64_t heads, int64_t width, double scale,
                                       const py::object& ignore_in, const py::object& drop_in, int threshold) {
      Parsed in;
      Rows &q = in.q, &k = in.k, &v = in.v;
      carray<int64_t>&qo = in.qo, &ko = in.ko;
      const uint8_t*& ignore = in.ignore;
      const uint8_t*& drop = in.drop;
      if (!py::isinstance<py::array>(q_in))
        throw py::type_error("q must be a numpy array, got " + std::string(py::str(py::type::handle_of(q_in).attr("__name__"))));
      const py::dtype dt = py::reinterpret_borrow<py::array>(q_in).dtype();
      if (!dt.is(py::dtype::of<float>()) && !dt.is(py::dtype::of<double>()))
        throw py::type_error("q must be float32 or float64, got " + std::string(py::str(dt)));
      q = rows_of(guard, q_in, dt, "q", false);
      k = rows_of(guard, k_in, dt, "k", false);
      v = rows_of(guard, v_in, dt, "v", false);
      if (heads < 1) throw py::value_error("heads must be >= 1, got " + std::to_string(heads));
      if (q.width % heads != 0 || q.width == 0)
        throw py::value_error("q's width " + std::to_string(q.width) + " is not heads * head_dim for heads = " +
                              std::to_string(heads));
      if (k.width != q.width || v.width != q.width)
        throw py::value_error("q, k and v must have the same width, got " + std::to_string(q.width) + ", " +
                              std::to_string(k.width) + ", " + std::to_string(v.width));
      if (k.rows != v.rows)
        throw py::value_error("k and v must have the same rows, got " + std::to_string(k.rows) + " and " +
                              std::to_string(v.rows));
      qo = offsets_of(guard, q_off_in, "q_offsets", q.rows, "rows of q");
      ko = offsets_of(guard, k_off_in, "k_offsets", k.rows, "rows of k");
      if (qo.size() != ko.size())
        throw py::value_error("q_offsets and k_offsets must have the same length (groups + 1), got " +
                              std::to_string(qo.size()) + " and " + std::to_string(ko.size()));
      if (width < 0) throw py::value_error("width must be >= 0, got " + std::to_string(width));
      for (py::ssize_t g = 0; g + 1 < ko.size(); ++g)
        if (ko.data()[g + 1] - ko.data()[g] > width)
          throw py::value_error("group " + std::to_string(g) + " has " + std::to_string(ko.data()[g + 1] - ko.data()[g]) +
                                " keys, more than width = " + std::to_string(width));
      if (!std::isfinite(scale)) throw py::value_error("scale must be finite, got " + std::to_string(scale));
      ignore = nullptr;
      if (!ignore_in.is_none()) {
        if (!py::isinstance<carray<uint8_t>>(ignore_in) && !py::isinstance<carray<bool>>(ignore_in))
          throw py::type_error("key_ignore must be None or a C-contiguous bool / uint8 array");
        py::array ig = py::reinterpret_borrow<py::array>(ignore_in);
        if (ig.ndim() != 1 || ig.shape(0) != k.rows)
          throw py::value_error("key_ignore must have shape (" + std::to_string(k.rows) + ",) (one per key row)");
        guard.pin(ig);
        ignore = static_cast<const uint8_t*>(ig.data());
      }
      if (threshold < 0 || threshold > 255)
        throw py::value_error("drop_threshold must be in 0..255, got " + std::to_string(threshold));
      drop = nullptr;
      if (threshold > 0) {
        if (!py::isinstance<carray<uint8_t>>(drop_in))
          throw py::type_error("drop_threshold > 0 needs drop, a C-contiguous uint8 array of random bytes");
        carray<uint8_t> d = drop_in.cast<carray<uint8_t>>();
        const int64_t elements = q.rows * heads * width;
        const int64_t need = threshold == 128 ? (elements + 7) / 8 : elements;
        if (d.ndim() != 1 || d.size() < need)
          throw py::value_error("drop must be 1-D with at least " + std::to_string(need) + " bytes (" +
                                std::to_string(elements) + " elements" + (threshold == 128 ? ", one bit each" : "") +
                                "), got " + std::to_string(d.size()));
        guard.pin(d);
        drop = d.data();
      }
      return in;
    };
    auto problem = [](const auto* tag, const Parsed& in, int64_t heads, int64_t width, bool causal, double scale,
                      int threshold) {
      using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
      const Rows &q = in.q, &k = in.k, &v = in.v;
      RaggedAttention<T> a;
      a.q = static_cast<const T*>(q.a.data());
      a.k = static_cast<const T*>(k.a.data());
      a.v = static_cast<const T*>(v.a.data());
      a.q_stride = q.stride;
      a.k_stride = k.stride;
      a.v_stride = v.stride;
      a.groups = static_cast<int64_t>(in.qo.size()) - 1;
      a.heads = heads;
      a.head_dim = q.width / heads;
      a.q_offsets = in.qo.data();
      a.k_offsets = in.ko.data();
      a.key_ignore = in.ignore;
      a.causal = causal;
      a.scale = static_cast<T>(scale);
      a.width = width;
      a.drop = in.drop;
      a.drop_threshold = threshold;
      return a;
    };
    m.def(
        "ragged_attention_forward",
        [setup, problem](const py::object& q_in, const py::object& k_in, const py::object& v_in,
                         const py::object& q_off_in, const py::object& k_off_in, int64_t heads, int64_t width,
                         bool causal, double scale, const py::object& ignore_in, const py::object& drop_in,
                         int threshold, int threads) -> py::tuple {
          InputGuard guard;
          const Parsed in = setup(guard, q_in, k_in, v_in, q_off_in, k_off_in, heads, width, scale, ignore_in,
                                  drop_in, threshold);
          const Rows& q = in.q;
          auto run = [&](const auto* tag) -> py::tuple {
            using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
            const auto a = problem(tag, in, heads, width, causal, scale, threshold);
            py::array_t<T> out({static_cast<py::ssize_t>(q.rows), static_cast<py::ssize_t>(q.width)});
            py::array_t<T> probs({static_cast<py::ssize_t>(q.rows), static_cast<py::ssize_t>(heads),
                                  static_cast<py::ssize_t>(width)});
            T* o = out.mutable_data();
            T* p = probs.mutable_data();
            {
              py::gil_scoped_release nogil;
              ragged_attention_forward(a, o, p, threads);
            }
            return py::make_tuple(out, probs);
          };
          if (q.a.dtype().is(py::dtype::of<float>())) return run(static_cast<const float*>(nullptr));
          return run(static_cast<const double*>(nullptr));
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("q_offsets"), py::arg("k_offsets"), py::arg("heads"),
        py::arg("width"), py::arg("causal") = false, py::arg("scale") = 1.0, py::arg("key_ignore") = py::none(),
        py::arg("drop") = py::none(), py::arg("drop_threshold") = 0, py::arg("threads") = 0,
        "Multi-head attention over ragged groups -> (out (q rows, heads * head_dim), probs (q rows, heads, width)).\n"
        "Group g: query rows q_offsets[g]:q_offsets[g+1] of q, key / value rows k_offsets[g]:k_offsets[g+1] of\n"
        "k and v (float32 or float64, rows may be spaced: column slices are never copied). See\n"
        "csrc/attention.hpp for the function and the dropout bytes; fastregen.reference.attention.\n"
        "GIL released; OpenMP over groups; the result never depends on `threads`.");
    m.def(
        "ragged_attention_backward",
        [setup, problem, rows_of](const py::object& q_in, const py::object& k_in, const py::object& v_in,
                                  const py::object& q_off_in, const py::object& k_off_in, int64_t heads,
                                  int64_t width, bool causal, double scale, const py::object& ignore_in,
                                  const py::object& drop_in, int threshold, const py::object& probs_in,
                                  const py::object& dout_in, const py::object& dq_in, const py::object& dk_in,
                                  const py::object& dv_in, int threads) {
          InputGuard guard;
          const Parsed in = setup(guard, q_in, k_in, v_in, q_off_in, k_off_in, heads, width, scale, ignore_in,
                                  drop_in, threshold);
          const Rows &q = in.q, &k = in.k, &v = in.v;
          const py::dtype dt = q.a.dtype();
          Rows dq = rows_of(guard, dq_in, dt, "dq", true), dk = rows_of(guard, dk_in, dt, "dk", true),
                     dv = rows_of(guard, dv_in, dt, "dv", true);
          if (dq.rows != q.rows || dq.width != q.width || dk.rows != k.rows || dk.width != k.width ||
              dv.rows != v.rows || dv.width != v.width)
            throw py::value_error("dq, dk, dv must have the shapes of q, k, v");
          const Rows dout = rows_of(guard, dout_in, dt, "dout", false);
          if (dout.rows != q.rows || dout.width != q.width || dout.stride != q.width)
            throw py::value_error("dout must be C-contiguous with the shape of q (" + std::to_string(q.rows) + ", " +
                                  std::to_string(q.width) + ")");
          if (!py::isinstance<py::array>(probs_in) || !py::reinterpret_borrow<py::array>(probs_in).dtype().is(dt))
            throw py::type_error("probs must be the forward's probs (dtype " + std::string(py::str(dt)) + ")");
          py::array probs = py::reinterpret_borrow<py::array>(probs_in);
          if (probs.ndim() != 3 || probs.shape(0) != q.rows || probs.shape(1) != heads || probs.shape(2) != width ||
              !(probs.flags() & py::array::c_style))
            throw py::value_error("probs must be C-contiguous of shape (q rows, heads, width) = (" +
                                  std::to_string(q.rows) + ", " + std::to_string(heads) + ", " + std::to_string(width) +
                                  ")");
          guard.pin(probs);
          auto run = [&](const auto* tag) {
            using T = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
            const auto a = problem(tag, in, heads, width, causal, scale, threshold);
            py::gil_scoped_release nogil;
            ragged_attention_backward(a, static_cast<const T*>(probs.data()), static_cast<const T*>(dout.a.data()),
                                      static_cast<T*>(dq.a.mutable_data()), dq.stride,
                                      static_cast<T*>(dk.a.mutable_data()), dk.stride,
                                      static_cast<T*>(dv.a.mutable_data()), dv.stride, threads);
          };
          if (dt.is(py::dtype::of<float>())) run(static_cast<const float*>(nullptr));
          else run(static_cast<const double*>(nullptr));
        },
        py::arg("q"), py::arg("k"), py::arg("v"), py::arg("q_offsets"), py::arg("k_offsets"), py::arg("heads"),
        py::arg("width"), py::arg("causal"), py::arg("scale"), py::arg("key_ignore"), py::arg("drop"),
        py::arg("drop_threshold"), py::arg("probs"), py::arg("dout"), py::arg("dq"), py::arg("dk"), py::arg("dv"),
        py::arg("threads") = 0,
        "Gradients of ragged_attention_forward (same arguments, its probs, dout C-contiguous) into dq, dk, dv:\n"
        "every row written (no zeroing needed; slices of one array when q, k, v are slices of one). GIL released.");
  }
  // ===== end section: ragged attention =====

  // ===== section: dropout =====
  m.def(
      "apply_dropout",
      [](const py::array& x, const py::array& raw_in, int threshold, const py::array& out, int threads) {
        const py::dtype dt = x.dtype();
        if (!dt.is(py::dtype::of<float>()) && !dt.is(py::dtype::of<double>()))
          throw py::type_error("x must be float32 or float64, got " + std::string(py::str(dt)));
        if (!(x.flags() & py::array::c_style)) throw py::value_error("x must be C-contiguous");
        if (!out.dtype().is(dt) || !(out.flags() & py::array::c_style) || !out.writeable() || out.size() != x.size())
          throw py::value_error("out must be a writable C-contiguous array of x's dtype and size (" +
                                std::to_string(x.size()) + ")");
        if (threshold < 1 || threshold > 255)
          throw py::value_error("threshold must be in 1..255, got " + std::to_string(threshold));
        if (!py::isinstance<carray<uint8_t>>(raw_in)) throw py::type_error("raw must be a C-contiguous uint8 array");
        const carray<uint8_t> raw = raw_in.cast<carray<uint8_t>>();
        const int64_t n = static_cast<int64_t>(x.size());
        const int64_t need = threshold == 128 ? (n + 7) / 8 : n;
        if (static_cast<int64_t>(raw.size()) < need)
          throw py::value_error("raw must hold at least " + std::to_string(need) + " bytes for " + std::to_string(n) +
                                " elements, got " + std::to_string(raw.size()));
        InputGuard guard;
        guard.pin(x);
        guard.pin(raw);
        guard.pin(out);
        py::array o = out;  // mutable_data() needs a non-const handle
        py::gil_scoped_release nogil;
        if (dt.is(py::dtype::of<float>()))
          apply_dropout(static_cast<const float*>(x.data()), n, raw.data(), threshold, static_cast<float*>(o.mutable_data()),
                        threads);
        else
          apply_dropout(static_cast<const double*>(x.data()), n, raw.data(), threshold,
                        static_cast<double*>(o.mutable_data()), threads);
      },
      py::arg("x"), py::arg("raw"), py::arg("threshold"), py::arg("out"), py::arg("threads") = 0,
      "out = x * keep: inverted dropout from random bytes (one bit per element at threshold 128), bit for bit\n"
      "x * fastregen.models.base.Dropout.keep(raw, ...). out may be x. See csrc/dropout.hpp; GIL released.");
  // ===== end section: dropout =====

  (void)&make_view;
  (void)&csr_to_numpy;
}
