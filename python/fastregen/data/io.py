"""Readers and writers. (Provisional: the streaming C++ reader replaces this.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .dataset import SequenceDataset

__all__ = ["load"]


def load(path, format: str = "auto", **columns) -> SequenceDataset:
    """Read a dataset; see the data-layer docs for formats."""
    path = Path(path)
    seqs, users = [], []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            tok = line.split()
            if not tok:
                continue
            try:
                vals = [int(t) for t in tok]
            except ValueError:
                raise ValueError(f"{path}:{lineno}: non-integer token") from None
            users.append(vals[0])
            seqs.append(vals[1:])
    return SequenceDataset.from_lists(seqs, user_ids=np.asarray(users), name=os.fspath(path))
