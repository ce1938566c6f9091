"""benchmarks/_results.py and benchmarks/report.py: result rows, sparse ranks, significance, selection on validation."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import _results  # noqa: E402
import dr4sr_study  # noqa: E402
import report  # noqa: E402


def test_append_row_writes_a_header_once_and_refuses_other_columns(tmp_path):
    path = tmp_path / "r.csv"
    _results.append_row(path, {"a": 1, "b": "x"}, ["a", "b"])
    _results.append_row(path, {"a": 2, "b": "y,z"}, ["a", "b"])
    assert _results.read_rows(path, ["a", "b"]) == [{"a": "1", "b": "x"}, {"a": "2", "b": "y,z"}]
    with pytest.raises(ValueError, match=r"columns differ .*missing \['c'\], unexpected \['b'\]"):
        _results.read_rows(path, ["a", "c"])
    with pytest.raises(ValueError, match=r"columns differ"):
        _results.append_row(path, {"a": 1, "c": 2}, ["a", "c"])
    with pytest.raises(ValueError, match=r"lacks \['b'\]"):
        _results.append_row(path, {"a": 1}, ["a", "b"])
    assert _results.read_rows(tmp_path / "none.csv", ["a"]) == []


def test_sparse_ranks_round_trip_and_per_user_metrics(tmp_path):
    from fastregen.evaluation import ndcg_at_k, recall_at_k

    ranks = np.random.default_rng(0).integers(0, 3000, 500)
    ranks[:5] = [0, 1, 19, 20, 49]
    _results.save_ranks(tmp_path / "x.npz", ranks)
    back, cutoff = _results.load_ranks(tmp_path / "x.npz")
    assert cutoff == 50 and back.size == ranks.size
    np.testing.assert_array_equal(back, np.minimum(ranks, 50))
    for k in (10, 20, 50):
        np.testing.assert_allclose(_results.per_user(back, f"ndcg@{k}"), ndcg_at_k(ranks, k))
        np.testing.assert_allclose(_results.per_user(back, f"recall@{k}"), recall_at_k(ranks, k))
    with pytest.raises(ValueError, match="below 50"):
        _results.per_user(back, "ndcg@100")


def test_paired_p_detects_a_shift_and_not_noise():
    rng = np.random.default_rng(1)
    a = rng.random(2000)
    assert _results.paired_p(a, a) == 1.0
    assert _results.paired_p(a, a + 0.01) < 1e-6
    assert _results.paired_p(a, a + rng.normal(0, 0.01, a.size)) > 0.01


def _row(run, valid, test, rank_value):
    row = {c: "" for c in dr4sr_study.COLUMNS}
    row.update(run_id=run.run_id, stage=run.stage, dataset=run.dataset, model=run.model, train_set=run.train_set,
               variant=run.variant, K=run.K, gamma=run.gamma, regen_seed=run.regen_seed, target_seed=run.target_seed,
               protocol="all", epochs=10, best_epoch=5)
    for m in dr4sr_study.METRICS:
        row[f"valid_{m}"], row[f"test_{m}"] = valid, test
    return row


def test_report_selects_on_validation_never_on_test(tmp_path):
    results, ranks = tmp_path / "dr4sr.csv", tmp_path / "ranks"
    runs = dr4sr_study.selection_runs()
    n_users = 300
    rng = np.random.default_rng(0)
    base_ranks = rng.integers(0, 100, n_users)
    for i, run in enumerate(runs):
        # the setting with the best validation figure has the *worst* test figure
        valid, test = (0.09, 0.001) if i == 3 else (0.05 - 0.001 * i, 0.05 + 0.001 * i)
        _results.append_row(results, _row(run, valid, test, 0), dr4sr_study.COLUMNS)
        shifted = np.maximum(base_ranks - (5 if run.train_set == "dr4sr" else 0), 0)
        _results.save_ranks(ranks / f"{run.run_id}.npz", shifted)
    chosen = runs[3]
    assert dr4sr_study.selected_setting(_results.read_rows(results, dr4sr_study.COLUMNS)) == (
        chosen.variant, chosen.K, chosen.gamma)
    text = report.dr4sr_report(results, ranks)
    assert f"Selected: {chosen.variant}, K = {chosen.K}, gamma = {chosen.gamma}" in text
    line = next(ln for ln in text.splitlines() if "DR4SR (" in ln)
    assert "0.0010" in line  # its test figure is reported as it is, not replaced by a better one
    p = float(line.split("|")[10])
    assert p < 0.05  # every user's rank improved by 5: significant


def test_report_waits_for_the_whole_selection(tmp_path):
    results = tmp_path / "dr4sr.csv"
    run = dr4sr_study.selection_runs()[1]
    _results.append_row(results, _row(run, 0.05, 0.05, 0), dr4sr_study.COLUMNS)
    _results.save_ranks(tmp_path / "ranks" / f"{run.run_id}.npz", np.zeros(10, int))
    text = report.dr4sr_report(results, tmp_path / "ranks")
    assert "Selection unfinished" in text and "(not run)" in text


def test_report_cli_errors(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    with pytest.raises(SystemExit, match="error: .*columns differ"):
        report.main(["dr4sr", "--results", str(tmp_path / "bad.csv")])
    with pytest.raises(SystemExit, match="unknown report 'dr5sr'"):
        report.main(["dr5sr"])
    doc = tmp_path / "B.md"
    doc.write_text("head\n<!-- report:dr4sr -->\nold\n<!-- /report:dr4sr -->\ntail\n")
    report.write_block(doc, "dr4sr", "new table\n")
    assert doc.read_text().startswith("head\n<!-- report:dr4sr -->\n<!-- generated") and "old" not in doc.read_text()
    with pytest.raises(SystemExit, match="no <!-- report:unids -->"):
        report.write_block(doc, "unids", "x")


def test_verdict_pairs_matched_seeds_and_reports_interval_and_p(tmp_path):
    # the selection finished, then DR4SR at seeds 0-1 and the original at seeds 0-2: only seeds 0-1 pair
    results, ranks = tmp_path / "dr4sr.csv", tmp_path / "ranks" / "dr4sr"
    rng = np.random.default_rng(1)
    base_ranks = rng.integers(0, 60, 400)
    runs = dr4sr_study.selection_runs()
    for i, run in enumerate(runs):
        valid = 0.09 if i == 3 else 0.05
        _results.append_row(results, _row(run, valid, 0.04, 0), dr4sr_study.COLUMNS)
        _results.save_ranks(ranks / f"{run.run_id}.npz", base_ranks)
    setting = dr4sr_study.selected_setting(_results.read_rows(results, dr4sr_study.COLUMNS))
    for seed in (1, 2):
        run = dr4sr_study.Run("replicate", "beauty", "sasrec", "original", target_seed=seed)
        _results.append_row(results, _row(run, 0.05, 0.04, 0), dr4sr_study.COLUMNS)
        _results.save_ranks(ranks / f"{run.run_id}.npz", base_ranks)
    run = dr4sr_study.Run("replicate", "beauty", "sasrec", "dr4sr", *setting, 0, 1)
    _results.append_row(results, _row(run, 0.05, 0.04, 0), dr4sr_study.COLUMNS)
    _results.save_ranks(ranks / f"{run.run_id}.npz", np.maximum(base_ranks - 3, 0))  # better at seed 1
    text = report.verdict_report(tmp_path, tmp_path / "ranks")
    line = next(ln for ln in text.splitlines() if ln.startswith("| DR4SR ("))
    cells = [c.strip() for c in line.split("|")]
    assert cells[5] == "2"  # seeds 0 and 1 pair; the original's seed 2 has no DR4SR partner
    lo, hi = (float(x.strip("%")) for x in cells[9].strip("[]").split(", "))
    assert 0 < lo <= float(cells[8].strip("*%")) <= hi  # every user's rank improved at seed 1
    assert float(cells[10]) < 0.05
    assert "DR4SR+: 0 of its 3 declared selection runs" in text
    # DR4SR+: the rate with the best validation figure at seed 0 is reported, paired with the original
    import dr4srplus

    for i, rate in enumerate(dr4srplus.ISSUE26_RATES):
        row = {c: "" for c in dr4srplus.COLUMNS}
        row.update(run_id=f"plus{i}", stage="issue26", dataset="beauty", model="sasrec", train_set="dr4sr+",
                   upper_lr=rate, upper_weight_decay=0.001, target_seed=0,
                   **{"valid_ndcg@20": 0.09 if i == 1 else 0.05, "test_ndcg@20": 0.01 if i == 1 else 0.09})
        _results.append_row(tmp_path / "dr4srplus.csv", row, dr4srplus.COLUMNS)
        _results.save_ranks(tmp_path / "ranks" / "dr4srplus" / f"plus{i}.npz", base_ranks)
    text = report.verdict_report(tmp_path, tmp_path / "ranks")
    line = next(ln for ln in text.splitlines() if ln.startswith("| DR4SR+"))
    assert f"upper lr {dr4srplus.ISSUE26_RATES[1]:g}" in line and "| 0.0100 |" in line
    assert line.split("|")[6].strip() == "0.0400"  # the original at seed 0, fastregen's scheme
    # an authors'-scheme original at seed 0 is another trainer: DR4SR+ (fastregen's scheme) never pairs with it
    run = dr4sr_study.Run("replicate", "beauty", "sasrec", "original", target_seed=0, scheme="authors")
    row = _row(run, 0.05, 0.01, 0)
    row["protocol"] = run.protocol
    _results.append_row(results, row, dr4sr_study.COLUMNS)
    _results.save_ranks(ranks / f"{run.run_id}.npz", np.minimum(base_ranks + 40, 10_000))
    text = report.verdict_report(tmp_path, tmp_path / "ranks")
    assert next(ln for ln in text.splitlines() if ln.startswith("| DR4SR+")) == line


def test_engine_report_reads_the_latest_measurements(tmp_path):
    path = tmp_path / "engine.csv"
    common = dict(commit="abc", machine="m", device="cpu", threads=1, load="loadavg 1.0", dataset="beauty",
                  shape="10 x 20", reps=3, values="", identical_ranks=True, before="0000000", note="")
    for date, before, after in (("2026-01-01", 4.0, 2.0), ("2026-01-02", 3.0, 0.5)):
        for variant, metric, value in (("before", "seconds_median", before), ("after", "seconds_median", after),
                                       ("after/before", "speedup", before / after)):
            _results.append_result(path, **common, date=date, benchmark="ranks", variant=variant,
                                   metric=metric, value=value, unit="s")
    text = report.engine_report(path, tmp_path)
    row = next(ln for ln in text.splitlines() if ln.startswith("| ranks"))
    assert "| 3.00 | 0.50 | **6.00x** |" in row  # the later measurement replaces the earlier one


def test_engine_report_keeps_thread_counts_apart_with_their_cpu_speedup(tmp_path):
    path = tmp_path / "engine.csv"
    common = dict(commit="abc", machine="m", device="cpu", load="loadavg 1.0", dataset="synthetic('books')",
                  shape="8 x 20", reps=3, values="", identical_ranks=True, before="0000000", note="",
                  date="2026-01-01", benchmark="evaluate")
    for threads, wall, cpu in ((1, 2.0, 1.5), (2, 8.0, 4.0)):
        for variant, metric, value in (("before", "seconds_median", wall), ("after", "seconds_median", 1.0),
                                       ("after/before", "speedup", wall), ("before", "cpu_seconds_median", cpu),
                                       ("after", "cpu_seconds_median", 0.5), ("after/before", "cpu_speedup", cpu / 0.5)):
            _results.append_result(path, **common, threads=threads, variant=variant, metric=metric, value=value,
                                   unit="s")
    rows = [ln for ln in report.engine_report(path, tmp_path).splitlines() if ln.startswith("| evaluate")]
    assert len(rows) == 2
    assert "| 1 | 2.00 | 1.00 | **2.00x** | **3.00x** |" in rows[0]
    assert "| 2 | 8.00 | 1.00 | **8.00x** | **8.00x** |" in rows[1]


def test_verdict_keeps_the_authors_training_scheme_apart(tmp_path):
    """Runs under the authors' training scheme (protocol "all/authors") are another trainer: they get
    their own line, and never enter the fastregen-scheme pairing (an authors'-scheme original at seed 0
    once did, through a filter on a column the rows do not have)."""
    results, ranks = tmp_path / "dr4sr.csv", tmp_path / "ranks" / "dr4sr"
    base_ranks = np.random.default_rng(2).integers(0, 60, 400)
    for i, run in enumerate(dr4sr_study.selection_runs()):
        _results.append_row(results, _row(run, 0.09 if i == 3 else 0.05, 0.04, 0), dr4sr_study.COLUMNS)
        _results.save_ranks(ranks / f"{run.run_id}.npz", base_ranks)
    setting = dr4sr_study.selected_setting(_results.read_rows(results, dr4sr_study.COLUMNS))

    def lines():
        text = report.verdict_report(tmp_path, tmp_path / "ranks")
        return [ln for ln in text.splitlines() if ln.startswith("| DR4SR (")]
    before = lines()
    assert len(before) == 1
    authors = [dr4sr_study.Run("replicate", "beauty", "sasrec", "original", target_seed=0, scheme="authors"),
               dr4sr_study.Run("replicate", "beauty", "sasrec", "dr4sr", *setting, 0, 0, scheme="authors")]
    for run, shift in zip(authors, (40, 30)):  # far worse than the fastregen-scheme rows
        row = _row(run, 0.05, 0.01, 0)
        row["protocol"] = run.protocol
        _results.append_row(results, row, dr4sr_study.COLUMNS)
        _results.save_ranks(ranks / f"{run.run_id}.npz", np.minimum(base_ranks + shift, 10_000))
        if run.train_set == "original":
            assert lines() == before  # an authors'-scheme original alone changes nothing
    after = lines()
    assert after[0] == before[0] and len(after) == 2
    assert "the authors' training scheme" in after[1] and "0.0100" in after[1]


def test_verdict_gives_the_authors_own_trainer_its_line(tmp_path):
    """authors.py's rows (their trainer, their seed) pair their original run with their run on fastregen's
    DR4SR set; a capped check run (max_epochs set) and a lone original give no line."""
    import authors

    results, ranks = tmp_path / "dr4sr.csv", tmp_path / "ranks" / "dr4sr"
    base_ranks = np.random.default_rng(3).integers(0, 60, 400)
    for i, run in enumerate(dr4sr_study.selection_runs()):
        _results.append_row(results, _row(run, 0.09 if i == 3 else 0.05, 0.04, 0), dr4sr_study.COLUMNS)
        _results.save_ranks(ranks / f"{run.run_id}.npz", base_ranks)

    def add(run_id, train_set, shift, max_epochs=1000):  # what authors.py records for an uncapped run
        row = {c: "" for c in authors.COLUMNS}
        row.update(run_id=run_id, dataset="beauty", trainer="authors", train_set=train_set, seed=2023,
                   max_epochs=max_epochs, **{"test_ndcg@20": 0.03})
        _results.append_row(tmp_path / "authors.csv", row, authors.COLUMNS)
        _results.save_ranks(tmp_path / "ranks" / "authors" / f"{run_id}.npz", np.minimum(base_ranks + shift, 10_000))

    def line():
        text = report.verdict_report(tmp_path, tmp_path / "ranks")
        return [ln for ln in text.splitlines() if "the authors' own trainer" in ln]
    add("a-orig", "original", 0)
    add("a-check", "dr4sr:combined_authors", 0, max_epochs=2)
    assert line() == []
    add("a-dr", "dr4sr:combined_authors", 5)  # every user's rank worse by 5
    (got,) = line()
    cells = [c.strip() for c in got.split("|")]
    assert cells[2:6] == ["beauty", "sasrec", "N@20", "1"]
    assert float(cells[8].strip("*%")) < 0 and float(cells[10]) < 0.05


def test_a_run_on_the_rebuilt_regenerator_pairs_in_place_of_its_first_build(tmp_path):
    """dr4sr_study's ``rebuild`` run (seed 0 again on the rebuilt regenerator) replaces the first build's
    seed-0 row in the verdict and in the DR4SR table, which shows the first build on its own line."""
    results, ranks = tmp_path / "dr4sr.csv", tmp_path / "ranks" / "dr4sr"
    base_ranks = np.random.default_rng(4).integers(0, 60, 400)
    for run in dr4sr_study.selection_runs():  # the first build of the rebuilt setting: every rank worse by 20
        chosen = (run.variant, run.K, run.gamma) == ("V1", 5, 0.3)
        _results.append_row(results, _row(run, 0.09 if chosen else 0.05, 0.02 if chosen else 0.04, 0),
                            dr4sr_study.COLUMNS)
        _results.save_ranks(ranks / f"{run.run_id}.npz", base_ranks + (20 if chosen else 0))
    setting = dr4sr_study.selected_setting(_results.read_rows(results, dr4sr_study.COLUMNS))
    assert f"beauty-{setting[0]}-K{setting[1]}-s0-g{setting[2]}" in dr4sr_study.REBUILDS

    def dr_line(text, first=False):
        return [ln for ln in text.splitlines() if ln.startswith(("| DR4SR (", "| beauty | sasrec | DR4SR"))
                and ("first build" in ln) == first]
    (before,) = dr_line(report.verdict_report(tmp_path, tmp_path / "ranks"))
    assert "| 0.0200 |" in before and "-" in before.split("|")[8]
    (rebuild,) = dr4sr_study.rebuild_runs(setting)
    assert rebuild.regen_build and rebuild.run_id not in {r.run_id for r in dr4sr_study.selection_runs()}
    assert rebuild in dr4sr_study.queued_runs(setting, core_only=True)[:1]
    _results.append_row(results, _row(rebuild, 0.05, 0.05, 0), dr4sr_study.COLUMNS)
    _results.save_ranks(ranks / f"{rebuild.run_id}.npz", np.maximum(base_ranks - 3, 0))  # better than original
    # the selection still reads the first build's validation figures
    assert dr4sr_study.selected_setting(_results.read_rows(results, dr4sr_study.COLUMNS)) == setting
    text = report.verdict_report(tmp_path, tmp_path / "ranks")
    (after,) = dr_line(text)
    cells = [c.strip() for c in after.split("|")]
    assert cells[5] == "1" and cells[7] == "0.0500" and float(cells[8].strip("*%")) > 0  # the rebuild alone
    table = report.dr4sr_report(results, ranks)
    (cur,) = dr_line(table)
    (old,) = dr_line(table, first=True)
    assert "| 1 | 0.0500 |" in cur and "| 1 | 0.0200 |" in old and "first build" in old


def test_breakdown_splits_each_verdict_line_by_target_popularity(tmp_path):
    """report.py breakdown: a method that helps users with rare targets and hurts those with popular ones
    shows a gain in the rarest quarter and a loss in the most popular one; strata of another size are refused."""
    results, ranks = tmp_path / "dr4sr.csv", tmp_path / "ranks" / "dr4sr"
    n = 400
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 100, n)
    base_ranks = rng.integers(0, 40, n)
    rare, popular = counts <= np.quantile(counts, 0.25), counts > np.quantile(counts, 0.75)
    better = np.where(rare, np.maximum(base_ranks - 10, 0), np.where(popular, base_ranks + 10, base_ranks))
    for run in dr4sr_study.selection_runs():
        chosen = (run.variant, run.K, run.gamma) == ("V1", 5, 0.3)
        _results.append_row(results, _row(run, 0.09 if chosen else 0.05, 0.04, 0), dr4sr_study.COLUMNS)
        _results.save_ranks(ranks / f"{run.run_id}.npz", better if chosen else base_ranks)
    (tmp_path / "strata").mkdir()
    np.savez(tmp_path / "strata" / "beauty.npz", target_count=counts, history_length=np.ones(n, int))
    text = report.breakdown_report(tmp_path, tmp_path / "ranks")
    (line,) = [ln for ln in text.splitlines() if ln.startswith("| DR4SR (")]
    cells = [c.strip() for c in line.split("|")][4:8]
    gains = [int(c.split(", ")[1].rstrip("%")) for c in cells]
    assert gains[0] > 0 > gains[3] and sum(int(c.split("(")[1].split()[0].replace(",", "")) for c in cells) == n
    assert float(cells[0].rsplit("p ", 1)[1]) < 0.05
    np.savez(tmp_path / "strata" / "beauty.npz", target_count=counts[:-1], history_length=np.ones(n - 1, int))
    with pytest.raises(SystemExit, match="399 test users.*user_strata.py --datasets beauty"):
        report.breakdown_report(tmp_path, tmp_path / "ranks")


def test_dr4srplus_against_dr4sr_by_the_dev_copies_each_user_kept(tmp_path):
    """report.py breakdown's dev-slice table: users whose rows DR4SR+ held out are told apart from the
    rest, each group's change is DR4SR -> DR4SR+, and strata of another size are refused."""
    n = 300
    rng = np.random.default_rng(6)
    kept = rng.choice([0, 1, 2], n, p=[0.1, 0.3, 0.6]).astype(np.int8)
    dr = rng.random(n)
    plus = np.where(kept == 2, dr, dr * 0.5)  # only users who lost a copy lose

    def pairing(label, values):
        return report.Pairing(label, "beauty", "sasrec", "ndcg@20", [], [], lambda rows, m: np.zeros(n),
                              lambda rows, m: values, "")
    pairs = [pairing("DR4SR (V1, K=5, γ=0.3)", dr), pairing("DR4SR (V1, K=5, γ=0.3, the authors' training scheme)",
             dr * 9), pairing("DR4SR+ (upper lr 0.01)", plus)]
    assert report._plus_dev_table(pairs, tmp_path) == []  # no strata: no table
    (tmp_path / "strata" / "dr4srplus-dev").mkdir(parents=True)
    np.savez(tmp_path / "strata" / "dr4srplus-dev" / "beauty.npz", copies_kept=kept)
    (line,) = [ln for ln in report._plus_dev_table(pairs, tmp_path) if ln.startswith("| DR4SR+")]
    cells = [c.strip() for c in line.split("|")][4:7]
    assert "against DR4SR (V1, K=5, γ=0.3) |" in line and "authors'" not in line
    assert [int(c.split(" users")[0].replace(",", "")) for c in cells] == [int((kept == k).sum()) for k in (2, 1, 0)]
    assert cells[0].split(", ")[1] == "+0%" and cells[1].split(", ")[1] == cells[2].split(", ")[1] == "-50%"
    np.savez(tmp_path / "strata" / "dr4srplus-dev" / "beauty.npz", copies_kept=kept[:-1])
    with pytest.raises(SystemExit, match="299 test users.*plus_dev_strata.py --dataset beauty"):
        report._plus_dev_table(pairs, tmp_path)


