"""One resumable stage runner for the methods' pipelines (DR4SR, DR4SR+, UniDS).

A method declares its stages once -- each with the files it writes and the
stages that read it -- and runs each through `Pipeline.run`:

* **fingerprint**: a hash of the options and inputs the stage reads (the
  method passes them: its own options, those of every stage it reads, the
  content hash of the input data);
* **done-marker**: ``stages.json`` in the run folder maps each finished
  stage to its fingerprint, written atomically after the stage's files; a
  stage is done when its recorded fingerprint is the run's and its files
  are there;
* **atomic outputs**: a stage's ``save`` writes its files with
  `fastregen._io.atomic_open` (a kill leaves the previous file or none);
* **ranks**: under torchrun rank 0 checks the folder, computes and writes,
  and the other ranks load what it wrote (``every_rank=True`` for stages
  that are themselves data-parallel: every rank computes, rank 0 writes);
* **time and peak RSS** of every stage (`fastregen.memory.PeakRSS` when
  ``measure_memory``), and one log line at each stage's start and end;
* **provenance**: `write_provenance` is the one writer of the JSON records
  (and `dataset_sha256` the one content hash of a dataset).

Training stages keep their own primitive, the epoch checkpoint of
`fastregen.training.Trainer` (`fastregen.training.checkpoint`): it resumes
an interrupted training from its last epoch.

Policy when options change
--------------------------
A stage whose fingerprint changed is recomputed, and every stage that reads
it is invalidated (its record and its files are removed first, so a folder
never holds the outputs of two configurations), while **an epoch checkpoint
never yields to other options: a training stage whose checkpoint belongs to
a run of other options refuses to start** (a one-line ValueError naming each
differing field; remove the checkpoint or use another folder). Derived stages
(mining, pairs, decoding, writing) are deterministic and cost minutes, so
recomputing them is the safe default and what DR4SR and UniDS did; the
epoch checkpoint is the one file that holds hours of compute that cannot be
recomputed cheaply, so it is never discarded because an option changed --
a typo in a rerun's options must not cost the half-trained regenerator, and
a finished DR4SR+ run (its checkpoint is ``finished``) is never overwritten
by a run of other settings (its existing behaviour).

Folders written before this runner (no ``stages.json``) are migrated by each
method's ``legacy`` check: their stage files are adopted when the options
recorded beside them (``config.yaml``, ``personalize.json``) match.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ._io import atomic_open
from .training import distributed

__all__ = ["Pipeline", "Stage", "RECORD", "fingerprint", "write_provenance", "dataset_sha256"]

#: The done-marker: ``{stage: fingerprint}`` of every finished stage of the folder.
RECORD = "stages.json"


def fingerprint(options: dict) -> str:
    """The fingerprint of a stage: 16 hex digits of the SHA-256 of its options and inputs as sorted JSON."""
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()[:16]


def dataset_sha256(ds) -> str:
    """Content hash of a dataset (its offsets and items), for provenance and fingerprints."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds.offsets, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(ds.items, dtype=np.int32).tobytes())
    return h.hexdigest()


