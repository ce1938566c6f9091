"""The data layer: one CSR representation for every stage, its readers, splits and statistics.

Quick start::

    from fastregen import data
    ds = data.load("../shared/data/beauty.txt")        # SequenceDataset (CSR)
    print(data.stats(ds))                               # the DR4SR Table 1 columns
    split = data.leave_one_out(ds)                      # .train / .valid / .test
    demo = data.synthetic("demo", seed=0)               # planted patterns in demo.meta["patterns"]
    ml = data.datasets.load("ml-100k")                  # fetched once into ~/.cache/fastregen
    data.save(demo, "/tmp/demo.txt")
"""

from . import datasets
from .dataset import SequenceDataset, concat
from .io import FORMATS, as_dataset, detect_format, load, save
from .preprocess import kcore, remap
from .split import EvalSplit, LeaveOneOutSplit, leave_one_out, save_split
from .stats import DatasetStats, stats
from .synthetic import PRESETS, SyntheticConfig, synthetic, synthetic_from_config

__all__ = [
    "datasets",
    "concat",
    "as_dataset",
    "SequenceDataset",
    "load",
    "save",
    "detect_format",
    "FORMATS",
    "kcore",
    "remap",
    "leave_one_out",
    "save_split",
    "LeaveOneOutSplit",
    "EvalSplit",
    "stats",
    "DatasetStats",
    "synthetic",
    "synthetic_from_config",
    "SyntheticConfig",
    "PRESETS",
]
