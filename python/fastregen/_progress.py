"""Progress bars (tqdm) that every long loop uses and every caller can switch off.

On a terminal a bar redraws in place. When stderr is not a terminal (a batch
job's log, ``2>log``) a redrawn bar would be a stream of carriage returns,
and no output at all leaves a log empty for the hours a run takes: there the
bar becomes one plain line every `LOG_INTERVAL` seconds (what, step/total,
rate, time left), and nothing for loops shorter than that.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm
from tqdm.std import tqdm as _std_tqdm

__all__ = ["progress_bar", "LOG_INTERVAL"]

#: Seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL = 30.0

_LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {rate_fmt}, {elapsed} elapsed, ETA {remaining}{postfix}"
_LOG_FORMAT_NO_TOTAL = "{desc}: {n_fmt} {unit}, {rate_fmt}, {elapsed} elapsed{postfix}"


class _LogLines(_std_tqdm):
    """A tqdm that writes a whole line (no carriage return) at most every ``mininterval`` seconds."""

    monitor_interval = 0  # no monitor thread: lines are written by update() itself

    def display(self, msg=None, pos=None):
        if msg is not None or self.n == 0:  # the opening 0% line and close()'s clearing: nothing
            return False  # (False: close() then writes no carriage return either)
        # tqdm pads the rate to a width and glues the unit to it: "  5.28batch/s" -> "5.28 batch/s"
        line = " ".join(self.__str__().split()).replace(f"{self.unit}/s", f" {self.unit}/s")
        self.fp.write(line + "\n")
        self.fp.flush()
        return True


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def progress_bar(iterable=None, *, enabled: bool = True, desc: str | None = None, total=None, unit: str = "it", leave: bool = False):
    """A tqdm bar writing to stderr; ``enabled=False`` returns a silent one.

    When stderr is not a terminal the bar prints a line every
    `LOG_INTERVAL` seconds instead (in Jupyter, tqdm's own widget is kept).
    """
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if not _is_terminal(sys.stderr) and "ipykernel" not in sys.modules:
        if total is None and iterable is not None:
            try:
                total = len(iterable)
            except TypeError:
                pass
        return _LogLines(
            iterable, desc=desc or "progress", total=total, unit=unit, leave=False, file=sys.stderr,
            mininterval=LOG_INTERVAL, maxinterval=LOG_INTERVAL, miniters=1, ascii=True,
            bar_format=_LOG_FORMAT if total else _LOG_FORMAT_NO_TOTAL,
        )
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        leave=leave,
        disable=None,
        file=sys.stderr,
        dynamic_ncols=True,
    )
