// A minimal check macro for the C++ unit tests (no test framework: CI builds
// these with nothing but a compiler and CMake, and has no network).
//
// CHECK(cond) / CHECK_EQ(a, b) record a failure with file, line and the
// expression and go on; CHECK_THROWS(expr, Exception) checks that `expr`
// throws that exception type. main() returns check::report(): 0 when every
// check passed, 1 otherwise (ctest reads the exit status).
#pragma once

#include <cstdio>
#include <sstream>
#include <string>

namespace check {

struct Counts {
  int run = 0;
  int failed = 0;
};

// One counter per test executable; the tests are single-threaded.
inline Counts& counts() {
  static Counts c;
  return c;
}

inline void record(bool ok, const char* file, int line, const std::string& what) {
  ++counts().run;
  if (ok) return;
  ++counts().failed;
  std::fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what.c_str());
}

template <typename A, typename B>
void record_eq(const A& a, const B& b, const char* file, int line, const char* expr_a, const char* expr_b) {
  const bool ok = a == b;
  if (ok) {
    record(true, file, line, "");
    return;
  }
  std::ostringstream msg;
  msg << expr_a << " == " << expr_b << " (" << a << " vs " << b << ")";
  record(false, file, line, msg.str());
}

inline int report(const char* name) {
  std::fprintf(stderr, "%s: %d checks, %d failed\n", name, counts().run, counts().failed);
  return counts().failed == 0 && counts().run > 0 ? 0 : 1;
}

}  // namespace check

#define CHECK(cond) ::check::record(static_cast<bool>(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ(a, b) ::check::record_eq((a), (b), __FILE__, __LINE__, #a, #b)
#define CHECK_THROWS(expr, Exception)                                                 \
  do {                                                                                \
    bool thrown_ = false;                                                             \
    try {                                                                             \
      (void)(expr);                                                                   \
    } catch (const Exception&) {                                                      \
      thrown_ = true;                                                                 \
    } catch (...) {                                                                   \
    }                                                                                 \
    ::check::record(thrown_, __FILE__, __LINE__, #expr " throws " #Exception);        \
  } while (0)
