"""Fuzzing of every ``fastregen._core`` entry point against ``fastregen.reference``.

Each target draws inputs with hypothesis -- random CSR arrays (valid, or
broken in one of the ways a caller could break them: offsets that do not
start at 0, go down or miss the end, ids that are 0, negative or beyond any
table, wrong dtypes or shapes), random parameters (in and out of range) and
random bytes or integer-like text -- and calls the compiled function
directly. Valid input must give exactly the reference's answer (floats bit
for bit where the reference is the same formula); invalid input must raise
ValueError or TypeError naming it. Anything else -- a crash, a hang, a
MemoryError, another exception, a different answer -- is a finding.

Run it in its own process (a crash must not take the caller down)::

    python tests/fuzz_core.py --examples 100000            # split over the targets
    python tests/fuzz_core.py --examples 2000 --only mine  # one target
    FUZZ_SEED=7 python tests/fuzz_core.py ...               # another random stream

It prints one JSON line per target (``{"target": ..., "cases": n}``) and a
final ``{"total": n, "failures": k}``; the exit code is 0 only without
findings. `tests/test_fuzz_core.py` runs a bounded version in the suite;
`tools/fuzz.sh` the full one; `tools/asan.sh` runs it under
AddressSanitizer and UBSan.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fastregen import _core
from fastregen.reference import attention as ref_attention
from fastregen.reference import csr as ref_csr
from fastregen.reference import dropout as ref_dropout
from fastregen.reference import entropy as ref_entropy
from fastregen.reference import mining as ref_mining
from fastregen.reference import ranks as ref_ranks
from fastregen.reference import textio as ref_textio

CLEAN_ERRORS = (ValueError, TypeError)
INT32_MAX = 2**31 - 1


# --------------------------------------------------------------- strategies
# Items from a small alphabet, so that patterns repeat; now and then an id no
# table has room for, or one that is not an item at all.
_item = st.one_of(
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 5),
    st.sampled_from([0, -1, -(2**31), 1000, 2**24 + 1, 2**30, INT32_MAX]),
)
_seqs = st.lists(st.lists(st.integers(1, 5), max_size=9), max_size=6)
_raw_seqs = st.lists(st.lists(_item, max_size=9), max_size=6)


def _csr(seqs):
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum([len(s) for s in seqs], out=offsets[1:])
    items = np.array([x for s in seqs for x in s], dtype=np.int32)
    return offsets, items


@st.composite
def csr_input(draw, seqs=_raw_seqs, any_ids=False):
    """(offsets, items, valid): a CSR pair, broken in one way or not at all.

    ``valid`` is False for a broken structure, and (unless ``any_ids``: the
    kernels that read items as plain symbols, with no table by id) for ids < 1.
    """
    s = draw(seqs)
    offsets, items = _csr(s)
    valid = bool(any_ids or items.size == 0 or items.min() >= 1)
    how = draw(st.sampled_from(["ok"] * 6 + ["start", "down", "end", "2d", "dtype", "empty_offsets"]))
    if how == "start" and offsets.size > 1:
        offsets = offsets + draw(st.sampled_from([1, -1]))
        valid = False
    elif how == "down" and offsets.size > 2:
        k = draw(st.integers(1, offsets.size - 2))
        offsets[k] = offsets[k + 1] + 1
        valid = False
    elif how == "end":
        offsets[-1] += draw(st.sampled_from([1, -1, 10**12]))
        valid = False
    elif how == "2d":
        items = items.reshape(1, -1)
        valid = False
    elif how == "dtype":  # a float array: pybind refuses it (TypeError), never truncates
        items = items.astype(np.float64) + 0.5
        valid = False
    elif how == "empty_offsets":
        offsets = np.zeros(0, dtype=np.int64)
        valid = False
    return offsets, items, valid


def _lists(offsets, items):
    return [items[offsets[u] : offsets[u + 1]].tolist() for u in range(offsets.size - 1)]


_text = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.one_of(
            st.sampled_from([b" ", b"\t", b"\n", b"\r", b"\r\n", b"\v", b"\f", b"+", b"-", b"0", b"\x00", b"\xff",
                             b"1.5", b"1e3", b"\xef\xbb\xbf"]),
            st.integers(-(2**64), 2**64).map(lambda v: str(v).encode()),
            st.integers(0, 99).map(lambda v: str(v).encode()),
        ),
        max_size=60,
    ).map(b"".join),
)


# --------------------------------------------------------------- the targets
def _same_floats(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


_CASES = [0]


def _counted(fn):
    """Count the cases a target runs (what hypothesis generated, shrinking included)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _CASES[0] += 1
        return fn(*args, **kwargs)

    return wrapper


