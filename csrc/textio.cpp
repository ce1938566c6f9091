// See textio.hpp.
#include "textio.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <exception>
#include <limits>

namespace fastregen {

namespace {

inline bool is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

inline bool is_sep(const char* q, const char* end) {
  return q == end || *q == '\n' || is_space(static_cast<unsigned char>(*q));
}

// Parse one token [begin, end) (non-empty, no whitespace). Returns false and
// fills `reason` when it is not an int64.
inline bool parse_token(const char* begin, const char* end, int64_t& out, const char*& reason) {
  const char* p = begin;
  bool negative = false;
  if (*p == '+' || *p == '-') {
    negative = (*p == '-');
    ++p;
  }
  if (p == end) {
    reason = "not an integer";
    return false;
  }
  // Accumulate the magnitude unsigned so that INT64_MIN parses exactly.
  const uint64_t limit = negative ? uint64_t(1) << 63 : uint64_t(std::numeric_limits<int64_t>::max());
  uint64_t mag = 0;
  bool overflow = false;
  for (; p < end; ++p) {
    const unsigned d = static_cast<unsigned char>(*p) - '0';
    if (d > 9) {
      reason = "not an integer";
      return false;
    }
    // Keep scanning after an overflow: a later non-digit makes it "not an
    // integer", which is the more useful message (and what the oracle says).
    if (!overflow) {
      if (mag > (limit - d) / 10) overflow = true;
      else mag = mag * 10 + d;
    }
  }
  if (overflow) {
    reason = "out of int64 range";
    return false;
  }
  out = negative ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
  return true;
}

// Read the token starting at *pp (not whitespace, not '\n'), advance *pp past
// it. Fast path: up to 18 plain digits cannot overflow int64, so no checks in
// the loop; anything else (signs, long or bad tokens) takes parse_token,
// which also classifies the error.
inline bool next_token(const char*& p, const char* end, int64_t& value, const char*& reason) {
  const char* tok = p;
  uint64_t mag = 0;
  const char* q = p;
  while (q < end && static_cast<unsigned>(static_cast<unsigned char>(*q) - '0') <= 9 && q - tok < 18) {
    mag = mag * 10 + static_cast<unsigned>(*q - '0');
    ++q;
  }
  if (q > tok && is_sep(q, end)) {
    value = static_cast<int64_t>(mag);
    p = q;
    return true;
  }
  while (p < end && *p != '\n' && !is_space(static_cast<unsigned char>(*p))) ++p;
  return parse_token(tok, p, value, reason);
}

inline void set_error(TextError& e, int64_t line, const char* begin, const char* end, const char* reason) {
  e.ok = false;
  e.line = line;
  e.token.assign(begin, end);
  e.reason = reason;
}

enum class Scan { kEnd, kBad, kStopped };

// Walk the tokens of the line at p, advancing p: on_token(begin, end, value)
// for each, until the '\n' (or the end of the data) -> kEnd; a token that is
// not an int64 -> kBad (it starts at `tok`, ends at p, `reason` says why);
// on_token returning false -> kStopped (p just past that token). The one
// token loop of both parsers.
template <typename F>
inline Scan scan_tokens(const char*& p, const char* end, const char*& tok, const char*& reason, F&& on_token) {
  while (p < end && *p != '\n') {
    if (is_space(static_cast<unsigned char>(*p))) {
      ++p;
      continue;
    }
    tok = p;
    int64_t value = 0;
    if (!next_token(p, end, value, reason)) return Scan::kBad;
    if (!on_token(tok, p, value)) return Scan::kStopped;
  }
  return Scan::kEnd;
}

// Cut [0, n) into `threads` parts at line starts near equal byte offsets; every
// part is whole lines, so parts parse independently and concatenate to the
// serial result.
std::vector<std::size_t> line_cuts(const char* data, std::size_t n, int threads) {
  std::vector<std::size_t> cut(static_cast<std::size_t>(threads) + 1, n);
  cut[0] = 0;
  for (int t = 1; t < threads; ++t) {
    const std::size_t pos = std::max(cut[t - 1], n / threads * t);
    const void* nl = pos < n ? std::memchr(data + pos, '\n', n - pos) : nullptr;
    cut[t] = nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - data) + 1 : n;
  }
  return cut;
}

int pick_threads(std::size_t n, int n_threads) {
#if FASTREGEN_HAVE_OPENMP
  if (n < 2) return 1;
  return n_threads > 0 ? resolve_threads(n_threads) : (n >= kParallelBytes ? resolve_threads(0) : 1);
#else
  (void)n;
  (void)n_threads;
  return 1;
#endif
}

// Run `serial` on each part in parallel; worker exceptions are re-raised here.
template <typename R, typename F>
std::vector<R> run_parts(const char* data, const std::vector<std::size_t>& cut, F serial) {
  const int threads = static_cast<int>(cut.size()) - 1;
  std::vector<R> parts(static_cast<std::size_t>(threads));
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(threads));
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1)
#endif
  for (int t = 0; t < threads; ++t) {
    try {
      parts[t] = serial(data + cut[t], cut[t + 1] - cut[t]);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return parts;
}

// Number of leading parts to keep: up to and including the first with an error.
template <typename R>
std::size_t parts_used(const std::vector<R>& parts) {
  for (std::size_t t = 0; t < parts.size(); ++t)
    if (!parts[t].error.ok) return t + 1;
  return parts.size();
}

template <typename T>
void append(std::vector<T>& dst, std::size_t at, const std::vector<T>& src) {
  std::copy(src.begin(), src.end(), dst.begin() + static_cast<std::ptrdiff_t>(at));
}

TokenizedLines tokenize_serial(const char* data, std::size_t n) {
  TokenizedLines r;
  // A token takes at least two bytes (a digit and a separator) except the
  // last one, so this bound means the vector never reallocates; pages that
  // are never written are never resident.
  r.tokens.reserve(n / 2 + 1);
  r.counts.reserve(n / 64 + 16);
  const char* p = data;
  const char* const end = data + n;
  int64_t line = 0;
  const char* tok = nullptr;
  const char* reason = nullptr;
  while (p < end) {
    int64_t count = 0;
    const Scan scan = scan_tokens(p, end, tok, reason, [&](const char*, const char*, int64_t value) {
      r.tokens.push_back(value);
      ++count;
      return true;
    });
    if (scan == Scan::kBad) {
      r.tokens.resize(r.tokens.size() - static_cast<std::size_t>(count));  // whole lines only
      set_error(r.error, line, tok, p, reason);
      return r;
    }
    r.counts.push_back(count);
    ++line;
    if (p < end) ++p;  // the '\n'
  }
  return r;
}

// `out`, when given, receives the items instead of r.items (the caller
// guarantees room for n / 2 + 1 of them: a token needs two bytes).
UserLines user_lines_serial(const char* data, std::size_t n, int32_t* out) {
  UserLines r;
  if (!out) r.items.reserve(n / 2 + 1);
  std::size_t n_items = 0;
  const char* p = data;
  const char* const end = data + n;
  int64_t line = 0;
  while (p < end) {
    // One line: its tokens first (syntax errors win), then its meaning.
    const std::size_t first_item = n_items;
    int64_t count = 0, user = 0;
    const char* user_tok = nullptr;
    const char* user_end = nullptr;
    const char* item_tok = nullptr;
    const char* item_end = nullptr;
    const char* item_reason = nullptr;
    const char* tok = nullptr;
    const char* reason = nullptr;
    Scan scan = scan_tokens(p, end, tok, reason, [&](const char* b, const char* e, int64_t value) {
      if (count == 0) {
        user = value;
        user_tok = b;
        user_end = e;
      } else {
        if (value < 1 || value > std::numeric_limits<int32_t>::max()) {
          item_tok = b;
          item_end = e;
          item_reason = value < 0 ? "negative item id" : (value == 0 ? "item id 0" : "item id beyond int32");
          return false;
        }
        if (out) out[n_items] = static_cast<int32_t>(value);
        else r.items.push_back(static_cast<int32_t>(value));
        ++n_items;
      }
      ++count;
      return true;
    });
    if (scan == Scan::kStopped) {
      // A bad item: keep scanning this line's tokens, since a syntax error
      // later on the line is reported first (the oracle tokenizes a line
      // before judging it), then a negative user; a missing item cannot follow.
      scan = scan_tokens(p, end, tok, reason, [](const char*, const char*, int64_t) { return true; });
      if (scan != Scan::kBad) {
        if (user < 0) set_error(r.error, line, user_tok, user_end, "negative user id");
        else set_error(r.error, line, item_tok, item_end, item_reason);
        return r;
      }
    }
    if (scan == Scan::kBad) {
      set_error(r.error, line, tok, p, reason);
      return r;
    }
    if (count == 1) {
      set_error(r.error, line, user_tok, user_end, "no items");
      return r;
    }
    if (count > 0) {
      if (user < 0) {
        set_error(r.error, line, user_tok, user_end, "negative user id");
        return r;
      }
      r.users.push_back(user);
      r.lines.push_back(line);
      r.lengths.push_back(static_cast<int64_t>(n_items - first_item));
    }
    ++line;
    if (p < end) ++p;  // the '\n'
  }
  r.n_lines = line;
  r.n_items = static_cast<int64_t>(n_items);
  return r;
}

}  // namespace

