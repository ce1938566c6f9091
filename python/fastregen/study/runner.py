"""Running a comparison: pending runs, worker processes, one row per finished run.

`compare` checks everything it can before writing anything (the methods
and their configs, the device, the ``--regen`` folder, the results CSV's
schema, the data the folder was made for), then trains the pending runs
(those without a row in ``results.csv``) and writes the report.

With ``workers=N`` it starts N processes (spawned: safe with CUDA and
OpenMP), each taking the next pending run that no other worker holds (a
non-blocking file lock per run) until none is left or the time budget is
spent; on one GPU the N processes share the device, which pays when one
small model leaves it mostly idle. On CPU each worker uses ``threads``
torch threads (default 1: two one-thread processes beat one two-thread
process on these small models). A run's row and ranks are written when
it ends, so a comparison stopped at any point resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

from .methods import Context, check_regen_dir, train_run
from .queue import RAN, run_queue
from .runs import CompareConfig, Run, declare_runs
from .store import METRICS, Store

__all__ = ["compare", "device_name"]


def device_name(device: str) -> str:
    """What a row records as its device: ``cpu``, or the CUDA device's name (``NVIDIA H100 80GB HBM3``)."""
    if device == "cpu":
        return "cpu"
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def _check_device(device: str) -> None:
    if device == "cpu":
        return
    if not (device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"device must be cpu, cuda or cuda:N, got {device!r}")
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA device is visible to torch (torch {torch.__version__}); "
                         "use --device cpu")


