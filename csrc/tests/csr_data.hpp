// Test data for the kernels that read a CsrView: sequences written as nested
// vectors, kept in owning CSR arrays that outlive the view.
#pragma once

#include <cstdint>
#include <vector>

#include "csr.hpp"

namespace check {

using Seqs = std::vector<std::vector<int32_t>>;

struct Csr {
  std::vector<int64_t> offsets{0};
  std::vector<int32_t> items;
  explicit Csr(const Seqs& seqs) {
    for (const auto& s : seqs) {
      items.insert(items.end(), s.begin(), s.end());
      offsets.push_back(static_cast<int64_t>(items.size()));
    }
  }
  fastregen::CsrView view() const {
    return fastregen::CsrView{offsets.data(), items.data(), static_cast<int64_t>(offsets.size()) - 1};
  }
};

}  // namespace check
