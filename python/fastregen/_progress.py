"""Progress bars (tqdm) that every long loop uses and every caller can switch off."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


def progress_bar(iterable=None, *, enabled: bool = True, desc: str | None = None, total=None, unit: str = "it", leave: bool = False):
    """A tqdm bar writing to stderr; ``enabled=False`` returns a silent one.

    Bars are also silent when stderr is not a terminal (tqdm's
    ``disable=None``), so logs of batch jobs stay readable.
    """
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        leave=leave,
        disable=None if enabled else True,
        file=sys.stderr,
        dynamic_ncols=True,
    )
