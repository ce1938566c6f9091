// Edge cases of the text kernels (csrc/textio.*): empty input, one line,
// blank lines, the int64 and int32 limits, each error reason, and the
// threaded parse equal to the serial one.
#include <cstdint>
#include <string>
#include <vector>

#include "check.hpp"
#include "textio.hpp"

using namespace fastregen;

namespace {

using V = std::vector<int64_t>;

TokenizedLines tok(const std::string& s, int threads = 1) { return tokenize_int_lines(s.data(), s.size(), threads); }
UserLines users(const std::string& s, int threads = 1) { return parse_user_lines(s.data(), s.size(), threads); }

void test_tokenize() {
  TokenizedLines r = tok("");
  CHECK(r.error.ok);
  CHECK(r.counts.empty());
  CHECK(r.tokens.empty());

  r = tok("7");  // one token, no final newline: still a line
  CHECK(r.error.ok);
  CHECK(r.counts == V{1});
  CHECK(r.tokens == V{7});

  r = tok("1 2\n\n\t3\r\n");  // a blank line counts 0; '\r' is whitespace
  CHECK(r.error.ok);
  CHECK(r.counts == (V{2, 0, 1}));
  CHECK(r.tokens == (V{1, 2, 3}));

  r = tok("9223372036854775807 -9223372036854775808 +5");  // the int64 limits
  CHECK(r.error.ok);
  CHECK(r.tokens == (V{INT64_MAX, INT64_MIN, 5}));

  r = tok("1\n9223372036854775808\n");
  CHECK(!r.error.ok);
  CHECK_EQ(r.error.line, 1);
  CHECK_EQ(r.error.token, std::string("9223372036854775808"));
  CHECK_EQ(r.error.reason, std::string("out of int64 range"));
  CHECK(r.counts == V{1});  // the lines before the error, whole

  r = tok("4 5\n6 1x 7\n");
  CHECK(!r.error.ok);
  CHECK_EQ(r.error.line, 1);
  CHECK_EQ(r.error.token, std::string("1x"));
  CHECK_EQ(r.error.reason, std::string("not an integer"));
  CHECK(r.tokens == (V{4, 5}));
}

void test_user_lines() {
  UserLines r = users("");
  CHECK(r.error.ok);
  CHECK(r.users.empty());
  CHECK_EQ(r.n_items, 0);

  r = users("5 1 2\n\n6 2147483647\n");  // a blank line skipped; the largest int32 item
  CHECK(r.error.ok);
  CHECK(r.users == (V{5, 6}));
  CHECK(r.lines == (V{0, 2}));
  CHECK(r.lengths == (V{2, 1}));
  CHECK(r.items == (std::vector<int32_t>{1, 2, INT32_MAX}));
  CHECK_EQ(r.n_lines, 3);

  r = users("1 1 1 1");  // repeats are kept
  CHECK(r.error.ok);
  CHECK(r.items == (std::vector<int32_t>{1, 1, 1}));

  const struct {
    const char* text;
    const char* token;
    const char* reason;
  } bad[] = {
      {"1 2\n7\n", "7", "no items"},
      {"-1 2\n", "-1", "negative user id"},
      {"1 -2\n", "-2", "negative item id"},
      {"1 0\n", "0", "item id 0"},
      {"1 2147483648\n", "2147483648", "item id beyond int32"},
      {"1 0 x\n", "x", "not an integer"},  // a syntax error later on the line wins
  };
  for (const auto& b : bad) {
    r = users(b.text);
    CHECK(!r.error.ok);
    CHECK_EQ(r.error.token, std::string(b.token));
    CHECK_EQ(r.error.reason, std::string(b.reason));
  }
  r = users("1 2\n3 4\n\n8 0\n");
  CHECK_EQ(r.error.line, 3);
}

void test_threads() {
  // Above kParallelBytes the input is cut at line boundaries; the parts must join seamlessly.
  std::string text;
  int64_t expect_items = 0;
  for (int64_t u = 0; text.size() < kParallelBytes + 4096; ++u) {
    text += std::to_string(u);
    for (int64_t j = 0; j <= u % 7; ++j) {
      text += ' ' + std::to_string(1 + (u * 31 + j) % 1000);
      ++expect_items;
    }
    text += u % 5 == 0 ? "\n\n" : "\n";
  }
  const UserLines one = users(text, 1), two = users(text, 2);
  CHECK(one.error.ok && two.error.ok);
  CHECK_EQ(one.n_items, expect_items);
  CHECK(one.users == two.users);
  CHECK(one.lines == two.lines);
  CHECK(one.lengths == two.lengths);
  CHECK(one.items == two.items);
  CHECK_EQ(one.n_lines, two.n_lines);
  const TokenizedLines t1 = tok(text, 1), t2 = tok(text, 2);
  CHECK(t1.counts == t2.counts);
  CHECK(t1.tokens == t2.tokens);

  // An error in a later part is reported with its line counted from the start of the input.
  std::string broken = text + "9 zz\n";
  const UserLines e1 = users(broken, 1), e2 = users(broken, 2);
  CHECK(!e1.error.ok && !e2.error.ok);
  CHECK_EQ(e1.error.line, e2.error.line);
  CHECK_EQ(e1.error.line, one.n_lines);
}

void test_format() {
  const V offsets{0, 2, 2, 3}, values{1, -2, INT64_MAX};
  CHECK_EQ(format_int_rows(offsets.data(), values.data(), 0, 3, ' '), std::string("1 -2\n\n9223372036854775807\n"));
  CHECK_EQ(format_int_rows(offsets.data(), values.data(), 1, 2, ' '), std::string("\n"));
  CHECK_EQ(format_int_rows(offsets.data(), values.data(), 2, 2, ' '), std::string(""));
  CHECK_EQ(format_int_rows(offsets.data(), values.data(), 0, 1, ','), std::string("1,-2\n"));
  // format, then tokenize: the same values back
  const std::string text = format_int_rows(offsets.data(), values.data(), 0, 3, ' ');
  const TokenizedLines r = tok(text);
  CHECK(r.counts == (V{2, 0, 1}));
  CHECK(r.tokens == values);
}

}  // namespace

int main() {
  test_tokenize();
  test_user_lines();
  test_threads();
  test_format();
  return check::report("test_textio");
}
