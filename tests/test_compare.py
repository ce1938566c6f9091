"""`fastregen compare` (issue 25 items 3-4): the study as a command, its statistics and its refusals."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fastregen.cli import app
from fastregen.study import CompareConfig
from fastregen.study.runs import declare_runs
from fastregen.study.stats import bootstrap_gain, paired_p, per_user
from fastregen.study.store import COLUMNS, METRICS, Store
from typer.testing import CliRunner

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent

# The demo's quarter-width, one-epoch regenerator (fastregen.cli._regen.DEMO_REGEN) and a
# half-width SASRec on the last 20 items for one epoch: a plumbing run, not a result.
TINY_REGEN = dict(d_model=16, d_ff=64, n_encoder_layers=1, n_decoder_layers=1, max_pairs_per_sequence=3, epochs=1)
TINY_TRAIN = ["--epochs", "1", "--set", "embed_dim=32", "--set", "max_len=20", "--set", "eval_batch_size=4096"]


def _invoke(args):
    return runner.invoke(app, [os.fspath(a) for a in args])


def _one_line_error(res, *needles) -> str:
    out = res.output
    assert res.exit_code == 2, f"exit code {res.exit_code}:\n{out}"
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and out.strip().splitlines()[-1] == errors[0], out
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


def _snapshot(folder: Path) -> dict:
    return {os.fspath(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- statistics
def test_paired_p_known_value_and_scipy():
    from scipy.stats import wilcoxon

    a = np.zeros(10)
    b = np.arange(1, 11, dtype=float)
    # every difference positive, no ties: exact two-sided p = 2 / 2**10
    assert paired_p(a, b) == pytest.approx(2 / 1024)
    assert paired_p(b, a) == pytest.approx(2 / 1024)
    rng = np.random.default_rng(3)
    a, b = rng.random(300), rng.random(300) + 0.05
    assert paired_p(a, b) == pytest.approx(wilcoxon(b - a).pvalue)
    assert paired_p(a, a.copy()) == 1.0
    with pytest.raises(ValueError, match="one shape"):
        paired_p(a, b[:10])


def test_bootstrap_is_seeded_and_exact_on_a_constant_shift():
    rng = np.random.default_rng(0)
    a = rng.random(500)
    b = a + rng.normal(0.02, 0.1, 500)
    g1, g2 = bootstrap_gain(a, b, 500, seed=7), bootstrap_gain(a, b, 500, seed=7)
    assert g1 == g2
    assert bootstrap_gain(a, b, 500, seed=8) != g1
    assert g1["relative_lo"] < g1["relative"] < g1["relative_hi"]
    assert g1["absolute_lo"] < g1["absolute"] < g1["absolute_hi"]
    assert g1["relative"] == pytest.approx(b.mean() / a.mean() - 1)
    shift = bootstrap_gain(a, a + 0.25, 200, seed=1)  # every resample has the same absolute gain
    assert shift["absolute_lo"] == pytest.approx(0.25) and shift["absolute_hi"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_gain(a[:0], b[:0])


def test_bootstrap_interval_covers_the_true_gain_about_95_percent():
    rng = np.random.default_rng(11)
    covered = 0
    for trial in range(150):
        a = rng.random(200)
        b = a + rng.normal(0.1, 0.3, 200)  # true absolute gain 0.1
        g = bootstrap_gain(a, b, 400, seed=trial)
        covered += g["absolute_lo"] <= 0.1 <= g["absolute_hi"]
    assert 0.87 <= covered / 150 <= 0.995, covered


def test_per_user_metrics_average_to_ranking_metrics():
    from fastregen.evaluation import ranking_metrics

    ranks = np.random.default_rng(2).integers(0, 80, 1000)
    want = ranking_metrics(ranks)
    for m in METRICS:
        assert per_user(ranks, m).mean() == pytest.approx(want[m])
    with pytest.raises(ValueError, match="hits@5"):
        per_user(ranks, "hits@5")


# ---------------------------------------------------------------- selection and pairing (no training)
def _fake_row(run, valid: float, test: float, device: str = "cpu") -> dict:
    row = dict.fromkeys(COLUMNS, "")
    row.update(run_id=run.run_id, method=run.method, setting=json.dumps(run.setting_dict), seed=run.seed,
               device=device, epochs=1, seconds=1.0, threads=1)
    for m in METRICS:
        row[f"valid_{m}"], row[f"test_{m}"] = valid, test
    return row


def test_report_selects_by_validation_never_by_test(tmp_path):
    from fastregen.study.report import render, summarise

    cfg = CompareConfig(methods=("original", "reppad"), seeds=2, grid={"reppad": {"lr": [0.001, 0.01]}},
                        bootstrap=200)
    runs = declare_runs(cfg, "x" * 64)
    store = Store(tmp_path)
    rng = np.random.default_rng(0)
    for run in runs:
        # lr=0.01: better on validation, worse on test; lr=0.001 the reverse
        valid, test = {(): (0.1, 0.1), (("lr", 0.001),): (0.1, 0.9), (("lr", 0.01),): (0.2, 0.2)}[run.setting]
        store.save_ranks(run.run_id, rng.integers(0, 40, 300))
        store.append(_fake_row(run, valid, test, device="cpu" if run.seed == 0 else
                               ("cpu" if run.method == "original" else "NVIDIA H100 80GB HBM3")))
    summary = summarise(store, cfg, runs)
    assert summary["selected"]["reppad"] == (("lr", 0.01),)
    (gain,) = [g for g in summary["gains"] if g["metric"] == "ndcg@20"]
    assert gain["seeds"] == [0]  # seed 1's arms ran on different devices: refused
    assert gain["refused"] == [(1, "cpu", "NVIDIA H100 80GB HBM3")]
    text = render(summary, cfg, {"dataset": "d", "users": 300, "items": 9, "interactions": 9, "data_sha256": "0" * 64})
    assert "| reppad | lr=0.01 | 2 |" in text
    assert "not paired: original ran on cpu, reppad on NVIDIA H100 80GB HBM3" in text


# ---------------------------------------------------------------- the command, end to end
@pytest.fixture(scope="module")
def demo_compare(tmp_path_factory):
    """`fastregen compare` on 1,000 users of the demo data: original and dr4sr, 2 seeds, 1 epoch."""
    import yaml
    from fastregen.data import save, synthetic

    tmp = tmp_path_factory.mktemp("compare")
    data = tmp / "demo.txt"
    save(synthetic("demo", seed=0).subset(range(1000)), data)
    regen_yaml = tmp / "regen.yaml"
    regen_yaml.write_text(yaml.safe_dump(TINY_REGEN))
    out = tmp / "cmp"
    args = ["compare", data, "--methods", "original", "dr4sr", "--seeds", "2", *TINY_TRAIN,
            "--regen-config", regen_yaml, "--out", out, "--quiet"]
    res = _invoke(args)
    assert res.exit_code == 0, res.output
    return {"data": data, "out": out, "args": args, "output": res.output, "regen_yaml": regen_yaml}


def test_compare_writes_rows_ranks_report_and_figure(demo_compare):
    out = demo_compare["out"]
    store = Store(out)
    rows = store.read()
    assert sorted((r["method"], r["seed"]) for r in rows) == [("dr4sr", "0"), ("dr4sr", "1"),
                                                              ("original", "0"), ("original", "1")]
    for row in rows:
        assert row["device"] == "cpu" and row["threads"] == "1" and row["fastregen_version"]
        ranks = store.load_ranks(row["run_id"])
        assert ranks.size == int(row["n_test_users"]) == 1000
        # the stored ranks are the ones the row's test metrics came from
        for m in METRICS:
            assert per_user(ranks, m).mean() == pytest.approx(float(row[f"test_{m}"]))
    report = (out / "report.md").read_text()
    line = next(ln for ln in report.splitlines() if ln.startswith("| dr4sr | ndcg@20 |"))
    assert re.search(r"\[[+-]\d+\.\d%, [+-]\d+\.\d%\]", line), line  # the bootstrap interval
    p = float(line.split("|")[9])
    assert 0 <= p <= 1
    assert "Validation selects, test is read once" in report and "| cpu |" in report
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "4 run(s) trained, 4/4 done" in demo_compare["output"]


def test_rerun_trains_nothing_and_keeps_the_rows(demo_compare):
    out = demo_compare["out"]
    before = (out / "results.csv").read_bytes()
    res = _invoke(demo_compare["args"])
    assert res.exit_code == 0, res.output
    assert "0 run(s) trained, 4/4 done" in res.output
    assert (out / "results.csv").read_bytes() == before
    # another declaration in the same folder (here: another seed count) leaves the other rows out of its report
    one_seed = [("1" if a == "2" and prev == "--seeds" else a) for prev, a in zip([None, *demo_compare["args"]],
                                                                                  demo_compare["args"])]
    res = _invoke([*one_seed, "--no-plot"])
    assert "0 run(s) trained, 2/2 done" in res.output, res.output
    assert "holds 2 more row(s) of other declarations" in (out / "report.md").read_text()
    assert _invoke(demo_compare["args"]).exit_code == 0  # the 2-seed report back for the tests below


def test_bad_inputs_are_one_line_and_touch_nothing(demo_compare, tmp_path):
    from fastregen.data import save, synthetic

    out, data = demo_compare["out"], demo_compare["data"]
    (regen,) = [p for p in (out / "prereq").glob("dr4sr-*") if "pretrain" not in p.name]
    other = tmp_path / "other.txt"
    save(synthetic("demo", seed=1).subset(range(300)), other)  # fewer items
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.csv").write_text("run_id,stage,dataset\nabc,select,beauty\n")
    cases = [
        (["compare", data, "--methods", "original", "dr4sx", "--out", out], ["'dr4sx'", "valid: original"], out),
        (["compare", other, "--regen", regen, "--out", tmp_path / "new"], [os.fspath(regen), "items"], out),
        (["compare", data, "--out", foreign], ["results.csv", "columns differ"], foreign),
        (["compare", other, "--out", out], ["other data"], out),
        (["compare", data, "--grid", "dr4sr.gammma=0.1,0.3", "--out", out], ["gammma"], out),
        (["compare", data, "--device", "cuda:x", "--out", out], ["'cuda:x'"], out),
        (["compare", data, "--seeds", "0", "--out", out], ["seeds"], out),
    ]
    for args, needles, folder in cases:
        before = _snapshot(folder)
        _one_line_error(_invoke(args), *needles)
        assert _snapshot(folder) == before, args
    assert not (tmp_path / "new").exists()


def test_workers_share_the_queue_and_reppad_trains(tmp_path):
    """Two spawned workers, each one run (original and reppad at seed 0)."""
    from fastregen.data import synthetic
    from fastregen.study import compare

    data = synthetic("demo", seed=0).subset(range(300))
    cfg = CompareConfig(methods=("original", "reppad"), seeds=1, bootstrap=200,
                        train=dict(epochs=1, embed_dim=16, max_len=20))
    res = compare(data, tmp_path / "w", cfg, workers=2, quiet=True, figure=False)
    assert res["trained"] == 2 and not res["pending"]
    rows = Store(tmp_path / "w").read()
    assert sorted(r["method"] for r in rows) == ["original", "reppad"]
    assert {r["workers"] for r in rows} == {"2"}
    assert json.loads(rows[0]["config"])["train"]["reppad"] in (0, 2)


def test_gpu_batch_dry_run_leaves_rows_and_ranks_in_out(demo_compare, tmp_path):
    """benchmarks/gpu_batch.sh with DRY_RUN=1 (CPU, no install): reruns the finished comparison
    (nothing pending) and leaves its rows, ranks and report under $OUT."""
    import shutil
    import tarfile

    work = tmp_path / "cmp"
    shutil.copytree(demo_compare["out"], work)
    out = tmp_path / "OUT"
    out.mkdir()
    env = dict(os.environ, OUT=os.fspath(out), DRY_RUN="1", OMP_NUM_THREADS="1")
    args = [a for a in demo_compare["args"][1:] if a not in ("--quiet",)]
    args[args.index("--out") + 1] = work
    proc = subprocess.run(["bash", ROOT / "benchmarks" / "gpu_batch.sh", *map(os.fspath, args)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (out / "results.csv").read_bytes() == (demo_compare["out"] / "results.csv").read_bytes()
    with tarfile.open(out / "ranks.tar.gz") as t:
        assert len([n for n in t.getnames() if n.endswith(".npz")]) == 4
    assert (out / "report.md").exists() and (out / "log.txt").exists()


def test_every_method_trains_once_and_is_paired(tmp_path):
    """original, dr4sr, dr4sr+, unids and reppad on 400 demo users, one seed, tiny generators (~15 s)."""
    from fastregen.data import synthetic
    from fastregen.study import METHODS, compare

    tiny_gen = dict(d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1, n_decoder_layers=1, K=2, epochs=1,
                    batch_size=16)
    cfg = CompareConfig(methods=METHODS, seeds=1, bootstrap=200, train=dict(epochs=1, embed_dim=16, max_len=20),
                        regen=TINY_REGEN, plus=dict(warmup_epochs=0, interval=2),
                        unids=dict(max_len=12, generator=tiny_gen, max_pattern_len=4))
    res = compare(synthetic("demo", seed=0).subset(range(400)), tmp_path / "all", cfg, quiet=True, figure=False)
    assert res["trained"] == len(METHODS) and not res["pending"]
    rows = {r["method"]: r for r in Store(tmp_path / "all").read()}
    assert set(rows) == set(METHODS)
    # the generated sets are bigger than the original's 400 training sequences; RepPad trains on the split
    for m in ("dr4sr", "dr4sr+", "unids"):
        assert int(rows[m]["train_sequences"]) > 400, m
    assert rows["original"]["train_sequences"] == rows["reppad"]["train_sequences"] == ""
    assert json.loads(rows["reppad"]["config"])["train"]["reppad"] == 2
    assert "plus" in json.loads(rows["dr4sr+"]["config"])
    gains = {(g["method"], g["metric"]): g for g in res["report"]["gains"]}
    assert set(gains) == {(m, gm) for m in METHODS[1:] for gm in cfg.gain_metrics}
    assert all(g["seeds"] == [0] and 0 <= g["p"] <= 1 for g in gains.values())
    # the prerequisites were built once, in the folder
    assert len(list((tmp_path / "all" / "prereq").glob("dr4sr-*"))) == 2  # pre-trained, decoded
    assert len(list((tmp_path / "all" / "prereq").glob("unids-*"))) == 1


def test_a_gamma_grid_pretrains_once_and_selects_by_validation(tmp_path):
    from fastregen.data import synthetic
    from fastregen.study import compare

    cfg = CompareConfig(methods=("dr4sr",), seeds=1, bootstrap=200, train=dict(epochs=1, embed_dim=16, max_len=20),
                        regen=TINY_REGEN, grid={"dr4sr": {"gamma": [0.1, 0.5]}})
    res = compare(synthetic("demo", seed=0).subset(range(300)), tmp_path / "g", cfg, quiet=True, figure=False)
    prereq = tmp_path / "g" / "prereq"
    assert len(list(prereq.glob("dr4sr-pretrain-*"))) == 1
    decoded = [p for p in prereq.glob("dr4sr-*") if "pretrain" not in p.name]
    assert len(decoded) == 2
    # one regenerator, linked into both decoding folders
    assert len({(p / "regenerator.pt").stat().st_ino for p in decoded}) == 1
    rows = {json.loads(r["setting"])["gamma"]: r for r in Store(tmp_path / "g").read() if r["method"] == "dr4sr"}
    best = max(rows, key=lambda g: float(rows[g]["valid_ndcg@20"]))
    assert res["report"]["selected"]["dr4sr"] == (("gamma", best),)


def test_stop_after_zero_trains_nothing_and_reports_what_is_pending(tmp_path):
    from fastregen.data import synthetic
    from fastregen.study import compare

    cfg = CompareConfig(methods=("original", "reppad"), seeds=2, train=dict(epochs=1))
    res = compare(synthetic("demo", seed=0).subset(range(100)), tmp_path / "s", cfg, stop_after=0, quiet=True)
    assert res["trained"] == 0 and len(res["pending"]) == 4
    assert "0/4 declared runs finished" in (tmp_path / "s" / "report.md").read_text()
    assert not (tmp_path / "s" / "results.csv").exists()


@pytest.mark.gpu
def test_cuda_workers_share_one_gpu_and_rows_name_it(tmp_path):
    """Two workers on one GPU (`--device cuda --workers 2`); each row names the CUDA device."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from fastregen.data import synthetic
    from fastregen.study import compare

    cfg = CompareConfig(methods=("original", "reppad"), seeds=1, bootstrap=200,
                        train=dict(epochs=1, embed_dim=16, max_len=20))
    res = compare(synthetic("demo", seed=0).subset(range(300)), tmp_path / "c", cfg, workers=2, device="cuda",
                  quiet=True, figure=False)
    assert res["trained"] == 2
    rows = Store(tmp_path / "c").read()
    assert {r["device"] for r in rows} == {torch.cuda.get_device_name(0)}
    assert all(g["seeds"] == [0] for g in res["report"]["gains"])  # same device kind: paired
