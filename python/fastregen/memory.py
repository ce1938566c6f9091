"""Peak memory: measured (`PeakRSS`) and predicted per stage (`pipeline_estimates`).

Measurement
-----------
`PeakRSS` measures the peak resident set size of a block of code: it resets
the kernel's high-water mark (``VmHWM``, by writing ``5`` to
``/proc/self/clear_refs``) on entry and reads it on exit, so several stages
of one process each get their own peak.

The memory model
----------------
`pipeline_estimates` predicts the peak RSS of each stage of the DR4SR
pipeline (as `fastregen.dr4sr.DR4SR` runs it, in one process), of one
target-model epoch and of the full-ranking evaluation (``fastregen train``,
its own process), from the data's size (sequences ``n``, interactions
``I``, items ``V``, sequence lengths) and the configuration (``d``, batch
``B``, ``max_len`` ``L``, ``K``, ``max_pattern_len`` ``P``, pairs per
sequence). Every term is an array the stage holds, with its dtype's width;
a few constants are measured (the miner's scratch, activations per batch
position, torch's runtime, what the allocator keeps after a training
stage). ``tests/test_memory_model.py`` runs the pipeline and a target
model in fresh processes on two configurations (items, ``d`` and batch
varied) and checks, for every stage, measured <= estimate and estimate -
base <= 3 x (measured - base) + 100 MiB. Terms in bytes (``S`` distinct
pair sources, ``N`` pairs, ``l`` mean input length, ``p`` pattern length,
``T = 4 (V + 3) d`` one copy of the item table):

=============  ===============================================================
stage          peak = the process before the run ("base") + ...
=============  ===============================================================
data           the dataset: ``6 I + 24 n + 8 V`` (items, offsets, user
               ids, item ids)
patterns       + the training part (``4 I + 8 n``), the split's copies while
               it is cut (``16 I``), the miner's item index and scratch
               (``12 I + 16 V`` per thread), the patterns (``<= 10 I``)
pairs          + the pairs, ``1.5 N (4 l + 4 p + 40)``; ``N <= n x
               max_pairs_per_sequence`` unless the count is given
regenerator    + the pairs (``N (4 l + 4 p + 40)``) and their padded form
               (``8 S L + 8 N p + 32 N``), the item table five times
               (weights, Adam's two moments, the gradient buffer, the best
               epoch's weights: ``5 T``), activations ``16 KiB x B (L + P
               + 1) x d / 64``, torch's runtime and code pages (260 MiB)
inference      + the regenerator (``T``), what the allocator kept of
               pre-training (``0.6`` of its working memory), the decoded
               ids (``4 K n P``), the generative draws (``K n P + 8 n P``),
               the deduplication's copy and sort (``(4 P + 16) K n``), a
               decoding batch with its decoder cache (``36 x decode_batch x L x K x d``)
write          + the regenerated patterns and the combined training set
               (``8`` bytes per interaction: built, then concatenated)
train          base + dataset + the split (``3 (4 I + 8 n)``) + the
               table seven times (weights, Adam's moments, the gradient,
               the model's dense lookup gradient, the best weights, slack),
               ``48`` bytes per example, activations, torch's runtime
evaluate       base + dataset + split + model and best weights (``2 T``),
               what the allocator kept of training, a score chunk and its
               masks (``3 x 2**22 x 4``), the batch
=============  ===============================================================

Each stage also holds what earlier stages left resident (the dataset,
training part, patterns and pairs stay in `DR4SR`); the estimates add them
up in the pipeline's order. On Amazon-Books scale (``synthetic("books")``:
800k sequences, 10M interactions, 700k items, ``d = 64``) the largest
estimate is pre-training's, about 3.5 GiB with the pairs' upper bound.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["PeakRSS", "current_rss", "peak_rss", "reset_peak_rss", "can_reset_peak", "machine_memory",
           "limit_heap_retention",
           "Estimate", "pipeline_estimates", "format_estimates", "STAGES"]

#: The stages `pipeline_estimates` predicts, in the order they run.
STAGES = ("data", "patterns", "pairs", "regenerator", "inference", "write", "train", "evaluate")


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


def limit_heap_retention(threshold: int = 4 * 2**20) -> bool:
    """Have glibc return freed buffers of ``threshold`` bytes and more to the OS (``mallopt(M_MMAP_THRESHOLD)``).

    glibc raises its mmap threshold each time a large buffer is freed (up to
    32 MiB), after which buffers of a few MiB come from the heap and their
    pages stay with the process once freed. Over a Books-scale run that is
    GiBs of RSS: the full-ranking evaluation after the DR4SR stages peaked
    at 3.9 GiB instead of 1.2 GiB (`benchmarks/scale.py`). A fixed threshold
    keeps every buffer of ``threshold`` bytes or more in its own mapping,
    returned when freed. Process-wide, so the ``fastregen`` commands call
    it, the library never does. Returns False where it does not apply
    (not glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_MMAP_THRESHOLD = -3
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))


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