TokenizedLines tokenize_int_lines(const char* data, std::size_t n, int n_threads) {
  const int threads = pick_threads(n, n_threads);
  if (threads <= 1) return tokenize_serial(data, n);
  std::vector<TokenizedLines> parts = run_parts<TokenizedLines>(
      data, line_cuts(data, n, threads), [](const char* d, std::size_t m) { return tokenize_serial(d, m); });
  const std::size_t used = parts_used(parts);
  std::size_t n_lines = 0, n_tokens = 0;
  for (std::size_t t = 0; t < used; ++t) {
    n_lines += parts[t].counts.size();
    n_tokens += parts[t].tokens.size();
  }
  TokenizedLines r;
  r.counts.resize(n_lines);
  r.tokens.resize(n_tokens);
  std::size_t line_base = 0, token_base = 0;
  for (std::size_t t = 0; t < used; ++t) {
    TokenizedLines& part = parts[t];
    append(r.counts, line_base, part.counts);
    append(r.tokens, token_base, part.tokens);
    if (!part.error.ok) {
      r.error = std::move(part.error);
      r.error.line += static_cast<int64_t>(line_base);
    }
    line_base += part.counts.size();
    token_base += part.tokens.size();
    part = TokenizedLines();  // free as we go
  }
  return r;
}

