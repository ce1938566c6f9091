"""The memory model (`fastregen.memory.pipeline_estimates`) against measured peaks, and the CLI's use of it.

Each configuration runs in a fresh process (as `fastregen regenerate` and `fastregen train` would):
the DR4SR pipeline with its per-stage peaks (`DR4SR.measure_memory`), then a target-model epoch
and the full-ranking test evaluation. Every stage's measured peak must stay under its estimate,
and the estimate must not be loose by more than a bounded factor of what the stage adds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastregen import memory
from fastregen.cli import app

pytestmark = pytest.mark.skipif(not memory.can_reset_peak(), reason="needs a resettable peak RSS (Linux)")

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import gc, json, sys
import torch
from fastregen import memory
memory.limit_heap_retention()
torch.set_num_threads(1)
from fastregen.data import leave_one_out, load, save, synthetic
from fastregen.dr4sr import DR4SR, RegenConfig
from fastregen.evaluation import evaluate
from fastregen.training import TrainConfig, fit

part, n_users, n_items, d, batch, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    int(sys.argv[5]), sys.argv[6]
path = f"{folder}/data.txt"
if part == "dr4sr":
    save(synthetic("books", n_users=n_users, n_items=n_items, n_patterns=2000), path)
base = memory.current_rss()
with memory.PeakRSS() as m:
    data = load(path)
peaks = {"data": m.peak}
if part == "dr4sr":
    cfg = RegenConfig(d_model=d, d_ff=2 * d, batch_size=batch, epochs=1, max_pairs_per_sequence=2, gamma=0.0,
                      progress=False)
    dr = DR4SR(cfg)
    dr.measure_memory = True
    dr.fit(data, out_dir=f"{folder}/regen")
    dr.regenerate()
    peaks.update(dr.stage_peak_rss)
    known = dict(pairs=len(dr.pairs))
else:
    cfg = None
    split = leave_one_out(data)
    tcfg = TrainConfig(embed_dim=d, batch_size=batch, epochs=1, progress=False, num_threads=1)
    with memory.PeakRSS() as m:
        model = fit(tcfg, split.train, split.valid, num_items=data.num_items)["model"]
    peaks["train"] = m.peak
    with memory.PeakRSS() as m:
        evaluate(model, split.test)
    peaks["evaluate"] = m.peak
    known = dict(target_d=d, target_batch=batch)
est = memory.pipeline_estimates(len(data), data.num_interactions, data.num_items, cfg, base=base,
                                lengths=data.lengths, **known)
print(json.dumps({"base": base, "peaks": peaks, "estimates": {k: v.total for k, v in est.items()}}))
"""


def _measure(part, n_users, n_items, d, batch, folder):
    out = subprocess.run([sys.executable, "-c", SCRIPT, part, str(n_users), str(n_items), str(d), str(batch),
                          str(folder)], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("n_users, n_items, d, batch", [(1500, 150_000, 32, 64), (1500, 300_000, 64, 128)])
def test_measured_peaks_stay_under_the_estimates(tmp_path, n_users, n_items, d, batch):
    for part, stages in (("dr4sr", ("data", "patterns", "pairs", "regenerator", "inference", "write")),
                         ("target", ("train", "evaluate"))):
        r = _measure(part, n_users, n_items, d, batch, tmp_path)
        base = r["base"]
        for stage in stages:
            peak, est = r["peaks"][stage], r["estimates"][stage]
            report = f"{part}/{stage}: measured {peak / 2**20:.0f} MiB, estimated {est / 2**20:.0f} MiB"
            assert peak <= est, report
            # not vacuous: what the estimate adds above the process is within 3x of what the stage added
            assert est - base <= 3 * max(peak - base, 0) + 100 * 2**20, report


def test_estimates_grow_with_items_d_batch_and_interactions():
    from fastregen.dr4sr import RegenConfig

    small = memory.pipeline_estimates(10_000, 100_000, 50_000, RegenConfig())
    for kw, args in (({}, (10_000, 100_000, 500_000)), ({}, (100_000, 1_000_000, 50_000))):
        big = memory.pipeline_estimates(*args, RegenConfig(), **kw)
        assert all(big[s].total > small[s].total for s in ("regenerator", "inference", "train", "evaluate"))
    wide = memory.pipeline_estimates(10_000, 100_000, 50_000, RegenConfig(d_model=128, batch_size=512),
                                     target_d=128, target_batch=512)
    assert wide["regenerator"].total > small["regenerator"].total and wide["train"].total > small["train"].total
    # the table grows by 4 (V + 3) (d' - d) bytes per copy: five copies in pre-training
    d_only = memory.pipeline_estimates(10_000, 100_000, 50_000, RegenConfig(d_model=128))
    diff = d_only["regenerator"].parts["item table x5"] - small["regenerator"].parts["item table x5"]
    assert diff == 5 * 4 * (50_000 + 3) * 64


TINY = "d_model: 16\nn_heads: 2\nn_encoder_layers: 1\nn_decoder_layers: 1\nd_ff: 32\nK: 2\nepochs: 1\nmax_len: 12\n"


def test_dry_run_prints_the_estimates_and_runs_nothing(tmp_path):
    (tmp_path / "d.txt").write_text("".join(f"{u} {u % 7 + 1} {u % 5 + 2} {u % 3 + 1} 9\n" for u in range(1, 40)))
    (tmp_path / "c.yaml").write_text(TINY)
    res = CliRunner().invoke(app, ["regenerate", str(tmp_path / "d.txt"), "--out", str(tmp_path / "o"), "--config",
                                   str(tmp_path / "c.yaml"), "--dry-run"])
    assert res.exit_code == 0, res.output
    for stage in ("patterns", "pairs", "regenerator", "inference", "write"):
        assert stage in res.output
    assert "available memory" in res.output
    assert not (tmp_path / "o").exists()


def test_an_estimate_above_the_machine_is_refused_unless_forced(tmp_path, monkeypatch):
    (tmp_path / "d.txt").write_text("".join(f"{u} {u % 7 + 1} {u % 5 + 2} {u % 3 + 1} 9\n" for u in range(1, 40)))
    (tmp_path / "c.yaml").write_text(TINY + "progress: false\n")
    monkeypatch.setattr(memory, "machine_memory", lambda: 64 * 2**20)
    args = ["regenerate", str(tmp_path / "d.txt"), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "c.yaml")]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2
    assert "error: the estimated peak memory is" in res.output and "0.1 GiB available" in res.output
    assert "--force" in res.output and not (tmp_path / "o").exists()
    res = CliRunner().invoke(app, args + ["--force"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "regenerated.txt").exists()
