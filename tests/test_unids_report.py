"""benchmarks/report.py's UniDS tables from synthetic result rows: selection on validation, paired p-values."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
pytest.importorskip("scipy")


@pytest.fixture
def bench(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ("report", "unids", "_results", "paper_tables"):
        sys.modules.pop(name, None)
    import _results
    import report
    import unids

    return report, unids, _results


def _row(unids, run_id, variant, seed, valid, test, setting="{}", experiment="compare", theta=0.0):
    row = {c: "" for c in unids.COLUMNS}
    row.update(run_id=run_id, experiment=experiment, dataset="ml-100k", model="hstu", variant=variant,
               setting=setting, theta=theta, gen_seed=0, seed=seed, epochs=10, best_epoch=5, generated_interactions=0)
    for m in unids.METRICS:
        row[f"valid_{m}"] = valid
        row[f"test_{m}"] = test
    return row


def test_unids_report(tmp_path, bench):
    report, unids, results = bench
    csv, ranks = tmp_path / "unids.csv", tmp_path / "ranks"
    ranks.mkdir()
    rng = np.random.default_rng(0)
    n = 200
    base = rng.integers(0, 300, size=n)
    runs = [("a0", "original", 0, 0.10, 0.20, "{}", base),
            ("a1", "original", 1, 0.10, 0.20, "{}", base),
            ("b0", "unids", 0, 0.12, 0.30, '{"x": 1}', np.maximum(base - 40, 0)),   # better on valid: selected
            ("c0", "unids", 0, 0.05, 0.99, '{"x": 2}', np.zeros(n, dtype=np.int64))]  # best on test: never read
    for run_id, variant, seed, valid, test, setting, r in runs:
        results.save_ranks(ranks / f"{run_id}.npz", r)
        np.savez_compressed(ranks / f"{run_id}.stage.npz", auc=(1 - r / 1000).astype(np.float32),
                            logloss=np.ones(n, np.float32), mrr=(1 / (r + 1)).astype(np.float32))
        results.append_row(csv, _row(unids, run_id, variant, seed, valid, test, setting), unids.COLUMNS)
    results.append_row(csv, _row(unids, "t0", "unids", 0, 0.1, 0.2, experiment="theta", theta=1.3), unids.COLUMNS)
    text = report.unids_report(csv, ranks)
    lines = [line for line in text.splitlines() if line.startswith("| ml-100k")]
    assert len(lines) == 3  # original, unids (one setting), theta row
    uni = next(line for line in lines if '{"x": 1}' in line)
    assert "+50.0%" in uni and '{"x": 2}' not in text  # chosen on validation, the test-best setting never shown
    cells = [c.strip() for c in uni.split("|")]
    assert float(cells[-4]) < 0.05 or "e-" in cells[-4]  # NDCG@10 p: ranks improved for most users
    assert "Theta sweep" in text and "| 1.3 |" in text
