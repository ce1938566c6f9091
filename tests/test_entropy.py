"""Entropy core: LZ real entropy, predictability, Markov model, pattern miner, segmenter.

Fast paths are checked against ``fastregen.reference.entropy``. Integer outputs
must be equal; float outputs are computed with the same operations in the same
order on both sides (``std::log2`` and ``math.log2`` are the same libm call),
so they are compared with ``==`` as well -- except the predictability bisection,
which is vectorised with NumPy and agrees to 1e-12.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import _core
from fastregen import entropy as E
from fastregen import patterns as P
from fastregen.data import SequenceDataset
from fastregen.reference import entropy as R

small_seqs = st.lists(st.lists(st.integers(1, 4), max_size=30), min_size=1, max_size=6)


def same_floats(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


# ---------------------------------------------------------------- real entropy


@settings(max_examples=150, deadline=None)
@given(small_seqs)
def test_lz_matches_reference(seqs):
    ds = SequenceDataset.from_lists(seqs)
    want = [R.lambda_sum(s) for s in seqs]
    for method in ("auto", "automaton", "quadratic"):
        assert E.lambda_sums(ds, method=method).tolist() == want
    assert same_floats(E.real_entropy(ds), R.real_entropy(seqs))
    assert same_floats(E.real_entropy(ds, base=math.e), R.real_entropy(seqs, base=math.e))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 2), min_size=40, max_size=80))
def test_lz_binary_long_matches_reference(seq):
    want = [R.lambda_sum(seq)]
    for method in ("auto", "automaton", "quadratic"):
        assert E.lambda_sums([seq], method=method).tolist() == want


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(1, 3), max_size=400), min_size=1, max_size=5))
def test_automaton_matches_quadratic_on_long_sequences(seqs):
    # Past what the literal reference can check quickly: the two C++ algorithms agree.
    ds = SequenceDataset.from_lists(seqs)
    assert E.lambda_sums(ds, method="automaton").tolist() == E.lambda_sums(ds, method="quadratic").tolist()


def test_edge_lengths():
    S = E.real_entropy([[], [7], [7, 7], [7, 8]])
    assert math.isnan(S[0])  # documented: undefined for n = 0
    assert S[1] == 0.0  # log2(1) = 0
    # [7, 7]: Lambda = 1, 2 (s[1:] occurs before, so n - i + 1 = 2) -> 2 / 3
    assert S[2] == 2.0 / 3.0
    assert S[3] == 1.0  # all distinct: Lambda_i = 1, S = log2 n
    assert E.lambda_sums([[], [7]]).tolist() == [0, 1]


@pytest.mark.parametrize("n", [1, 2, 5, 64, 1000])
@pytest.mark.parametrize("method", ["automaton", "quadratic"])
def test_constant_closed_form(n, method):
    # s[i:i+l] lies inside s[0:i] iff l <= i, so L_i = min(i, n - i).
    expected = sum(min(i, n - i) + 1 for i in range(n))
    assert E.lambda_sums([[3] * n], method=method).tolist() == [expected]


@pytest.mark.parametrize("n,p", [(10, 3), (100, 7), (1000, 13), (10_000, 50)])
def test_periodic_closed_form(n, p):
    # Period of p distinct items: the earliest aligned occurrence starts at i mod p.
    seq = [(i % p) * 1000 + 1 for i in range(n)]
    expected = sum((min(i - i % p, n - i) if i >= p else 0) + 1 for i in range(n))
    assert E.lambda_sums([seq]).tolist() == [expected]
    if n <= 1000:
        assert E.lambda_sums([seq], method="quadratic").tolist() == [expected]
    if n <= 100:
        assert R.lambda_sum(seq) == expected


def test_all_distinct_is_log2_n():
    for n in (2, 10, 1000):
        assert E.real_entropy([list(range(1, n + 1))])[0] == n * math.log2(n) / n


def test_items_are_whole_symbols():
    # Joined as strings "1" "2" "12" would make 12 match "1","2" and vice versa.
    assert E.lambda_sums([[1, 2, 12]]).tolist() == [3]
    assert E.lambda_sums([[12, 1, 2]]).tolist() == [3]
    assert E.lambda_sums([[1, 2, 12, 1, 2]]).tolist() == [R.lambda_sum([1, 2, 12, 1, 2])] == [1 + 1 + 1 + 3 + 2]
    big = np.iinfo(np.int32).max
    assert E.lambda_sums([[big, 1, big, 1]]).tolist() == [R.lambda_sum([big, 1, big, 1])]


def test_threads_do_not_change_results():
    rng = np.random.default_rng(1)
    seqs = [rng.integers(1, 6, rng.integers(0, 200)).tolist() for _ in range(300)]
    ds = SequenceDataset.from_lists(seqs)
    one = E.real_entropy(ds, threads=1)
    assert same_floats(one, E.real_entropy(ds, threads=2))
    assert same_floats(one, E.real_entropy(ds))


def test_n_distinct():
    assert E.n_distinct([[], [1], [1, 1, 2], [5, 4, 3, 4]]).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("base", [0, -2, 1, 0.5, 1 / math.e, float("inf"), float("nan")])
def test_bad_base(base):
    # Issue 21: a base in (0, 1) gave negative entropies.
    with pytest.raises(ValueError, match="base"):
        E.real_entropy([[1, 2]], base=base)
    with pytest.raises(ValueError, match="base"):
        E.predictability([1.0], [3], base=base)
    with pytest.raises(ValueError, match="base"):
        E.entropy_report([[1, 2]], base=base)
    with pytest.raises(ValueError, match="base must be a finite number > 1"):
        _core.real_entropy(np.array([0, 2]), np.array([1, 2], np.int32), base, 1)


def test_bad_method():
    with pytest.raises(ValueError, match="'suffix-array'"):
        E.lambda_sums([[1]], method="suffix-array")


def test_bad_data_type():
    with pytest.raises(TypeError, match="data"):
        E.real_entropy("1 2 3")
    with pytest.raises(ValueError, match="threads"):
        E.real_entropy([[1]], threads=-1)


@pytest.mark.data
def test_beauty_matches_reference(beauty_path):
    from fastregen import data

    ds = data.load(beauty_path).subset(np.arange(400))
    seqs = ds.to_lists()
    want = [R.lambda_sum(s) for s in seqs]
    assert E.lambda_sums(ds).tolist() == want
    assert E.lambda_sums(ds, method="automaton").tolist() == want
    assert same_floats(E.real_entropy(ds), R.real_entropy(seqs))


# -------------------------------------------------------------- predictability


def test_predictability_edge_cases():
    out = E.predictability([0.0, 1.3, 2.0, 5.0, 0.0, float("nan"), 0.7], [5, 1, 4, 4, 0, 3, 2])
    assert out[0] == 1.0  # S = 0
    assert out[1] == 1.0  # N = 1
    assert out[2] == 0.25  # S = log2 N -> 1/N
    assert out[3] == 0.25  # S > log2 N -> 1/N
    assert math.isnan(out[4])  # N = 0: empty sequence
    assert math.isnan(out[5])
    # N = 2: S = H(Pi) exactly (log2(N - 1) = 0)
    p = out[6]
    assert 0.5 < p < 1.0
    assert abs(-p * math.log2(p) - (1 - p) * math.log2(1 - p) - 0.7) < 1e-12


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 12.0), st.integers(0, 5000))
def test_predictability_matches_reference(s, n):
    got = E.predictability(s, n)
    want = R.predictability(s, n)
    assert got.shape == ()
    if math.isnan(want):
        assert math.isnan(got)
    else:
        assert abs(float(got) - want) <= 1e-12


def test_predictability_solves_fano_and_is_monotone():
    n = 20
    S = np.linspace(0.01, math.log2(n) - 0.01, 50)
    pi = E.predictability(S, n)
    assert np.all(np.diff(pi) < 0)
    h = -pi * np.log2(pi) - (1 - pi) * np.log2(1 - pi)
    assert np.max(np.abs(h + (1 - pi) * np.log2(n - 1) - S)) < 1e-10
    # the same entropy in nats gives the same predictability
    assert np.allclose(E.predictability(S / math.log2(math.e), n, base=math.e), pi, rtol=0, atol=1e-12)


def test_predictability_bad_input():
    with pytest.raises(ValueError, match="-0.5"):
        E.predictability([-0.5], [3])
    with pytest.raises(ValueError, match="n_distinct"):
        E.predictability([1.0], [-1])
    with pytest.raises(TypeError, match="n_distinct"):
        E.predictability([1.0], [2.5])


def test_entropy_report():
    rep = E.entropy_report([[1, 2, 1, 2, 1, 2], [], [3]])
    assert rep.lengths.tolist() == [6, 0, 1]
    assert rep.n_distinct.tolist() == [2, 0, 1]
    assert rep.predictability[2] == 1.0 and math.isnan(rep.predictability[1])
    assert rep.summary()["empty"] == 1
    assert "predictability" in str(rep)


# ---------------------------------------------------------------- Markov model


@settings(max_examples=60, deadline=None)
@given(small_seqs, st.integers(0, 3), st.lists(st.lists(st.integers(1, 5), max_size=5), min_size=1, max_size=10))
def test_markov_matches_reference(seqs, order, contexts):
    ds = SequenceDataset.from_lists(seqs, num_items=5)
    m = E.MarkovModel(order).fit(ds)
    ref = R.MarkovModel(order, 5).fit(seqs)
    nxt = [(len(c) * 7 + 3) % 5 + 1 for c in contexts]
    assert m.prob(contexts, nxt).tolist() == [ref.prob(c, x) for c, x in zip(contexts, nxt)]


@pytest.mark.parametrize("order", [0, 1, 2, 4])
def test_markov_is_a_distribution(order):
    rng = np.random.default_rng(3)
    seqs = [rng.integers(1, 9, rng.integers(1, 30)).tolist() for _ in range(40)]
    m = E.MarkovModel(order).fit(SequenceDataset.from_lists(seqs, num_items=10))
    for ctx in ([], [1], [3, 4], seqs[0][:5], [9, 9, 9]):
        p = m.prob([ctx] * 10, np.arange(1, 11))
        assert np.all((p > 0) & (p <= 1))
        assert abs(p.sum() - 1.0) < 1e-12


def test_markov_sequence_probs_aligned():
    seqs = [[1, 2, 3, 1, 2, 3], [2, 3], [4]]
    ds = SequenceDataset.from_lists(seqs)
    m = E.MarkovModel(2).fit(ds)
    ref = R.MarkovModel(2, 4).fit(seqs)
    want = [ref.prob(s[max(0, t - 2) : t], s[t]) for s in seqs for t in range(len(s))]
    assert m.sequence_probs(ds).tolist() == want


def test_markov_bad_input():
    with pytest.raises(ValueError, match="order"):
        E.MarkovModel(-1)
    with pytest.raises(ValueError, match="not fitted"):
        E.MarkovModel(1).prob([[1]], [1])
    m = E.MarkovModel(1).fit([[1, 2]])
    with pytest.raises(ValueError, match="3"):
        m.prob([[1]], [3])  # outside 1..num_items
    with pytest.raises(ValueError, match="one item per context"):
        m.prob([[1], [2]], [1])
    # ids that do not fit int32, or floats, used to wrap / truncate into valid ids
    with pytest.raises(ValueError, match="next_items has values outside the int32 range"):
        m.prob([[1]], np.array([2**32 + 1], dtype=np.int64))
    with pytest.raises(TypeError, match="next_items must hold integers"):
        m.prob([[1]], [1.7])
    with pytest.raises(TypeError, match="num_items must be an integer, got 2.5"):
        E.MarkovModel(1).fit([[1, 2]], num_items=2.5)  # was truncated to 2


# ---------------------------------------------------------------- pattern miner


def as_tuples(p: P.Patterns):
    return [(tuple(p[k].tolist()), float(p.entropy[k]), int(p.count[k])) for k in range(len(p))]


mine_seqs = st.lists(st.lists(st.integers(1, 4), max_size=20), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(mine_seqs, st.floats(0.5, 8.0), st.integers(0, 3), st.integers(1, 3), st.integers(1, 5))
def test_miner_markov_matches_reference(seqs, theta, order, min_count, max_len):
    ds = SequenceDataset.from_lists(seqs, num_items=4)
    got = P.mine_entropy_patterns(ds, E.MarkovModel(order).fit(ds), theta, min_count=min_count, max_len=max_len)
    ref = R.mine_entropy_patterns(
        seqs, theta, min_count=min_count, max_len=max_len, markov=R.MarkovModel(order, 4).fit(seqs)
    )
    assert as_tuples(got) == ref  # same patterns, counts and bit-identical entropies


@settings(max_examples=40, deadline=None)
@given(mine_seqs, st.floats(0.5, 8.0), st.integers(0, 2**32 - 1))
def test_miner_array_probs_match_reference(seqs, theta, seed):
    ds = SequenceDataset.from_lists(seqs, num_items=4)
    probs = np.random.default_rng(seed).uniform(0.05, 1.0, ds.items.size)
    probs[:: 3] = 1.0  # the closed end of (0, 1]
    got = P.mine_entropy_patterns(ds, probs, theta, max_len=5)
    per_seq = [probs[ds.offsets[u] : ds.offsets[u + 1]].tolist() for u in range(len(ds))]
    assert as_tuples(got) == R.mine_entropy_patterns(seqs, theta, max_len=5, probs=per_seq)


def _hash_prob(ctx, s):
    # A deterministic "neural model": any function of (context, next item) into (0, 1].
    return ((sum((i + 1) * x for i, x in enumerate(ctx)) * 31 + s * 17) % 97 + 1) / 97.0


@settings(max_examples=40, deadline=None)
@given(mine_seqs, st.floats(0.5, 8.0))
def test_miner_callable_matches_reference(seqs, theta):
    ds = SequenceDataset.from_lists(seqs, num_items=4)
    shapes = []

    def model(contexts, next_items):
        assert contexts.dtype == np.int32 and contexts.ndim == 2 and contexts.shape[0] == next_items.shape[0]
        shapes.append(contexts.shape)
        return [_hash_prob(c.tolist(), int(s)) for c, s in zip(contexts, next_items)]

    got = P.mine_entropy_patterns(ds, model, theta, max_len=5)
    assert as_tuples(got) == R.mine_entropy_patterns(
        seqs, theta, max_len=5, scorer=lambda p, s: _hash_prob(list(p), s)
    )
    assert [L for _, L in shapes] == sorted(L for _, L in shapes)  # one call per level


def test_miner_known_patterns():
    seqs = [[1, 2, 3, 9, 1, 2, 3], [1, 2, 3, 5], [4, 1, 2, 3]]
    # A model that is sure of what follows: every extension is free (h = 0).
    pats = P.mine_entropy_patterns(seqs, lambda c, s: np.ones(len(s)), theta=2.0, min_count=3)
    # seeds with H < 2: items 1, 2, 3 (4 of 15 each, H = 1.907); extensions seen >= 3 times:
    assert pats.to_lists() == [[1], [2], [3], [1, 2], [2, 3], [1, 2, 3]]
    assert pats.count.tolist() == [4, 4, 4, 4, 4, 4]
    assert pats.entropy[5] == -math.log2(4 / 15)
    assert P.mine_entropy_patterns(seqs, lambda c, s: np.ones(len(s)), theta=2.0, min_count=3, max_len=2).to_lists() == [
        [1], [2], [3], [1, 2], [2, 3]
    ]


def test_miner_default_theta_and_stages():
    rng = np.random.default_rng(5)
    seqs = [rng.integers(1, 30, rng.integers(2, 40)).tolist() for _ in range(60)]
    ds = SequenceDataset.from_lists(seqs)
    counts, h = P.item_entropies(ds)
    keep = counts >= 2
    keep[0] = False
    mean = math.fsum(h[keep].tolist()) / keep.sum()
    seeds = R.item_entropies(seqs)
    assert mean == math.fsum(v for f, v in seeds.values() if f >= 2) / sum(f >= 2 for f, _ in seeds.values())
    m = E.MarkovModel(2).fit(ds)
    default = P.mine_entropy_patterns(ds, m)
    assert default.theta == mean
    assert as_tuples(default) == as_tuples(P.mine_entropy_patterns(ds, m, mean))
    sizes = []
    for stage, scale in P.STAGE_THETA_SCALES.items():
        pats = P.mine_entropy_patterns(ds, m, stage=stage)
        assert pats.theta == scale * mean
        assert np.all(pats.entropy < pats.theta)
        sizes.append((scale, len(pats)))
    sizes.sort()
    assert [n for _, n in sizes] == sorted(n for _, n in sizes)  # a larger theta never keeps fewer
    assert P.mine_entropy_patterns(ds, m, theta_scale=0.5).theta == 0.5 * mean


def test_miner_nothing_frequent():
    pats = P.mine_entropy_patterns([[1, 2, 3]], min_count=2)
    assert len(pats) == 0 and math.isnan(pats.theta)
    assert len(P.mine_entropy_patterns([[1, 2, 3]], theta=5.0, min_count=2)) == 0


@pytest.mark.parametrize("theta", [0, -1.5, float("nan"), float("inf")])
def test_miner_bad_theta(theta):
    with pytest.raises(ValueError, match="theta"):
        P.mine_entropy_patterns([[1, 2, 1, 2]], theta=theta)


def test_miner_bad_input():
    seqs = [[1, 2, 1, 2]]
    with pytest.raises(ValueError, match="max_len.*0"):
        P.mine_entropy_patterns(seqs, theta=3.0, max_len=0)
    with pytest.raises(ValueError, match="min_count"):
        P.mine_entropy_patterns(seqs, theta=3.0, min_count=0)
    with pytest.raises(ValueError, match="stage"):
        P.mine_entropy_patterns(seqs, stage="final")
    with pytest.raises(ValueError, match="not both"):
        P.mine_entropy_patterns(seqs, theta=3.0, stage="recall")
    with pytest.raises(ValueError, match="theta_scale"):
        P.mine_entropy_patterns(seqs, theta_scale=-1.0)
    for bad in (0.0, 1.5, -0.1, float("nan")):
        probs = np.full(4, 0.5)
        probs[2] = bad
        with pytest.raises(ValueError, match=r"probs\[2\]"):
            P.mine_entropy_patterns(seqs, probs, theta=3.0)
    with pytest.raises(ValueError, match=r"shape.*\(4,\).*\(3,\)"):
        P.mine_entropy_patterns(seqs, np.full(3, 0.5), theta=3.0)
    with pytest.raises(ValueError, match="probability 0.0"):
        P.mine_entropy_patterns(seqs, lambda c, s: np.zeros(len(s)), theta=3.0)
    with pytest.raises(ValueError, match="shape"):
        P.mine_entropy_patterns(seqs, lambda c, s: np.ones(len(s) + 1), theta=3.0)
    with pytest.raises(TypeError, match="model"):
        P.mine_entropy_patterns(seqs, "sasrec", theta=3.0)
    with pytest.raises(ValueError, match="not fitted"):
        P.mine_entropy_patterns(seqs, E.MarkovModel(1), theta=3.0)
    with pytest.raises(ValueError, match="item 2"):
        P.mine_entropy_patterns(seqs, E.MarkovModel(1).fit([[1, 1]]), theta=3.0)


def test_miner_callable_errors_propagate():
    def broken(contexts, next_items):
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        P.mine_entropy_patterns([[1, 2, 1, 2]], broken, theta=5.0)


def test_miner_threads_deterministic():
    rng = np.random.default_rng(9)
    seqs = []
    for _ in range(80):
        s = [int(rng.integers(1, 12))]
        for _ in range(49):  # mostly a deterministic successor, sometimes a random jump
            s.append(s[-1] * 3 % 11 + 1 if rng.random() < 0.8 else int(rng.integers(1, 12)))
        seqs.append(s)
    ds = SequenceDataset.from_lists(seqs)
    m = E.MarkovModel(2).fit(ds)
    a = P.mine_entropy_patterns(ds, m, theta_scale=1.5, threads=1)
    b = P.mine_entropy_patterns(ds, m, theta_scale=1.5, threads=2)
    assert as_tuples(a) == as_tuples(b) and len(a) > 20 and a.lengths.max() > 1


# ------------------------------------------------------------------- segmenter


@settings(max_examples=80, deadline=None)
@given(small_seqs, st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=4), max_size=8))
def test_segment_matches_reference(seqs, patterns):
    ds = SequenceDataset.from_lists(seqs)
    seg = P.segment(ds, patterns)
    ref = R.segment(seqs, patterns)
    assert seg.to_lists() == [[s for s, _ in r] for r in ref]
    assert seg.pattern_id.tolist() == [k for r in ref for _, k in r]
    assert [sum(x, []) for x in seg.to_lists()] == [list(s) for s in seqs]


def test_segment_longest_first_and_fallback():
    seg = P.segment([[1, 2, 3, 4, 1, 2, 5], [], [6]], [[1, 2], [1, 2, 3], [4], [1, 2]])
    assert seg.to_lists() == [[[1, 2, 3], [4], [1, 2], [5]], [], [[6]]]
    assert seg.pattern_id.tolist() == [1, 2, 0, -1, -1]
    assert seg.offsets.tolist() == [0, 4, 4, 5]
    assert seg.as_dataset().to_lists() == [[1, 2, 3], [4], [1, 2], [5], [6]]


def test_segment_with_mined_patterns():
    seqs = [[1, 2, 3, 1, 2, 3, 7], [1, 2, 3, 8]]
    pats = P.mine_entropy_patterns(seqs, lambda c, s: np.ones(len(s)), theta=3.0)
    seg = P.segment(seqs, pats)
    assert seg.to_lists() == [[[1, 2, 3], [1, 2, 3], [7]], [[1, 2, 3], [8]]]


def test_segment_bad_patterns():
    with pytest.raises(ValueError, match="pattern 1 is empty"):
        P.segment([[1, 2]], [[1], []])


def test_miner_recovers_planted_pattern():
    # Random sequences over 40 items, a third of them carrying the run [41, 42, 43]:
    # it is frequent and fully predictable once 41 is seen, so it must be mined
    # and cut out whole, while random pairs stay above theta.
    rng = np.random.default_rng(11)
    seqs = []
    for u in range(300):
        s = rng.integers(1, 41, 12).tolist()
        if u % 3 == 0:
            at = int(rng.integers(0, 10))
            s[at:at] = [41, 42, 43]
        seqs.append(s)
    ds = SequenceDataset.from_lists(seqs)
    pats = P.mine_entropy_patterns(ds, E.MarkovModel(2).fit(ds), stage="coarse")
    found = pats.to_lists()
    assert [41, 42, 43] in found
    assert all(len(p) == 1 or p[0] >= 41 for p in found)  # no chance patterns among random items
    cut = P.segment(ds, pats).to_lists()
    for u in range(0, 300, 3):
        assert [41, 42, 43] in cut[u]


def test_markov_model_reports_the_tokens_it_was_fitted_on():
    ds = SequenceDataset.from_lists([[1, 2, 3], [], [2, 2]])
    assert E.MarkovModel(2).fit(ds).num_tokens == ds.num_interactions == 5
    with pytest.raises(ValueError, match="not fitted"):
        E.MarkovModel(1).num_tokens
