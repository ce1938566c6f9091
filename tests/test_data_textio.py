"""The compiled tokenizer/formatter agree exactly with fastregen.reference.textio."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastregen import _core
from fastregen.reference import textio as ref


def assert_same_tokens(data: bytes):
    c_counts, c_tokens, c_err = _core.tokenize_int_lines(data)
    r_counts, r_tokens, r_err = ref.tokenize_int_lines(data)
    assert c_counts.dtype == np.int64 and c_tokens.dtype == np.int64
    np.testing.assert_array_equal(c_counts, r_counts)
    np.testing.assert_array_equal(c_tokens, r_tokens)
    assert c_err == r_err
    # The parallel path cuts the input at line boundaries; it must not change anything.
    for threads in (2, 3, 7):
        p_counts, p_tokens, p_err = _core.tokenize_int_lines(data, n_threads=threads)
        np.testing.assert_array_equal(p_counts, r_counts)
        np.testing.assert_array_equal(p_tokens, r_tokens)
        assert p_err == r_err, threads
    return c_counts, c_tokens, c_err


def test_parallel_on_a_large_input():
    rng = np.random.default_rng(0)
    rows = [" ".join(map(str, rng.integers(0, 10**9, size=rng.integers(0, 30)))) for _ in range(20000)]
    data = ("\n".join(rows) + "\n").encode()
    serial = _core.tokenize_int_lines(data, n_threads=1)
    for threads in (0, 2, 4):
        par = _core.tokenize_int_lines(data, n_threads=threads)
        np.testing.assert_array_equal(par[0], serial[0])
        np.testing.assert_array_equal(par[1], serial[1])
        assert par[2] is None
    bad = data[: len(data) // 2] + b"oops " + data[len(data) // 2 :]
    line = data[: len(data) // 2].count(b"\n")
    for threads in (1, 2, 4):
        counts, tokens, err = _core.tokenize_int_lines(bad, n_threads=threads)
        assert err[0] == line and b"oops" in err[1] and counts.size == line


EDGE_CASES = [
    b"",
    b"\n",
    b"\n\n\n",
    b"1",
    b"1\n",
    b"1 2 3\n4 5\n",
    b"1 2 3\n\n4 5",  # blank line, no final newline
    b"1 2 3   \n4 5\t\n",  # trailing whitespace
    b"1 2 3\r\n4 5\r\n",  # CRLF
    b"1\t2\t3\n",  # tabs
    b"  \t \r\n",  # whitespace-only line
    b"\x0b1\x0c2\n",  # vertical tab, form feed
    b"+5 -0 007\n",
    b"9223372036854775807 -9223372036854775808\n",  # int64 extremes parse
    b"9223372036854775808\n",  # overflow by one
    b"-9223372036854775809\n",
    b"1 2\n" + b"9" * 400 + b"\n",  # huge number
    b"0000000000000000000000000000001\n",  # leading zeros do not overflow
    b"1 2 3\n4 x5\n6\n",
    b"1 2.5\n",
    b"1e3\n",
    b"1_000\n",
    b"-\n",
    b"+\n",
    b"--1\n",
    b"1-2\n",
    b"\xef\xbb\xbf1 2\n",  # a BOM is not skipped at this level
    "1 \u0663\n".encode(),  # non-ASCII digit
    b"1\x002\n",
    b"1\x1c2\n",  # not whitespace for bytes.split either
    b"99999999999999999999x\n",  # overflow then a non-digit: not an integer
    b" ".join(str(i).encode() for i in range(1, 20001)) + b"\n",  # a very long line
]


@pytest.mark.parametrize("data", EDGE_CASES, ids=range(len(EDGE_CASES)))
def test_edge_cases_agree(data):
    assert_same_tokens(data)


def test_known_results():
    counts, tokens, err = assert_same_tokens(b"1 2 3\n\n4 -5\r\n+6")
    assert counts.tolist() == [3, 0, 2, 1] and tokens.tolist() == [1, 2, 3, 4, -5, 6] and err is None
    counts, tokens, err = assert_same_tokens(b"1 2 3\n4 x5\n")
    assert counts.tolist() == [3] and tokens.tolist() == [1, 2, 3]
    assert err == (1, b"x5", "not an integer")
    assert assert_same_tokens(b"9223372036854775808")[2] == (0, b"9223372036854775808", "out of int64 range")


def test_accepts_buffers_and_rejects_others():
    data = b"1 2\n3 4\n"
    for obj in (data, bytearray(data), memoryview(data), np.frombuffer(data, dtype=np.uint8)):
        counts, tokens, err = _core.tokenize_int_lines(obj)
        assert tokens.tolist() == [1, 2, 3, 4] and err is None
    with pytest.raises(TypeError):
        _core.tokenize_int_lines(np.arange(4, dtype=np.int64))
    with pytest.raises(TypeError):
        _core.tokenize_int_lines(memoryview(b"1 2 3 4")[::2])
    with pytest.raises(TypeError):
        _core.tokenize_int_lines("1 2 3")


_token = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda v: str(v).encode()),
    st.integers(min_value=0, max_value=10**6).map(lambda v: b"+" + str(v).encode()),
    st.integers(min_value=2**63, max_value=2**70).map(lambda v: str(v).encode()),
    st.sampled_from([b"x", b"1.5", b"-", b"0x1f", b"\xff", b"007"]),
)
_sep = st.sampled_from([b" ", b"  ", b"\t", b" \r", b"\x0c"])
_line = st.tuples(st.lists(_token, max_size=6), _sep, st.sampled_from([b"", b" ", b"\r", b"\t"])).map(
    lambda t: t[1].join(t[0]) + t[2]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=12), st.booleans())
def test_random_text_agrees(lines, final_newline):
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    assert_same_tokens(data)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_agree(data):
    assert_same_tokens(data)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=5), max_size=8),
    st.sampled_from([" ", ",", "\t"]),
)
def test_format_agrees_and_roundtrips(rows, sep):
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = np.array([v for r in rows for v in r], dtype=np.int64)
    out = _core.format_int_rows(offsets, values, 0, len(rows), sep)
    assert out == ref.format_int_rows(offsets, values, 0, len(rows), sep)
    if sep != ",":
        counts, tokens, err = _core.tokenize_int_lines(out)
        assert err is None and counts.tolist() == lengths.tolist() and tokens.tolist() == values.tolist()


def test_format_rows_subrange_and_validation():
    offsets = np.array([0, 2, 3, 5], dtype=np.int64)
    values = np.array([1, 2, 3, 4, 5], dtype=np.int64)
    assert _core.format_int_rows(offsets, values, 1, 3) == b"3\n4 5\n"
    assert _core.format_int_rows(offsets, values, 2, 2) == b""
    with pytest.raises(ValueError, match="out of range"):
        _core.format_int_rows(offsets, values, 0, 4)
    with pytest.raises(ValueError, match="sep"):
        _core.format_int_rows(offsets, values, 0, 1, "ab")
    with pytest.raises(ValueError, match="not a valid range"):
        _core.format_int_rows(np.array([0, 9], dtype=np.int64), values, 0, 1)
    with pytest.raises(ValueError, match="not a valid range"):
        _core.format_int_rows(np.array([0, 3, 1], dtype=np.int64), values, 0, 2)


# ------------------------------------------------------------ parse_user_lines
def assert_same_user_lines(data: bytes):
    want = ref.parse_user_lines(data)
    for threads in (1, 2, 3, 7):
        got = _core.parse_user_lines(data, n_threads=threads)
        assert got[4:] == want[4:], threads  # n_lines and the error
        for g, w in zip(got[:4], want[:4]):
            if w is None:
                assert g is None
            else:
                assert g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)
    return want


USER_CASES = [
    b"",
    b"\n\n",
    b"1 2 3\n\n4 5",
    b"1 2 3\r\n4\t5 \r\n",
    b"1 2 3\n4\n",  # no items
    b"1 2\n-4 5\n",  # negative user
    b"1 2\n4 -5\n",
    b"1 2\n4 0\n",
    b"1 2\n4 2147483647 2147483648\n",
    b"1 2\n-4 0 x\n",  # syntax error wins within its line
    b"1 2\n-4 0\n",  # the user is judged before the items
    b"1 2\n4 0 -1\n",  # leftmost bad item
    b"1 x\n-4 0\n",  # first bad line wins
    b"0 1\n",  # user 0 is fine
    b"1 2\n1 3\n",  # duplicates are the caller's business
    b"-0 1\n",
    b"1 99999999999999999999\n",
]


@pytest.mark.parametrize("data", USER_CASES, ids=range(len(USER_CASES)))
def test_user_lines_edge_cases(data):
    assert_same_user_lines(data)


def test_user_lines_known():
    users, lines, lengths, items, n_lines, err = assert_same_user_lines(b"7 1 2\n\n9 3\n")
    assert users.tolist() == [7, 9] and lines.tolist() == [0, 2] and lengths.tolist() == [2, 1]
    assert items.tolist() == [1, 2, 3] and n_lines == 3 and err is None
    assert assert_same_user_lines(b"1 2\n-4 0 x\n")[5] == (1, b"x", "not an integer")
    assert assert_same_user_lines(b"1 2\n4 0 -1\n")[5] == (1, b"0", "item id 0")
    assert assert_same_user_lines(b"1 2\n4\n")[5] == (1, b"4", "no items")


_user_token = st.one_of(
    st.integers(min_value=-3, max_value=40).map(lambda v: str(v).encode()),
    st.sampled_from([b"2147483647", b"2147483648", b"99999999999999999999", b"x", b"+3"]),
)
_user_line = st.lists(_user_token, max_size=5).map(b" ".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(_user_line, max_size=12), st.booleans())
def test_user_lines_random_agree(lines, final_newline):
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    assert_same_user_lines(data)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 2**31 - 1), min_size=1, max_size=6), max_size=30), st.integers(1, 5))
def test_user_lines_valid_random(seqs, threads):
    data = b"".join(f"{u} ".encode() + b" ".join(str(i).encode() for i in s) + b"\n" for u, s in enumerate(seqs))
    users, lines, lengths, items, n_lines, err = _core.parse_user_lines(data, n_threads=threads)
    assert err is None and n_lines == len(seqs)
    assert users.tolist() == list(range(len(seqs))) and lengths.tolist() == [len(s) for s in seqs]
    assert items.tolist() == [i for s in seqs for i in s]


@pytest.mark.parametrize("threads", [1, 3])
def test_user_lines_into_out(threads):
    data = b"1 5 6\n\n2 7\n3 8 9 10\n"
    want = ref.parse_user_lines(data)
    out = np.full(len(data) // 2 + 1 + 3, -1, dtype=np.int32)
    users, lines, lengths, k, n_lines, err = _core.parse_user_lines(data, n_threads=threads, out=out)
    assert err is None and k == want[3].size
    np.testing.assert_array_equal(out[:k], want[3])
    assert (out[k:] == -1).all()
    np.testing.assert_array_equal(users, want[0])
    np.testing.assert_array_equal(lengths, want[2])
    assert n_lines == want[4]


def test_user_lines_out_validation():
    data = b"1 5 6\n"
    with pytest.raises(ValueError, match="room for 2 items"):
        _core.parse_user_lines(data, out=np.zeros(2, dtype=np.int32))
    with pytest.raises(TypeError, match="int32"):
        _core.parse_user_lines(data, out=np.zeros(10, dtype=np.int64))
    ro = np.zeros(10, dtype=np.int32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.parse_user_lines(data, out=ro)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.parse_user_lines(data, out=np.zeros(20, dtype=np.int32)[::2])
