"""Seeded synthetic sequence data with planted patterns and power-law popularity.

Used for the demo, for scale tests (a dataset the size of Amazon-Books) and
as ground truth for the miners: the planted patterns are returned in
``ds.meta["patterns"]`` and are the same for the same configuration.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from .dataset import SequenceDataset

__all__ = ["SyntheticConfig", "PRESETS", "synthetic", "synthetic_from_config"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of `synthetic` (see there for the generative process).

    Attributes
    ----------
    n_users : int
        Number of sequences.
    n_items : int
        Size of the item vocabulary (ids 1..n_items).
    avg_len : float
        Mean sequence length (before clipping at ``max_len``).
    min_len, max_len : int
        Bounds of the sequence lengths.
    n_patterns : int
        Number of planted patterns; ``n_patterns * pattern_len <= n_items``.
    pattern_len : int
        Items per pattern (>= 2).
    pattern_prob : float
        Probability that the next segment of a sequence is a whole planted
        pattern rather than one background item, in [0, 1].
    zipf_a : float
        Exponent of the background popularity: item of rank r is drawn with
        probability proportional to ``r ** -zipf_a`` (>= 0; 0 is uniform).
    timestamps : bool
        Also generate increasing per-user timestamps (seconds).
    seed : int
        Seed of everything above.
    """

    n_users: int = 4000
    n_items: int = 1000
    avg_len: float = 12.0
    min_len: int = 5
    max_len: int = 100
    n_patterns: int = 50
    pattern_len: int = 3
    pattern_prob: float = 0.35
    zipf_a: float = 1.0
    timestamps: bool = False
    seed: int = 0

    def validate(self) -> None:
        if self.n_users < 1 or self.n_items < 1:
            raise ValueError(f"n_users and n_items must be >= 1, got {self.n_users}, {self.n_items}")
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}")
        if not self.min_len <= self.avg_len:
            raise ValueError(f"avg_len = {self.avg_len} must be >= min_len = {self.min_len}")
        if self.pattern_len < 2:
            raise ValueError(f"pattern_len must be >= 2, got {self.pattern_len}")
        if self.n_patterns < 0 or self.n_patterns * self.pattern_len > self.n_items:
            raise ValueError(
                f"n_patterns * pattern_len = {self.n_patterns * self.pattern_len} must be in 0..n_items = {self.n_items} "
                "(planted patterns use distinct items)"
            )
        if not 0.0 <= self.pattern_prob <= 1.0:
            raise ValueError(f"pattern_prob must be in [0, 1], got {self.pattern_prob}")
        if self.n_patterns == 0 and self.pattern_prob > 0:
            raise ValueError("pattern_prob > 0 needs n_patterns >= 1")
        if self.zipf_a < 0:
            raise ValueError(f"zipf_a must be >= 0, got {self.zipf_a}")


PRESETS: dict[str, SyntheticConfig] = {
    # Small and strongly patterned: a sequential model learns the patterns in
    # a few epochs on a CPU, and the miners must find all 50.
    "demo": SyntheticConfig(),
    # About the size of Amazon-Books as used in the DR4SR line of work:
    # ~700k items, ~10 M interactions.
    "books": SyntheticConfig(
        n_users=800_000,
        n_items=700_000,
        avg_len=12.5,
        min_len=5,
        max_len=500,
        n_patterns=10_000,
        pattern_len=3,
        pattern_prob=0.15,
        zipf_a=0.8,
    ),
}


