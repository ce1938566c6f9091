"""Span-constrained pattern mining, pre-training pairs and window counts:
compiled core vs the pure-Python oracle (exact), Seq2Pat, the beauty.txt figure,
bad input, save/load and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fastregen import patterns as P
from fastregen.data import SequenceDataset, leave_one_out, load
from fastregen.reference import mining as ref

# Small alphabets so that items repeat inside sequences; lengths around the span
# so that sequences shorter than, equal to and longer than it all occur.
sequences_st = st.lists(
    st.lists(st.integers(1, 5), min_size=0, max_size=10), min_size=1, max_size=7
).filter(lambda seqs: any(seqs))


@st.composite
def mining_case(draw):
    seqs = draw(sequences_st)
    alpha = draw(st.integers(2, 6))
    beta = draw(st.integers(1, 3))
    min_len = draw(st.integers(1, min(3, alpha)))
    max_len = draw(st.one_of(st.none(), st.integers(min_len, 7)))
    return seqs, alpha, beta, min_len, max_len


def _mine(seqs, alpha, beta, min_len=2, max_len=None, threads=1):
    return P.mine_patterns(
        SequenceDataset.from_lists(seqs), alpha, beta, min_len, max_len, threads=threads
    )


# ---------------------------------------------------------------- mining vs oracle
@settings(max_examples=250, deadline=None)
@given(mining_case(), st.sampled_from([1, 2]))
# Always tried: alpha = 2, repeated items, sequences shorter than the span, empty ones.
@example(([[1, 1, 2, 1, 2], [2, 1, 1], [1]], 2, 1, 2, None), 2)
@example(([[3, 3, 3, 3], [3, 3], [], [3, 4, 3]], 6, 2, 1, None), 1)
@example(([[1, 2], [2, 1], [1, 2, 1]], 5, 2, 2, 3), 2)
def test_mine_matches_reference(case, threads):
    seqs, alpha, beta, min_len, max_len = case
    got = _mine(seqs, alpha, beta, min_len, max_len, threads)
    assert got.to_list() == ref.mine_patterns(seqs, alpha, beta, min_len, max_len)


@pytest.mark.parametrize(
    "seqs, alpha, beta, expected",
    [
        # alpha = 2: adjacent pairs only
        ([[1, 2, 3], [1, 2, 9], [1, 9, 2]], 2, 2, [((1, 2), 2)]),
        # repeated items: (1, 1) and (1, 1, 1) inside one sequence, a sequence counts once
        ([[1, 1, 1], [1, 1]], 5, 2, [((1, 1), 2)]),
        ([[1, 1, 1], [1, 1]], 5, 1, [((1, 1), 2), ((1, 1, 1), 1)]),
        # the span bounds i_m - i_1 <= alpha - 1: (1, 6) is 5 apart, beyond alpha = 5
        ([[1, 2, 3, 4, 5, 6], [1, 9, 9, 9, 9, 6], [1, 2, 1, 2], [5]], 5, 2, [((1, 2), 2)]),
        # sequences shorter than the span, and empty ones
        ([[3, 4], [], [3, 4], [4]], 10, 2, [((3, 4), 2)]),
    ],
)
def test_mine_hand_checked(seqs, alpha, beta, expected):
    # The expected lists were also checked against Seq2Pat 2.0.
    assert _mine(seqs, alpha, beta).to_list() == expected
    assert ref.mine_patterns(seqs, alpha, beta) == expected


def test_order_and_arrays():
    seqs = [[3, 1, 2, 3, 1], [3, 1, 2, 1], [2, 3, 1]]
    pats = _mine(seqs, 4, 2)
    as_list = pats.to_list()
    assert as_list == sorted(as_list, key=lambda kv: (len(kv[0]), kv[0]))
    assert pats.offsets.dtype == np.int64 and pats.items.dtype == np.int32 and pats.support.dtype == np.int64
    np.testing.assert_array_equal(pats.lengths, [len(p) for p, _ in as_list])
    ds = pats.as_dataset()
    assert ds.to_lists() == [list(p) for p, _ in as_list]
    # by hand: (1,2,1) (2,3,1) (3,1,2) have support 2; (1,2,3) only 1
    assert pats.counts_by_length() == {2: 6, 3: 3}
    assert pats.top(1)[0][1] == max(s for _, s in as_list)


def test_threads_give_identical_arrays():
    # > 2**20 interactions, so that threads=2 also builds the item index in two blocks
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 40, size=60_000)
    items = (rng.zipf(1.3, size=int(lengths.sum())) % 20_000 + 1).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ds = SequenceDataset(offsets, items)
    assert ds.num_interactions > 2**20
    one = P.mine_patterns(ds, 5, 4, threads=1)
    two = P.mine_patterns(ds, 5, 4, threads=2)
    assert len(one) > 10_000
    for name in ("offsets", "items", "support"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    # supports of a sample, counted directly
    seqs = ds.to_lists()
    for k in np.random.default_rng(1).choice(len(one), size=2, replace=False):
        p = one[int(k)].tolist()
        assert sum(ref.contains(s, p, 5) for s in seqs) == one.support[k]
    w1, w2 = P.window_counts(ds, 2, 2, threads=1), P.window_counts(ds, 2, 2, threads=2)
    assert len(w1) > 100
    for name in ("offsets", "items", "support"):
        np.testing.assert_array_equal(getattr(w1, name), getattr(w2, name))


def test_progress_bar_gives_same_result(capsys):
    seqs = [[1, 2, 3, 1, 2], [2, 3, 1, 2], [1, 2]]
    quiet = P.mine_patterns(seqs, 3, 2)
    loud = P.mine_patterns(seqs, 3, 2, progress=True)
    np.testing.assert_array_equal(quiet.items, loud.items)
    np.testing.assert_array_equal(quiet.support, loud.support)


def test_accepts_split_and_dr4sr_input():
    ds = SequenceDataset.from_lists([[1, 2, 3, 4, 5], [1, 2, 3, 9, 9], [7, 1, 2]])
    split = leave_one_out(ds)
    np.testing.assert_array_equal(P.dr4sr_input(ds).items, split.train.items)
    np.testing.assert_array_equal(P.dr4sr_input(ds).offsets, [0, 3, 6, 7])
    assert P.mine_patterns(split, 5, 2).to_list() == P.mine_patterns(split.train, 5, 2).to_list()
    assert P.mine_patterns(split, 5, 2).to_list() == [((1, 2), 2), ((1, 3), 2), ((2, 3), 2), ((1, 2, 3), 2)]


# ---------------------------------------------------------------- Seq2Pat
@settings(max_examples=25, deadline=None)
@given(mining_case())
def test_matches_seq2pat(case):
    seq2pat = pytest.importorskip("sequential.seq2pat")
    seqs, alpha, beta, _, _ = case
    nonempty = [s for s in seqs if s]  # Seq2Pat rejects empty sequences; they support nothing
    if beta > len(nonempty):
        return  # Seq2Pat rejects min_frequency > number of sequences
    theirs = seq2pat.Seq2Pat(nonempty, max_span=alpha).get_patterns(min_frequency=beta)
    expected = sorted((tuple(p[:-1]), p[-1]) for p in theirs)
    assert sorted(_mine(seqs, alpha, beta).to_list()) == expected


# ---------------------------------------------------------------- the reference figure
@pytest.mark.data
def test_beauty_reference_figure(beauty_path):
    train = P.dr4sr_input(load(beauty_path))
    pats = P.mine_patterns(train, max_span=5, min_support=2, threads=2)
    assert len(pats) == 40_664
    assert pats.counts_by_length() == {2: 28_108, 3: 10_210, 4: 2_091, 5: 255}
    one = P.mine_patterns(train, max_span=5, min_support=2, threads=1)
    np.testing.assert_array_equal(one.items, pats.items)
    np.testing.assert_array_equal(one.support, pats.support)
    # Spot-check supports of a sample of patterns against a direct count.
    seqs = train.to_lists()
    for k in np.random.default_rng(0).choice(len(pats), size=5, replace=False):
        p = pats[int(k)].tolist()
        assert sum(ref.contains(s, p, 5) for s in seqs) == pats.support[k]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(max_span=1), "max_span must be >= 2, got 1"),
        (dict(max_span=0), "max_span must be >= 2, got 0"),
        (dict(min_support=0), "min_support must be >= 1, got 0"),
        (dict(min_support=-3), "min_support must be >= 1, got -3"),
        (dict(min_len=4, max_len=3), "min_len = 4 is larger than max_len = 3"),
        (dict(min_len=6), "min_len = 6 is larger than max_len = 5"),
        (dict(min_len=0), "min_len must be >= 1, got 0"),
        (dict(min_len=7, max_len=9), "min_len = 7 is larger than max_span = 5"),
        (dict(threads=0), "threads must be >= 1, got 0"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        P.mine_patterns([[1, 2, 3]], **kwargs)


def test_bad_types_and_empty():
    with pytest.raises(TypeError, match="min_support must be an integer, got 0.5"):
        P.mine_patterns([[1, 2]], min_support=0.5)
    with pytest.raises(TypeError, match="max_span must be an integer"):
        P.mine_patterns([[1, 2]], max_span="5")
    with pytest.raises(ValueError, match="max_span = 9223372036854775808 does not fit in int64"):
        P.mine_patterns([[1, 2]], max_span=2**63)
    with pytest.raises(TypeError, match="data must be a SequenceDataset"):
        P.mine_patterns(np.zeros(3))
    with pytest.raises(ValueError, match="empty: 0 sequences"):
        P.mine_patterns(SequenceDataset.from_lists([]))
    with pytest.raises(ValueError, match="empty: 2 sequences but 0 interactions"):
        P.mine_patterns(SequenceDataset.from_lists([[], []]))
    with pytest.raises(ValueError, match="empty: 0 sequences"):
        P.window_counts(SequenceDataset.from_lists([]), 2, 1)


def test_core_rejects_bad_items_and_params():
    from fastregen import _core

    offsets = np.array([0, 3], dtype=np.int64)
    with pytest.raises(ValueError, match="item ids >= 1; found 0 at position 1"):
        _core.mine_patterns(offsets, np.array([1, 0, 2], dtype=np.int32), 5, 2, 2, 5)
    with pytest.raises(ValueError, match="max_span must be >= 2, got 1"):
        _core.mine_patterns(offsets, np.array([1, 1, 2], dtype=np.int32), 1, 2, 2, 5)
    with pytest.raises(ValueError, match="does not match len"):
        _core.mine_patterns(offsets, np.array([1, 2], dtype=np.int32), 5, 2, 2, 5)


# ---------------------------------------------------------------- save / load
def test_save_load_roundtrip(tmp_path):
    pats = _mine([[1, 2, 3, 1], [1, 2, 3], [3, 1, 2]], 3, 2, min_len=1)
    path = tmp_path / "p.tsv"
    pats.save(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# fastregen patterns kind=span max_span=3 min_support=2 min_len=1 max_len=3")
    assert lines[1:] == [f"{s}\t{' '.join(map(str, p))}" for p, s in pats.to_list()]
    back = P.Patterns.load(path)
    assert back.to_list() == pats.to_list()
    assert (back.max_span, back.min_support, back.min_len, back.max_len, back.kind) == (3, 2, 1, 3, "span")
    assert back.num_items == pats.num_items


def test_load_rejects_bad_lines(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("2\t1 2\nx\t3 4\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: expected 'support<TAB>items'"):
        P.Patterns.load(path)
    path.write_text("2\t1 0\n")
    with pytest.raises(ValueError, match="item ids must be >= 1, got 0"):
        P.Patterns.load(path)
    path.write_text("# a comment\n3\t5 6\n")
    assert P.Patterns.load(path).to_list() == [((5, 6), 3)]
    path.write_text("# fastregen patterns kind=span max_span=five\n2\t1 2\n")
    with pytest.raises(ValueError, match=r"bad.tsv:1: header field max_span = 'five' is not an integer"):
        P.Patterns.load(path)
    path.write_text("# fastregen patterns kind=span colour=red\n2\t1 2\n")
    with pytest.raises(ValueError, match=r"bad.tsv:1: unknown header field 'colour'"):
        P.Patterns.load(path)
    # issue 21: these gave tracebacks (OverflowError, UnicodeDecodeError) or named no file
    path.write_text("2\t1 2\n99999999999999999999\t3 4\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: support 99999999999999999999 is outside 0\.\."):
        P.Patterns.load(path)
    path.write_text("# fastregen patterns kind=span max_span=99999999999999999999\n2\t1 2\n")
    with pytest.raises(ValueError, match=r"bad.tsv:1: header field max_span = 99999999999999999999 is outside"):
        P.Patterns.load(path)
    path.write_bytes(b"2\t1 2\n3\t\xff\xfe\n")
    with pytest.raises(ValueError, match=r"bad.tsv:2: not UTF-8 text"):
        P.Patterns.load(path)
    path.write_text("# fastregen patterns kind=spam\n2\t1 2\n")
    with pytest.raises(ValueError, match=r"bad.tsv: kind must be one of 'span', 'window', 'entropy', got 'spam'"):
        P.Patterns.load(path)


# ---------------------------------------------------------------- window counts
@settings(max_examples=100, deadline=None)
@given(sequences_st, st.integers(1, 4), st.integers(1, 3))
def test_window_counts_match_reference(seqs, window, min_count):
    got = P.window_counts(seqs, window, min_count)
    assert got.to_list() == ref.window_counts(seqs, window, min_count)
    assert got.kind == "window"


def test_window_counts_count_occurrences():
    # (1, 2) occurs twice in the first sequence: occurrences, not sequences.
    got = P.window_counts([[1, 2, 1, 2], [2, 1]], 2, 2)
    assert got.to_list() == [((1, 2), 2), ((2, 1), 2)]
    with pytest.raises(ValueError, match="window must be >= 1, got 0"):
        P.window_counts([[1, 2]], 0, 1)
    with pytest.raises(ValueError, match="min_count must be >= 1, got 0"):
        P.window_counts([[1, 2]], 2, 0)


# ---------------------------------------------------------------- pre-training pairs
@settings(max_examples=150, deadline=None)
@given(
    mining_case(),
    st.sampled_from(["alpha", None, 2, 4]),
    st.integers(1, 4),
    st.integers(0, 2**64 - 1),
    st.sampled_from([None, 3, 50]),
)
def test_pairs_match_reference(case, span, k, seed, max_len):
    seqs, alpha, beta, min_len, mlen = case
    pats = _mine(seqs, alpha, beta, min_len, mlen)
    if len(pats) == 0:
        return
    pairs = P.pretrain_pairs(seqs, pats, max_per_sequence=k, seed=seed, max_len=max_len, span=span, threads=2)
    inputs = [s[-max_len:] if max_len else s for s in seqs]
    ref_span = alpha if span == "alpha" else span
    source, index = ref.pretrain_pairs(inputs, [p for p, _ in pats.to_list()], k, seed, ref_span)
    assert pairs.source.tolist() == source
    assert pairs.pattern_index.tolist() == index
    assert len(pairs) == len(source)
    for r in range(len(pairs)):
        seq, pat = pairs.sequences[r].tolist(), pairs.patterns[r].tolist()
        assert seq == inputs[source[r]]
        assert pat == list(pats[index[r]])
        assert ref.contains(seq, pat, ref_span)


# Long sequences over a few items with hand-made (not necessarily frequent)
# patterns: windows wider than the children of a prefix, so the kernel's
# occurrence-index lookups run, not only its window scans.
@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(1, 6), min_size=0, max_size=120), min_size=1, max_size=4),
    st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=7), min_size=1, max_size=25, unique_by=tuple),
    st.sampled_from([None, 2, 7, 40]),
    st.integers(1, 5),
)
def test_pairs_match_reference_on_long_repetitive_sequences(seqs, patterns, span, k):
    pats = P.Patterns(np.r_[0, np.cumsum([len(p) for p in patterns])], np.concatenate(patterns),
                           np.ones(len(patterns), np.int64), max_span=None)
    if not any(seqs):
        return
    pairs = P.pretrain_pairs(seqs, pats, max_per_sequence=k, seed=3, max_len=None, span=span, threads=2)
    source, index = ref.pretrain_pairs(seqs, patterns, k, 3, span)
    assert pairs.source.tolist() == source
    assert pairs.pattern_index.tolist() == index


def test_pairs_on_a_pattern_longer_than_a_thread_stack_holds():
    # Issue 21: the search recursed once per pattern item; 300k items
    # overflowed an OpenMP worker's stack (SIGSEGV). Run apart, so a crash
    # is a failed test and not the end of the session.
    from conftest import run_python

    r = run_python(
        "import numpy as np\n"
        "from fastregen import patterns as P\n"
        "n = 300_000\n"
        "seq = np.arange(1, n + 1)\n"
        "pats = P.Patterns(np.array([0, n, n + 2]), np.r_[seq, [5, 4]], np.array([2, 2]))\n"
        "r = P.pretrain_pairs([seq, seq[::-1]], pats, span=None, max_len=None, threads=2)\n"
        "print(r.source.tolist(), r.pattern_index.tolist())\n",
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    # the ascending sequence holds the long pattern, the descending one (5, 4)
    assert r.stdout.split("\n")[0] == "[0, 1] [0, 1]"


def test_pairs_are_polynomial_on_repeated_items():
    # Issue 21: the per-level "already extended" marks were overwritten by the
    # recursive call, so 52 identical items took exponential time (> 60 s).
    from conftest import run_python

    r = run_python(
        "import time\n"
        "from fastregen import patterns as P\n"
        "seqs = [[7] * 52, [7] * 52]\n"
        "pats = P.mine_patterns(seqs, max_span=20, min_support=2, min_len=1)\n"
        "t = time.perf_counter()\n"
        "r = P.pretrain_pairs(seqs, pats, span=None, max_len=None, max_per_sequence=100)\n"
        "print(len(pats), len(r), time.perf_counter() - t)\n",
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    n_patterns, n_pairs, seconds = r.stdout.split()
    assert (int(n_patterns), int(n_pairs)) == (20, 40)  # 7, 77, ..., 7 x 20 in both sequences
    assert float(seconds) < 5.0


def test_pairs_threads_and_seed():
    rng = np.random.default_rng(1)
    lengths = rng.integers(2, 40, size=2000)
    items = (rng.zipf(1.4, size=int(lengths.sum())) % 200 + 1).astype(np.int32)
    ds = SequenceDataset(np.concatenate([[0], np.cumsum(lengths)]), items)
    pats = P.mine_patterns(ds, 5, 3)
    a = P.pretrain_pairs(ds, pats, max_per_sequence=3, seed=7, threads=1)
    b = P.pretrain_pairs(ds, pats, max_per_sequence=3, seed=7, threads=2)
    c = P.pretrain_pairs(ds, pats, max_per_sequence=3, seed=8, threads=2)
    np.testing.assert_array_equal(a.source, b.source)
    np.testing.assert_array_equal(a.pattern_index, b.pattern_index)
    assert not np.array_equal(a.pattern_index, c.pattern_index)
    assert np.bincount(a.source).max() == 3
    assert a.sequences.items.dtype == np.int32 and a.source.dtype == np.int64


def test_pairs_choice_is_uniform():
    # Every copy of the sequence has its own random stream: 3000 copies, each
    # containing the same 6 patterns, 2 drawn per copy.
    seqs = [[1, 2, 3, 4], [1, 2, 3, 4]]
    pats = P.mine_patterns(seqs, 4, 2, max_len=2)
    assert len(pats) == 6
    n_copies = 3000
    pairs = P.pretrain_pairs([[1, 2, 3, 4]] * n_copies, pats, max_per_sequence=2, seed=0)
    np.testing.assert_array_equal(pairs.source, np.repeat(np.arange(n_copies), 2))
    chosen = pairs.pattern_index.reshape(n_copies, 2)
    assert np.all(chosen[:, 0] < chosen[:, 1])  # distinct, ascending
    counts = np.bincount(pairs.pattern_index, minlength=6)
    expected = n_copies * 2 / 6
    assert np.all(np.abs(counts - expected) < 0.1 * expected), counts
    # all 15 unordered pairs occur, roughly equally often
    combos = np.bincount(chosen[:, 0] * 6 + chosen[:, 1], minlength=36)
    assert np.count_nonzero(combos) == 15 and combos.max() < 2 * n_copies / 15


def test_pairs_span_difference_and_truncation():
    seqs = [[1, 9, 9, 9, 9, 9, 2], [1, 2]]
    pats = P.mine_patterns(seqs + [[1, 2]], 2, 2)
    assert pats.to_list() == [((1, 2), 2)]  # (9, 9) occurs in one sequence only
    windowed = P.pretrain_pairs(seqs, pats, span="alpha")
    anywhere = P.pretrain_pairs(seqs, pats, span=None)
    assert windowed.source.tolist() == [1]
    assert anywhere.source.tolist() == [0, 1]
    truncated = P.pretrain_pairs(seqs, pats, span=None, max_len=3)
    assert truncated.source.tolist() == [1]


def test_pairs_bad_input():
    pats = P.mine_patterns([[1, 2], [1, 2]], 2, 2)
    with pytest.raises(ValueError, match="max_per_sequence must be >= 1, got 0"):
        P.pretrain_pairs([[1, 2]], pats, max_per_sequence=0)
    with pytest.raises(ValueError, match="span must be >= 2, got 1"):
        P.pretrain_pairs([[1, 2]], pats, span=1)
    with pytest.raises(ValueError, match="span must be 'alpha', None or an int"):
        P.pretrain_pairs([[1, 2]], pats, span="window")
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*64\), got -1"):
        P.pretrain_pairs([[1, 2]], pats, seed=-1)
    with pytest.raises(ValueError, match="seed must be in"):
        P.pretrain_pairs([[1, 2]], pats, seed=2**64)
    with pytest.raises(TypeError, match="seed must be an integer"):
        P.pretrain_pairs([[1, 2]], pats, seed=1.5)
    with pytest.raises(TypeError, match="patterns must be a Patterns"):
        P.pretrain_pairs([[1, 2]], [[1, 2]])
    windows = P.window_counts([[1, 2], [1, 2]], 2, 1)
    with pytest.raises(ValueError, match="span='alpha' needs patterns.max_span"):
        P.pretrain_pairs([[1, 2]], windows)
    dup = P.Patterns(np.array([0, 2, 4]), np.array([1, 2, 1, 2]), np.array([2, 2]), max_span=2)
    with pytest.raises(ValueError, match="patterns 0 and 1 are the same pattern"):
        P.pretrain_pairs([[1, 2]], dup)


# ---------------------------------------------------------------- CLI
def test_cli_mine_and_pairs(tmp_path):
    from typer.testing import CliRunner

    from fastregen.cli import app

    data = tmp_path / "d.txt"
    data.write_text("1 1 2 3 4 5 6\n2 1 2 3 7 8\n3 5 1 2 3 9 9\n")
    out = tmp_path / "p.tsv"
    runner = CliRunner()
    res = runner.invoke(app, ["mine", str(data), "--max-span", "3", "--min-support", "2", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "4 patterns" in res.output and "length 2: 3" in res.output and "length 3: 1" in res.output
    assert P.Patterns.load(out).to_list() == [((1, 2), 3), ((1, 3), 3), ((2, 3), 3), ((1, 2, 3), 3)]
    pairs_out = tmp_path / "pairs.npz"
    res = runner.invoke(app, ["pairs", str(data), "-p", str(out), "-o", str(pairs_out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "12 pairs from 3 of 3 sequences" in res.output
    with np.load(pairs_out) as z:
        assert z["source"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    res = runner.invoke(app, ["mine", str(data), "--max-span", "1", "--no-progress"])
    assert res.exit_code == 2 and "error: invalid value for '--max-span'" in res.output
    assert "greater than or equal to 2" in res.output and res.output.count("\n") == 1


def test_huge_spans_do_not_overflow():
    seqs = [[1, 2, 3], [1, 2, 3]]
    expected = _mine(seqs, 3, 2).to_list()
    assert _mine(seqs, 2**62, 2).to_list() == expected
    assert P.window_counts(seqs, 2**62, 1).to_list() == []
    pats = _mine(seqs, 3, 2)
    wide = P.pretrain_pairs(seqs, pats, span=2**62, max_per_sequence=100)
    assert wide.pattern_index.tolist() == [0, 1, 2, 3] * 2


def test_max_patterns_limit():
    # Two identical sequences of 12 distinct items share 2^12 - 13 patterns of length >= 2.
    seqs = [list(range(1, 13))] * 2
    full = P.mine_patterns(seqs, 12, 2, max_patterns=None)
    assert len(full) == 2**12 - 13
    assert len(P.mine_patterns(seqs, 12, 2, max_patterns=len(full))) == len(full)
    for threads in (1, 2):
        with pytest.raises(ValueError, match=f"more than max_patterns = {len(full) - 1} patterns"):
            P.mine_patterns(seqs, 12, 2, max_patterns=len(full) - 1, threads=threads)
    with pytest.raises(ValueError, match="max_patterns must be >= 1, got 0"):
        P.mine_patterns(seqs, 12, 2, max_patterns=0)


def test_patterns_reject_unrepresentable_ids(tmp_path):
    # int64 ids beyond int32 and float ids were silently wrapped / truncated.
    with pytest.raises(ValueError, match="outside the int32 range"):
        P.Patterns(np.array([0, 2]), np.array([1, 2**32 + 1], dtype=np.int64), np.array([2]))
    with pytest.raises(TypeError, match="items must hold integers"):
        P.Patterns(np.array([0, 2]), np.array([1.0, 2.5]), np.array([2]))
    with pytest.raises(TypeError, match="support must hold integers"):
        P.Patterns(np.array([0, 2]), np.array([1, 2]), np.array([2.5]))
    with pytest.raises(ValueError, match="non-decreasing"):
        P.Patterns(np.array([0, 2, 1, 2]), np.array([1, 2]), np.array([1, 1, 1]))
    with pytest.raises(ValueError, match="item ids must be >= 1, got 0"):
        P.Patterns(np.array([0, 2]), np.array([1, 0]), np.array([2]))
    path = tmp_path / "big.tsv"
    path.write_text(f"2\t1 {2**31}\n")
    with pytest.raises(ValueError, match=r"big.tsv:1: item id 2147483648 is beyond int32"):
        P.Patterns.load(path)


def test_cli_quiet_and_clean_errors(tmp_path):
    from typer.testing import CliRunner

    from fastregen.cli import app

    data = tmp_path / "d.txt"
    data.write_text("1 1 2 3\n2 1 2 3\n")
    out = tmp_path / "p.tsv"
    runner = CliRunner()
    # --quiet turns progress off, as on every data command
    res = runner.invoke(app, ["mine", str(data), "--max-span", "3", "--drop-last", "0", "-o", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["pairs", str(data), "-p", str(out), "--drop-last", "0", "-q"])
    assert res.exit_code == 0, res.output
    # a bad data file or patterns file is a one-line error, not a traceback
    bad = tmp_path / "bad.txt"
    bad.write_text("1 1 x\n")
    res = runner.invoke(app, ["mine", str(bad), "-q"])
    assert res.exit_code == 2 and "bad.txt:1" in res.output
    assert isinstance(res.exception, SystemExit)
    bad_pats = tmp_path / "bad.tsv"
    bad_pats.write_text("2\t1 0\n")
    res = runner.invoke(app, ["pairs", str(data), "-p", str(bad_pats), "-q"])
    assert res.exit_code == 2 and "item ids must be >= 1" in res.output
    assert isinstance(res.exception, SystemExit)


def test_absurd_thread_counts_are_clamped():
    # The core clamps threads= to a few per core (resolve_threads): an absurd
    # request must neither start that many OpenMP threads (libgomp ends the
    # process when the OS refuses one) nor allocate per-thread scratch for them.
    import time

    seqs = [[1, 2, 3, 1, 2], [2, 3, 1, 2], [1, 3, 2]] * 20
    ds = SequenceDataset.from_lists(seqs)
    want = _mine(seqs, 3, 2).to_list()
    t = time.perf_counter()
    assert P.mine_patterns(ds, max_span=3, min_support=2, threads=1_000_000).to_list() == want
    pats = _mine(seqs, 3, 2)
    a = P.pretrain_pairs(ds, pats, threads=1_000_000)
    b = P.pretrain_pairs(ds, pats, threads=1)
    assert a.source.tolist() == b.source.tolist() and a.pattern_index.tolist() == b.pattern_index.tolist()
    assert P.window_counts(ds, 2, 2, threads=1_000_000).to_list() == P.window_counts(ds, 2, 2).to_list()
    assert time.perf_counter() - t < 10
