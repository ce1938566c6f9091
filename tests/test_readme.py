"""Every command of the README's command-line block runs as written (issue 29).

On small synthetic data placed where the commands look (``../shared/data/beauty.txt``
and a file named ``ml-100k``, which `fastregen unids` reads before fetching),
with one epoch per training so that the whole block takes seconds. ``fastregen
demo`` is left to tests/test_demo.py (it runs it whole, marked slow), the
torchrun block to tests/test_distributed.py, the install block to ./run.sh.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastregen import data
from fastregen.cli import app

ROOT = Path(__file__).resolve().parents[1]

# Appended to the commands that train: one epoch (the README's runs take hours on Beauty).
BUDGET = {
    "train": ["--epochs", "1"],
    "regenerate": ["--epochs", "1"],
    "personalize": ["--epochs", "1"],
    "compare": ["--epochs", "1"],
    "unids": ["--epochs", "1", "--backbone-epochs", "1", "--backbone-max-len", "20"],
}


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    cli = [b for b in blocks if b.startswith("fastregen info")]
    assert len(cli) == 1, "the README's command-line block is gone"
    lines = [line.split("#", 1)[0].strip() for line in cli[0].splitlines()]
    return [shlex.split(line) for line in lines if line]


def test_readme_block_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the README's plot commands need fastregen[plot]")
    work = tmp_path / "checkout"
    work.mkdir()
    ds = data.synthetic("demo", n_users=300, seed=0)
    (tmp_path / "shared" / "data").mkdir(parents=True)
    data.save(ds, tmp_path / "shared" / "data" / "beauty.txt")
    data.save(ds, work / "ml-100k")
    monkeypatch.chdir(work)
    commands = readme_commands()
    assert [c[0] for c in commands] == ["fastregen"] * len(commands)
    ran = []
    for argv in commands:
        name = argv[1]
        if name == "demo":
            continue
        args = argv[1:] + BUDGET.get(name, []) + ["--quiet"]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, f"{shlex.join(argv)}\n{res.output}"
        ran.append(name)
    assert {"stats", "mine", "entropy", "train", "regenerate", "personalize", "plot", "unids", "compare"} <= set(ran)
    for out in ("patterns.tsv", "entropy.png", "runs/sasrec/model.pt", "runs/dr4sr/regenerated.txt", "fig4.png",
                "runs/unids/train.txt", "runs/cmp/report.md"):
        assert (work / out).is_file(), out