def test_committed_strata_match_the_committed_ranks():
    """results/strata/*.npz (user_strata.py) hold one entry per test user of every study's ranks files."""
    strata = BENCH / "results" / "strata"
    if not strata.exists():
        pytest.skip("no committed strata")
    sizes = {p.stem: np.load(p)["target_count"].size for p in strata.glob("*.npz")}
    rows = _results.read_rows(BENCH / "results" / "dr4sr.csv", dr4sr_study.COLUMNS)
    for row in rows[:3]:
        ranks, _ = _results.load_ranks(BENCH / "results" / "ranks" / "dr4sr" / f"{row['run_id']}.npz")
        assert ranks.size == sizes[row["dataset"]] == int(row["n_test_users"])


def test_user_strata_counts_each_test_target_in_the_training_split():
    import user_strata
    from fastregen.data import SequenceDataset

    # train split: each sequence less its last two items; the test target is the last item
    data = SequenceDataset.from_lists([[1, 2, 3, 4], [2, 2, 1, 5, 2], [3, 1], [4]], num_items=5)
    s = user_strata.strata(data)
    # train items: [1, 2], [2, 2, 1], [], -> counts 1: 2, 2: 3; test users (length >= 2): 0, 1, 2
    assert s["target_count"].tolist() == [0, 3, 2] and s["history_length"].tolist() == [3, 4, 1]


