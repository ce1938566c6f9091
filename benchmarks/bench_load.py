"""pytest-benchmark entries of the data layer (the cold-load rows of results/load.csv come from load.py).

Run: ``python -m pytest benchmarks/bench_load.py --benchmark-enable -p no:cacheprovider``
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fastregen import data
from fastregen.reference import textio as ref

SHARED = Path(os.environ.get("FASTREGEN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="module")
def beauty() -> Path:
    path = SHARED / "beauty.txt"
    if not path.is_file():
        pytest.skip(f"needs {path}")
    return path


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "demo.txt"
    data.save(data.synthetic("demo", seed=0), path)
    return path


@pytest.mark.parametrize("loader", ["fastregen", "reference", "naive"])
def test_load_beauty(benchmark, beauty, loader):
    def naive():
        with open(beauty) as f:
            return [[int(t) for t in line.split()] for line in f]

    fn = {"fastregen": lambda: data.load(beauty), "reference": lambda: ref.read_lines(beauty), "naive": naive}[loader]
    benchmark.group = "load beauty.txt"
    benchmark(fn)


def test_load_demo(benchmark, demo_file):
    benchmark(data.load, demo_file)


def test_stats_and_split_beauty(benchmark, beauty):
    ds = data.load(beauty)
    benchmark(lambda: (data.stats(ds), data.leave_one_out(ds)))


def test_synthetic_demo(benchmark):
    benchmark(data.synthetic, "demo", seed=0)
