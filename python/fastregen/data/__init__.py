"""The data layer: one CSR representation for every stage, its readers, splits and statistics."""

from .dataset import SequenceDataset
from .io import load
from .split import EvalSplit, LeaveOneOutSplit, leave_one_out
from .stats import DatasetStats, stats

__all__ = [
    "SequenceDataset",
    "load",
    "leave_one_out",
    "LeaveOneOutSplit",
    "EvalSplit",
    "stats",
    "DatasetStats",
]