def _commit() -> str:
    """HEAD of the git checkout holding this package ('' for an installed copy)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def data_info(data) -> dict:
    """What a comparison folder is about (its ``study.json``)."""
    from ..pipeline import dataset_sha256

    return {"dataset": getattr(data, "name", "") or "", "data_sha256": dataset_sha256(data),
            "items": int(data.num_items), "users": len(data), "interactions": int(data.num_interactions)}


@dataclasses.dataclass
class _Worker:
    """One worker's share of a comparison (picklable: sent to spawned processes)."""

    ctx: Context
    runs: list
    deadline: float | None
    workers: int
    index: int
    quiet: bool

    def say(self, line: str) -> None:
        if not self.quiet:
            tag = f"worker {self.index}: " if self.workers > 1 else ""
            print(f"[{time.strftime('%H:%M:%S')}] {tag}{line}", file=sys.stderr, flush=True)

    def __call__(self) -> int:
        """Train pending runs until none is left to take (or the deadline passed); return how many."""
        import torch

        before = torch.get_num_threads()
        if self.ctx.device == "cpu":
            torch.set_num_threads(self.ctx.threads)
        store = Store(self.ctx.root)
        trained = 0
        try:
            while self.deadline is None or time.time() < self.deadline:
                ran = run_queue(lambda: self.runs, lambda r: r.run_id, store.done, self.ctx.root / "locks",
                                lambda r: self._train(store, r), max_runs=1, lock_prefix="run-")
                if ran != RAN:
                    break
                trained += 1
        finally:  # in-process (one worker), the caller's thread setting comes back
            torch.set_num_threads(before)
        return trained

    def _train(self, store: Store, run: Run) -> None:
        from .. import __version__

        self.say(f"{run.label()} ({run.run_id}) ...")
        res, train = train_run(self.ctx, run)
        store.save_ranks(run.run_id, res["test_ranks"])
        key = json.loads(run.key)
        row = {
            "run_id": run.run_id, "method": run.method, "setting": json.dumps(run.setting_dict, sort_keys=True),
            "seed": run.seed, "model": self.ctx.cfg.model, "dataset": getattr(self.ctx.data, "name", "") or "",
            "data_sha256": key["data"], "epochs": res["epochs"], "best_epoch": res["best_epoch"],
            "seconds": round(res["seconds"], 2), "seconds_per_epoch": round(res["seconds_per_epoch"], 3),
            "train_sequences": "" if train is None else len(train),
            "train_interactions": "" if train is None else train.num_interactions,
            **{f"valid_{m}": res["valid"][m] for m in METRICS}, **{f"test_{m}": res["test"][m] for m in METRICS},
            "test_auc": res["test"].get("auc", ""), "n_test_users": res["test"]["n_users"],
            "device": device_name(self.ctx.device), "threads": self.ctx.threads if self.ctx.device == "cpu" else "",
            "workers": self.workers, "config": json.dumps(key["config"], sort_keys=True, default=str),
            "fastregen_version": __version__, "commit": _commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
        store.append(row)
        self.say(f"{run.label()} done: valid {self.ctx.cfg.valid_metric} "
                 f"{res['valid'][self.ctx.cfg.valid_metric]:.4f}, {res['epochs']} epochs, {res['seconds']:.0f} s")


def _spawned(worker: _Worker) -> int:
    return worker()


def compare(data, out_dir, config: CompareConfig | None = None, *, workers: int = 1, device: str = "cpu",
            threads: int = 1, regen_dir=None, stop_after: float | None = None, report: bool = True,
            figure: bool = True, progress: bool = False, quiet: bool = False) -> dict:
    """Train every (method, setting, seed) of ``config`` on ``data`` into ``out_dir``; write the report.

    Parameters
    ----------
    data : SequenceDataset or path
    out_dir : path
        The comparison folder (`fastregen.study.store`); finished runs found
        there (rows of ``results.csv``) are not trained again.
    config : CompareConfig, optional
    workers : int, default 1
        Processes training runs at once (1: in this process).
    device : {"cpu", "cuda", "cuda:N"}, default "cpu"
    threads : int, default 1
        torch threads per worker on CPU.
    regen_dir : path, optional
        A finished `fastregen regenerate` folder of ``data``: dr4sr and
        dr4sr+ train on its training set instead of building a regenerator.
    stop_after : float, optional
        Seconds after which no new run starts (the report covers what is done).
    report : bool, default True
        Write ``report.md`` at the end.
    figure : bool, default True
        And ``compare.png`` (needs matplotlib: checked before any run).

    Returns
    -------
    dict
        ``runs`` (declared), ``trained`` (this call), ``pending`` (left),
        ``report`` (the `fastregen.study.report.summarise` dict, or None).

    Raises
    ------
    ValueError
        One line, before anything is written: an unknown method or config
        field, an unusable device, a ``regen_dir`` of other data, a
        results CSV of another schema, a folder made for other data.
    """
    from ..data import as_dataset

    config = CompareConfig() if config is None else config
    if not isinstance(config, CompareConfig):
        raise TypeError(f"config must be a CompareConfig, got {type(config).__name__}")
    for name, v in (("workers", workers), ("threads", threads)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    _check_device(device)
    if report and figure:
        from .report import check_plotting

        check_plotting()
    data = as_dataset(data)
    root = Path(out_dir)
    info = data_info(data)
    store = Store(root)
    store.check(info)
    regen_source = None
    if regen_dir is not None:
        regen_dir = Path(regen_dir)
        if config.grid.get("dr4sr"):
            raise ValueError("--regen fixes the DR4SR regenerator: a dr4sr grid cannot vary it; drop one of them")
        if not ({"dr4sr", "dr4sr+"} & set(config.methods)):
            raise ValueError("--regen is given but neither dr4sr nor dr4sr+ is compared")
        regen_source = check_regen_dir(regen_dir, data)
    runs = declare_runs(config, info["data_sha256"], regen_source)
    # Everything is checked: the folder may be written from here on.
    store.init(info)
    deadline = None if stop_after is None else time.time() + float(stop_after)
    done = store.done()
    pending = [r for r in runs if r.run_id not in done]
    ctx = Context(data=data, root=root, cfg=config, device=device, threads=threads, regen_dir=regen_dir,
                  progress=progress)
    trained = 0
    if pending and (deadline is None or time.time() < deadline):
        n = min(workers, len(pending))
        jobs = [_Worker(ctx, runs, deadline, n, k, quiet) for k in range(n)]
        if n == 1:
            trained = jobs[0]()
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            # Spawned, not forked: a forked child inherits a CUDA context or an
            # OpenMP pool in an unusable state.
            with ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
                futures = []
                for job in jobs:
                    futures.append(pool.submit(_spawned, job))
                    time.sleep(0.5)  # the first worker takes the head of the queue before the next looks
                trained = sum(f.result() for f in futures)
    done = store.done()
    left = [r for r in runs if r.run_id not in done]
    summary = None
    if report:
        from .report import write_report

        summary = write_report(store, config, runs, info, figure=figure)
    return {"runs": runs, "trained": trained, "pending": left, "report": summary}