@dataclass
class Estimate:
    """Predicted peak RSS of one stage: named parts in bytes (``base`` is the process before the run)."""

    stage: str
    parts: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parts.values()))

    def __repr__(self) -> str:
        return f"Estimate({self.stage!r}, {self.total / 2**30:.2f} GiB)"


# Constants measured on synthetic("books") (800k sequences, 10M interactions, 700k items, d = 64) and
# smaller presets with `benchmarks/scale.py pipeline`, rounded up; tests/test_memory_model.py keeps them honest.
_BASE = 400 * 2**20          # python + torch + fastregen imported, when no better figure is given
_ACTIVATIONS = 16 * 2**10    # per (batch row x position) at d = 64: forward + backward of a training step
_DECODE_WORKING = 36         # bytes per (row x position x memory x d) of a decoding batch: memories + encoder (12),
                             # the decoder cache of all K memories and its copy as rows end (24, measured on Beauty)
_RETAINED = 0.6              # share of a training stage's working memory the allocator keeps after it
_PAIR_OVERHEAD = 1.5         # the pair search's copies, per pair stored
_SCORE_CHUNK = 3 * (1 << 22) * 4
# torch's working memory once a model runs (kernel scratch, first-use allocations) and the shared libraries'
# code pages it faults in, which RSS counts: right after torch is installed its files are all in the page
# cache and each fault maps more of them (a fresh .ci/run clone: ~140 MiB of file pages in a first training
# epoch, ~90 MiB in an older environment)
_RUNTIME = 260 * 2**20
_SLACK = 16 * 2**20          # small allocations of any stage


def _default_options():
    """The generator's default options, flat, with the pipeline's default pairs per sequence."""
    import dataclasses
    from types import SimpleNamespace

    from .generator.config import DecodeConfig, GeneratorConfig, PretrainConfig

    values = {}
    for cfg in (DecodeConfig(), PretrainConfig(), GeneratorConfig()):  # the architecture's max_pattern_len wins
        values.update(dataclasses.asdict(cfg))
    return SimpleNamespace(**values, max_pairs_per_sequence=10)


