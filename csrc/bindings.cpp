// The only file that knows about Python. It parses and validates numpy
// buffers, releases the GIL around long loops, and converts C++ results into
// numpy arrays. The kernels themselves live in plain C++ headers beside it.
//
// Sections are owned by topic; keep each topic's bindings inside its block.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "csr.hpp"
#include "entropy.hpp"
#include "mining.hpp"
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

// Validate a CSR pair coming from Python and build a view over it (no copy).
// Python-side validation already ran; this is the last line of defence so that
// nothing out of range ever reaches a kernel.
CsrView make_view(const carray<int64_t>& offsets, const carray<int32_t>& items) {
  if (offsets.ndim() != 1 || items.ndim() != 1)
    throw py::value_error("offsets and items must be 1-D arrays");
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
  // ===== end section: textio =====

  // ===== section: mining =====
  // ===== end section: mining =====

  // ===== section: entropy =====
  // ===== end section: entropy =====

  (void)&make_view;
  (void)&csr_to_numpy;
}
