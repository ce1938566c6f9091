// Edge cases of the ragged attention (csrc/attention.*) against a direct
// double-precision evaluation of the header's definition: no groups, empty
// groups, one key, repeated keys, a query with no visible key (NaN), causal
// masks, ignored keys, dropout bits and bytes, 50 keys (the regenerator's
// max_len, several 16-key blocks), gradients by central differences, and
// thread independence.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "attention.hpp"
#include "check.hpp"

using namespace fastregen;

namespace {

struct Case {
  int64_t heads = 2, dh = 3, width = 0;
  std::vector<int64_t> q_off{0}, k_off{0};
  std::vector<double> q, k, v;  // rows x (heads * dh), contiguous
  std::vector<uint8_t> ignore, drop;
  bool causal = false;
  int threshold = 0;
  double scale = 0.5;

  RaggedAttention<double> problem() const {
    RaggedAttention<double> a;
    a.q = q.data();
    a.k = k.data();
    a.v = v.data();
    a.q_stride = a.k_stride = a.v_stride = heads * dh;
    a.groups = static_cast<int64_t>(q_off.size()) - 1;
    a.heads = heads;
    a.head_dim = dh;
    a.q_offsets = q_off.data();
    a.k_offsets = k_off.data();
    a.key_ignore = ignore.empty() ? nullptr : ignore.data();
    a.causal = causal;
    a.scale = scale;
    a.width = width;
    a.drop = drop.empty() ? nullptr : drop.data();
    a.drop_threshold = threshold;
    return a;
  }
};

Case random_case(std::mt19937_64& rng, std::vector<int64_t> q_len, std::vector<int64_t> k_len) {
  Case c;
  std::normal_distribution<double> normal;
  for (size_t g = 0; g < q_len.size(); ++g) {
    c.q_off.push_back(c.q_off.back() + q_len[g]);
    c.k_off.push_back(c.k_off.back() + k_len[g]);
    c.width = std::max(c.width, k_len[g]);
  }
  const int64_t D = c.heads * c.dh;
  for (int64_t i = 0; i < c.q_off.back() * D; ++i) c.q.push_back(normal(rng));
  for (int64_t i = 0; i < c.k_off.back() * D; ++i) {
    c.k.push_back(normal(rng));
    c.v.push_back(normal(rng));
  }
  return c;
}

double keep(const Case& c, int64_t e) {
  if (c.threshold == 0) return 1;
  if (c.threshold == 128) return ((c.drop[e / 8] >> (e % 8)) & 1) ? 2 : 0;
  return c.drop[e] >= c.threshold ? 256.0 / (256 - c.threshold) : 0;
}

// The header's definition, written out.
std::vector<double> direct(const Case& c) {
  const int64_t D = c.heads * c.dh;
  std::vector<double> out(static_cast<size_t>(c.q_off.back() * D), 0.0);
  for (size_t g = 0; g + 1 < c.q_off.size(); ++g)
    for (int64_t r = c.q_off[g]; r < c.q_off[g + 1]; ++r)
      for (int64_t h = 0; h < c.heads; ++h) {
        std::vector<int64_t> seen;
        for (int64_t j = 0; j < c.k_off[g + 1] - c.k_off[g]; ++j)
          if ((c.ignore.empty() || !c.ignore[c.k_off[g] + j]) && (!c.causal || j <= r - c.q_off[g])) seen.push_back(j);
        if (seen.empty()) {
          for (int64_t d = 0; d < c.dh; ++d) out[r * D + h * c.dh + d] = NAN;
          continue;
        }
        std::vector<double> s;
        double top = -INFINITY, sum = 0;
        for (int64_t j : seen) {
          double x = 0;
          for (int64_t d = 0; d < c.dh; ++d) x += c.q[r * D + h * c.dh + d] * c.k[(c.k_off[g] + j) * D + h * c.dh + d];
          s.push_back(c.scale * x);
          top = std::max(top, s.back());
        }
        for (double& x : s) sum += (x = std::exp(x - top));
        for (size_t i = 0; i < seen.size(); ++i) {
          const double w = s[i] / sum * keep(c, (r * c.heads + h) * c.width + seen[i]);
          for (int64_t d = 0; d < c.dh; ++d)
            out[r * D + h * c.dh + d] += w * c.v[(c.k_off[g] + seen[i]) * D + h * c.dh + d];
        }
      }
  return out;
}

std::vector<double> forward(const Case& c, int threads, std::vector<double>* probs = nullptr) {
  std::vector<double> out(c.q.size()), p(static_cast<size_t>(c.q_off.back() * c.heads * c.width));
  ragged_attention_forward(c.problem(), out.data(), p.data(), threads);
  if (probs != nullptr) *probs = p;
  return out;
}

bool same(double a, double b, double tol) { return (std::isnan(a) && std::isnan(b)) || std::fabs(a - b) <= tol; }

void check_against_direct(const Case& c) {
  const auto got = forward(c, 1), want = direct(c);
  bool ok = got.size() == want.size();
  for (size_t i = 0; ok && i < got.size(); ++i) ok = same(got[i], want[i], 1e-12);
  CHECK(ok);
}

// d/dx of sum(out * w) by central differences, for every input x of q, k, v.
void check_gradients(Case c) {
  const size_t n = c.q.size();
  std::vector<double> w(n), probs;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  for (double& x : w) x = normal(rng);
  forward(c, 1, &probs);
  std::vector<double> dq(n, NAN), dk(c.k.size(), NAN), dv(c.v.size(), NAN);  // every element written
  const int64_t D = c.heads * c.dh;
  ragged_attention_backward(c.problem(), probs.data(), w.data(), dq.data(), D, dk.data(), D, dv.data(), D, 1);
  auto loss = [&](const Case& x) {
    const auto out = forward(x, 1);
    double s = 0;
    for (size_t i = 0; i < n; ++i)
      if (!std::isnan(out[i])) s += out[i] * w[i];
    return s;
  };
  bool ok = true;
  for (auto [vec, grad] : {std::make_pair(&Case::q, &dq), std::make_pair(&Case::k, &dk), std::make_pair(&Case::v, &dv)})
    for (size_t i = 0; i < (c.*vec).size(); ++i) {
      Case up = c, down = c;
      (up.*vec)[i] += 1e-6;
      (down.*vec)[i] -= 1e-6;
      ok = ok && std::fabs((loss(up) - loss(down)) / 2e-6 - (*grad)[i]) < 1e-6;
    }
  CHECK(ok);
}

}  // namespace

