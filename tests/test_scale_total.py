"""benchmarks/scale.py total: the paper-settings time from whole-stage pipeline rows, and its CLI errors;
the --work folder that lets `scale.py pipeline` resume after its finished stages."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
DATA = "synthetic-books(n_users=800000)"
DR4SR_COLUMNS = ["dataset", "model", "train_set", "protocol", "epochs"]


@pytest.fixture
def scale(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import scale

    return scale


def _row(scale, stage, seconds, *, fraction=1.0, note="", threads=1, peak=1000, data=DATA, date="2026-01-01",
         processes=1):
    """A pipeline row as `scale.Recorder.row` writes it and `_results.read_results` reads it back."""
    row = {c: "" for c in scale.EXTRA_COLUMNS}
    row.update(benchmark="scale/pipeline", dataset=data, variant=stage, metric="seconds",
               value=str(seconds * fraction), unit="s", threads=str(threads), commit="abc", date=date,
               fraction=str(fraction), full_seconds=str(seconds), peak_rss_mib=str(peak), note=note,
               processes=str(processes))
    return row


def _whole(scale, updates="lazy", **over):
    """One whole-stage row per term: seconds chosen so that each term's share is known."""
    secs = dict(data=1, patterns=2, pairs=3, regenerator=100, inference=50, write=4, sasrec_epoch=10, validate=20,
                evaluate=20)
    secs.update(over)
    note = f"item_updates={updates}"
    return [_row(scale, s, v, note=note if s in scale.UPDATE_STAGES else "", peak=100 * (i + 1))
            for i, (s, v) in enumerate(secs.items())]


def test_total_is_pretraining_epochs_inference_and_target_epochs(scale):
    res = scale.paper_total(_whole(scale), DATA, epochs=104.0)
    assert res["whole"] and res["pretrain_epochs"] == 40
    assert res["seconds"] == 1 + 2 + 3 + 40 * 100 + 50 + 4 + 104 * (10 + 20) + 20
    assert res["peak_rss_mib"] == 900
    assert {t["stage"]: t["times"] for t in res["terms"]}["validate"] == 104.0
    assert scale.paper_total(_whole(scale), DATA, epochs=2, pretrain_epochs=1)["seconds"] == 1 + 2 + 3 + 100 + 50 + 4 + 60 + 20


def test_the_latest_whole_row_counts_and_a_later_fraction_does_not(scale):
    rows = _whole(scale) + [_row(scale, "sasrec_epoch", 5, note="item_updates=lazy", date="2026-01-02"),
                            _row(scale, "sasrec_epoch", 999, fraction=0.01, note="item_updates=lazy", date="2026-01-03")]
    term = {t["stage"]: t for t in scale.paper_total(rows, DATA, epochs=1)["terms"]}["sasrec_epoch"]
    assert term["seconds"] == 5 and term["whole"]


def test_a_later_two_process_run_replaces_the_stages_it_ran(scale):
    # what `pipeline --paper --processes 2 --eval-threads 2` adds to the one-process rows
    rows = _whole(scale) + [_row(scale, "regenerator", 60, note="item_updates=lazy", processes=2, date="2026-01-02"),
                            _row(scale, "sasrec_epoch", 6, note="item_updates=lazy", processes=2, date="2026-01-02"),
                            _row(scale, "validate", 11, threads=2, date="2026-01-02")]
    res = scale.paper_total(rows, DATA, epochs=10.0)
    terms = {t["stage"]: t for t in res["terms"]}
    assert (terms["regenerator"]["seconds"], terms["regenerator"]["processes"]) == (60, 2)
    assert (terms["sasrec_epoch"]["processes"], terms["validate"]["threads"]) == (2, "2")
    assert (terms["inference"]["seconds"], terms["inference"]["processes"]) == (50, 1)  # not rerun: its row stands
    assert res["seconds"] == 1 + 2 + 3 + 40 * 60 + 50 + 4 + 10 * (6 + 11) + 20 and res["whole"]


def test_item_updates_and_threads_pick_their_own_rows(scale):
    rows = _whole(scale, "dense", regenerator=300) + [_row(scale, "regenerator", 100, note="item_updates=lazy"),
                                                      _row(scale, "sasrec_epoch", 7, note="item_updates=lazy; 2 thread(s)",
                                                           threads=2)]
    terms = {t["stage"]: t for t in scale.paper_total(rows, DATA, epochs=1, item_updates="dense")["terms"]}
    assert terms["regenerator"]["seconds"] == 300
    with pytest.raises(scale.UsageError, match=r"no whole-stage pipeline row of sasrec_epoch for .* \(item_updates=lazy, 1 thread"):
        scale.paper_total(rows, DATA, epochs=1, item_updates="lazy", threads=1)
    with pytest.raises(scale.UsageError, match=r"row of data, patterns, .* 2 thread\(s\)"):
        scale.paper_total(rows, DATA, epochs=1, item_updates="lazy", threads=2)


