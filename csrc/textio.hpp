// Text I/O kernels of the data layer: a tokenizer for whitespace-separated
// integer lines and a formatter for the reverse direction.
//
// The tokenizer is the hot loop of `fastregen.data.load`: Python reads a file
// in bounded chunks of complete lines and hands each chunk here, so memory
// stays proportional to one chunk plus the compact result arrays. It never
// throws on bad input: the first bad token is reported in `TextError` so that
// the caller can name the file and the line (the chunk knows neither).
//
// Grammar (the pure-Python oracle is fastregen/reference/textio.py):
//   lines are separated by '\n'; a final line without '\n' still counts;
//   tokens are separated by ASCII whitespace ' ', '\t', '\r', '\v', '\f';
//   a token is [+-]?[0-9]+ whose value fits in int64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "csr.hpp"

namespace fastregen {

struct TextError {
  bool ok = true;
  int64_t line = -1;        // 0-based line index within the chunk
  std::string token;        // the offending token, verbatim
  std::string reason;       // "not an integer" | "out of int64 range"
};

struct TokenizedLines {
  std::vector<int64_t> counts;  // tokens on each line, blank lines included (0)
  std::vector<int64_t> tokens;  // all tokens, line after line
  TextError error;              // on error, counts/tokens hold the lines before it
};

// Inputs at least this large are split across threads when n_threads <= 0.
constexpr std::size_t kParallelBytes = std::size_t(4) << 20;

// Tokenize `n` bytes of integer lines. Re-entrant, touches nothing but `data`.
// n_threads <= 0: all OpenMP threads for inputs >= kParallelBytes, else one;
// n_threads > 0: that many, clamped by resolve_threads (the result never depends on it). The
// input is cut at line boundaries, the parts are tokenized in parallel and
// concatenated; the first error in file order wins.
TokenizedLines tokenize_int_lines(const char* data, std::size_t n, int n_threads = 0);

// One chunk of a `user item item ...` file, parsed and validated.
struct UserLines {
  std::vector<int64_t> users;    // first token of each non-blank line
  std::vector<int64_t> lines;    // 0-based line index (within the chunk) of each user
  std::vector<int64_t> lengths;  // items on each user's line (>= 1)
  std::vector<int32_t> items;    // the items, line after line, each in 1..INT32_MAX (empty with `out`)
  int64_t n_items = 0;           // number of items
  int64_t n_lines = 0;           // lines in the chunk, blank ones included
  TextError error;               // on error only `error` is meaningful
};

// Parse `user item item ...` lines; blank lines are skipped. The first bad
// line (in order) is reported; within it, in this order: a token that is not
// an int64 (reason as in tokenize_int_lines, token = it), a user without
// items ("no items", token = the user), a negative user ("negative user id"),
// the first bad item left to right ("negative item id", "item id 0",
// "item id beyond int32", token = the item). Threads as in tokenize_int_lines.
// With `out` (room for n / 2 + 1 items, the most n bytes can hold) the items
// are written there instead of into `items`, saving a copy of the largest
// array; after an error its contents are unspecified.
UserLines parse_user_lines(const char* data, std::size_t n, int n_threads = 0, int32_t* out = nullptr);

// Format rows of integers, one row per line: row r is
// values[offsets[r] .. offsets[r+1]) joined by `sep`, followed by '\n'.
// Rows [row_begin, row_end) only. `offsets` must be validated by the caller.
std::string format_int_rows(const int64_t* offsets, const int64_t* values, int64_t row_begin,
                            int64_t row_end, char sep);

}  // namespace fastregen