UserLines parse_user_lines(const char* data, std::size_t n, int n_threads, int32_t* out) {
  const int threads = pick_threads(n, n_threads);
  if (threads <= 1) return user_lines_serial(data, n, out);
  const std::vector<std::size_t> cut = line_cuts(data, n, threads);
  // Parts keep their own items; they are copied once, into `out` or r.items.
  std::vector<UserLines> parts = run_parts<UserLines>(
      data, cut, [](const char* d, std::size_t m) { return user_lines_serial(d, m, nullptr); });
  UserLines r;
  const std::size_t used = parts_used(parts);
  if (!parts[used - 1].error.ok) {
    // Only the error matters to the caller; its line counts from the chunk start.
    int64_t base = 0;
    for (std::size_t t = 0; t + 1 < used; ++t) base += parts[t].n_lines;
    r.error = std::move(parts[used - 1].error);
    r.error.line += base;
    return r;
  }
  std::size_t n_users = 0, n_items = 0;
  for (const UserLines& part : parts) {
    n_users += part.users.size();
    n_items += part.items.size();
  }
  r.users.resize(n_users);
  r.lines.resize(n_users);
  r.lengths.resize(n_users);
  if (!out) {
    r.items.resize(n_items);
    out = r.items.data();
  }
  std::vector<std::size_t> user_base(parts.size() + 1, 0), item_base(parts.size() + 1, 0);
  std::vector<int64_t> line_base(parts.size() + 1, 0);
  for (std::size_t t = 0; t < parts.size(); ++t) {
    user_base[t + 1] = user_base[t] + parts[t].users.size();
    item_base[t + 1] = item_base[t] + parts[t].items.size();
    line_base[t + 1] = line_base[t] + parts[t].n_lines;
  }
  const int n_parts = static_cast<int>(parts.size());
#if FASTREGEN_HAVE_OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1)
#endif
  for (int t = 0; t < n_parts; ++t) {  // plain copies: nothing here can throw
    UserLines& part = parts[t];
    append(r.users, user_base[t], part.users);
    append(r.lengths, user_base[t], part.lengths);
    for (std::size_t i = 0; i < part.lines.size(); ++i) r.lines[user_base[t] + i] = part.lines[i] + line_base[t];
    std::copy(part.items.begin(), part.items.end(), out + item_base[t]);
    part = UserLines();
  }
  r.n_lines = line_base[parts.size()];
  r.n_items = static_cast<int64_t>(n_items);
  return r;
}

std::string format_int_rows(const int64_t* offsets, const int64_t* values, int64_t row_begin,
                            int64_t row_end, char sep) {
  std::string out;
  if (row_end <= row_begin) return out;
  // 21 bytes hold any int64 and its separator.
  const int64_t n_values = offsets[row_end] - offsets[row_begin];
  out.resize(static_cast<std::size_t>(n_values * 21 + (row_end - row_begin)));
  char* w = out.data();
  char* const cap = out.data() + out.size();
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t j = offsets[r]; j < offsets[r + 1]; ++j) {
      if (j != offsets[r]) *w++ = sep;
      w = std::to_chars(w, cap, values[j]).ptr;
    }
    *w++ = '\n';
  }
  out.resize(static_cast<std::size_t>(w - out.data()));
  return out;
}

}  // namespace fastregen