def test_estimates_use_extrapolated_rows_and_say_so(scale):
    rows = [r for r in _whole(scale) if r["variant"] not in ("inference", "validate")]
    rows.append(_row(scale, "inference", 80, fraction=0.02))
    with pytest.raises(scale.UsageError, match=r"row of inference, validate .* or pass --estimates"):
        scale.paper_total(rows, DATA, epochs=3)
    res = scale.paper_total(rows, DATA, epochs=3, estimates=True)
    terms = {t["stage"]: t for t in res["terms"]}
    assert not res["whole"] and terms["inference"]["seconds"] == 80
    assert terms["inference"]["source"] == "extrapolated from 2.00% of the stage"
    assert terms["validate"]["seconds"] == 20 and "test evaluation" in terms["validate"]["source"]


def test_beauty_epochs_is_the_mean_over_the_fastregen_scheme_original_sasrec_rows(scale, tmp_path):
    path = tmp_path / "dr4sr.csv"
    rows = [("beauty", "sasrec", "original", "all", 117), ("beauty", "sasrec", "original", "all", 96),
            ("beauty", "sasrec", "original", "all/authors", 136), ("beauty", "sasrec", "dr4sr", "all", 50),
            ("beauty", "gru4rec", "original", "all", 108), ("toys", "sasrec", "original", "all", 10)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DR4SR_COLUMNS)
        w.writerows(rows)
    assert scale.beauty_epochs(path) == (106.5, [117, 96])
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([DR4SR_COLUMNS, rows[2]])
    with pytest.raises(scale.UsageError, match="no fastregen-scheme SASRec row on the original Beauty data"):
        scale.beauty_epochs(path)
    with pytest.raises(scale.UsageError, match="no such file"):
        scale.beauty_epochs(tmp_path / "missing.csv")


def _cli(scale, capsys, *argv):
    code = scale.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_total_cli_prints_the_table_and_errors_are_one_line_exit_2(scale, tmp_path, capsys):
    from _results import append_result

    results = tmp_path / "scale.csv"
    for r in _whole(scale):
        core = {k: r.pop(k) for k in ("benchmark", "dataset", "variant", "metric", "value", "unit", "threads",
                                      "commit", "date")}
        append_result(results, **core, device="cpu", machine="2 cores", **r)
    dr4sr = tmp_path / "dr4sr.csv"
    dr4sr.write_text("dataset,model,train_set,protocol,epochs\nbeauty,sasrec,original,all,10\n")
    code, out, err = _cli(scale, capsys, "total", "--results", str(results), "--dr4sr", str(dr4sr))
    assert code == 0 and not err
    assert "| regenerator | 100.0 | 40 | 4,000 | 1 |" in out and "| validate | 20.0 | 10 | 200 |" in out
    assert "target-model epochs 10.0 = mean of `epochs`" in out
    hours = (6 + 4000 + 54 + 10 * 30 + 20) / 3600
    assert f"Total: {hours:.1f} h, peak RSS 0.88 GiB; measured (every stage run whole)" in out
    for argv, message in [
        (("--results", str(tmp_path / "none.csv")), "no such file"),
        (("--results", str(results), "--dr4sr", str(tmp_path / "none.csv")), "--dr4sr .*none.csv: no such file"),
        (("--results", str(results), "--dr4sr", str(dr4sr), "--pretrain-epochs", "0"), "must be >= 1, got 0"),
        (("--results", str(results), "--dr4sr", str(dr4sr), "--item-updates", "dense"), "no whole-stage pipeline row"),
    ]:
        code, out, err = _cli(scale, capsys, "total", *argv)
        assert code == 2 and not out and len(err.strip().splitlines()) == 1, err
        assert err.startswith("scale.py total: ")
        import re

        assert re.search(message, err), err


def test_pipeline_cli_refuses_fractions_with_paper(scale, capsys):
    code, out, err = _cli(scale, capsys, "pipeline", "--paper", "--train-steps", "3", "--eval-users", "9")
    assert code == 2 and err.strip() == "scale.py pipeline: --paper runs every stage whole; drop --train-steps, --eval-users"
    code, _, err = _cli(scale, capsys, "pipeline", "--paper", "--item-updates", "dense")
    assert code == 2 and "--paper sets --item-updates lazy" in err
    code, _, err = _cli(scale, capsys, "pipeline", "--pretrain-steps", "-1")
    assert code == 2 and "--pretrain-steps must be >= 0" in err


