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


def test_a_rebuild_row_pairs_in_place_of_its_compare_row(tmp_path, bench):
    """unids.REBUILT: the seed-0 UniDS run again on the generator rebuilt on the study's machine replaces the
    first build's compare row in the table and the verdict; the first build keeps its own table line."""
    report, unids, results = bench
    csv, ranks = tmp_path / "unids.csv", tmp_path / "ranks" / "unids"
    ranks.mkdir(parents=True)
    base = np.random.default_rng(1).integers(0, 300, size=200)
    setting = unids.ISSUE26_SETTING
    (rebuild,) = [r for r in unids.issue26_runs() if r.experiment == "rebuild"]
    assert (rebuild.variant, rebuild.seed, rebuild.setting) == ("unids", 0, setting)
    first = unids.Run("compare", "ml-100k", "hstu", "unids", 0, 0, setting)
    assert rebuild.run_id != first.run_id and unids.issue26_runs()[0] == rebuild
    for run_id, variant, exp, test, r in (("o0", "original", "compare", 0.20, base),
                                          (first.run_id, "unids", "compare", 0.10, base + 30),  # worse
                                          (rebuild.run_id, "unids", "rebuild", 0.30, np.maximum(base - 30, 0))):
        results.save_ranks(ranks / f"{run_id}.npz", r)
        np.savez_compressed(ranks / f"{run_id}.stage.npz", auc=(1 - r / 1000).astype(np.float32),
                            logloss=np.ones(r.size, np.float32), mrr=(1 / (r + 1)).astype(np.float32))
        results.append_row(csv, _row(unids, run_id, variant, 0, 0.1, test, setting if variant == "unids" else "{}",
                                     experiment=exp), unids.COLUMNS)
    text = report.unids_report(csv, ranks)
    cur = [ln for ln in text.splitlines() if ln.startswith("| ml-100k | hstu | unids {")]
    old = [ln for ln in text.splitlines() if ln.startswith("| ml-100k | hstu | unids (first build)")]
    assert len(cur) == 1 and "| 1 | 0.3000 |" in cur[0] and "+50.0%" in cur[0]
    assert len(old) == 1 and "-50.0%" in old[0]
    verdict = report.verdict_report(tmp_path, tmp_path / "ranks")
    (line,) = [ln for ln in verdict.splitlines() if ln.startswith("| UniDS |")]
    cells = [c.strip() for c in line.split("|")]
    assert cells[7] == "0.3000" and float(cells[8].strip("*%")) > 0  # the rebuild, better on every user's rank


def test_bench_run_writes_a_row_with_the_training_datas_hash(tmp_path, bench, monkeypatch):
    """unids.Bench.run end to end on a tiny planted dataset: one row per run, its ranks and stage files,
    ``train_sha256`` telling which rows trained on the same data (the split's, or one generator's)."""
    import json

    from fastregen.training.checkpoint import array_sha256

    report, unids, results = bench
    from test_unids import TINY_GEN, planted

    ds = planted(n=40)
    monkeypatch.setattr(unids, "RANKS", tmp_path / "ranks")
    monkeypatch.setitem(unids.BACKBONE, "ml-100k", dict(max_len=12, embed_dim=16, batch_size=16, epochs=1,
                                                        patience=1, lr=1e-3, valid_metric="ndcg@10", ks=(10,),
                                                        eval_every=1))
    b = unids.Bench(tmp_path / "work", 1, False, results=tmp_path / "unids.csv")
    monkeypatch.setattr(b, "data", lambda name: ds)
    setting = json.dumps({"max_len": 12, "theta_recall": 1.3, "theta_coarse": 1.4, "theta_fine": 1.5,
                          "max_pattern_len": 4, "pm_epochs": 1, "generator": TINY_GEN}, sort_keys=True)
    runs = [unids.Run("compare", "ml-100k", "hstu", "original", 0),
            unids.Run("compare", "ml-100k", "hstu", "unids", 0, 0, setting),
            unids.Run("rebuild", "ml-100k", "hstu", "unids", 0, 0, setting)]
    for run in runs:
        assert b.run(run)["run_id"] == run.run_id
    assert b.run(runs[0]) is None  # a run whose row exists is skipped
    rows = results.read_rows(tmp_path / "unids.csv", unids.COLUMNS)
    assert [r["experiment"] for r in rows] == ["compare", "compare", "rebuild"]
    from fastregen.data import leave_one_out

    split = leave_one_out(ds).train
    assert rows[0]["train_sha256"] == array_sha256(split.offsets, split.items)
    assert rows[1]["train_sha256"] == rows[2]["train_sha256"] != rows[0]["train_sha256"]  # one generator folder
    assert all((tmp_path / "ranks" / f"{r['run_id']}.stage.npz").exists() for r in rows)


def test_arms_are_read_against_the_full_unids_at_shared_seeds(tmp_path, bench):
    """The table of UniDS's bar pairs each arm with the full UniDS (not the original data) at the seeds both
    ran, and prints the paper's change beside it: Table 3 for an ablation, Table 1 for RepPad and DR4SR."""
    report, unids, results = bench
    csv, ranks = tmp_path / "unids.csv", tmp_path / "ranks"
    ranks.mkdir()
    base = np.random.default_rng(2).integers(0, 20, size=200)  # half the users in the top 10
    runs = [("o0", "original", 0, 0.10, base), ("u0", "unids", 0, 0.20, base), ("u1", "unids", 1, 0.20, base),
            ("t0", "no_tc", 0, 0.10, base + 40), ("t1", "no_tc", 1, 0.10, base + 40),
            ("g2", "no_ug", 2, 0.40, base),  # no full UniDS at seed 2: nothing to pair with
            ("r0", "reppad", 0, 0.30, base)]
    for run_id, variant, seed, test, r in runs:
        results.save_ranks(ranks / f"{run_id}.npz", r)
        np.savez_compressed(ranks / f"{run_id}.stage.npz", auc=(1 - r / 1000).astype(np.float32),
                            logloss=np.ones(r.size, np.float32), mrr=(1 / (r + 1)).astype(np.float32))
        results.append_row(csv, _row(unids, run_id, variant, seed, 0.1, test), unids.COLUMNS)
    text = report.unids_report(csv, ranks)
    assert "Against the full UniDS" in text
    # that table's lines (14 cells; the main table's have 15)
    lines = [[c.strip() for c in ln.split("|")][1:-1] for ln in text.splitlines() if ln.startswith("| ml-100k")]
    lines = [cells for cells in lines if len(cells) == 14]
    # no_ug ran at seed 2 only, where no full UniDS ran: nothing to pair with
    assert [cells[2] for cells in lines] == ["reppad", "no_tc"]
    rep, cells = lines
    assert rep[3:7] == ["1"] + ["+50.0%"] * 3 and rep[10:14] == ["-2.2%", "-2.4%", "-3.7%", "1"]
    assert cells[3] == "2"  # no_tc paired at seeds 0 and 1
    assert cells[4:7] == ["-50.0%"] * 3  # 0.10 against the full UniDS's 0.20, not against the original's 0.10
    # every user ranked 40 places lower: AUC and MRR drop for all, NDCG@10 for those who were in the top 10
    assert float(cells[7]) < 1e-6 and float(cells[8]) < 1e-6 and float(cells[9]) < 0.05
    assert cells[10:14] == ["-0.6%", "-1.7%", "-3.9%", "3"]  # Table 3, ML-1M: .8030/.8081, .1538/.1565, .1805/.1878
