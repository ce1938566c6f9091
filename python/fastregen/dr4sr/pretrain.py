"""Pre-training the regenerator on (sequence, pattern) pairs with teacher forcing (DR4SR eq. 2)."""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch

from .._batching import length_bucketed_batches
from .._progress import progress_bar
from ..data import SequenceDataset
from .config import RegenConfig
from .model import Regenerator, save_checkpoint

__all__ = ["pretrain", "pair_tensors", "validation_losses"]


def _trim(x: torch.Tensor) -> torch.Tensor:
    """Drop all-padding trailing columns of a right-padded batch."""
    width = int((x != 0).sum(1).max()) if x.numel() else 0
    return x[:, : max(width, 1)]


def pair_tensors(sequences: SequenceDataset, patterns: SequenceDataset, config: RegenConfig):
    """Right-padded (N, L) source and (N, P) pattern id matrices, pairs with an empty side dropped.

    Sources keep their ``max_len`` most recent items, patterns their first
    ``max_pattern_len`` items.
    """
    if len(sequences) != len(patterns):
        raise ValueError(f"pairs have {len(sequences)} input sequences but {len(patterns)} patterns")
    keep = (sequences.lengths > 0) & (patterns.lengths > 0)
    seqs = sequences.subset(np.flatnonzero(keep)).truncate(config.max_len)
    pats = patterns.subset(np.flatnonzero(keep)).slice_sequences(0, config.max_pattern_len)
    if len(seqs) == 0:
        return torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, 1, dtype=torch.long)
    src = torch.from_numpy(seqs.padded(int(seqs.lengths.max()), side="right"))
    pat = torch.from_numpy(pats.padded(int(pats.lengths.max()), side="right"))
    return src, pat


def _batches(n: int, batch_size: int, rng: np.random.Generator | None, lengths: np.ndarray | None = None):
    """Index batches (`length_bucketed_batches`); with ``rng`` shuffled, with ``lengths`` bucketed.

    Bucketing matters here: sources average ~13 items but reach 50, and a
    random batch almost always holds one of length 50, tripling the work.
    """
    perm = rng.permutation if rng is not None else None
    return [torch.from_numpy(b) for b in length_bucketed_batches(n, batch_size, perm, lengths)]


def _evaluate(model: Regenerator, src, pat, batch_size: int) -> tuple[float, float]:
    """Validation CE per token: with the promoter's mixture (what training
    minimises), and with the best single memory per pattern (what inference,
    which decodes each memory alone, can reach)."""
    model.eval()
    total, best, tokens = 0.0, 0.0, 0
    with torch.no_grad():
        for idx in _batches(src.shape[0], batch_size, None, (src != 0).sum(1).numpy()):
            s, p = _trim(src[idx]).to(model.device), _trim(pat[idx]).to(model.device)
            mixture, best_memory, n = model.heldout_nll(s, p)
            total += mixture
            best += best_memory
            tokens += n
    return total / max(tokens, 1), best / max(tokens, 1)


