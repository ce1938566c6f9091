"""How many threads a run uses by default: the cores no other process is busy on.

torch's intra-op parallelism is OpenMP: every operator ends at a barrier
where each thread waits for the others. When another process runs on one of
the cores, one of our threads is descheduled for a whole time slice at each
barrier while the others wait for it: on the project's 2-core machine with
other jobs running, a Beauty SASRec epoch took 169 s on two threads with
OpenMP's default wait against 10.1 s on one (``benchmarks/threads.py``,
rows in ``benchmarks/results/threads.csv``). A second thread pays only on
a core that is actually free, so ``"auto"`` (the default of every training
entry point) counts the free cores when a run starts.

OpenMP's default wait policy also spins on a waiting thread's core, taking
it from the very thread the barrier waits for; `passive_wait_policy` asks
for a sleeping wait when the machine is busy (two threads under the same
load: 9.2 s, so load arriving after the start no longer costs 17x) and a
short spin when it is idle (the fastest wait on free cores). It must be
set before the OpenMP runtime loads, i.e. before ``import torch``: ``import
fastregen`` does it (the user's own ``OMP_WAIT_POLICY``/``GOMP_SPINCOUNT``
win).
"""

from __future__ import annotations

import os
import time

__all__ = ["AUTO", "free_cores", "resolve_threads", "apply_threads", "passive_wait_policy", "check_threads"]

#: The ``num_threads`` value that means "the free cores, counted at the start of the run".
AUTO = "auto"


#: A machine counts as busy when fastregen is imported if its 1-minute load average is at least the
#: CPUs we may use less this: one runnable process besides ours (or our own previous run, which the
#: lagging average still counts) is no reason to sleep, a full set of them is.
BUSY_MARGIN = 0.5
#: libgomp's polls before a waiting thread sleeps when the machine is idle (its default is 300,000).
SHORT_SPIN = "10000"


def passive_wait_policy() -> None:
    """Choose OpenMP's wait policy before the runtime loads (effective only before ``import torch``).

    On a busy machine (1-minute load average >= usable CPUs - `BUSY_MARGIN`)
    ``OMP_WAIT_POLICY=PASSIVE``: a waiting thread sleeps at
    once, so load that shares our cores costs little (two threads under
    two competing processes: 1.26-1.29x one thread, against 1.9x with a
    short spin and 6-24x with libgomp's default spin). On an idle machine
    (and one with a single other runnable process, on which `free_cores`
    gives a run one thread anyway) a short spin (``GOMP_SPINCOUNT=10000``)
    instead: it is the fastest wait when the cores are free (Beauty SASRec epoch, two threads: 1.60 s,
    against 1.64 s with the default spin and 1.92 s passive;
    ``benchmarks/threads.py``). The user's own ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` wins.
    """
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return
    try:
        busy = os.getloadavg()[0] >= _allowed_cpus() - BUSY_MARGIN
    except OSError:  # pragma: no cover - no load average on this platform
        busy = True
    if busy:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    else:
        os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN


def _allowed_cpus() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    try:  # a cgroup v2 CPU quota ("max 100000" when unlimited)
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, n)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:  # pragma: no cover - not Linux
        return None
    if not fields or fields[0] != "cpu":  # pragma: no cover
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user time
    return total - idle, total


def free_cores(window: float = 0.1) -> int:
    """CPUs this process may use that other processes left idle over the last ``window`` seconds (>= 1).

    Busy time is read from ``/proc/stat`` while this thread sleeps, so it
    is the other processes' (nice'd ones included: a nice'd process still
    holds its core whenever our thread is not runnable, and that is exactly
    when a barrier waits). Without ``/proc/stat`` every allowed CPU counts
    as free.
    """
    allowed = _allowed_cpus()
    before = _cpu_times()
    if before is None:  # pragma: no cover - not Linux
        return allowed
    time.sleep(window)
    after = _cpu_times()
    busy, total = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return allowed
    machine = os.cpu_count() or allowed
    busy_cores = machine * busy / total
    return max(1, min(allowed, int(round(machine - busy_cores))))


def resolve_threads(num_threads) -> int:
    """The thread count ``num_threads`` means: ``"auto"`` -> `free_cores` (at most torch's own default), an int as is.

    0 means "leave torch's setting alone" and is returned as 0.
    """
    if num_threads == AUTO:
        import torch

        return min(free_cores(), _default_torch_threads(torch))
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
        raise ValueError(f"num_threads must be 'auto' or an int >= 0 (0: torch's own setting), got {num_threads!r}")
    return num_threads


_TORCH_DEFAULT: int | None = None


def _default_torch_threads(torch) -> int:
    # torch's own choice (one per physical core), before any set_num_threads of ours.
    global _TORCH_DEFAULT
    if _TORCH_DEFAULT is None:
        _TORCH_DEFAULT = max(1, torch.get_num_threads())
    return _TORCH_DEFAULT


def apply_threads(num_threads) -> int:
    """`resolve_threads` and set torch's intra-op threads to it (0: left alone); returns torch's count."""
    import torch

    _default_torch_threads(torch)
    n = resolve_threads(num_threads)
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def check_threads(threads: int) -> int:
    """``threads`` for a core kernel's OpenMP loop, checked: an int >= 0 (0: the runtime default).

    Raises
    ------
    TypeError
        Not an int (a bool is not one).
    ValueError
        Negative.
    """
    if not isinstance(threads, int) and not _is_numpy_int(threads) or isinstance(threads, bool):
        raise TypeError(f"threads must be an int, got {type(threads).__name__}")
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0 = OpenMP default), got {threads}")
    return int(threads)


def _is_numpy_int(value) -> bool:
    # numpy is imported only when a value might be a numpy integer: `import
    # fastregen` (which loads this module) stays free of it.
    if type(value).__module__ != "numpy":
        return False
    import numpy as np

    return isinstance(value, np.integer)
