"""Result rows and per-user ranks: what every benchmark run leaves in ``benchmarks/results/``.

Two kinds of rows, so that `benchmarks/report.py` can rebuild every table
of BENCHMARKS.md from committed files:

* **Measurements** (speed, memory, agreement: every script but the studies)
  go through `append_result`, one row per measured figure, with the core
  columns `CORE_COLUMNS` first and any extra columns after them; read them
  back with `read_results`.
* **Study runs** (``dr4sr_study.py``, ``dr4srplus.py``, ``unids.py``,
  ``authors.py``) append one row per training run with its config, seeds,
  commit and every metric, through `append_row` under a fixed column list,
  and save the run's test users' ranks with `save_ranks` (sparsely: only
  users whose target ranked below ``cutoff`` (50) keep their rank, which is
  all NDCG@K and Recall@K for K <= 50 need, ~10 KB per run on Beauty). A run
  is the unit the studies select, pair and resume on, so it stays one row.
"""

from __future__ import annotations

import csv
import datetime as dt
import fcntl
import functools
import io
import os
from pathlib import Path

import numpy as np

__all__ = ["CORE_COLUMNS", "MIGRATED", "append_result", "read_results", "write_results", "to_core",
           "file_lock", "append_row", "read_rows", "save_ranks", "load_ranks", "per_user", "paired_p"]

#: The columns every measurement row starts with (benchmarks/README.md says what each holds).
CORE_COLUMNS = ["benchmark", "dataset", "variant", "metric", "value", "unit", "threads", "device", "machine",
                "commit", "date"]
#: Measurement files that had their own columns before the core schema (``migrate_results.py`` moved them).
MIGRATED = ("engine", "threads", "scale", "pretrain_speed", "dr4srplus_overhead")


# fastregen.study imports torch (its package runs training); the measurement scripts import this module too,
# and a torch import would add ~200 MiB to the memory they measure, so the study helpers are reached on call.
def paired_p(a, b):
    """`fastregen.study.stats.paired_p` (the one implementation; re-used by report.py)."""
    from fastregen.study.stats import paired_p as impl

    return impl(a, b)


def file_lock(path, blocking: bool = True):
    """`fastregen.study.store.file_lock` (the one run lock of the studies)."""
    from fastregen.study.store import file_lock as impl

    return impl(path, blocking)


def append_row(path, row: dict, columns: list[str]) -> None:
    """Append ``row`` to the CSV at ``path`` (created with a header if absent), under a file lock: a
    study run's row (measurements go through `append_result`).

    Raises ValueError naming the difference if the file's header or the row's
    keys are not exactly ``columns``. A file named in `MIGRATED` is in the core
    schema: the row is converted by `to_core` and appended with the core writer.
    """
    path = Path(path)
    missing, extra = sorted(set(columns) - set(row)), sorted(set(row) - set(columns))
    if missing or extra:
        raise ValueError(f"row for {path.name} lacks {missing} / has unknown {extra}")
    if path.stem in MIGRATED:
        # a measurement file in the core schema since the migration: a script still writing its old
        # columns (a branch of before it) gets its row converted, as read_results converts old rows
        _append_core(path, to_core({k: "" if v is None else str(v) for k, v in row.items()}, path.stem))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        header = f.readline().strip()
        if header:
            _check_header(path, header.split(","), columns)
        else:
            f.write(",".join(columns) + "\n")
        f.seek(0, os.SEEK_END)
        csv.DictWriter(f, fieldnames=columns).writerow(row)


def _check_header(path: Path, found: list[str], columns: list[str]) -> None:
    if found != list(columns):
        missing, extra = sorted(set(columns) - set(found)), sorted(set(found) - set(columns))
        raise ValueError(f"{path}: its columns differ from what this script writes and reads "
                         f"(missing {missing}, unexpected {extra}{', or reordered' if not (missing or extra) else ''}); "
                         "start a new file or migrate it")


