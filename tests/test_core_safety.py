"""The compiled core under concurrent use: inputs that another Python thread
mutates or resizes while a kernel runs without the GIL (issue 21)."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

from conftest import run_python
from fastregen import _core
from fastregen.data import SequenceDataset

# A dataset whose items are a view of a writeable array: SequenceDataset
# makes the view read-only, but writes through the owner still reach it.
# The mutating thread waits until the kernel has validated its input, then
# writes ids that no table of the kernel has a slot for.
_MUTATE = """
import threading, time, numpy as np
from fastregen import patterns
from fastregen.data import SequenceDataset
rng = np.random.default_rng(0)
n_seq, L = 20000, 30
owner = rng.integers(1, 500, size=n_seq * L + 10).astype(np.int32)
ds = SequenceDataset(np.arange(0, n_seq * L + 1, L, dtype=np.int64), owner[: n_seq * L])
clean = owner.copy()
expected = patterns.mine_patterns(ds, max_span=4, min_support=2, threads=2)
go, done = threading.Event(), threading.Event()
def mutate():
    while not done.is_set():
        if go.wait(0.01):
            go.clear()
            time.sleep(0.002)
            owner[::97] = -2**30
            time.sleep(0.01)
            owner[:] = clean
t = threading.Thread(target=mutate)
t.start()
same = refused = 0
try:
    for _ in range(20):
        go.set()
        try:
            got = patterns.mine_patterns(ds, max_span=4, min_support=2, threads=2)
        except ValueError as e:  # the snapshot was taken mid-mutation: its bad ids are refused
            assert "-1073741824" in str(e), e
            refused += 1
        else:
            same += np.array_equal(got.items, expected.items) and np.array_equal(got.support, expected.support)
        time.sleep(0.015)
finally:
    done.set()
    t.join()
print("survived", same + refused)
"""


def test_kernels_read_a_snapshot_of_mutated_inputs():
    # Before: SIGSEGV within a few calls. After: the kernel reads a private
    # copy made before it validated, so every result is the unmutated one, or
    # (when the copy caught the mutation: timing on a loaded machine) a
    # ValueError naming the bad id; never a crash or a wrong result.
    r = run_python(_MUTATE, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["survived", "20"]


def _peak_bytes(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_read_only_dataset_arrays_are_not_copied_writeable_ones_are():
    n = 2_000_000  # 8 MB of items
    items = np.ones(n, dtype=np.int32)
    offsets = np.array([0, n], dtype=np.int64)
    ds = SequenceDataset(offsets, items)  # takes the arrays as they are, read-only
    assert not ds.items.flags.writeable
    assert _peak_bytes(lambda: _core.n_distinct(ds.offsets, ds.items)) < 1 << 20
    writeable = np.ones(n, dtype=np.int32)
    assert _peak_bytes(lambda: _core.n_distinct(offsets, writeable)) >= writeable.nbytes
    # a read-only view of a writeable owner can still change: copied too
    view = writeable[:]
    view.flags.writeable = False
    assert _peak_bytes(lambda: _core.n_distinct(offsets, view)) >= writeable.nbytes
    # ... a read-only view of bytes cannot
    frozen = np.frombuffer(writeable.tobytes(), dtype=np.int32)
    assert _peak_bytes(lambda: _core.n_distinct(offsets, frozen)) < 1 << 20


def _mine_with_scorer(offsets, items, during):
    """The entropy miner with a Python scorer that runs ``during()`` inside the
    kernel (between its validation and its reads), then scores uniformly."""

    def scorer(ctx_offsets, ctx_items, nxt):
        during()
        return np.full(nxt.size, 0.5)

    return _core.mine_entropy_patterns(offsets, items, 10, 3.0, 2, 3, None, None, scorer, 1)


def test_inputs_cannot_be_resized_while_a_kernel_reads_them():
    # numpy's resize(refcheck=False) reallocates in place: a kernel would then
    # read freed memory. The core holds a weak reference to every input array
    # during the call, which makes numpy refuse.
    items = np.tile(np.arange(1, 6, dtype=np.int32), 40).copy()
    items.flags.writeable = False  # read-only and owning its memory: read in place
    offsets = np.arange(0, items.size + 1, 10, dtype=np.int64)
    offsets.flags.writeable = False
    refused = []

    def resize():
        for arr in (items, offsets):
            try:
                arr.resize(4, refcheck=False)
            except ValueError as e:
                refused.append(str(e))

    _mine_with_scorer(offsets, items, resize)
    assert len(refused) >= 2 and all("referenced" in e for e in refused), refused
    assert items.size == 200 and offsets.size == 21
    items.resize(4, refcheck=False)  # after the call the weak references are gone
    assert items.size == 4


def test_inputs_mutated_inside_a_kernel_do_not_change_its_result():
    items = np.tile(np.arange(1, 6, dtype=np.int32), 40)
    offsets = np.arange(0, items.size + 1, 10, dtype=np.int64)
    expected = _mine_with_scorer(offsets, items, lambda: None)

    def scribble():
        items[:] = -(2**30)  # ids no table has a slot for
        offsets[1:] = 10**12  # ranges far outside the items

    got = _mine_with_scorer(offsets, items, scribble)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_markov_model_fit_and_prob_from_two_threads():
    # fit() swaps in a freshly counted model; a concurrent prob() keeps the
    # model it started with alive, so neither reads freed tables.
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 30, size=3000)
    items = rng.integers(1, 200, size=int(lengths.sum())).astype(np.int32)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    ds = SequenceDataset(offsets, items)
    model = _core.MarkovModel(2, 200)
    model.fit(ds.offsets, ds.items)
    ctx = ds.offsets[:-1]
    nxt = np.ascontiguousarray(ds.items[ctx])
    ctx_offsets = np.arange(len(ctx) + 1, dtype=np.int64)
    ctx_items = np.ascontiguousarray(ds.items[ctx])
    expected = model.prob(ctx_offsets, ctx_items, nxt)
    stop = threading.Event()

    def refit():
        while not stop.is_set():
            model.fit(ds.offsets, ds.items)

    t = threading.Thread(target=refit)
    t.start()
    try:
        for _ in range(30):
            np.testing.assert_array_equal(model.prob(ctx_offsets, ctx_items, nxt), expected)
    finally:
        stop.set()
        t.join()


def test_progress_and_out_arrays_are_checked():
    with pytest.raises(TypeError, match="progress must be None or an int64 numpy array"):
        _core.mine_patterns(np.array([0, 2]), np.array([1, 2], np.int32), 2, 1, 1, 2, 1, [0], 0)
    with pytest.raises(ValueError, match="out must be a writeable"):
        out = np.zeros(8, np.int32)
        out.flags.writeable = False
        _core.parse_user_lines(b"1 2\n", 1, out)
