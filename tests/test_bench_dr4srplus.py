"""benchmarks/dr4srplus.py + report.py: selection on validation only, paired p-values, the bar line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    pytest.importorskip("scipy")
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ("dr4srplus", "report", "_results"):
        sys.modules.pop(name, None)
    import _results
    import dr4srplus
    import report

    return dr4srplus, report, _results


def _row(study, run_id, stage, model, train_set, seed, valid, test, lr="", wd=""):
    row = {c: "" for c in study.COLUMNS}
    regen = "" if train_set in ("original", "original+patterns") else "r1"
    row.update(run_id=run_id, stage=stage, dataset="beauty", model=model, train_set=train_set, target_seed=seed,
               regen=regen,
               grid="upper_lr" if lr != "" else "", upper_lr=lr, alpha=0.001 if lr != "" else "",
               upper_weight_decay=wd, upper_steps=10, upper_skipped=0, weight_mean=0.5,
               n_test_users=200, **{f"valid_{m}": valid for m in study.METRICS},
               **{f"test_{m}": test for m in study.METRICS}, test_auc=0.5)
    return row


def test_selection_reads_validation_only_and_p_values_are_paired(tmp_path, bench):
    study, report, res = bench
    from scipy.stats import wilcoxon

    results, ranks = tmp_path / "dr4srplus.csv", tmp_path / "ranks"
    ranks.mkdir()
    rng = np.random.default_rng(0)
    n = 200
    grid = [(a, wd) for a in study.RATES for wd in study.WEIGHT_DECAYS]
    user_ranks = {}
    for i, (a, wd) in enumerate(grid):
        rid = f"sel{i}"
        # (0.01, 0.1) has the best validation score; (0.1, 0.1) the best *test* score, and must not be picked
        valid = 0.05 if (a, wd) == (0.01, 0.1) else 0.03
        test = 0.09 if (a, wd) == (0.1, 0.1) else 0.04
        res.append_row(results, _row(study, rid, "select", "sasrec", "dr4sr+", 0, valid, test, a, wd), study.COLUMNS)
        user_ranks[rid] = rng.integers(0, 60, n)
    for seed in (1, 2):
        res.append_row(results, _row(study, f"rep{seed}", "replicate", "sasrec", "dr4sr+", seed, 0.05, 0.045,
                                     0.01, 0.1), study.COLUMNS)
        user_ranks[f"rep{seed}"] = rng.integers(0, 30, n)
    for ts in ("original", "dr4sr", "original+patterns"):
        for seed in (0, 1, 2):
            rid = f"{ts}{seed}"
            res.append_row(results, _row(study, rid, "replicate", "sasrec", ts, seed, 0.02, 0.03), study.COLUMNS)
            user_ranks[rid] = rng.integers(0, 80 if ts == "original" else 50, n)
    for rid, r in user_ranks.items():
        res.save_ranks(ranks / f"{rid}.npz", r)

    rows = res.read_rows(results, study.COLUMNS)
    assert study.selected(rows, "beauty", "sasrec") == (0.01, 0.1)
    assert study.selected(rows, "beauty", "sasrec", "r1") == (0.01, 0.1)
    assert study.selected(rows, "beauty", "sasrec", "r9") is None
    assert study.selected(rows, "beauty", "sasrec", grid="alpha") is None  # another grid, not run
    assert study.selected(rows, "beauty", "gru4rec") is None
    text = report.dr4srplus_report(results, ranks)
    assert "| beauty | sasrec | r1 | upper_lr | 0.01 | 0.1 | 0.0500 |" in text and "**selected**" in text
    plus_line = next(line for line in text.splitlines() if "| beauty | sasrec | dr4sr+ @r1 |" in line)
    assert "| 3 |" in plus_line  # seed 0 (the selection run) + seeds 1, 2; the test-best setting is left out
    assert "0.0433 ± 0.0024" in plus_line  # 0.04, 0.045, 0.045: the selected setting only

    # the p-value against DR4SR: Wilcoxon over users of the per-user NDCG@20, each side averaged over seeds
    def ndcg(rids):
        return np.mean([np.where(user_ranks[r] < 20, 1 / np.log2(np.minimum(user_ranks[r], 50) + 2), 0.0)
                        for r in rids], axis=0)

    sel = f"sel{grid.index((0.01, 0.1))}"
    p = wilcoxon(ndcg([sel, "rep1", "rep2"]) - ndcg(["dr4sr0", "dr4sr1", "dr4sr2"])).pvalue
    assert report._fmt_p(p) in plus_line
    assert "The bar (issue 18)" in text and "beauty/sasrec @r1" in text
    # another regenerator's rows are a group of their own, never mixed into r1's
    res.append_row(results, {**_row(study, "other", "replicate", "sasrec", "dr4sr", 0, 0.02, 0.01), "regen": "r2"},
                   study.COLUMNS)
    res.save_ranks(ranks / "other.npz", rng.integers(0, 80, n))
    text = report.dr4srplus_report(results, ranks)
    assert "| beauty | sasrec | dr4sr @r2 | 1 |" in text and "| beauty | sasrec | dr4sr @r1 | 3 |" in text


def test_run_ids_ignore_the_stage_so_seed_zero_is_shared(bench):
    study, _, _ = bench
    a = study.Run("select", "beauty", "sasrec", "dr4sr+", 0, "upper_lr", 0.01, 0.1)
    b = study.Run("replicate", "beauty", "sasrec", "dr4sr+", 0, "upper_lr", 0.01, 0.1)
    assert a.run_id("abc") == b.run_id("abc") != study.Run("select", "beauty", "sasrec", "dr4sr+", 1, "upper_lr",
                                                           0.01, 0.1).run_id("abc")
    assert a.run_id("abc") != a.run_id("def")  # another regenerator, another run
    assert a.run_id("abc") != study.Run("select", "beauty", "sasrec", "dr4sr+", 0, "alpha", 0.01, 0.1).run_id("abc")
    assert a.plus["upper_lr"] == 0.01 and a.plus["alpha"] == 1e-3 and a.plus["mode"] == "bilevel"
    assert study.Run("x", "beauty", "sasrec", "dr4sr+", 0, "alpha", 0.1, 0.01).plus["alpha"] == 0.1
    assert study.Run("ablation", "beauty", "sasrec", "dr4sr+e2e").plus["mode"] == "end_to_end"
    assert len(study.selection_runs()) == len(study.selection_runs("alpha")) == 2 * 2 * 9


def test_issue26_rows_get_their_validation_table_and_never_the_test_table(tmp_path, bench):
    """Stage 5's rows (stage "issue26") are listed by declared rate with validation figures only (the
    selection marked once all three ran); their test figures are the verdict's, never this table's."""
    study, report, res = bench
    results, ranks = tmp_path / "dr4srplus.csv", tmp_path / "ranks"
    rates = study.ISSUE26_RATES

    def add(i, rate, valid):
        row = _row(study, f"p{i}", "issue26", "sasrec", "dr4sr+", 0, valid, 0.99, rate, 0.001)
        row["weight_var"], row["epochs"], row["best_epoch"] = 0.002, 40, 20
        res.append_row(results, row, study.COLUMNS)
        res.save_ranks(ranks / f"p{i}.npz", np.zeros(10, int))

    add(0, rates[0], 0.05)
    text = report.dr4srplus_report(results, ranks)
    lines = [ln for ln in text.splitlines() if ln.startswith("| 0.")]
    assert len(lines) == 3 and sum("(not run)" in ln for ln in lines) == 2 and "**selected**" not in text
    assert "Test, full ranking" not in text and "0.9900" not in text
    add(1, rates[1], 0.06)
    add(2, rates[2], 0.04)
    text = report.dr4srplus_report(results, ranks)
    (sel,) = [ln for ln in text.splitlines() if "**selected**" in ln]
    assert sel.startswith(f"| {rates[1]:g} | 0.0600 |")


def test_issue26_status_counts_the_declared_runs_and_estimates_from_the_same_model(bench):
    """``plan``'s stage-5 line: 8 declared runs (the 3-rate selection, SASRec seeds 1-2, GRU4Rec seeds
    0-2), the rate validation selected, and hours only from done runs of the same target model."""
    study, _, _ = bench
    regen = "r1"
    runs = study.issue26_runs([], regen)
    assert len(runs) == len(study.ISSUE26_RATES) == 3
    rows = []

    def add(run, valid, seconds):
        row = _row(study, run.run_id(regen), "issue26", run.model, "dr4sr+", run.target_seed, valid, 0.0,
                   run.rate, run.upper_weight_decay)
        row["seconds"] = seconds
        rows.append(row)

    add(runs[0], 0.05, 3600)
    assert study.issue26_status(rows, regen).startswith("issue 26 stage 5: 1/8 done; selection 1/3 (validation")
    add(runs[1], 0.07, 7200)
    add(runs[2], 0.06, 1800)
    line = study.issue26_status(rows, regen)
    # the selected rate is the best *validation* one, and SASRec's two pending runs cost the SASRec mean (1.17 h)
    assert f"selected upper lr {runs[1].rate:g} on validation" in line
    assert "3/8 done" in line and "5 pending, ~2.3 one-thread hours for 2" in line
    assert "gru4rec: no done row to estimate from" in line
    full = study.issue26_runs(rows, regen)
    for run in full[3:]:
        add(run, 0.05, 3600 * (2 if run.model == "gru4rec" else 1))
    assert study.issue26_status(rows, regen) == (
        f"issue 26 stage 5: 8/8 done; selected upper lr {runs[1].rate:g} on validation; 0 pending")


def test_the_explore_stage_varies_the_selected_run_beside_it(tmp_path, bench):
    """``explore``: nothing before the selection ran; then the selected seed-0 run with detach_hidden, a new
    run id (the declared ids unchanged); its row gets its own table beside the run it varies."""
    study, report, res = bench
    regen = "r1"
    runs = study.issue26_runs([], regen)
    assert study.explore_runs([], regen) == []
    # the run id of the first explore run as declared (when Run had a detach_hidden field) does not move
    assert study.Run("explore", "beauty", "sasrec", "dr4sr+", 0, "upper_lr", runs[1].rate, runs[1].upper_weight_decay,
                     (("detach_hidden", True),)).run_id("71adcfc9be91") == "6b3c252372d2"
    ids_before = [r.run_id(regen) for r in runs]
    rows = [_row(study, r.run_id(regen), "issue26", "sasrec", "dr4sr+", 0, v, 0.04, r.rate, r.upper_weight_decay)
            for r, v in zip(runs, (0.05, 0.07, 0.06))]
    run, quiet, off, off1, off2, *same = study.explore_runs(rows, regen)
    assert [r.target_seed for r in same] == [0, 1, 2] and all(r.plus["dev"] == "train_batch" for r in same)
    assert [off1.target_seed, off2.target_seed] == [1, 2] and off1.plus == off2.plus == off.plus
    assert off.plus["warmup_epochs"] == 400 and not off.plus["detach_hidden"]
    assert run.plus["detach_hidden"] and not quiet.plus["detach_hidden"] and quiet.plus["tau"] == 1e4
    assert run.rate == quiet.rate == runs[1].rate and run.target_seed == quiet.target_seed == 0
    assert run.run_id(regen) not in ids_before and [r.run_id(regen) for r in runs] == ids_before
    assert "detach_hidden=True" in run.label() and "detach_hidden" not in runs[1].label()
    results, ranks = tmp_path / "dr4srplus.csv", tmp_path / "ranks"
    for row, r in zip(rows, runs):
        row["weight_mean"], row["weight_var"], row["epochs"], row["best_epoch"] = 0.25, 0.002, 44, 22
        row["plus_config"] = json.dumps(r.plus)
        res.append_row(results, row, study.COLUMNS)
        res.save_ranks(ranks / f"{row['run_id']}.npz", np.full(50, 30))
    ex = _row(study, run.run_id(regen), "explore", "sasrec", "dr4sr+", 0, 0.055, 0.045, run.rate,
              run.upper_weight_decay)
    ex.update(weight_mean=0.5, weight_var=0.002, epochs=80, best_epoch=60, plus_config=json.dumps(run.plus))
    res.append_row(results, ex, study.COLUMNS)
    res.save_ranks(ranks / f"{ex['run_id']}.npz", np.full(50, 3))
    text = report.dr4srplus_report(results, ranks)
    lines = [ln for ln in text.splitlines() if ln.startswith(f"| {run.run_id(regen)} ")]
    assert len(lines) == 1 and "| detach_hidden=True | 0 | 0.0550 | 0.0450 | 80 (60) | 0.5000 |" in lines[0]
    assert lines[0].rstrip(" |").split("| ")[-1] != ""  # p against the run it varies
    (base,) = [ln for ln in text.splitlines() if ln.startswith(f"| {runs[1].run_id(regen)} ")]
    assert "| as released | 0 | 0.0700 |" in base


def test_an_explore_option_at_several_seeds_gets_a_pooled_line(tmp_path, bench):
    study, report, res = bench
    regen = "r1"
    runs = study.issue26_runs([], regen)
    rows = [_row(study, r.run_id(regen), "issue26", "sasrec", "dr4sr+", 0, v, 0.04, r.rate, r.upper_weight_decay)
            for r, v in zip(runs, (0.05, 0.07, 0.06))]
    seed1 = study.issue26_runs(rows, regen)[3]
    assert seed1.target_seed == 1
    rows.append(_row(study, seed1.run_id(regen), "issue26", "sasrec", "dr4sr+", 1, 0.05, 0.04, seed1.rate,
                     seed1.upper_weight_decay))
    off0, off1 = [r for r in study.explore_runs(rows, regen) if r.plus["warmup_epochs"] == 400][:2]
    results, ranks = tmp_path / "dr4srplus.csv", tmp_path / "ranks"
    rng = np.random.default_rng(3)
    for r, run in zip(rows, runs + [seed1]):
        r.update(weight_mean=0.25, weight_var=0.002, epochs=44, best_epoch=22, plus_config=json.dumps(run.plus))
    for run, seed in ((off0, 0), (off1, 1)):
        row = _row(study, run.run_id(regen), "explore", "sasrec", "dr4sr+", seed, 0.055, 0.045, run.rate,
                   run.upper_weight_decay)
        row.update(epochs=70, best_epoch=50, plus_config=json.dumps(run.plus))
        rows.append(row)
    for row in rows:  # the explore runs rank every user's target better than the released ones
        res.append_row(results, row, study.COLUMNS)
        better = row["stage"] == "explore"
        res.save_ranks(ranks / f"{row['run_id']}.npz", rng.integers(0, 10 if better else 40, 300))
    text = report.dr4srplus_report(results, ranks)
    (pooled,) = [ln for ln in text.splitlines() if ln.startswith("| mean of 2 | warmup_epochs=400 | 0, 1 |")]
    (released,) = [ln for ln in text.splitlines() if ln.startswith("| mean of 2 | as released | 0, 1 |")]
    assert "| 0.0550 | 0.0450 | best 50, 50 |" in pooled and float(pooled.split("|")[8]) < 1e-3
    assert "| 0.0400 |" in released


def test_a_regen_folder_that_is_not_a_finished_one_is_named(tmp_path, bench):
    study, _, _ = bench
    with pytest.raises(SystemExit, match=r"--regen beauty=.*nowhere: no finished `fastregen regenerate` folder"):
        study.main(["explore", "--work", str(tmp_path), "--regen", f"beauty={tmp_path / 'nowhere'}"])