int main() {
  std::mt19937_64 rng(1);
  // no groups at all; empty groups; one key; 50 keys
  check_against_direct(random_case(rng, {}, {}));
  check_against_direct(random_case(rng, {0, 2, 0}, {3, 0, 0}));  // a group with queries and no keys: NaN
  check_against_direct(random_case(rng, {1}, {1}));
  check_against_direct(random_case(rng, {4, 50}, {50, 50}));
  // repeated keys weigh equally: the output is the mean of their values
  {
    Case c = random_case(rng, {1}, {3});
    for (int64_t j = 1; j < 3; ++j)
      for (int64_t i = 0; i < c.heads * c.dh; ++i) {
        c.k[j * c.heads * c.dh + i] = c.k[i];
        c.v[j * c.heads * c.dh + i] = c.v[i];
      }
    const auto out = forward(c, 1);
    bool ok = true;
    for (int64_t i = 0; i < c.heads * c.dh; ++i) ok = ok && std::fabs(out[i] - c.v[i]) < 1e-12;
    CHECK(ok);
  }
  // causal, ignored keys, dropout bits and bytes
  for (int threshold : {0, 128, 51}) {
    Case c = random_case(rng, {3, 5, 1}, {3, 5, 1});
    c.causal = true;
    c.threshold = threshold;
    c.ignore = {0, 1, 0, 0, 0, 1, 0, 0, 1};
    const int64_t elements = c.q_off.back() * c.heads * c.width;
    for (int64_t i = 0; i < (threshold == 128 ? (elements + 7) / 8 : elements); ++i) c.drop.push_back(rng() & 255);
    check_against_direct(c);
    check_gradients(c);
  }
  check_gradients(random_case(rng, {2, 3}, {4, 18}));  // keys past one 16-key block
  // the result never depends on the thread count
  {
    std::vector<int64_t> q_len, k_len;
    for (int g = 0; g < 400; ++g) {
      q_len.push_back(1 + rng() % 12);
      k_len.push_back(1 + rng() % 30);
    }
    const Case c = random_case(rng, q_len, k_len);
    CHECK(forward(c, 1) == forward(c, 2));
  }
  return check::report("attention");
}