def write_provenance(path, record: dict) -> None:
    """Write a provenance / statistics record as JSON, atomically."""
    with atomic_open(path, "w") as f:
        json.dump(record, f, indent=2, default=_json_default)
        f.write("\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"cannot serialise {type(o).__name__}")


@dataclass(frozen=True)
class Stage:
    """A stage of a pipeline: its name, the files it writes, the stages whose outputs it reads."""

    name: str
    outputs: tuple = ()
    inputs: tuple = ()


class Pipeline:
    """The stages of one run, in a folder (resumable) or in memory.

    Parameters
    ----------
    stages : sequence of Stage
        Every stage of the method, in the order they run.
    out_dir : path, optional
        The run folder; None runs every stage in memory.
    log : callable, optional
        Called with one line at each stage's start and end, and for a reused
        stage (on rank 0 alone).
    measure_memory : bool, default False
        Record each computed stage's peak RSS in ``peak_rss``.

    Attributes
    ----------
    seconds : dict of str to float
        Wall time of each stage run in this process (0.0 for a reused one).
    peak_rss : dict of str to int
        Peak RSS in bytes of each stage computed (``measure_memory``).
    legacy : bool
        Whether the folder predates the runner (no ``stages.json`` when opened).
    """

    def __init__(self, stages, out_dir=None, *, log: Callable[[str], None] | None = None,
                 measure_memory: bool = False) -> None:
        self.stages = {s.name: s for s in stages}
        self.out = None if out_dir is None else Path(out_dir)
        self.log = log
        self.measure_memory = measure_memory
        self.seconds: dict[str, float] = {}
        self.peak_rss: dict[str, int] = {}
        self.record: dict[str, str] = {}
        self.legacy = False
        self.source: dict = {}

    # ------------------------------------------------------------ folder
    def open(self, data=None, data_path=None, *, what: str = "run",
             prepare: Callable[[Path, bool], None] | None = None) -> dict:
        """Check and set up the folder for ``data``; return its source record (path, hashes).

        Rank 0 creates the folder, refuses one made from other data (a
        ValueError), calls ``prepare(folder, legacy)`` (the method writes its
        config there) and writes ``source.json``; every rank then reads the
        record of finished stages. Without ``data`` (a method whose
        fingerprints hold the data's hashes) no ``source.json`` is kept.
        """
        from .config import data_source

        if self.out is None:  # in memory: nothing to check, and no file to hash
            return {}
        src = {} if data is None else {**data_source(data, data_path), "sha256": dataset_sha256(data)}
        self.source = src
        out = self.out

        def setup():
            out.mkdir(parents=True, exist_ok=True)
            src_path = out / "source.json"
            if data is not None and src_path.exists():
                old = json.loads(src_path.read_text())
                if old.get("sha256") != src["sha256"]:
                    raise ValueError(f"{out} holds a {what} on different data ({old.get('path')}); "
                                     "use another output folder")
            legacy = not (out / RECORD).exists()
            if prepare is not None:
                prepare(out, legacy)
            if data is not None:
                write_provenance(src_path, src)
            return legacy

        legacy = distributed.main_first(setup, lambda: None)
        self.legacy = bool(distributed.broadcast_object(legacy))
        path = out / RECORD
        self.record = json.loads(path.read_text()) if path.exists() else {}
        return src

    def path(self, name: str) -> Path | None:
        """``name`` in the run folder (None in memory)."""
        return None if self.out is None else self.out / name

    def _write_record(self) -> None:
        if self.out is not None and distributed.is_main():
            write_provenance(self.out / RECORD, self.record)

    def _dependants(self, name: str) -> list[str]:
        """The stages that read ``name``, directly or through others."""
        found: list[str] = []
        todo = [name]
        while todo:
            current = todo.pop()
            for s in self.stages.values():
                if current in s.inputs and s.name not in found:
                    found.append(s.name)
                    todo.append(s.name)
        return found

    def done(self, name: str, options: dict, legacy: Callable[[], bool] | None = None) -> bool:
        """Whether stage ``name`` with these options is finished in the folder (rank 0's view, on every rank).

        In a folder that predates the runner, ``legacy()`` says whether its
        files were made with these options; adopted stages are recorded.
        """
        if self.out is None:
            return False
        fp = fingerprint(options)
        result = None
        if distributed.is_main():
            there = all((self.out / f).exists() for f in self.stages[name].outputs)
            result = there and self.record.get(name) == fp
            if not result and there and self.legacy and name not in self.record and legacy is not None and legacy():
                self.record[name] = fp  # migration: the old folder's files, made with these options
                self._write_record()
                result = True
        return bool(distributed.broadcast_object(result))

    def invalidate(self, name: str) -> None:
        """Forget stage ``name`` and remove its dependants' records and files (rank 0; before recomputing it)."""
        if self.out is None or not distributed.is_main():
            return
        self.record.pop(name, None)
        for dep in self._dependants(name):
            self.record.pop(dep, None)
            for f in self.stages[dep].outputs:
                (self.out / f).unlink(missing_ok=True)
        self._write_record()

    # ------------------------------------------------------------- stages
    def run(self, name: str, options: dict, compute: Callable[[], Any], *, save: Callable[[Any], None] | None = None,
            load: Callable[[], Any] | None = None, legacy: Callable[[], bool] | None = None,
            every_rank: bool = False) -> Any:
        """Stage ``name``: loaded when done with these ``options`` (`done`), else computed and saved.

        Parameters
        ----------
        options : dict
            The options and inputs the stage reads (JSON-like), fingerprinted.
        compute : callable
            Computes the result (writing files itself, or through ``save``).
        save : callable, optional
            Writes the result's files atomically (rank 0 alone).
        load : callable, optional
            Reads the result back from the folder (a reused stage; the other
            ranks after rank 0 computed). Without it a reused stage returns None.
        legacy : callable, optional
            The migration check of a folder that predates the runner (`done`).
        every_rank : bool, default False
            Every rank computes (a data-parallel stage); else rank 0 computes
            and the others load.
        """
        if self.done(name, options, legacy):
            self.seconds[name] = 0.0
            self.say(f"{name}: reused")
            return None if load is None else load()
        self.invalidate(name)

        def computed():
            result = self.timed(name, compute)
            if self.out is not None and distributed.is_main():
                if save is not None:
                    save(result)
                self.record[name] = fingerprint(options)
                self._write_record()
            return result

        if self.out is None or every_rank:
            result = computed()
            distributed.barrier()  # rank 0 has written the stage before anyone reads it
            return result
        return distributed.main_first(computed, load if load is not None else (lambda: None))

    def timed(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` as stage ``name``: log lines, wall time, peak RSS."""
        self.say(f"{name}: started")
        t0 = time.perf_counter()
        with self._measure(name):
            result = fn()
        self.seconds[name] = time.perf_counter() - t0
        self.say(f"{name}: done in {self.seconds[name]:.1f} s")
        return result

    @contextlib.contextmanager
    def _measure(self, name: str):
        if not self.measure_memory:
            yield
            return
        from .memory import PeakRSS

        with PeakRSS() as m:
            yield
        self.peak_rss[name] = m.peak

    def say(self, line: str) -> None:
        if self.log is not None and distributed.is_main():
            self.log(line)