def test_a_pinned_run_refuses_a_folder_holding_another_build(tmp_path, monkeypatch):
    """The rebuild run names the regenerated set it must train on; a decode folder that holds another
    build (a third pre-training on another machine) stops the run with both hashes named, and the
    pinned build itself is accepted."""
    import types

    import torch

    import fastregen.models

    setting = ("V1", 5, 0.3)
    (run,) = dr4sr_study.rebuild_runs(setting)
    pin = dr4sr_study.REBUILDS[run.decode_name]
    assert run.regen_build == pin
    want = dr4sr_study.VARIANTS[run.variant]["train_set"]
    sets = {"regenerated": "the regenerated set", want: "the training set the run asks for"}
    study = dr4sr_study.Study(tmp_path, tmp_path, 1, tmp_path / "dr4sr.csv", progress=False)
    monkeypatch.setattr(study, "data", lambda name: "data")
    monkeypatch.setattr(study, "baseline_model", lambda name: tmp_path / "model.pt")
    monkeypatch.setattr(study, "_record_regenerator", lambda *a: None)
    monkeypatch.setattr(fastregen.models, "load_model", lambda path: types.SimpleNamespace(
        item_embedding=types.SimpleNamespace(weight=torch.zeros(3, 2))))
    monkeypatch.setattr(dr4sr_study, "regenerate_once",
                        lambda *a, **k: types.SimpleNamespace(training_sets=lambda: sets))
    held = {"sha": "0" * 64}
    monkeypatch.setattr(dr4sr_study, "regenerated_sha256", lambda folder: held["sha"])
    with pytest.raises(SystemExit, match=rf"pinned to the regenerated set {pin}, but .*{run.decode_name} holds 000000000000"):
        study.training_set(run)
    held["sha"] = pin + "f" * (64 - len(pin))
    assert study.training_set(run) == sets[want]
    # an unpinned run takes whatever the folder holds
    held["sha"] = "0" * 64
    assert study.training_set(dataclasses.replace(run, regen_build="")) == sets[want]