def read_rows(path, columns: list[str]) -> list[dict]:
    """Rows of a results CSV as dicts of strings ([] if the file does not exist); checks the header."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        _check_header(path, list(reader.fieldnames or []), columns)
        return list(reader)


def save_ranks(path, ranks: np.ndarray, cutoff: int = 50) -> None:
    """Store each user's 0-based target rank, keeping only ranks < ``cutoff`` (atomically):
    `fastregen.study.store.save_ranks` (the one ranks format)."""
    from fastregen.study.store import save_ranks as impl

    impl(path, ranks, cutoff)


def load_ranks(path) -> tuple[np.ndarray, int | None]:
    """``(ranks, cutoff)`` from `save_ranks`: `fastregen.study.store.load_ranks`."""
    from fastregen.study.store import load_ranks as impl

    return impl(path)


def per_user(ranks: np.ndarray, metric: str, cutoff: int = 50) -> np.ndarray:
    """Each user's ``ndcg@K`` or ``recall@K`` (K <= cutoff) from ranks stored below ``cutoff``."""
    name, _, k = metric.partition("@")
    if name not in ("ndcg", "recall"):
        raise ValueError(f"unknown metric {metric!r}; ndcg@K or recall@K")
    if int(k) > cutoff:
        raise ValueError(f"{metric}: ranks were stored below {cutoff} only")
    from fastregen.study.stats import per_user as impl

    return impl(ranks, metric)