def pipeline_estimates(n_sequences: int, n_interactions: int, n_items: int, config=None, *, base: int | None = None,
                       lengths=None, threads: int = 1, pairs: int | None = None,
                       decoded_sequences: int | None = None, target_d: int = 64, target_max_len: int = 50,
                       target_batch: int = 256, eval_batch: int = 1024) -> dict:
    """Predicted peak RSS (bytes) of every stage of the DR4SR pipeline and of a target-model epoch.

    Parameters
    ----------
    n_sequences, n_interactions, n_items : int
        Size of the input data (``n``, ``I``, ``V``).
    config : object, optional
        The pipeline's options: any object with the attributes ``d_model``,
        ``batch_size`` (pre-training), ``max_len``, ``K``,
        ``max_pattern_len``, ``max_span``, ``max_pairs_per_sequence`` and
        ``decode_batch_size`` (a `fastregen.dr4sr.RegenConfig`, say);
        default: the generator's defaults (`fastregen.generator`) and 10
        pairs per sequence.
    base : int, optional
        RSS of the process before the pipeline starts (default: 400 MiB,
        about python + torch + fastregen).
    lengths : array of int, shape (n,), optional
        Sequence lengths (default: all ``I / n``); they size the pairs'
        inputs and the padded pre-training sources.
    threads : int, default 1
        Miner threads (each has its own scratch).
    pairs : int, optional
        Number of pre-training pairs if known; default the upper bound
        ``n x max_pairs_per_sequence`` (Books: 8.0M bound, 3.7M drawn).
    decoded_sequences : int, optional
        Sequences hybrid inference decodes (default: all non-empty ones).
    target_d, target_max_len, target_batch, eval_batch : int
        The target model's embedding width, length and batch, and the
        evaluation batch (stages ``train`` and ``evaluate``, which run in
        their own process: ``fastregen train``).

    Returns
    -------
    dict of str to Estimate
        One per stage of `STAGES`, each with its parts and ``total``.
    """
    cfg = config if config is not None else _default_options()
    n, I, V = int(n_sequences), int(n_interactions), int(n_items)
    base = _BASE if base is None else int(base)
    d, L, K, P, B = cfg.d_model, cfg.max_len, cfg.K, cfg.max_pattern_len, cfg.batch_size
    lens = np.full(max(n, 1), I / max(n, 1)) if lengths is None else np.asarray(lengths, dtype=np.float64)
    train_lens = np.maximum(lens - 2, 0)
    l_in = float(np.minimum(train_lens, L).mean()) if lens.size else 0.0
    l_max = int(min(train_lens.max(), L)) if lens.size else 0
    n_src = int((train_lens > 0).sum())
    N = int(pairs) if pairs is not None else n_src * cfg.max_pairs_per_sequence
    p = min(cfg.max_span, P)
    n_dec = n_src if decoded_sequences is None else int(decoded_sequences)
    table = 4 * (V + 3) * d
    dataset = 6 * I + 24 * n + 8 * V
    train_part = 4 * I + 8 * n
    patterns_out = (I // 2) * (3 * 4 + 8)
    pair_bytes = int(N * (4 * l_in + 4 * p + 40))

    est: dict[str, Estimate] = {}
    resident = {"base": base, "dataset": dataset, "small allocations": _SLACK}
    est["data"] = Estimate("data", dict(resident))
    resident["training part"] = train_part
    est["patterns"] = Estimate("patterns", {**resident, "split copies": 16 * I,
                                            "miner": 12 * I + 16 * V * max(threads, 1), "patterns": patterns_out})
    resident["patterns"] = patterns_out
    est["pairs"] = Estimate("pairs", {**resident, "pairs": int(_PAIR_OVERHEAD * pair_bytes)})
    resident["pairs"] = pair_bytes
    regen_work = {"padded pairs": 8 * n_src * max(l_max, 1) + 8 * N * p + 32 * N, "item table x5": 5 * table,
                  "activations": int(_ACTIVATIONS * B * (l_max + P + 1) * d / 64)}
    est["regenerator"] = Estimate("regenerator", {**resident, **regen_work, "torch runtime": _RUNTIME})
    retained = int(_RETAINED * (regen_work["item table x5"] - table + regen_work["activations"]))
    resident.update({"regenerator": table, "allocator retention": retained, "torch runtime": _RUNTIME})
    decode = {"decoded ids": 4 * K * n_dec * P, "draws": K * n_dec * P + 8 * n_dec * P,
              "deduplication": (4 * P + 16) * K * n_dec,
              "decoding batch": _DECODE_WORKING * cfg.decode_batch_size * max(l_max, 1) * K * d}
    est["inference"] = Estimate("inference", {**resident, **decode})
    regen_items = 3 * K * n_dec  # at most ~3 items per decoded pattern before deduplication
    resident["regenerated"] = 4 * regen_items + 8 * K * n_dec
    est["write"] = Estimate("write", {**resident, "combined": 2 * 4 * (I + patterns_out // 5 + regen_items)})

    # a target model on the training part ("all" protocol: ~1 example per sequence), its own process
    t_table = 4 * (V + 1) * target_d
    n_ex = n_src + int(max(I - 2 * n, 0) // max(target_max_len, 1))
    splits = 3 * train_part
    train_work = {"item table x7": 7 * t_table, "examples": 48 * n_ex,
                  "activations": int(_ACTIVATIONS * target_batch * target_max_len * target_d / 64)}
    est["train"] = Estimate("train", {"base": base, "dataset": dataset, "small allocations": _SLACK, "splits": splits,
                                      **train_work, "torch runtime": _RUNTIME})
    est["evaluate"] = Estimate("evaluate", {
        "base": base, "dataset": dataset, "small allocations": _SLACK, "splits": splits, "torch runtime": _RUNTIME,
        "model and best weights": 2 * t_table,
        "allocator retention": int(_RETAINED * (5 * t_table + train_work["activations"])),
        "score chunk": _SCORE_CHUNK, "batch": eval_batch * target_max_len * 8 * 4})
    return est


def format_estimates(estimates: dict, available: int | None = None) -> str:
    """A table of `pipeline_estimates` (GiB per stage and its largest parts)."""
    lines = [f"{'stage':<12}{'peak GiB':>10}  largest parts"]
    for name, e in estimates.items():
        top = sorted(((v, k) for k, v in e.parts.items() if k != "base"), reverse=True)[:3]
        parts = ", ".join(f"{k} {v / 2**30:.2f}" for v, k in top)
        lines.append(f"{name:<12}{e.total / 2**30:>10.2f}  {parts}")
    if available is not None:
        lines.append(f"available memory: {available / 2**30:.2f} GiB")
    return "\n".join(lines)