def _holdout(n: int, config: RegenConfig, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid, train) pair indices: the first ``valid_fraction`` of a seeded permutation are held out."""
    perm = rng.permutation(n)
    n_valid = min(int(round(n * config.valid_fraction)) if n > 1 else 0, n - 1)
    return torch.from_numpy(perm[:n_valid]), torch.from_numpy(perm[n_valid:])


def balance_penalty(pi: torch.Tensor) -> torch.Tensor:
    """``log K - H(mean over the batch of pi)`` for ``pi`` of shape (B, K).

    0 when the batch's patterns use every memory equally, ``log K`` when they
    all use one (`RegenConfig.balance_weight`).
    """
    mean = pi.mean(0)
    return math.log(pi.shape[1]) + (mean * torch.log(mean + 1e-12)).sum()


def validation_losses(model: Regenerator, pairs) -> dict:
    """The held-out losses of a pre-trained regenerator, on the pairs `pretrain` held out.

    Returns ``{"valid_loss", "valid_best_memory_loss", "pairs"}`` (see
    `pretrain`): the split is re-drawn from ``model.config.seed`` exactly as
    `pretrain` drew it, so pass the same pairs it was trained on.
    """
    config = model.config
    src, pat = pair_tensors(pairs.sequences, pairs.patterns, config)
    valid_idx, _ = _holdout(src.shape[0], config, np.random.default_rng(config.seed))
    if len(valid_idx) == 0:
        raise ValueError("nothing was held out (valid_fraction = 0 or a single pair)")
    valid, best = _evaluate(model, src[valid_idx], pat[valid_idx], config.batch_size)
    return {"valid_loss": valid, "valid_best_memory_loss": best, "pairs": len(valid_idx)}


def pretrain(pairs, num_items: int, config: RegenConfig | None = None, *,
             item_embedding: torch.Tensor | None = None, checkpoint=None,
             model: Regenerator | None = None) -> tuple[Regenerator, list[dict]]:
    """Pre-train a `Regenerator` on pre-training pairs.

    Parameters
    ----------
    pairs : PretrainPairs
        From `fastregen.mining.pretrain_pairs`: ``pairs.sequences`` (row r:
        input sequence of pair r) and ``pairs.patterns`` (row r: its target
        pattern), both `SequenceDataset`.
    num_items : int
        Item vocabulary of the dataset (ids 1..num_items).
    config : RegenConfig, optional
    item_embedding : torch.Tensor, shape (num_items + 1, d_model), optional
        A trained target model's item table to start from (used when
        ``config.init_item_embedding``).
    checkpoint : path-like, optional
        Where to write the regenerator after every epoch (atomically); the
        final file holds the best weights and ``complete=True``.
    model : Regenerator, optional
        Continue training this model instead of a fresh one.

    Returns
    -------
    (model, history)
        The model with the weights of the lowest validation loss (the last
        epoch's when nothing is held out), in eval mode; one dict per epoch
        (train_loss, valid_loss, valid_best_memory_loss, entropy, memory_use,
        tau, seconds); ``memory_use`` is the share of training patterns
        whose largest ``pi`` is on each memory (K floats; with
        ``diversity="gumbel"`` the sampled ``pi``, so the noise makes it
        look more even than the promoter's own choice). ``valid_loss``
        decodes the promoter's mixture of the memories, which sees the
        target pattern; ``valid_best_memory_loss``
        decodes each memory alone and keeps the best per pattern, as
        inference can. A soft mixture can carry information about the
        target through ``pi``, so only the second is comparable across
        ``diversity`` settings.

    Notes
    -----
    Adam (lr, betas 0.9/0.98, eps 1e-9) with a cosine schedule, batches of
    ``batch_size`` pairs, ``valid_fraction`` of the pairs held out; all
    randomness derives from ``config.seed``.
    """
    config = config or RegenConfig()
    config.validate()
    if len(pairs) == 0:
        raise ValueError("no pre-training pairs: the pattern set is empty (lower min_support or check the data)")
    src, pat = pair_tensors(pairs.sequences, pairs.patterns, config)
    n = src.shape[0]
    if n == 0:
        raise ValueError("no pre-training pair has both a non-empty sequence and a non-empty pattern")
    for name, t in (("sequence", src), ("pattern", pat)):
        if int(t.max()) > num_items:
            raise ValueError(f"a pre-training {name} holds item {int(t.max())} > num_items = {num_items}")

    rng = np.random.default_rng(config.seed)
    valid_idx, train_idx = _holdout(n, config, rng)
    n_valid = len(valid_idx)
    src_tr, pat_tr = src[train_idx], pat[train_idx]
    src_va, pat_va = src[valid_idx], pat[valid_idx]
    lengths_tr = (src_tr != 0).sum(1).numpy()

    torch.manual_seed(config.seed)
    if model is None:
        model = Regenerator(num_items, config)
        if item_embedding is not None and config.init_item_embedding:
            model.init_item_embedding(item_embedding)
    elif model.num_items != num_items:
        raise ValueError(f"model was built for {model.num_items} items, the pairs come from {num_items}")
    model.to(config.device)

    steps_per_epoch = math.ceil(src_tr.shape[0] / config.batch_size)
    total_steps = max(steps_per_epoch * config.epochs, 1)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))

    history: list[dict] = []
    best_loss, best_state = math.inf, None
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        total, ent_total, count = 0.0, 0.0, 0
        memory_use = torch.zeros(config.K, dtype=torch.float64)
        bar = progress_bar(_batches(src_tr.shape[0], config.batch_size, rng, lengths_tr), enabled=config.progress,
                           desc=f"regenerator epoch {epoch}/{config.epochs}", unit="batch")
        for idx in bar:
            s, p = _trim(src_tr[idx]).to(model.device), _trim(pat_tr[idx]).to(model.device)
            ce, entropy, pi = model.loss(s, p)
            loss = ce
            if config.entropy_weight:
                loss = loss + config.entropy_weight * entropy
            if config.balance_weight:
                loss = loss + config.balance_weight * balance_penalty(pi)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if config.diversity == "gumbel":
                model.anneal()
            ce_value = float(ce.detach())
            total += ce_value * len(idx)
            ent_total += float(entropy.detach()) * len(idx)
            count += len(idx)
            memory_use += torch.bincount(pi.detach().argmax(1).cpu(), minlength=config.K).double()
            bar.set_postfix(loss=f"{ce_value:.3f}")
        bar.close()
        valid, valid_best = _evaluate(model, src_va, pat_va, config.batch_size) if n_valid else (None, None)
        record = {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "entropy": ent_total / max(count, 1),
            "memory_use": (memory_use / max(count, 1)).tolist(),
            "tau": model.tau,
            "valid_loss": valid,
            "valid_best_memory_loss": valid_best,
        }
        record["seconds"] = time.perf_counter() - t0
        history.append(record)
        score = record["valid_loss"] if n_valid else -epoch  # no held-out pairs: keep the last epoch
        if score < best_loss:
            best_loss, best_state = score, copy.deepcopy(model.state_dict())
        if checkpoint is not None:
            save_checkpoint(model, checkpoint, history=history, complete=False)
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if checkpoint is not None:
        save_checkpoint(model, checkpoint, history=history, complete=True)
    return model, history
