// The first exception thrown inside an OpenMP region, kept to be re-raised on the calling thread:
// an exception must not escape a parallel region (std::terminate), and the caller should see the
// first error rather than whichever thread failed last.
#pragma once

#include <atomic>
#include <exception>

namespace fastregen {

class ErrorSlot {
 public:
  // In a catch block: keep the exception being handled if none is kept yet (thread-safe).
  void capture() {
    bool expected = false;
    if (failed_.compare_exchange_strong(expected, true)) error_ = std::current_exception();
  }
  // Whether an exception was captured: lets a worker skip its remaining items.
  bool failed() const { return failed_.load(std::memory_order_relaxed); }
  // After the region: re-raise the kept exception, if any.
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::exception_ptr error_;
};

}  // namespace fastregen
