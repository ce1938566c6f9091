"""The statistics of a comparison: per-user metrics, paired Wilcoxon p-values, bootstrap intervals.

The unit of every test is the **test user**: each method and the original
are evaluated on the same users (leave-one-out), so a user's metric under
a method and under the original form a pair. With several seeds, a user's
metric is first averaged over the seeds at which both arms ran (matched
seeds), so the test is over users, not over users x seeds (which would
count each user several times and understate the p-value).

* `paired_p`: two-sided Wilcoxon signed-rank test of the per-user
  differences (scipy's default ``zero_method="wilcox"``: users whose
  metric is equal under both arms drop out). The same test as
  ``benchmarks/_results.paired_p``.
* `bootstrap_gain`: percentile bootstrap over users (resampled with
  replacement, seeded) of the relative gain ``mean(b) / mean(a) - 1`` and
  the absolute gain ``mean(b - a)``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["per_user", "paired_p", "bootstrap_gain", "Gain"]


def per_user(ranks, metric: str) -> np.ndarray:
    """Each user's ``recall@K``, ``ndcg@K`` or ``mrr`` from 0-based ranks (float64, one per user)."""
    from ..evaluation import mrr, ndcg_at_k, recall_at_k

    ranks = np.asarray(ranks)
    if metric == "mrr":
        return mrr(ranks)
    name, _, k = metric.partition("@")
    if name in ("recall", "ndcg") and k.isdigit() and int(k) >= 1:
        return (recall_at_k if name == "recall" else ndcg_at_k)(ranks, int(k))
    raise ValueError(f"unknown metric {metric!r}; recall@K, ndcg@K or mrr")


def paired_p(a, b) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the per-user differences ``b - a``.

    Users with equal values drop out (scipy's default); 1.0 when no user
    differs. ``a`` and ``b`` are float arrays of the same shape (n_users,).
    """
    try:
        from scipy.stats import wilcoxon
    except ImportError as e:  # pragma: no cover - scipy is a dependency
        raise ImportError("the paired Wilcoxon test needs scipy: pip install scipy") from e
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired arrays must be 1-d and of one shape, got {a.shape} and {b.shape}")
    d = b - a
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(d).pvalue)


class Gain(dict):
    """``relative`` (mean(b)/mean(a) - 1), its 95% interval ``relative_lo``/``relative_hi``,
    ``absolute`` (mean(b - a)) with ``absolute_lo``/``absolute_hi``, and ``n_users``."""


def bootstrap_gain(a, b, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> Gain:
    """Percentile bootstrap over users of the gain of ``b`` over ``a``.

    Parameters
    ----------
    a, b : array of float, shape (n_users,)
        Per-user metric of the baseline and of the method (paired by index).
    resamples : int, default 2000
    seed : int, default 0
        The resampling seed: the same inputs and seed give the same interval.
    level : float, default 0.95

    Returns
    -------
    Gain
        Relative gains are fractions (0.05 = +5%); NaN where the
        (resampled) baseline mean is 0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired arrays must be 1-d, non-empty and of one shape, got {a.shape} and {b.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n = a.size
    rng = np.random.default_rng(seed)
    rel = np.empty(resamples)
    ab = np.empty(resamples)
    # Resample in chunks: (resamples x n) indices at once would take GBs on 100k users.
    chunk = max(1, min(resamples, 2_000_000 // n))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        ma, mb = a[idx].mean(axis=1), b[idx].mean(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel[start:stop] = np.where(ma > 0, mb / np.where(ma > 0, ma, 1.0) - 1.0, np.nan)
        ab[start:stop] = mb - ma
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    mean_a = a.mean()
    rel_lo, rel_hi = (np.nanpercentile(rel, q) if np.isfinite(rel).any() else (np.nan, np.nan))
    abs_lo, abs_hi = np.percentile(ab, q)
    return Gain(relative=float(b.mean() / mean_a - 1.0) if mean_a > 0 else float("nan"),
                relative_lo=float(rel_lo), relative_hi=float(rel_hi),
                absolute=float((b - a).mean()), absolute_lo=float(abs_lo), absolute_hi=float(abs_hi),
                n_users=int(n))
