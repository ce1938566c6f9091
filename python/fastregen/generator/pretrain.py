"""Pre-training the regenerator on (sequence, pattern) pairs with teacher forcing (DR4SR eq. 2).

It runs on the one `fastregen.training.Trainer`: `PairData` serves the
pairs batch by batch, `RegeneratorLoss` is the objective, and hooks anneal
the Gumbel temperature, score the held-out pairs and write checkpoints.

Pairs of one source sequence are batched together (the batch order shuffles
sources, `fastregen._batching.length_bucketed_batches` with ``groups``), and
the regenerator encodes each distinct source of a batch once: on Beauty a
source has ~3.8 pairs, and encoding sources was most of a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._batching import length_bucketed_batches
from ..data import SequenceDataset
from ..training import EarlyStopping, Hook, LazyAdam, LossTerms, Trainer, adam
from .config import GeneratorConfig, PretrainConfig, as_architecture, as_pretraining, check_pretraining
from .model import PAD, Regenerator, save_checkpoint

__all__ = ["pretrain", "PairData", "PairBatch", "pair_data", "RegeneratorLoss", "validation_losses",
           "balance_penalty", "resume_path", "holdout_split", "target_frequencies", "pretrain_optimizer"]


def resume_path(checkpoint) -> Path:
    """The epoch checkpoint of the pre-training that writes ``checkpoint`` (``regenerator.pt`` ->
    ``regenerator.resume.pt``), removed once the complete regenerator is written."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".resume" + (checkpoint.suffix or ".pt"))


def _fingerprint(arch: GeneratorConfig, pre: PretrainConfig, data: PairData, num_items: int, item_embedding,
                 extra: dict | None) -> dict:
    """What a resumed pre-training must share with the one that wrote the epoch checkpoint: the
    architecture, the pre-training options (run time aside), the caller's ``extra`` fields, under one
    ``"config"`` key as before the generator had configs of its own (so older epoch checkpoints resume)."""
    import dataclasses

    from ..training.checkpoint import array_sha256

    config = {**dataclasses.asdict(arch), **{k: v for k, v in dataclasses.asdict(pre).items()
                                            if k not in PretrainConfig.RUNTIME}, **(extra or {})}
    return {
        "config": config,
        "num_items": int(num_items),
        "pairs_sha256": array_sha256(data.sources, data.source_of, data.patterns, data.rows, data.segments),
        "item_embedding_sha256": None if item_embedding is None or not pre.init_item_embedding
        else array_sha256(item_embedding.float()),
    }


def _option_defaults() -> dict:
    """Every generator option at its default: what an epoch checkpoint written before an option existed had."""
    import dataclasses

    return {**dataclasses.asdict(GeneratorConfig()), **dataclasses.asdict(PretrainConfig())}


def _trim(x: torch.Tensor) -> torch.Tensor:
    """Drop all-padding trailing columns of a right-padded batch."""
    width = int((x != PAD).sum(1).max()) if x.numel() else 0
    return x[:, : max(width, 1)]


@dataclass
class PairBatch:
    """Pairs of a batch: distinct sources (S, L), the source row of each pair (B,), patterns (B, P),
    and, for targets of several segments (UniDS), the segment of each pattern token (B, P; -1 at padding)."""

    src: torch.Tensor
    src_index: torch.Tensor
    pattern: torch.Tensor
    segments: torch.Tensor | None = None

    def to(self, device) -> "PairBatch":
        return PairBatch(self.src.to(device), self.src_index.to(device), self.pattern.to(device),
                         None if self.segments is None else self.segments.to(device))

    @property
    def num_targets(self) -> int:
        return int((self.pattern != PAD).sum()) + self.pattern.shape[0]  # items + one EOS per pattern


