"""The study engine (fastregen.study) as the study scripts of benchmarks/ use it: queue, Store, ranks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from fastregen.study import ALL_HELD, DONE_NONE_PENDING, RAN, Store, file_lock, run_queue
from fastregen.study.store import load_ranks, save_ranks

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def test_run_queue_takes_the_next_unheld_run_and_says_why_it_stops(tmp_path):
    done, trained = set(), []

    def train(run):
        trained.append(run)
        done.add(run)
    runs = ["a", "b", "c"]
    locks = tmp_path / "locks"
    # one run per call, in order; a run held by another worker is passed over
    with file_lock(locks / "a.lock") as held:
        assert held
        assert run_queue(lambda: runs, str, lambda: set(done), locks, train, max_runs=1) == RAN == 0
    assert trained == ["b"]
    # a skipped run (its prerequisite busy elsewhere) waits: 3 while nothing else can start
    assert run_queue(lambda: runs, str, lambda: set(done), locks, train, skip=lambda r: True) == ALL_HELD == 3
    assert run_queue(lambda: runs, str, lambda: set(done), locks, train) == DONE_NONE_PENDING == 4
    assert trained == ["b", "a", "c"]


def test_run_queue_does_not_redo_a_run_finished_while_it_waited(tmp_path):
    """`done` is asked again under the run's lock: a row written meanwhile by another worker counts."""
    calls = {"n": 0}

    def done():  # the first look says nothing is done; by the time the lock is taken "a" is
        calls["n"] += 1
        return set() if calls["n"] == 1 else {"a"}
    trained = []
    assert run_queue(lambda: ["a", "b"], str, done, tmp_path, trained.append, max_runs=1, lock_prefix="run-") == RAN
    assert trained == ["b"]
    assert (tmp_path / "run-b.lock").exists()


@pytest.mark.parametrize("cutoff", [None, 1, 50, 255])
@pytest.mark.parametrize("ranks", [[], [0], [0, 0, 3, 49, 50, 51, 12000], list(range(300))])
def test_ranks_round_trip(tmp_path, ranks, cutoff):
    ranks = np.asarray(ranks, dtype=np.int64)
    save_ranks(tmp_path / "r.npz", ranks, cutoff)
    back, got_cutoff = load_ranks(tmp_path / "r.npz")
    assert got_cutoff == cutoff
    want = ranks if cutoff is None else np.minimum(ranks, cutoff)
    assert back.dtype == np.int64 and np.array_equal(back, want)


def test_ranks_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match="1-d array of ranks >= 0"):
        save_ranks(tmp_path / "r.npz", np.array([1, -1]))
    with pytest.raises(ValueError, match="1-d array"):
        save_ranks(tmp_path / "r.npz", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"ranks_cutoff must be in 1..255 \(ranks are stored as uint8\), got 256"):
        Store(tmp_path, ranks_cutoff=256)


def test_store_with_declared_columns_and_sparse_ranks(tmp_path):
    """A study script's Store: its own CSV and columns, ranks kept below a cutoff."""
    results = tmp_path / "results" / "study.csv"
    store = Store(tmp_path, results=results, ranks_dir=tmp_path / "ranks" / "study", columns=["run_id", "x"],
                  ranks_cutoff=50, what="study file", hint="start a new file")
    assert store.read() == [] and store.done() == {}
    store.save_ranks("r1", np.array([3, 70, 0]))
    store.append({"run_id": "r1", "x": 1})
    assert results.read_text().splitlines() == ["run_id,x", "r1,1"]
    assert store.done() == {"r1": {"run_id": "r1", "x": "1"}}
    assert store.load_ranks("r1").tolist() == [3, 50, 0]
    with pytest.raises(ValueError, match=r"lacks \['x'\] / has unknown \['y'\]"):
        store.append({"run_id": "r2", "y": 2})
    other = Store(tmp_path, results=results, columns=["run_id", "y"], what="study file", hint="start a new file")
    with pytest.raises(ValueError, match=r"study.csv: not a study file \(its columns differ: missing y; "
                                         r"unexpected x\); start a new file"):
        other.read()
    with pytest.raises(ValueError, match="columns differ"):
        other.append({"run_id": "r2", "y": 2})
    assert results.read_text().splitlines() == ["run_id,x", "r1,1"]  # nothing written by the refused append
    with pytest.raises(ValueError, match="ranks of a finished run are missing"):
        store.load_ranks("nope")


def test_committed_study_ranks_load_through_the_engine():
    """The ranks the study scripts committed before they moved onto the engine load unchanged."""
    files = sorted((BENCH / "results" / "ranks" / "dr4sr").glob("*.npz"))
    if not files:
        pytest.skip("no committed DR4SR study ranks in benchmarks/results/ranks/dr4sr")
    ranks, cutoff = load_ranks(files[0])
    with np.load(files[0]) as z:
        assert cutoff == int(z["cutoff"]) == 50
        assert np.array_equal(np.flatnonzero(ranks < cutoff), z["users"].astype(np.int64))
        assert np.array_equal(ranks[ranks < cutoff], z["ranks"].astype(np.int64))


@pytest.fixture
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    yield
    for name in ("dr4sr_study", "dr4srplus", "unids", "_harness", "_results"):
        sys.modules.pop(name, None)


def test_study_scripts_read_their_committed_rows_through_the_engine(bench_path):
    """Every committed study CSV is read by its script's Store (its declared columns), ids intact."""
    import dr4sr_study
    import dr4srplus
    import unids

    results = BENCH / "results"
    for script, csv_name in ((dr4sr_study, "dr4sr.csv"), (dr4srplus, "dr4srplus.csv"), (unids, "unids.csv")):
        if not (results / csv_name).exists():
            continue
        store = Store(results, results=results / csv_name, columns=script.COLUMNS)
        rows = store.read()
        assert rows and all(len(r["run_id"]) == 12 for r in rows)
