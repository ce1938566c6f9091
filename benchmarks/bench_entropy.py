"""pytest-benchmark rows for the entropy core (history per commit).

    python -m pytest benchmarks/bench_entropy.py --benchmark-enable -p no:cacheprovider

The side-by-side comparison with the reference and numba is ``benchmarks/entropy.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from fastregen import entropy as E
from fastregen import patterns as P
from fastregen.data import SequenceDataset, load

DATA = Path(os.environ.get("FASTREGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def beauty():
    path = DATA / "beauty.txt"
    if not path.is_file():
        pytest.skip(f"needs {path}")
    return load(path)


@pytest.mark.parametrize("kind", ["periodic", "random"])
@pytest.mark.parametrize("n", [1_000, 10_000, 100_000])
def test_lz_synthetic(benchmark, kind, n):
    rng = np.random.default_rng(0)
    seq = np.arange(n) % 7 + 1 if kind == "periodic" else rng.integers(1, 101, n)
    ds = SequenceDataset.from_lists([seq])
    benchmark(E.lambda_sums, ds, threads=1)


def test_lz_beauty(benchmark, beauty):
    benchmark(E.real_entropy, beauty)


def test_mine_beauty(benchmark, beauty):
    model = E.MarkovModel(2).fit(beauty)
    benchmark(P.mine_entropy_patterns, beauty, model, stage="coarse")


def test_segment_beauty(benchmark, beauty):
    pats = P.mine_entropy_patterns(beauty, stage="recall")
    benchmark(P.segment, beauty, pats)