class PairData:
    """Pre-training pairs as training data for `fastregen.training.Trainer`.

    Parameters
    ----------
    sources : torch.Tensor of int64, shape (S, L)
        Distinct source sequences, right-padded.
    source_of : np.ndarray of int64, shape (N,)
        Row of ``sources`` of each pair.
    patterns : torch.Tensor of int64, shape (N, P)
        Target pattern of each pair, right-padded.
    rows : np.ndarray of int64, optional
        The pairs this object serves (a train or held-out part); default all.
    segments : torch.Tensor of int64, shape (N, P), optional
        Segment of each pattern token (-1 at padding), for a promoter per
        segment (`fastregen.generator.Regenerator.segment_mixture`).

    Attributes
    ----------
    lengths : np.ndarray, shape (len(self),)
        Source length of each pair (the bucketing key).
    total_targets : int
        Target tokens (pattern items and one EOS per pair).
    """

    def __init__(self, sources: torch.Tensor, source_of: np.ndarray, patterns: torch.Tensor, rows=None,
                 segments: torch.Tensor | None = None) -> None:
        self.sources, self.source_of, self.patterns = sources, np.asarray(source_of, np.int64), patterns
        self.segments = segments
        self.rows = np.arange(len(self.source_of), dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        src_len = (sources != PAD).sum(1).numpy()
        self.lengths = src_len[self.source_of[self.rows]]
        self.total_targets = int((patterns[torch.from_numpy(self.rows)] != PAD).sum()) + len(self.rows)

    def __len__(self) -> int:
        return int(self.rows.size)

    def subset(self, rows) -> "PairData":
        """The pairs at positions ``rows`` of this object."""
        return PairData(self.sources, self.source_of, self.patterns, self.rows[np.asarray(rows, np.int64)],
                        self.segments)

    def batch(self, idx) -> PairBatch:
        pairs = self.rows[np.asarray(idx, dtype=np.int64)]
        uniq, inverse = np.unique(self.source_of[pairs], return_inverse=True)
        pattern = _trim(self.patterns[torch.from_numpy(pairs)])
        segments = None if self.segments is None else self.segments[torch.from_numpy(pairs)][:, : pattern.shape[1]]
        return PairBatch(_trim(self.sources[torch.from_numpy(uniq)]), torch.from_numpy(inverse.astype(np.int64)),
                         pattern, segments)

    def batch_order(self, batch_size: int, generator: torch.Generator | None, bucketing: bool = True,
                    window: int = 32):
        """Batches of pairs, one source's pairs together, sources shuffled (and bucketed by length)."""
        perm = None if generator is None else (lambda m: torch.randperm(m, generator=generator).numpy())
        return length_bucketed_batches(len(self), batch_size, perm, self.lengths if bucketing else None,
                                       bucket=window, groups=self.source_of[self.rows])


def pair_data(pairs, config: GeneratorConfig) -> PairData:
    """`PairData` of `fastregen.patterns.PretrainPairs`: pairs with an empty side dropped, each
    distinct source once (its ``max_len`` most recent items), patterns cut to ``max_pattern_len``
    (of the architecture ``config``, or of a method's config that builds one)."""
    config = as_architecture(config)
    if len(pairs.sequences) != len(pairs.patterns):
        raise ValueError(f"pairs have {len(pairs.sequences)} input sequences but {len(pairs.patterns)} patterns")
    keep = np.flatnonzero((pairs.sequences.lengths > 0) & (pairs.patterns.lengths > 0))
    source = np.asarray(pairs.source, dtype=np.int64)[keep] if pairs.source is not None else keep
    # a pair's source id names its input sequence; keep the first pair's copy of each
    ids, first, source_of = np.unique(source, return_index=True, return_inverse=True)
    seqs = pairs.sequences.subset(keep[first]).truncate(config.max_len)
    pats = pairs.patterns.subset(keep).slice_sequences(0, config.max_pattern_len)
    if len(keep) == 0:
        empty = torch.zeros(0, 1, dtype=torch.long)
        return PairData(empty, np.zeros(0, np.int64), empty)
    src = torch.from_numpy(seqs.padded(int(seqs.lengths.max()), side="right"))
    width = int(pats.lengths.max())
    pat = torch.from_numpy(pats.padded(width, side="right"))
    segments = None
    if getattr(pairs, "segments", None) is not None:
        seg = pairs.segments.subset(keep).slice_sequences(0, config.max_pattern_len)
        # stored as segment + 1 (a SequenceDataset holds ids >= 1), so padding (0) becomes -1
        segments = torch.from_numpy(seg.padded(width, side="right", values=seg.items.astype(np.int64)) - 1)
    return PairData(src, source_of.astype(np.int64), pat, segments=segments)


def target_frequencies(data: PairData, num_items: int) -> np.ndarray:
    """How often each id is a teacher-forced target of ``data``: float64 (num_items + 2,), the pattern
    items and one EOS per pair (PAD and BOS 0), for the in-batch negatives' log-Q correction."""
    pats = data.patterns[torch.from_numpy(data.rows)].numpy().ravel()
    counts = np.bincount(pats, minlength=num_items + 3)[: num_items + 3].astype(np.float64)
    counts[PAD] = 0.0
    counts[num_items + 1] = len(data)  # EOS
    return counts[: num_items + 2]


def pretrain_optimizer(model: Regenerator, config: PretrainConfig) -> torch.optim.Optimizer:
    """Adam (lr, betas 0.9/0.98, eps 1e-9) over the model, fused; with ``item_updates="lazy"`` the item
    table is updated row by row (`fastregen.training.LazyAdam`)."""
    config = as_pretraining(config)
    kw = dict(lr=config.lr, betas=(0.9, 0.98), eps=1e-9)
    if config.item_updates == "lazy":
        return LazyAdam(model.parameters(), [model.item_embedding.weight], **kw)
    return adam(model.parameters(), **kw)


def balance_penalty(pi: torch.Tensor) -> torch.Tensor:
    """``log K - H(mean over the batch of pi)`` for ``pi`` of shape (B, K).

    0 when the batch's patterns use every memory equally, ``log K`` when they
    all use one (`PretrainConfig.balance_weight`).
    """
    mean = pi.mean(0)
    return math.log(pi.shape[1]) + (mean * torch.log(mean + 1e-12)).sum()


class RegeneratorLoss:
    """The pre-training objective: summed teacher-forced CE, plus the entropy and balance terms.

    The CE sum is what the Trainer normalises (by target tokens per batch);
    ``entropy_weight * H(pi) + balance_weight * balance_penalty(pi)`` are
    batch means and are added as they are. With ``train_softmax="sampled"``
    the negatives come from ``sampler`` (`Regenerator.negative_sampler`),
    drawn from the Trainer's generator.
    """

    def __init__(self, config: PretrainConfig, K: int | None = None, sampler=None) -> None:
        self.K = as_architecture(config).K if K is None else int(K)
        self.config = as_pretraining(config)
        self.sampler = sampler

    def __call__(self, model: Regenerator, batch: PairBatch, generator) -> LossTerms:
        cfg = self.config
        ce, entropy, pi = model.loss(batch.src, batch.pattern, batch.src_index, reduction="sum",
                                     segments=batch.segments, sampler=self.sampler, generator=generator,
                                     pack=cfg.pack_targets)
        aux = None
        if cfg.entropy_weight:
            aux = cfg.entropy_weight * entropy
        if cfg.balance_weight:
            term = cfg.balance_weight * balance_penalty(pi)
            aux = term if aux is None else aux + term
        use = torch.bincount(pi.detach().argmax(1).cpu(), minlength=self.K).double() / max(pi.shape[0], 1)
        logs = {"ce": float(ce.detach()) / max(batch.num_targets, 1), "entropy": float(entropy.detach())}
        logs.update({f"memory_use_{k}": float(u) for k, u in enumerate(use)})
        return LossTerms(total=ce, aux=aux, logs=logs)


def _evaluate(model: Regenerator, data: PairData, batch_size: int, pack: bool = False) -> dict:
    """Validation CE per token: with the promoter's mixture (what training
    minimises), and with the best single memory per pattern (what inference,
    which decodes each memory alone, can reach). ``pack``: `PretrainConfig.pack_targets`."""
    model.eval()
    total, best, tokens = 0.0, 0.0, 0
    with torch.no_grad():
        for idx in data.batch_order(batch_size, None, bucketing=True):
            b = data.batch(idx).to(model.device)
            mixture, best_memory, n = model.heldout_nll(b.src, b.pattern, b.src_index, b.segments, pack=pack)
            total += mixture
            best += best_memory
            tokens += n
    return {"valid_loss": total / max(tokens, 1), "valid_best_memory_loss": best / max(tokens, 1)}


def holdout_split(n: int, config: PretrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(valid, train) pair positions: the first ``valid_fraction`` of a permutation seeded by ``config.seed``."""
    config = as_pretraining(config)
    perm = np.random.default_rng(config.seed).permutation(n)
    n_valid = min(int(round(n * config.valid_fraction)) if n > 1 else 0, n - 1)
    return perm[:n_valid], perm[n_valid:]


def validation_losses(model: Regenerator, pairs, config: PretrainConfig | None = None) -> dict:
    """The held-out losses of a pre-trained regenerator, on the pairs `pretrain` held out.

    Returns ``{"valid_loss", "valid_best_memory_loss", "pairs"}`` (see
    `pretrain`): the split is re-drawn from ``config``'s ``seed`` and
    ``valid_fraction`` (the `PretrainConfig` the model was pre-trained with,
    or a method's config that builds it) exactly as `pretrain` drew it, so
    pass the same pairs and config it was trained on.
    """
    config = as_pretraining(config)
    data = pair_data(pairs, model.config)
    valid_idx, _ = holdout_split(len(data), config)
    if len(valid_idx) == 0:
        raise ValueError("nothing was held out (valid_fraction = 0 or a single pair)")
    return {**_evaluate(model, data.subset(valid_idx), config.batch_size, config.pack_targets),
            "pairs": len(valid_idx)}


class _PretrainRecord(Hook):
    """Anneals the Gumbel temperature per step; turns each epoch's record into the history format and
    writes the (incomplete) checkpoint."""

    def __init__(self, config: GeneratorConfig, checkpoint, history: list, model: Regenerator) -> None:
        self.config, self.checkpoint, self.history, self.model = config, checkpoint, history, model

    def state_dict(self) -> dict:
        """The history so far and the Gumbel temperature (a plain attribute, not in the model's state)."""
        return {"history": list(self.history), "tau": float(self.model.tau)}

    def load_state_dict(self, state: dict) -> None:
        self.history[:] = state["history"]
        self.model.tau = float(state["tau"])

    def on_step_end(self, trainer, batch, loss):
        if self.config.diversity == "gumbel":
            trainer.model.anneal()

    def on_epoch_end(self, trainer, record):
        K = self.config.K
        entry = {
            "epoch": record["epoch"] + 1,
            "train_loss": record["ce"],
            "entropy": record["entropy"],
            "memory_use": [record[f"memory_use_{k}"] for k in range(K)],
            "tau": trainer.model.tau,
            "valid_loss": record.get("valid_loss"),
            "valid_best_memory_loss": record.get("valid_best_memory_loss"),
            "seconds": record["train_seconds"] + record.get("eval_seconds", 0.0),
        }
        self.history.append(entry)
        if self.checkpoint is not None and trainer.is_main:
            save_checkpoint(trainer.model, self.checkpoint, history=self.history, complete=False)


def pretrain(pairs, num_items: int, config: PretrainConfig | None = None, *,
             item_embedding: torch.Tensor | None = None, checkpoint=None,
             model: Regenerator | None = None, on_mismatch: str = "raise",
             architecture: GeneratorConfig | None = None,
             fingerprint: dict | None = None) -> tuple[Regenerator, list[dict]]:
    """Pre-train a `Regenerator` on pre-training pairs.

    Parameters
    ----------
    pairs : PretrainPairs
        From `fastregen.patterns.pretrain_pairs`: ``pairs.sequences`` (row r:
        input sequence of pair r), ``pairs.patterns`` (row r: its target
        pattern), both `SequenceDataset`, and ``pairs.source`` (the id of
        pair r's input sequence; pairs with one id share one input).
    num_items : int
        Item vocabulary of the dataset (ids 1..num_items).
    config : PretrainConfig, optional
        How to train; or a method's config (`fastregen.dr4sr.RegenConfig`)
        that builds both this and the architecture.
    item_embedding : torch.Tensor, shape (num_items + 1, d_model), optional
        A trained target model's item table to start from (used when
        ``config.init_item_embedding``).
    checkpoint : path-like, optional
        Where to write the regenerator after every epoch (atomically); the
        final file holds the selected weights and ``complete=True``. Beside
        it (`resume_path`: ``NAME.resume.pt``) goes the Trainer's epoch
        checkpoint (optimizer, schedule, early-stopping state, random
        states, `fastregen.training.checkpoint`): a pre-training killed at
        any point and rerun with the same arguments goes on from its last
        epoch and ends with the weights of an uninterrupted run. It is
        removed once the complete regenerator is written.
    model : Regenerator, optional
        Continue training this model instead of a fresh one (its weights are
        not part of the resume check).
    architecture : GeneratorConfig, optional
        The architecture of a fresh model, when ``config`` is a
        `PretrainConfig` (default: ``model``'s, else ``GeneratorConfig()``).
    fingerprint : dict, optional
        More fields of the run's identity for the resume check (a method's
        options that shaped the pairs, say).
    on_mismatch : {"raise", "restart"}, default "raise"
        An epoch checkpoint of another pre-training (other config fields
        that pre-training reads, other pairs, vocabulary or initial item
        embedding): refused with a ValueError naming the fields, or
        ignored and overwritten (pipelines that redo changed stages anyway).

    Returns
    -------
    (model, history)
        The model with the weights of the epoch with the lowest
        ``valid_best_memory_loss`` (the last epoch's when nothing is held
        out), in eval mode; one dict per epoch (epoch (1-based), train_loss,
        valid_loss, valid_best_memory_loss, entropy, memory_use, tau,
        seconds). ``valid_loss`` decodes the promoter's mixture of the
        memories, which reads the target pattern; ``valid_best_memory_loss``
        decodes each memory alone and keeps the best per pattern, as
        inference can. A soft mixture can carry information about the target
        through ``pi``, so only the second measures what inference will
        produce, and it selects the checkpoint. ``memory_use`` is the share
        of training patterns whose largest ``pi`` is on each memory (with
        ``diversity="gumbel"`` the sampled ``pi``, so the noise makes it
        look more even than the promoter's own choice).

    Notes
    -----
    Adam (lr, betas 0.9/0.98, eps 1e-9) with a cosine schedule, batches of
    ``batch_size`` pairs, ``valid_fraction`` of the pairs held out; all
    randomness derives from ``config.seed``. With ``train_softmax``
    resolving to "sampled" the in-batch negatives' log-Q correction uses
    the training pairs' target frequencies (`target_frequencies`) and the
    held-out losses are still full-softmax ones (at Amazon-Books scale a
    full pass over 5% held-out pairs costs more than the sampled training
    epoch: lower ``valid_fraction`` there). Under torch.distributed the
    pre-training is data-parallel (`fastregen.training.Trainer`) with
    ``batch_size`` pairs per process, and rank 0 evaluates, selects and
    writes the checkpoint.
    """
    if config is not None and callable(getattr(config, "architecture", None)):
        arch = config.architecture() if architecture is None else architecture
    else:
        arch = architecture if architecture is not None else model.config if model is not None else GeneratorConfig()
    config = as_pretraining(config)
    config.validate()
    arch.validate()
    check_pretraining(arch, config)
    backend = config.backend
    if len(pairs) == 0:
        raise ValueError("no pre-training pairs: the pattern set is empty (lower min_support or check the data)")
    data = pair_data(pairs, arch)
    if len(data) == 0:
        raise ValueError("no pre-training pair has both a non-empty sequence and a non-empty pattern")
    for name, t in (("sequence", data.sources), ("pattern", data.patterns)):
        if int(t.max()) > num_items:
            raise ValueError(f"a pre-training {name} holds item {int(t.max())} > num_items = {num_items}")
    valid_idx, train_idx = holdout_split(len(data), config)
    train, valid = data.subset(train_idx), data.subset(valid_idx)

    torch.manual_seed(config.seed)
    if model is None:
        model = Regenerator(num_items, arch, backend=backend)
        if item_embedding is not None and config.init_item_embedding:
            model.init_item_embedding(item_embedding)
    elif model.num_items != num_items:
        raise ValueError(f"model was built for {model.num_items} items, the pairs come from {num_items}")

    history: list[dict] = []
    hooks: list[Hook] = []
    if len(valid):
        hooks.append(EarlyStopping(lambda m: _evaluate(m, valid, config.batch_size, config.pack_targets),
                                   "valid_best_memory_loss",
                                   mode="min", patience=None, prefix=""))
    hooks.append(_PretrainRecord(arch, checkpoint, history, model))
    optimizer = pretrain_optimizer(model, config)

    def cosine(opt, total):
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))

    resume = None
    if checkpoint is not None:
        from ..training.checkpoint import Checkpoint

        # an option added since a checkpoint was written matches at its default (fingerprint_diff)
        resume = Checkpoint(resume_path(checkpoint),
                            _fingerprint(arch, config, data, num_items, item_embedding, fingerprint),
                            on_mismatch=on_mismatch, defaults={"config": _option_defaults()})
    sampler = model.negative_sampler(target_frequencies(train, num_items)) if model.train_softmax == "sampled" \
        else None
    trainer = Trainer(model, RegeneratorLoss(config, arch.K, sampler), optimizer=optimizer, scheduler=cosine,
                      hooks=hooks,
                      batch_size=config.batch_size, bucketing=True, seed=config.seed, device=config.device,
                      progress=config.progress, desc="regenerator", checkpoint=resume)
    model.use_fused_attention(config.fused_attention)
    try:
        trainer.fit(train, config.epochs)
    finally:
        model.use_fused_attention(False)  # a training option: inference computes what it always did
    model.eval()
    if checkpoint is not None and trainer.is_main:
        save_checkpoint(model, checkpoint, history=history, complete=True)
        resume.remove()  # the complete regenerator is the finished run's marker
    return model, history
