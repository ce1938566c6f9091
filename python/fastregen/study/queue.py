"""The worker loop every study shares: take the next declared run that is neither done nor held.

`fastregen compare`'s workers and the study scripts of ``benchmarks/``
(``dr4sr_study.py``, ``dr4srplus.py``, ``unids.py``: declarations of which
runs, in which order) all train through `run_queue`. Workers coordinate
only through files: a run is *done* when its row is in the results CSV, and
*held* while a worker holds its non-blocking lock file, so any number of
processes, started at any time, share one queue, and a killed worker's run
is taken up again (resuming from its epoch checkpoint) by the next.
"""

from __future__ import annotations

from pathlib import Path

from .store import file_lock

__all__ = ["ALL_HELD", "DONE_NONE_PENDING", "RAN", "run_queue"]

#: `run_queue`'s return codes (also the study scripts' exit codes).
RAN, ALL_HELD, DONE_NONE_PENDING = 0, 3, 4


def run_queue(declared, run_id, done, lock_dir, train, *, max_runs: int = 0, skip=None, lock_prefix: str = "") -> int:
    """Train the first declared run that is neither done nor held by another worker, again until ``max_runs``.

    Parameters
    ----------
    declared : callable () -> list
        The runs in order, asked anew after each run (a declaration may grow
        once a selection it depends on finishes).
    run_id : callable (run) -> str
    done : callable () -> collection of str
        The ids that have rows; asked again under a run's lock before it is
        trained, so a run finished meanwhile by another worker is not redone.
    lock_dir : path
        Where the per-run lock files ``{lock_prefix}{RUN_ID}.lock`` live.
    train : callable (run) -> None
        Trains one run and records it (its row is what marks it done).
    max_runs : int, default 0
        Stop after this many runs (0: when none is left to take).
    skip : callable (run) -> bool, optional
        True passes a run over for now (e.g. its prerequisite is being built
        by another worker: take a run that can start at once instead).
    lock_prefix : str, default ""

    Returns
    -------
    int
        `RAN` (0) after ``max_runs`` runs, `ALL_HELD` (3) when every pending
        run is held or skipped, `DONE_NONE_PENDING` (4) when none is pending.
    """
    lock_dir = Path(lock_dir)
    n_runs = 0
    while not max_runs or n_runs < max_runs:
        finished = done()
        pending = [r for r in declared() if run_id(r) not in finished]
        if not pending:
            return DONE_NONE_PENDING
        for run in pending:
            if skip is not None and skip(run):
                continue
            with file_lock(lock_dir / f"{lock_prefix}{run_id(run)}.lock", blocking=False) as held:
                if held and run_id(run) not in done():
                    train(run)
                    break
        else:
            return ALL_HELD
        n_runs += 1
    return RAN