@pytest.mark.parametrize(("argv", "message"), [
    (("--processes", "3"), "--processes 3 does not divide the global batch of 256"),
    (("--processes", "0"), "--processes must be >= 1, got 0"),
    (("--skip", "regenerator"), "--skip takes inference, evaluate; got regenerator"),
    (("--eval-threads", "0"), "--eval-threads must be >= 1, got 0"),
    (("--option", "fused_attention"), "--option: --option takes NAME=VALUE, got 'fused_attention'"),
    (("--option", "fused=true"), "--option: unknown RegenConfig option(s): fused"),
    (("--option", "fused_attention=2"), "--option: fused_attention must be a bool, got 2"),
])
def test_pipeline_cli_checks_processes_skip_and_eval_threads(scale, capsys, argv, message):
    code, out, err = _cli(scale, capsys, "pipeline", *argv)
    assert code == 2 and not out and err.strip() == f"scale.py pipeline: {message}"


def test_steps_cli_checks_processes(scale, capsys):
    code, _, err = _cli(scale, capsys, "steps", "--processes", "1,3")
    assert code == 2 and err.strip() == "scale.py steps: --processes must divide the global batch of 256, got 1,3"
    code, _, err = _cli(scale, capsys, "steps", "--processes", "two")
    assert code == 2 and err.strip() == "scale.py steps: --processes takes comma-separated integers, got 'two'"


def test_work_folder_keeps_whole_stages_and_refuses_other_settings(scale, tmp_path):
    work = scale.Work(tmp_path / "w", {"users": 10, "item_updates": "lazy"})
    work.finish("regenerator", whole=True)
    work.finish("inference", whole=False)  # a fraction is not kept
    again = scale.Work(tmp_path / "w", {"users": 10, "item_updates": "lazy"})
    assert again.ran("regenerator") and not again.ran("inference")
    with pytest.raises(scale.UsageError, match=r"holds a run with other settings \(item_updates: .*'lazy'"):
        scale.Work(tmp_path / "w", {"users": 10, "item_updates": "dense"})
    none = scale.Work(None, {})
    none.finish("regenerator", whole=True)
    assert not none.ran("regenerator") and none.file("x") is None


def test_report_states_the_paper_total_of_each_item_updates_setting(scale, tmp_path, monkeypatch):
    import report
    from _results import append_result

    results = tmp_path / "scale.csv"
    rows = _whole(scale) + [_row(scale, "regenerator", 300, fraction=0.01, note="item_updates=dense"),
                            _row(scale, "sasrec_epoch", 30, note="item_updates=dense")]
    for r in rows:
        core = {k: r.pop(k) for k in ("benchmark", "dataset", "variant", "metric", "value", "unit", "threads",
                                      "commit", "date")}
        append_result(results, **core, device="cpu", machine="2 cores", **{**r, "sequences": 1, "interactions": 1,
                                                                          "items": 1, "load": "1.0", "processes": 1,
                                                                          "estimate_mib": 1})
    assert "Paper settings" not in report.scale_report(results, tmp_path)  # no dr4sr.csv beside it
    (tmp_path / "dr4sr.csv").write_text("dataset,model,train_set,protocol,epochs\nbeauty,sasrec,original,all,10\n")
    text = report.scale_report(results, tmp_path)
    lazy = (6 + 40 * 100 + 54 + 10 * 30 + 20) / 3600
    assert f"Paper settings, item_updates=lazy (`scale.py total --item-updates lazy --estimates`): 40 x " in text
    assert (f"= **{lazy:.1f} h** wall, {lazy:.1f} h CPU (`--clock cpu`; wall for regenerator, "
            "sasrec_epoch, validate, whose rows give no CPU figure) (every stage run whole), peak RSS 0.88 GiB; "
            "largest: regenerator ") in text
    assert "item_updates=dense" in text and "(estimate: regenerator not run whole)" in text


def test_cpu_clock_counts_the_notes_cpu_seconds_per_whole_stage(scale):
    rows = _whole(scale)
    for r in rows:
        if r["variant"] in ("regenerator", "validate"):
            r["note"] += f"; CPU {float(r['full_seconds']) / 2:.0f} s"
    rows.append(_row(scale, "inference", 80, fraction=0.5, note="x; CPU 10 s"))
    res = scale.paper_total(rows, DATA, epochs=2, clock="cpu", estimates=True)
    terms = {t["stage"]: t for t in res["terms"]}
    assert terms["regenerator"]["seconds"] == 50 and terms["validate"]["seconds"] == 10
    assert terms["inference"]["seconds"] == 50  # whole-stage row without a CPU figure: its wall time
    assert terms["inference"]["source"] == "whole stage; wall time (no CPU figure)" and terms["inference"]["whole"]
    rows = [r for r in rows if not (r["variant"] == "inference" and r["fraction"] == "1.0")]
    terms = {t["stage"]: t for t in scale.paper_total(rows, DATA, epochs=2, clock="cpu", estimates=True)["terms"]}
    assert terms["inference"]["seconds"] == 20  # 10 CPU s over half the stage