def synthetic(
    preset: str | SyntheticConfig = "demo",
    *,
    n_users: int | None = None,
    n_items: int | None = None,
    avg_len: float | None = None,
    n_patterns: int | None = None,
    pattern_len: int | None = None,
    pattern_prob: float | None = None,
    zipf_a: float | None = None,
    seed: int | None = None,
    **other,
) -> SequenceDataset:
    """Generate a synthetic sequence dataset (deterministic per configuration).

    A preset (``"demo"``, ``"books"`` or a `SyntheticConfig`) gives the
    defaults; keyword arguments override single fields (any field of
    `SyntheticConfig` is accepted, e.g. ``min_len=3``).

    The process, all vectorised:

    1. lengths ``min_len - 1 + Geometric(1 / (avg_len - min_len + 1))``,
       clipped at ``max_len`` (mean ``avg_len`` before clipping);
    2. ``n_patterns`` patterns of ``pattern_len`` distinct items, disjoint
       from each other, chosen uniformly;
    3. one stream of segments: with probability ``pattern_prob`` a whole
       pattern (chosen uniformly), otherwise one background item drawn from
       the Zipf popularity (ranks shuffled onto ids), cut into the sequences
       by their lengths (a pattern may straddle two users).

    Returns
    -------
    SequenceDataset
        ``user_ids`` 1..n_users; ``meta["patterns"]`` int32 array
        (n_patterns, pattern_len) of the planted patterns;
        ``meta["synthetic"]`` the configuration as a dict.
    """
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; use one of {sorted(PRESETS)}")
        cfg = PRESETS[preset]
        label = preset
    elif isinstance(preset, SyntheticConfig):
        cfg, label = preset, "custom"
    else:
        raise TypeError(f"preset must be a preset name or a SyntheticConfig, got {type(preset).__name__}")
    given = dict(n_users=n_users, n_items=n_items, avg_len=avg_len, n_patterns=n_patterns,
                 pattern_len=pattern_len, pattern_prob=pattern_prob, zipf_a=zipf_a, seed=seed)
    given = {k: v for k, v in given.items() if v is not None}
    names = {f.name for f in dataclasses.fields(SyntheticConfig)}
    unknown = sorted(set(other) - names)
    if unknown:
        raise TypeError(f"unknown synthetic option(s) {unknown}; valid: {sorted(names)}")
    cfg = dataclasses.replace(cfg, **given, **other)
    return synthetic_from_config(cfg, name=f"synthetic-{label}")


def synthetic_from_config(cfg: SyntheticConfig, name: str = "synthetic") -> SequenceDataset:
    """`synthetic` for an explicit configuration."""
    cfg.validate()
    rng = np.random.default_rng(cfg.seed)
    p = 1.0 / (cfg.avg_len - cfg.min_len + 1.0)
    lengths = np.minimum(cfg.min_len - 1 + rng.geometric(p, size=cfg.n_users), cfg.max_len).astype(np.int64)
    total = int(lengths.sum())

    flat = rng.choice(cfg.n_items, size=cfg.n_patterns * cfg.pattern_len, replace=False) + 1
    patterns = flat.reshape(cfg.n_patterns, cfg.pattern_len).astype(np.int32)

    ranks = np.arange(1, cfg.n_items + 1, dtype=np.float64)
    cdf = np.cumsum(ranks ** -cfg.zipf_a)
    cdf /= cdf[-1]
    rank_to_item = (rng.permutation(cfg.n_items) + 1).astype(np.int32)

    # Enough segments to cover `total` items with a margin; rarely topped up.
    mean_seg = cfg.pattern_prob * cfg.pattern_len + (1.0 - cfg.pattern_prob)
    pieces, covered = [], 0
    while covered < total:
        k = int((total - covered) / mean_seg * 1.02) + 64
        is_pat = rng.random(k) < cfg.pattern_prob
        which = rng.integers(0, max(cfg.n_patterns, 1), size=k)
        back = rank_to_item[np.minimum(np.searchsorted(cdf, rng.random(k), side="right"), cfg.n_items - 1)]
        seg_len = np.where(is_pat, cfg.pattern_len, 1)
        starts = np.cumsum(seg_len) - seg_len
        n = int(seg_len.sum())
        seg = np.repeat(np.arange(k), seg_len)
        within = np.arange(n) - starts[seg]
        pat_items = patterns[which[seg] % max(cfg.n_patterns, 1), np.minimum(within, cfg.pattern_len - 1)] \
            if cfg.n_patterns else np.zeros(n, np.int32)
        piece = np.where(is_pat[seg], pat_items, back[seg]).astype(np.int32)
        pieces.append(piece)
        covered += n
        del seg, within, pat_items
    items = np.concatenate(pieces)[:total] if len(pieces) > 1 else pieces[0][:total]
    offsets = np.zeros(cfg.n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    timestamps = None
    if cfg.timestamps:
        gaps = rng.integers(60, 30 * 86400, size=total, dtype=np.int64)
        start = rng.integers(1_300_000_000, 1_500_000_000, size=cfg.n_users, dtype=np.int64)
        csum = np.cumsum(gaps)
        before = np.r_[0, csum[offsets[1:-1] - 1]] if cfg.n_users > 1 else np.zeros(1, np.int64)
        timestamps = csum - np.repeat(before - start, lengths)
    return SequenceDataset(
        offsets,
        np.ascontiguousarray(items),
        num_items=cfg.n_items,
        timestamps=timestamps,
        user_ids=np.arange(1, cfg.n_users + 1, dtype=np.int64),
        name=name,
        meta={"patterns": patterns, "synthetic": dataclasses.asdict(cfg)},
    )
