"""Peak-memory measurement of the running process (Linux ``/proc``).

`PeakRSS` measures the peak resident set size of a block of code: it resets
the kernel's high-water mark (``VmHWM``, by writing ``5`` to
``/proc/self/clear_refs``) on entry and reads it on exit, so several stages
of one process each get their own peak. The memory model of the pipeline's
stages (`fastregen.dr4sr.memory`) is tested against it.
"""

from __future__ import annotations

import os
import time

__all__ = ["PeakRSS", "current_rss", "peak_rss", "reset_peak_rss", "can_reset_peak", "machine_memory"]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field} line")


def current_rss() -> int:
    """Resident set size of this process now, in bytes."""
    return _status_kib("VmRSS") * 1024


def peak_rss() -> int:
    """Peak resident set size of this process since start (or the last `reset_peak_rss`), in bytes."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset the peak RSS to the current RSS; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def can_reset_peak() -> bool:
    """Whether `PeakRSS` can measure the peak of a block (Linux with a writable clear_refs)."""
    return os.path.exists("/proc/self/clear_refs") and reset_peak_rss()


def machine_memory() -> int:
    """Memory this machine can give a new job: ``MemAvailable`` from /proc/meminfo (bytes), else total RAM."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class PeakRSS:
    """Context manager: peak RSS and wall time of a block.

    >>> with PeakRSS() as m:                     # doctest: +SKIP
    ...     work()
    >>> m.peak, m.start, m.seconds               # doctest: +SKIP

    Attributes
    ----------
    start : int
        RSS on entry (bytes).
    peak : int
        Peak RSS inside the block (bytes); without a resettable peak
        (`can_reset_peak` False) the peak since the process started.
    seconds : float
    exact : bool
        Whether the peak was reset on entry.
    """

    def __enter__(self) -> "PeakRSS":
        self.exact = reset_peak_rss()
        self.start = current_rss()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0
        self.peak = max(peak_rss(), self.start)

    @property
    def growth(self) -> int:
        """Peak minus the RSS on entry (bytes)."""
        return self.peak - self.start