def _expect_clean_error(fn):
    try:
        fn()
    except CLEAN_ERRORS:
        return
    raise AssertionError("invalid input was accepted")


def t_tokenize():
    @given(_text, st.sampled_from([0, 1, 2, 3]), st.sampled_from(["bytes", "bytearray", "memoryview", "numpy"]))
    @_counted
    def run(data, threads, kind):
        buf = {"bytes": data, "bytearray": bytearray(data), "memoryview": memoryview(data),
               "numpy": np.frombuffer(data, dtype=np.uint8)}[kind]
        counts, tokens, err = _core.tokenize_int_lines(buf, threads)
        rc, rt, rerr = ref_textio.tokenize_int_lines(data)
        assert counts.tolist() == rc.tolist() and tokens.tolist() == rt.tolist()
        assert err == rerr, (err, rerr)

    return run


def t_parse_user_lines():
    @given(_text, st.sampled_from([0, 1, 2]), st.booleans())
    @_counted
    def run(data, threads, with_out):
        out = np.full(len(data) // 2 + 1, -7, dtype=np.int32) if with_out else None
        users, lines, lengths, items, n_lines, err = _core.parse_user_lines(data, threads, out)
        r = ref_textio.parse_user_lines(data)
        assert err == r[5], (err, r[5])
        if err is None:
            got_items = out[:items] if with_out else items
            assert users.tolist() == r[0].tolist() and lines.tolist() == r[1].tolist()
            assert lengths.tolist() == r[2].tolist() and got_items.tolist() == r[3].tolist()
            assert n_lines == r[4]
        # a too-small `out` is refused, never overrun
        if len(data) > 1:
            _expect_clean_error(lambda: _core.parse_user_lines(data, threads, np.zeros(1, np.int32)))

    return run


def t_format_int_rows():
    @given(st.lists(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5), max_size=6), st.data(),
           st.sampled_from([" ", ",", "\t", "ab", ""]))
    @_counted
    def run(rows, data, sep):
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=offsets[1:])
        values = np.array([v for r in rows for v in r], dtype=np.int64)
        n = len(rows)
        b = data.draw(st.integers(-1, n + 1))
        e = data.draw(st.integers(-1, n + 1))
        if data.draw(st.booleans()) and offsets.size > 2:  # corrupt an offset inside the range
            k = data.draw(st.integers(0, offsets.size - 1))
            offsets[k] = data.draw(st.sampled_from([-1, values.size + 1, 10**15]))
        ok_range = 0 <= b <= e <= n and len(sep) == 1
        ok_offsets = all(0 <= offsets[r] <= offsets[r + 1] <= values.size for r in range(max(b, 0), min(e, n)))
        if ok_range and ok_offsets:
            got = _core.format_int_rows(offsets, values, b, e, sep)
            assert got == ref_textio.format_int_rows(offsets, values, b, e, sep)
        else:
            _expect_clean_error(lambda: _core.format_int_rows(offsets, values, b, e, sep))

    return run