# ---------------------------------------------------------------- measurement rows (one core schema)
def append_result(path, *, benchmark: str, dataset: str, variant: str, metric: str, value, unit: str, threads,
                  device: str = "cpu", machine: str | None = None, commit: str | None = None,
                  date: str | None = None, **extra) -> dict:
    """Append one measurement row to the CSV at ``path`` and return it (values as written).

    Parameters
    ----------
    path : str or Path
        A results CSV whose header starts with `CORE_COLUMNS` (created if absent).
    benchmark, dataset, variant, metric : str
        What was measured, on which data, which side of a comparison, and which figure
        (``seconds_median``, ``speedup``, ``peak_rss_mib``, ...). ``benchmark`` and ``metric`` must be non-empty.
    value : float, int or str
        The figure, in ``unit`` (``s``, ``x``, ``MiB``, ...).
    threads : int or str
        Threads the measured code ran on (``"1/2"`` where repeats differ).
    device : str, default "cpu"
    machine, commit, date : str, optional
        Default: ``"<nproc> cores, <CPU model>"``, the short hash of this checkout's HEAD when the process
        first imported this module (the code it runs, even if HEAD moves during a long run), the UTC time now.
    **extra
        Further columns (load, repeats, all values, a note, ...): written after the core columns; a
        column the file lacks widens its header (older rows get an empty cell).

    The write holds an exclusive lock on the file's folder, so concurrent writers never interleave;
    a new row is one ``write`` of one line, and a widened file is rewritten to a temporary file and
    renamed over the old one, so a crash leaves the file as it was or with the whole row.
    """
    from _harness import cpu_model

    row = {"benchmark": benchmark, "dataset": dataset, "variant": variant, "metric": metric, "value": value,
           "unit": unit, "threads": threads, "device": device,
           "machine": machine if machine is not None else f"{os.cpu_count()} cores, {cpu_model()}",
           "commit": commit if commit is not None else _start_commit(),
           "date": date if date is not None else dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    for key in ("benchmark", "metric"):
        if not str(row[key]):
            raise ValueError(f"append_result: {key} must be non-empty, got {row[key]!r}")
    if value is None or value == "":
        raise ValueError(f"append_result: {benchmark}/{metric} has no value ({value!r})")
    row.update(extra)
    row = {k: "" if v is None else str(v) for k, v in row.items()}
    _append_core(Path(path), row)
    return row


@functools.lru_cache(maxsize=1)
def _start_commit() -> str:
    from _harness import git_commit

    return git_commit(Path(__file__).parent)


_start_commit()  # at import: a script's rows name the commit it started from


def read_results(path) -> list[dict]:
    """Measurement rows of a results CSV as dicts of strings ([] if the file does not exist).

    Every row has the core columns. A file still in one of the schemas used before the core one
    (``engine``, ``threads``, ``scale``, ``pretrain_speed``, ``dr4srplus_overhead``, named by the
    file's stem) is read through `to_core`, so a branch that appended old-schema rows still reports.
    """
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        reader = csv.DictReader(f, restval="")
        header = list(reader.fieldnames or [])
        rows = [{k: v for k, v in r.items() if k is not None} for r in reader]
    if header[:len(CORE_COLUMNS)] == CORE_COLUMNS:
        return rows
    return [to_core(r, path.stem) for r in rows]


def _device_of(note: str) -> str:
    """``cuda`` from a scale decode note "device cuda, backend ..." (those rows named the device there)."""
    head = note.split(",")[0].strip()
    return head.split()[1] if head.startswith("device ") and len(head.split()) > 1 else "cpu"


# The schemas of before the core one, by file stem: core column -> the old column (or a function of the
# old row), and old columns renamed among the extras (scale's "unit" was the throughput's unit). Every other
# old column is kept as an extra column under its own name, so no information is lost.
_LEGACY = {
    "scale": ({"benchmark": lambda r: f"scale/{r['experiment']}", "dataset": "data", "variant": "stage",
               "metric": lambda r: "seconds", "value": "seconds", "unit": lambda r: "s", "threads": "threads",
               "device": lambda r: _device_of(r.get("note", "")), "machine": "machine", "commit": "commit",
               "date": "date"}, {"unit": "throughput_unit"}, ("experiment", "stage")),
    "pretrain_speed": ({"benchmark": lambda r: "pretrain_speed", "dataset": "data",
                        "variant": lambda r: "current/baseline", "metric": lambda r: "speedup", "value": "speedup",
                        "unit": lambda r: "x", "threads": "threads", "device": lambda r: "cpu", "machine": "machine",
                        "commit": "commit", "date": "date"}, {}, ()),
    "dr4srplus_overhead": ({"benchmark": lambda r: "dr4srplus_overhead", "dataset": "dataset",
                            "variant": lambda r: "bilevel/plain", "metric": lambda r: "overhead_cpu",
                            "value": "overhead_cpu", "unit": lambda r: "fraction", "threads": "threads",
                            "device": lambda r: "cpu", "machine": "machine", "commit": "commit", "date": "date"},
                           {}, ()),
}


def to_core(row: dict, name: str) -> dict:
    """``row`` (a dict of an old-schema results file ``name``: its stem) in the core schema.

    A row that has every core column (old ``engine.csv`` and ``threads.csv`` rows) only moves them first.
    Raises ValueError for a row of neither kind.
    """
    if all(c in row for c in CORE_COLUMNS):
        return {**{c: row[c] for c in CORE_COLUMNS}, **{k: v for k, v in row.items() if k not in CORE_COLUMNS}}
    if name not in _LEGACY:
        raise ValueError(f"{name}: a row without the core columns {CORE_COLUMNS} and no known older schema "
                         f"(known: {sorted(_LEGACY)}); its columns: {sorted(row)}")
    core, renamed, folded = _LEGACY[name]
    out = {c: (src(row) if callable(src) else row.get(src, "")) for c, src in core.items()}
    used = {src for src in core.values() if not callable(src)} | set(folded)
    for k, v in row.items():
        if k not in used:
            out[renamed.get(k, k)] = "" if v is None else v
    return out


def _dir_lock(folder: Path):
    """An exclusive flock on ``folder`` itself (no lock file left beside the results)."""
    import contextlib

    @contextlib.contextmanager
    def held():
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock
    return held()


def _csv_line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def write_results(path, rows: list[dict], header: list[str] | None = None) -> None:
    """Write core-schema ``rows`` to ``path`` atomically: the header is `CORE_COLUMNS`, then every extra
    column in order of first appearance (or ``header``, which must start with the core columns)."""
    from fastregen._io import atomic_open

    if header is None:
        header = list(CORE_COLUMNS)
        for r in rows:
            header += [k for k in r if k not in header]
    if header[:len(CORE_COLUMNS)] != CORE_COLUMNS:
        raise ValueError(f"{path}: a results header must start with {CORE_COLUMNS}, got {header[:11]}")
    with atomic_open(path, "w", newline="") as f:
        f.write(_csv_line(header))
        for r in rows:
            f.write(_csv_line([r.get(c, "") for c in header]))


def _append_core(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with _dir_lock(path.parent):
        header = None
        if path.exists() and path.stat().st_size:
            with open(path, newline="") as f:
                header = next(csv.reader(f), None)
        if header is None:
            write_results(path, [row])
            return
        if header[:len(CORE_COLUMNS)] != CORE_COLUMNS:
            raise ValueError(f"{path}: its header does not start with the core columns {CORE_COLUMNS} "
                             f"(found {header[:len(CORE_COLUMNS)]}); migrate it: "
                             f"python benchmarks/migrate_results.py {path}")
        new = [k for k in row if k not in header]
        if new:  # a new extra column: rewrite the whole file under the wider header
            write_results(path, read_results(path) + [row], header + new)
            return
        line = _csv_line([row.get(c, "") for c in header]).encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)  # one write of the whole line; the folder lock keeps writers apart
        finally:
            os.close(fd)
