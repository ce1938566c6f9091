"""Stage-wise mining (UniDS §4.2): one entropy threshold per stage of the recommender, p_m pluggable.

UniDS mines low-entropy patterns (`fastregen.patterns.mine_entropy_patterns`)
with a threshold theta that is "a scaled mean entropy" and differs by stage:
its Fig. 2 finds that a higher theta helps the fine-ranking metric (AUC) and
a lower one the recall and coarse-ranking metrics (MRR, NDCG). Here theta of
stage s is ``scale_s x`` the mean seed entropy of the training data
(`fastregen.patterns.default_theta`), defaults
`fastregen.patterns.STAGE_THETA_SCALES`. *Threshold control* off (the
"w/o TC" ablation) gives every stage the coarse stage's theta.

p_m, the next-item model whose surprisal extends a pattern, is an order-k
Markov model by default; `model_probs` turns a trained target model
(SASRec, HSTU, ...) into the per-position probabilities the miner also takes.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data import SequenceDataset
from ..entropy import MarkovModel
from ..patterns import STAGE_THETA_SCALES, Patterns, Segmentation, default_theta, mine_entropy_patterns, segment

__all__ = ["STAGES", "check_stages", "stage_thetas", "mine_stages", "model_probs"]

#: The stages of a recommender UniDS generates data for.
STAGES = ("recall", "coarse", "fine")


def check_stages(stages) -> tuple[str, ...]:
    """``stages`` as a tuple of known, distinct stage names (ValueError naming the first unknown one)."""
    if isinstance(stages, str):
        stages = (stages,)
    out = tuple(stages)
    if not out:
        raise ValueError(f"give at least one stage of {', '.join(STAGES)}")
    for s in out:
        if s not in STAGES:
            raise ValueError(f"unknown stage {s!r}; the stages are {', '.join(STAGES)}")
    if len(set(out)) != len(out):
        raise ValueError(f"stages must be distinct, got {list(out)}")
    return out


def stage_thetas(data: SequenceDataset, scales: dict, stages=STAGES, *, threshold_control: bool = True,
                 min_count: int = 2) -> dict[str, float]:
    """Theta (bits) of every stage: ``scales[stage] x`` the mean seed entropy of ``data``.

    Parameters
    ----------
    data : SequenceDataset
    scales : dict of str to float
        A scale > 0 per stage (missing stages use `STAGE_THETA_SCALES`).
    stages : sequence of str, default all three
    threshold_control : bool, default True
        False: every stage uses the ``"coarse"`` scale (the w/o TC ablation).
    min_count : int, default 2
        Items occurring fewer times do not enter the mean (nor seed patterns).

    Raises
    ------
    ValueError
        An unknown stage, a scale <= 0 (or not finite), or data in which no
        item occurs ``min_count`` times.
    """
    stages = check_stages(stages)
    for s, v in scales.items():
        if s not in STAGES:
            raise ValueError(f"unknown stage {s!r} in the theta scales; the stages are {', '.join(STAGES)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v > 0 and math.isfinite(v)):
            raise ValueError(f"theta scale of stage {s!r} must be a finite number > 0, got {v!r}")
    full = {**STAGE_THETA_SCALES, **scales}
    base = default_theta(data, 1.0, min_count)
    if math.isnan(base):
        raise ValueError(f"no item occurs {min_count} times in the training data: nothing to mine")
    return {s: float(full[s if threshold_control else "coarse"]) * base for s in stages}


def mine_stages(data: SequenceDataset, thetas: dict[str, float], model=None, *, order: int = 2, min_count: int = 2,
                max_len: int = 8, threads: int = 0) -> dict[str, tuple[Patterns, Segmentation]]:
    """Mine each stage's patterns at its theta and segment ``data`` into them.

    Parameters
    ----------
    data : SequenceDataset
        The training sequences.
    thetas : dict of str to float
        From `stage_thetas`; each must be > 0.
    model : None, MarkovModel, array or callable
        p_m, as `fastregen.patterns.mine_entropy_patterns` takes it (None:
        one order-``order`` Markov model fitted on ``data``, shared by the
        stages). An array from `model_probs` makes a trained model p_m.
    order, min_count, max_len, threads
        See `fastregen.patterns.mine_entropy_patterns`.

    Returns
    -------
    dict of stage to (Patterns, Segmentation)
    """
    for s, t in thetas.items():
        check_stages((s,))
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0 and math.isfinite(t)):
            raise ValueError(f"theta of stage {s!r} must be a finite number > 0, got {t!r}")
    if model is None:
        model = MarkovModel(order).fit(data)
    out = {}
    for s, t in thetas.items():
        pats = mine_entropy_patterns(data, model, theta=t, min_count=min_count, max_len=max_len, threads=threads)
        out[s] = (pats, segment(data, pats, threads=threads))
    return out


@torch.no_grad()
def model_probs(model, data: SequenceDataset, batch_size: int = 256, device=None) -> np.ndarray:
    """p_m from a trained target model: P(item | the items before it) at every position of ``data``.

    Each position is scored by the model's softmax over all items given at
    most ``model.max_len`` items before it (the ``"all"`` training windows,
    so one forward pass scores a window's every position). A sequence's first
    item has no history; it gets its smoothed unigram frequency
    ``(count + 1) / (F + num_items)``. Timestamps reach the model when
    ``data`` has them.

    Returns
    -------
    np.ndarray of float64, shape (len(data.items),)
        In (0, 1], aligned with ``data.items`` (what
        `fastregen.patterns.mine_entropy_patterns` takes as ``model``).
    """
    from ..training import Examples

    if data.num_items > model.num_items:
        raise ValueError(f"data holds item {data.num_items} beyond the model's num_items = {model.num_items}")
    device = device or next(model.parameters()).device
    counts = np.bincount(data.items, minlength=model.num_items + 1).astype(np.float64)
    probs = (counts[data.items] + 1.0) / (data.num_interactions + model.num_items)
    ex = Examples(data, model.max_len, "all")
    was_training = model.training
    model.eval()
    table = model.item_weight()
    try:
        for idx in ex.batch_order(batch_size, None, bucketing=True):
            b = ex.batch(idx).to(device)
            h = model(b.inputs, timestamps=b.timestamps)
            sel = b.targets > 0
            logits = h[sel] @ table.T
            logits[:, 0] = float("-inf")
            logp = torch.log_softmax(logits.double(), -1).gather(1, b.targets[sel][:, None])[:, 0]
            probs[b.index[sel].cpu().numpy()] = logp.exp().cpu().numpy()
    finally:
        model.train(was_training)
    # a probability that underflowed to 0 would be an infinite surprisal: keep it tiny but valid
    return np.clip(probs, np.finfo(np.float64).tiny, 1.0)