def t_gather_ranges():
    @given(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=30), st.sampled_from([np.int32, np.int64]),
           st.lists(st.tuples(st.integers(-2, 32), st.integers(-2, 32)), max_size=8), st.sampled_from([0, 1, 2]))
    @_counted
    def run(values, dtype, ranges, threads):
        v = np.array(values, dtype=dtype)
        starts = np.array([a for a, _ in ranges], dtype=np.int64)
        ends = np.array([b for _, b in ranges], dtype=np.int64)
        try:
            want = ref_csr.gather_ranges(v, starts, ends)
        except ValueError:
            _expect_clean_error(lambda: _core.gather_ranges(v, starts, ends, threads))
            return
        offsets, got = _core.gather_ranges(v, starts, ends, threads)
        assert offsets.tolist() == want[0].tolist() and got.tolist() == want[1].tolist() and got.dtype == v.dtype

    return run


def t_mine_patterns():
    @given(csr_input(), st.integers(0, 7), st.integers(0, 3), st.integers(0, 3), st.integers(0, 7),
           st.sampled_from([1, 2]), st.sampled_from([0, 0, 3]))
    @_counted
    def run(csr, max_span, min_support, min_len, max_len, threads, max_patterns):
        offsets, items, valid = csr
        valid = valid and max_span >= 2 and min_support >= 1 and min_len >= 1 and max_len >= min_len
        valid = valid and not _sparse(items)

        def call():
            return _core.mine_patterns(offsets, items, max_span, min_support, min_len, max_len, threads, None,
                                       max_patterns)

        if not valid:
            _expect_clean_error(call)
            return
        want = ref_mining.mine_patterns(_lists(offsets, items), max_span, min_support, min_len, max_len)
        if max_patterns and len(want) > max_patterns:
            _expect_clean_error(call)
            return
        o, it, sup = call()
        got = [(tuple(it[o[k] : o[k + 1]].tolist()), int(sup[k])) for k in range(o.size - 1)]
        assert got == want

    return run


def t_window_counts():
    @given(csr_input(), st.integers(0, 4), st.integers(0, 3), st.sampled_from([1, 2]))
    @_counted
    def run(csr, window, min_count, threads):
        offsets, items, valid = csr
        if not (valid and window >= 1 and min_count >= 1 and not _sparse(items)):
            _expect_clean_error(lambda: _core.window_counts(offsets, items, window, min_count, threads))
            return
        o, it, cnt = _core.window_counts(offsets, items, window, min_count, threads)
        got = [(tuple(it[o[k] : o[k + 1]].tolist()), int(cnt[k])) for k in range(o.size - 1)]
        assert got == ref_mining.window_counts(_lists(offsets, items), window, min_count)

    return run


def t_pretrain_pairs():
    @given(csr_input(), st.lists(st.lists(_item, max_size=4), max_size=6), st.sampled_from([0, 1, 2, 3, 5]),
           st.integers(0, 4), st.integers(0, 2**64 - 1), st.sampled_from([1, 2]))
    @_counted
    def run(csr, patterns, span, k, seed, threads):
        offsets, items, valid = csr
        po, pi = _csr(patterns)
        flat = [x for p in patterns for x in p]
        valid = (valid and span != 1 and k >= 1 and all(p for p in patterns) and min(flat, default=1) >= 1
                 and len({tuple(p) for p in patterns}) == len(patterns))
        seqs_max = int(items.max()) if items.size and items.ndim == 1 and items.dtype == np.int32 else 0
        if valid and max(seqs_max, max(flat, default=0)) > 2**24 and max(seqs_max, max(flat, default=0)) // 2 > (
                items.size + pi.size):
            valid = False  # too sparse: refused

        def call():
            return _core.pretrain_pairs(offsets, items, po, pi, span, k, seed, threads)

        if not valid:
            _expect_clean_error(call)
            return
        source, index = call()
        want = ref_mining.pretrain_pairs(_lists(offsets, items), patterns, k, seed, None if span == 0 else span)
        assert (source.tolist(), index.tolist()) == want

    return run


def _sparse(items) -> bool:
    return bool(items.size) and int(items.max()) > 2**24 and int(items.max()) // 2 > items.size


def t_lz_entropy():
    @given(csr_input(any_ids=True), st.sampled_from([0, 1, 2, 3, -1]), st.sampled_from([2.0, math.e, 10.0, 1.0, 0.5, -2.0,
                                                                           float("nan"), float("inf")]),
           st.sampled_from([1, 2]))
    @_counted
    def run(csr, method, base, threads):
        offsets, items, valid = csr
        if not valid or method not in (0, 1, 2):
            _expect_clean_error(lambda: _core.lz_lambda_sums(offsets, items, threads, method))
        else:
            got = _core.lz_lambda_sums(offsets, items, threads, method)
            assert got.tolist() == [ref_entropy.lambda_sum(s) for s in _lists(offsets, items)]
        if not valid or not (base > 1 and math.isfinite(base)):
            _expect_clean_error(lambda: _core.real_entropy(offsets, items, base, threads))
        else:
            got = _core.real_entropy(offsets, items, base, threads)
            assert _same_floats(got, ref_entropy.real_entropy(_lists(offsets, items), base))
        if valid:
            got = _core.n_distinct(offsets, items, threads)
            assert got.tolist() == [len(set(s)) for s in _lists(offsets, items)]

    return run


def t_item_entropies():
    @given(csr_input(), st.sampled_from([0, 3, 5, 6, INT32_MAX]))
    @_counted
    def run(csr, num_items):
        offsets, items, valid = csr
        valid = (valid and num_items >= 1 and (items.size == 0 or int(items.max()) <= num_items)
                 and not (num_items > 2**24 and num_items // 2 > items.size))
        if not valid:
            _expect_clean_error(lambda: _core.item_entropies(offsets, items, num_items))
            return
        counts, h = _core.item_entropies(offsets, items, num_items)
        want = ref_entropy.item_entropies(_lists(offsets, items))
        for x in range(num_items + 1):
            f, hx = want.get(x, (0, math.inf))
            assert counts[x] == f and (h[x] == hx or (math.isinf(hx) and math.isinf(h[x])))

    return run


def t_markov():
    @given(csr_input(seqs=st.lists(st.lists(_item, max_size=9), min_size=1, max_size=6)), st.integers(-1, 3),
           st.sampled_from([0, 5, 6]), st.lists(st.lists(st.integers(1, 6), max_size=4), max_size=5),
           st.sampled_from([1, 2]))
    @_counted
    def run(csr, order, num_items, contexts, threads):
        offsets, items, valid = csr
        if order < 0 or num_items < 1:
            _expect_clean_error(lambda: _core.MarkovModel(order, num_items))
            return
        model = _core.MarkovModel(order, num_items)
        _expect_clean_error(lambda: model.prob(np.array([0]), np.zeros(0, np.int32), np.zeros(0, np.int32)))
        valid = valid and (items.size == 0 or int(items.max()) <= num_items)
        if not valid:
            _expect_clean_error(lambda: model.fit(offsets, items))
            return
        model.fit(offsets, items)
        ref = ref_entropy.MarkovModel(order, num_items).fit(_lists(offsets, items))
        co, ci = _csr(contexts)
        nxt = np.array([(len(c) * 7 + 3) % 6 + 1 for c in contexts], dtype=np.int32)
        if (ci.size and int(ci.max()) > num_items) or (nxt.size and int(nxt.max()) > num_items):
            # out-of-vocabulary contexts are fine, next items are not
            if nxt.size and int(nxt.max()) > num_items:
                _expect_clean_error(lambda: model.prob(co, ci, nxt, threads))
                return
        got = model.prob(co, ci, nxt, threads)
        assert got.tolist() == [ref.prob(c, int(x)) for c, x in zip(contexts, nxt)]

    return run


def _hash_prob(ctx, s):
    return ((sum((i + 1) * x for i, x in enumerate(ctx)) * 31 + s * 17) % 97 + 1) / 97.0


def t_entropy_miner():
    @given(csr_input(seqs=st.lists(st.lists(st.integers(1, 4), max_size=12), min_size=1, max_size=6)),
           st.sampled_from(["markov", "probs", "scorer", "none", "bad_probs"]), st.floats(0.5, 8.0),
           st.integers(0, 3), st.integers(0, 4), st.integers(0, 2**32 - 1))
    @_counted
    def run(csr, model, theta, min_count, max_len, seed):
        offsets, items, valid = csr
        valid = valid and min_count >= 1 and max_len >= 1
        seqs = _lists(offsets, items) if valid else []
        markov = probs = scorer = None
        ref_kw = {}
        if model == "markov":
            markov = _core.MarkovModel(1, 4)
            if valid:
                markov.fit(offsets, items)
                ref_kw["markov"] = ref_entropy.MarkovModel(1, 4).fit(seqs)
        elif model in ("probs", "bad_probs"):
            p = np.random.default_rng(seed).uniform(0.05, 1.0, items.size if items.ndim == 1 else 0)
            if model == "bad_probs":
                p = np.append(p, 0.0)  # wrong length
                valid = False
            probs = p
            if valid:
                ref_kw["probs"] = [p[offsets[u] : offsets[u + 1]].tolist() for u in range(len(seqs))]
        elif model == "scorer":
            scorer = lambda co, ci, nx: [_hash_prob(ci[co[k]:co[k + 1]].tolist(), int(nx[k]))  # noqa: E731
                                         for k in range(nx.size)]
            ref_kw["scorer"] = lambda pat, s: _hash_prob(list(pat), s)
        else:
            valid = False  # no model at all

        def call():
            return _core.mine_entropy_patterns(offsets, items, 4, theta, min_count, max_len, markov, probs,
                                               scorer, 1)

        if not valid:
            _expect_clean_error(call)
            return
        o, it, h, cnt = call()
        got = [(tuple(it[o[k] : o[k + 1]].tolist()), float(h[k]), int(cnt[k])) for k in range(o.size - 1)]
        assert got == ref_entropy.mine_entropy_patterns(seqs, theta, min_count=min_count, max_len=max_len, **ref_kw)

    return run


def t_segment():
    @given(csr_input(any_ids=True), st.lists(st.lists(_item, max_size=4), max_size=6), st.sampled_from([1, 2]))
    @_counted
    def run(csr, patterns, threads):
        offsets, items, valid = csr
        po, pi = _csr(patterns)
        valid = valid and all(p for p in patterns)

        def call():
            return _core.segment(offsets, items, po, pi, threads)

        if not valid:
            _expect_clean_error(call)
            return
        so, bounds, pid = call()
        want = ref_entropy.segment(_lists(offsets, items), patterns)
        flat = [k for r in want for _, k in r]
        assert pid.tolist() == flat
        assert (np.diff(bounds)).tolist() == [len(s) for r in want for s, _ in r]
        assert so.tolist() == np.r_[0, np.cumsum([len(r) for r in want])].tolist()

    return run


def t_rank_counts():
    # Valid or broken: ids out of 1..C-1, offsets that do not start at 0 or
    # miss the end, a block outside the matrix, a wrong dtype.
    _score = st.sampled_from([-1.0, 0.0, 1.0, 2.0, math.inf, -math.inf, math.nan])

    @given(st.integers(0, 5), st.integers(1, 12), st.integers(-1, 12), st.integers(0, 12),
           st.lists(st.integers(-1, 13), max_size=6), st.lists(st.lists(st.integers(-1, 13), max_size=4), max_size=6),
           st.lists(_score, min_size=60, max_size=60), st.sampled_from(["float32", "float64", "float16"]),
           st.booleans(), st.sampled_from([1, 2]))
    @_counted
    def run(B, C, c0, width, targets, excluded, values, dtype, band, threads):
        scores = np.array((values * 2)[: B * width], dtype=dtype).reshape(B, width)
        t = np.array((targets + [1] * B)[:B], dtype=np.int64)
        rows = (excluded + [[]] * B)[:B]
        off = np.r_[0, np.cumsum([len(r) for r in rows])].astype(np.int64)
        ex = np.array([i for r in rows for i in r], dtype=np.int64)
        thr = scores[:, 0].copy() if width else np.zeros(B, dtype=dtype)
        lo = (thr - 1).astype(dtype) if band else None
        valid = (dtype != "float16" and 0 <= c0 and c0 + width <= C and all(1 <= i < C for i in t)
                 and all(1 <= i < C for i in ex))

        def call():
            return _core.rank_counts(scores, t, thr, off, ex, c0, C, lo, threads)

        if not valid:
            _expect_clean_error(call)
            return
        got = call()
        want = ref_ranks.rank_counts(scores, t, thr, off, ex, c0, C, lo)
        for g, w in zip(got, want):
            assert np.array_equal(g, w, equal_nan=True) and g.dtype == w.dtype

    return run


def t_amx_ranks():
    # Valid or broken: ids out of 1..C-1, unsorted or repeated exclusions, offsets that do not start at 0
    # or miss the end, a packed table of another shape, a wrong dtype; values with ties, zeros, huge,
    # tiny and non-finite entries. Valid calls match the exact scores' reference ranks.
    _value = st.sampled_from([-1.0, 0.0, 0.5, 1.0, 3.0, 1e-30, 1e20, math.inf, math.nan])

    @given(st.integers(0, 5), st.integers(1, 40), st.integers(1, 5), st.lists(st.integers(-1, 41), max_size=6),
           st.lists(st.lists(st.integers(-1, 41), max_size=4), max_size=6), st.lists(_value, min_size=30, max_size=30),
           st.sampled_from(["float32", "float64"]), st.booleans(), st.sampled_from([1, 2]),
           st.sampled_from([None, 1, 2, 5, 10**12, 0, -1, True, 2.5]),
           st.none() | st.lists(st.integers(-1, 42), max_size=5))
    @_counted
    def run(B, C, d, targets, excluded, values, dtype, same_table, threads, max_rank, bounds):
        vals = np.array(values, dtype=np.float32)
        hidden = np.resize(vals, B * d).reshape(B, d).astype(dtype)
        table = np.resize(vals[::-1], C * d).reshape(C, d).astype(np.float32)
        t = np.array((targets + [1] * B)[:B], dtype=np.int64)
        rows = (excluded + [[]] * B)[:B]
        off = np.r_[0, np.cumsum([len(r) for r in rows])].astype(np.int64)
        ex = np.array([i for r in rows for i in r], dtype=np.int64)
        packed = _core.pack_items(table if same_table else table[: max(C - 1, 1)], threads)
        pairs = np.repeat(np.arange(B), C).astype(np.int64), np.tile(np.arange(C), B).astype(np.int64)
        if dtype == "float32":
            np.testing.assert_array_equal(_core.exact_scores(hidden, table, *pairs),
                                          ref_ranks.fma_scores(hidden, table).ravel())
        valid = (dtype == "float32" and (same_table or C == 1) and _core.amx_available()
                 and all(1 <= i < C for i in t) and all(1 <= i < C for i in ex)
                 and all(all(a < b for a, b in zip(r, r[1:])) for r in rows))
        # a cap: None or an int >= 1; segment bounds: None or 0 = b_0 < ... < b_n = C, int64
        seg = None if bounds is None else np.array(bounds, dtype=np.int64)
        valid = valid and (max_rank is None or (type(max_rank) is int and max_rank >= 1))
        valid = valid and (seg is None or (seg.size >= 2 and seg[0] == 0 and seg[-1] == C
                                           and bool((np.diff(seg) > 0).all())))

        def call():
            return _core.amx_rank_counts(hidden, table, packed, t, off, ex, threads, max_rank=max_rank, bounds=seg)

        if not valid:
            _expect_clean_error(call)
            return
        count, excluded_n, _, _, _ = call()
        scores = ref_ranks.fma_scores(hidden, table)
        want = ref_ranks.rank_counts(scores, t, scores[np.arange(B), t] if B else np.zeros(0, np.float32),
                                     off, ex, 0, C)
        cap = want[0] if max_rank is None else np.minimum(want[0], max_rank)
        assert np.array_equal(count, cap) and np.array_equal(excluded_n, want[1])

    return run


def t_ragged_attention():
    # Valid or broken: offsets that do not start at 0, decrease or miss the end, a width below a group's
    # keys, heads that do not divide the width, a wrong dtype, short dropout bytes, a threshold outside
    # 0..255, key_ignore of the wrong length. Valid calls match the reference, forward and backward.
    @given(st.lists(st.integers(0, 5), max_size=5), st.lists(st.integers(0, 6), max_size=5),
           st.sampled_from([1, 2, 3]), st.sampled_from([1, 2, 4]), st.integers(-1, 2), st.booleans(),
           st.sampled_from([-1, 0, 1, 51, 128, 255, 256]), st.sampled_from(["float64", "float32", "float16"]),
           st.sampled_from(["ok", "start", "end", "decrease", "short_drop", "ignore"]), st.booleans(),
           st.sampled_from([1, 2]), st.integers(0, 2**32 - 1))
    @_counted
    def run(q_len, k_len, heads, dh, extra, causal, threshold, dtype, broken, use_ignore, threads, seed):
        rng = np.random.default_rng(seed)
        G = min(len(q_len), len(k_len))
        q_off = np.r_[0, np.cumsum(q_len[:G])].astype(np.int64)
        k_off = np.r_[0, np.cumsum(k_len[:G])].astype(np.int64)
        R, N, D = int(q_off[-1]), int(k_off[-1]), 2 * dh  # D = 2 dh: heads 3 does not divide it
        width = max(k_len[:G], default=0) + extra
        q, k, v = (rng.standard_normal((n, D)).astype(dtype) for n in (R, N, N))
        ignore = rng.random(N + (broken == "ignore")) < 0.3 if use_ignore or broken == "ignore" else None
        n_drop = R * heads * max(width, 0)

        def need_bytes(n):
            return (n + 7) // 8 if threshold == 128 else n

        drop = rng.integers(0, 256, need_bytes(n_drop), dtype=np.uint8)
        if broken == "short_drop" and drop.size:
            drop = drop[:-1]
        if broken == "start":
            q_off = q_off + 1
        elif broken == "end" and G:
            k_off = np.r_[k_off[:-1], k_off[-1] + 1]
        elif broken == "decrease" and G >= 2 and q_off[1] > 0:
            q_off = np.r_[q_off[0], q_off[1:][::-1]]
        monotone = all(o.size >= 1 and o[0] == 0 and bool(np.all(np.diff(o) >= 0)) for o in (q_off, k_off))
        valid = (dtype != "float16" and D % heads == 0 and 0 <= threshold <= 255 and monotone
                 and q_off[-1] == R and k_off[-1] == N and width >= max(np.diff(k_off), default=0)
                 and (ignore is None or ignore.size == N) and (threshold == 0 or drop.size >= need_bytes(n_drop)))
        args = (q, k, v, q_off, k_off, heads, width, causal, 0.5, ignore, drop if threshold else None, threshold)

        if not valid:
            _expect_clean_error(lambda: _core.ragged_attention_forward(*args, threads))
            return
        out, probs = _core.ragged_attention_forward(*args, threads)
        keep = ref_attention.keep_mask(drop, threshold, R, heads, width)
        want, want_probs = ref_attention.forward(q, k, v, q_off, k_off, heads, width, causal, 0.5, ignore, keep)
        tol = 1e-12 if dtype == "float64" else 1e-5
        assert np.array_equal(np.isnan(out), np.isnan(want))
        assert np.allclose(np.nan_to_num(out), np.nan_to_num(want), rtol=tol, atol=tol)
        assert np.allclose(probs, want_probs, rtol=tol, atol=tol)
        dout = rng.standard_normal(out.shape).astype(dtype)
        grads = [np.full(a.shape, np.nan, dtype=a.dtype) for a in (q, k, v)]  # every element written
        _core.ragged_attention_backward(*args, probs, dout, *grads, threads)
        for g, w in zip(grads, ref_attention.backward(q, k, v, q_off, k_off, heads, width, causal, 0.5, ignore,
                                                       keep, want_probs, dout)):
            assert np.allclose(g, w, rtol=10 * tol, atol=10 * tol)

    return run


def t_dropout():
    # Valid or broken: short bytes, a threshold outside 1..255, a wrong dtype, an out of another size.
    @given(st.integers(0, 300), st.sampled_from([-1, 0, 1, 51, 128, 255, 256]),
           st.sampled_from(["float32", "float64", "float16", "int64"]), st.sampled_from(["ok", "short", "out"]),
           st.sampled_from([1, 2]), st.integers(0, 2**32 - 1))
    @_counted
    def run(n, threshold, dtype, broken, threads, seed):
        rng = np.random.default_rng(seed)
        x = (rng.standard_normal(n) * 3).astype(dtype)
        need = (n + 7) // 8 if threshold == 128 else n
        raw = rng.integers(0, 256, max(need - (broken == "short"), 0), dtype=np.uint8)
        out = np.empty(n + (broken == "out"), dtype=dtype)
        valid = (dtype in ("float32", "float64") and 1 <= threshold <= 255 and broken == "ok"
                 or dtype in ("float32", "float64") and 1 <= threshold <= 255 and broken == "short" and need == 0)

        def call():
            _core.apply_dropout(x, raw, threshold, out, threads)

        if not valid:
            _expect_clean_error(call)
            return
        call()
        assert np.array_equal(out, ref_dropout.apply_dropout(x, raw, threshold))

    return run


TARGETS = {
    "tokenize_int_lines": t_tokenize,
    "parse_user_lines": t_parse_user_lines,
    "format_int_rows": t_format_int_rows,
    "gather_ranges": t_gather_ranges,
    "mine_patterns": t_mine_patterns,
    "window_counts": t_window_counts,
    "pretrain_pairs": t_pretrain_pairs,
    "lz_lambda_sums/real_entropy/n_distinct": t_lz_entropy,
    "item_entropies": t_item_entropies,
    "MarkovModel": t_markov,
    "mine_entropy_patterns": t_entropy_miner,
    "segment": t_segment,
    "rank_counts": t_rank_counts,
    "amx_rank_counts/pack_items/exact_scores": t_amx_ranks,
    "ragged_attention_forward/ragged_attention_backward": t_ragged_attention,
    "apply_dropout": t_dropout,
}


def run_target(name: str, examples: int, seed: int) -> dict:
    """Run one target for ``examples`` cases; return its record."""
    inner = TARGETS[name]()
    _CASES[0] = 0
    test = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )(inner)
    import hypothesis

    test = hypothesis.seed(seed)(test)
    t0 = time.perf_counter()
    record = {"target": name, "cases": 0, "seconds": 0.0, "failure": None}
    try:
        test()
    except Exception:  # a finding: keep the shrunk example's traceback
        record["failure"] = traceback.format_exc(limit=8)[-3000:]
    record["cases"] = _CASES[0]
    record["seconds"] = round(time.perf_counter() - t0, 2)
    return record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1200, help="cases in all, split evenly over the targets")
    parser.add_argument("--only", default=None, help="run the targets whose name contains this")
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    args = parser.parse_args(argv)
    names = [n for n in TARGETS if args.only is None or args.only in n]
    per = max(1, args.examples // len(names))
    total, failures = 0, 0
    for name in names:
        rec = run_target(name, per, args.seed)
        total += rec["cases"]
        failures += rec["failure"] is not None
        print(json.dumps(rec), flush=True)
    print(json.dumps({"total": total, "failures": failures, "seed": args.seed}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
