"""Next-item losses of the target models, per target, and the objective the Trainer minimises.

Every loss here returns one value **per target position** (shape (B, L), 0
where there is no target), so weighting (sequence weights, a DR4SR+
personalizer) and normalisation are left to the caller: `NextItemLoss` sums
``weight * loss`` and the `fastregen.training.Trainer` divides by a constant
number of targets per batch.

* ``"bce"``: ``softplus(-h.e_t) + mean_r softplus(h.e_r)`` with ``R`` uniform
  negatives per position (DR4SR eq. 7: one negative);
* ``"sampled_softmax"``: softmax over the target and ``R`` uniform negatives
  shared by the batch, logits / temperature (HSTU's setting); negatives
  equal to the target are masked;
* ``"softmax"``: full cross-entropy over items 1..num_items
  (`full_softmax_cross_entropy`: above `FULL_LOGITS_LIMIT` logits it scores
  the item table chunk by chunk and never holds the targets x V logits).

Vocabulary-scale softmax
------------------------
At Amazon-Books scale (V ~ 700k) the logits of one SASRec batch (256 x 50
targets) would take 36 GB. `chunked_softmax_cross_entropy` computes the
same per-target loss with a running (max, sum of exp) over item chunks, and
its backward pass recomputes each chunk's softmax from the saved
log-sum-exp, so peak memory is ``targets x chunk`` floats plus the gradient
of the table (which the optimizer holds anyway). It costs one extra
``targets x V x d`` product in the backward pass (the forward logits are
not kept).

Sampled softmax with the log-Q correction
-----------------------------------------
`sampled_softmax_cross_entropy` (``train_softmax="sampled"``) normalises
each target over itself and a shared set of candidates drawn by a
`NegativeSampler`: ``num_negatives`` uniform ids plus the batch's own
targets (in-batch negatives, drawn in proportion to how often each id is a
target), as large-catalogue recommenders train (Yi et al., RecSys 2019,
"Sampling-bias-corrected neural modeling"; Yang et al., WWW 2020, "Mixed
negative sampling"). A candidate ``j`` drawn ``c_j`` times enters with
logit ``z_j + log c_j - log E_j``, where ``E_j = R / V + N p_j`` is its
expected count among the ``R`` uniform and ``N`` in-batch draws: then
``sum_j c_j exp(z_j) / E_j`` is an unbiased estimate of ``sum_j exp(z_j)``
over the whole vocabulary, and the loss estimates the full softmax's. The
target keeps its plain logit, and a candidate equal to the row's target
(an accidental hit) is masked, so the estimate is of the other ids' sum.
With every id a candidate once and no correction it *is* the full softmax.

Why one module of ~600 lines: the full, chunked, uniform-negative and
sampled (log-Q) softmaxes and BCE share one per-target contract and one
set of checks, and are tested against each other; split, each file would
re-state them.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = [
    "full_softmax_cross_entropy",
    "sampled_softmax_cross_entropy",
    "NegativeSampler",
    "TRAIN_SOFTMAX",
    "SAMPLED_SOFTMAX_MIN_VOCAB",
    "DEFAULT_NUM_NEGATIVES",
    "resolve_train_softmax",
    "chunked_softmax_cross_entropy",
    "FULL_LOGITS_LIMIT",
    "bce_per_target",
    "sampled_softmax_per_target",
    "softmax_per_target",
    "bce_loss",
    "sampled_softmax_loss",
    "softmax_loss",
    "LossTerms",
    "NextItemLoss",
]


#: `full_softmax_cross_entropy` builds the whole (rows, V) logit matrix up to
#: this many entries (128 MiB of float32) and goes chunk by chunk above it.
FULL_LOGITS_LIMIT = 1 << 25
#: Logits per chunk of the chunked path (rows x chunk, 16 MiB of float32; a step holds a few such temporaries).
_CHUNK_ELEMENTS = 1 << 22
#: Smallest chunk of the automatic choice (narrower products run far below the machine's speed).
_MIN_CHUNK = 1024


def _vocab_range(table: torch.Tensor, vocab_start: int, vocab_stop: int | None) -> tuple[int, int]:
    V = table.shape[0]
    stop = V if vocab_stop is None else int(vocab_stop)
    if not 0 <= int(vocab_start) < stop <= V:
        raise ValueError(f"need 0 <= vocab_start < vocab_stop <= V = {V}; got {vocab_start}, {vocab_stop}")
    return int(vocab_start), stop


class _ChunkedSoftmaxCE(torch.autograd.Function):
    """Per-row ``logsumexp_j(z_j) - z_target`` with ``z = scale * hidden @ table[start:stop].T``, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden, table, targets, scale: float, start: int, stop: int, chunk: int):
        n = hidden.shape[0]
        acc = _accumulator(hidden.dtype)
        m = torch.full((n,), float("-inf"), dtype=acc, device=hidden.device)
        s = torch.zeros((n,), dtype=acc, device=hidden.device)
        for c0 in range(start, stop, chunk):
            z = (hidden @ table[c0 : min(c0 + chunk, stop)].T).to(acc) * scale
            new_m = torch.maximum(m, z.max(1).values)
            s = s * torch.exp(m - new_m) + torch.exp(z - new_m[:, None]).sum(1)
            m = new_m
        lse = m + torch.log(s)
        target = (hidden * table[targets]).sum(1).to(acc) * scale
        ctx.save_for_backward(hidden, table, targets, lse)
        ctx.scale, ctx.start, ctx.stop, ctx.chunk = scale, start, stop, chunk
        return lse - target

    @staticmethod
    def backward(ctx, grad):
        hidden, table, targets, lse = ctx.saved_tensors
        scale, start, stop, chunk = ctx.scale, ctx.start, ctx.stop, ctx.chunk
        acc = lse.dtype
        # d loss_i / d z_ij = softmax_ij - 1[j = target_i]; z = scale * h.e
        g = grad.to(acc) * scale
        need_h, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dh = torch.zeros(hidden.shape, dtype=acc, device=hidden.device) if need_h else None
        dt = torch.zeros(table.shape, dtype=acc, device=table.device) if need_t else None
        h = hidden.to(acc)
        for c0 in range(start, stop, chunk):
            w = table[c0 : min(c0 + chunk, stop)]
            z = (hidden @ w.T).to(acc) * scale
            p = torch.exp(z - lse[:, None]) * g[:, None]
            if need_h:
                dh += p @ w.to(acc)
            if need_t:
                dt[c0 : c0 + w.shape[0]] += p.T @ h
        if need_h:
            dh -= g[:, None] * table[targets].to(acc)
            dh = dh.to(hidden.dtype)
        if need_t:
            dt.index_add_(0, targets, -g[:, None] * h)
            dt = dt.to(table.dtype)
        return dh, dt, None, None, None, None, None


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float32 and the half types accumulate in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def chunked_softmax_cross_entropy(hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, *,
                                  temperature: float = 1.0, vocab_start: int = 0, vocab_stop: int | None = None,
                                  chunk_size: int = 8192) -> torch.Tensor:
    """Softmax cross-entropy against a whole item table, a chunk of the vocabulary at a time.

    ``loss_i = log sum_{j in [start, stop)} exp(h_i . e_j / T) - h_i . e_{t_i} / T``:
    the same value and gradients as ``F.cross_entropy`` on the full
    ``hidden @ table.T / T`` logits with the columns outside
    ``[vocab_start, vocab_stop)`` at ``-inf``, up to float rounding (the
    log-sum-exp is accumulated across chunks), without ever holding
    ``rows x V`` values: peak extra memory is ``rows x chunk_size`` floats.

    Parameters
    ----------
    hidden : torch.Tensor, shape (N, d), float
    table : torch.Tensor, shape (V, d), float
    targets : torch.Tensor of int64, shape (N,)
        Ids in ``[vocab_start, vocab_stop)``.
    temperature : float, default 1.0
    vocab_start, vocab_stop : int
        The ids the softmax normalises over (default all ``V``).
    chunk_size : int, default 8192
        Vocabulary rows scored at once.

    Returns
    -------
    torch.Tensor, shape (N,), float32
        Differentiable in ``hidden`` and ``table``.
    """
    start, stop = _check_ce_inputs(hidden, table, targets, temperature, vocab_start, vocab_stop)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return _ChunkedSoftmaxCE.apply(hidden, table, targets, 1.0 / float(temperature), start, stop, chunk_size)


def _check_ce_inputs(hidden, table, targets, temperature, vocab_start, vocab_stop) -> tuple[int, int]:
    if hidden.dim() != 2 or table.dim() != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(f"hidden (N, d) and table (V, d) do not match: {tuple(hidden.shape)} vs {tuple(table.shape)}")
    if targets.shape != (hidden.shape[0],):
        raise ValueError(f"targets must have shape ({hidden.shape[0]},), got {tuple(targets.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    start, stop = _vocab_range(table, vocab_start, vocab_stop)
    if targets.numel() and (int(targets.min()) < start or int(targets.max()) >= stop):
        raise ValueError(f"targets must be ids in [{start}, {stop}), got range "
                         f"[{int(targets.min())}, {int(targets.max())}]")
    return start, stop


def full_softmax_cross_entropy(hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, *,
                               temperature: float = 1.0, vocab_start: int = 0, vocab_stop: int | None = None,
                               chunk_size: int | None = None) -> torch.Tensor:
    """Per-row softmax cross-entropy over the ids ``[vocab_start, vocab_stop)`` of ``table``.

    The full-vocabulary loss of the target models (``loss="softmax"``) and
    of the regenerator (``train_softmax="full"``). With ``chunk_size=None``
    the whole (N, V) logit matrix is built when it has at most
    `FULL_LOGITS_LIMIT` entries (faster at small V; Amazon Beauty's batches
    stay below it) and `chunked_softmax_cross_entropy` is used above, with
    chunks of ``2**22 / N`` ids (at least 1024); an int forces the chunked
    path with that chunk.

    Parameters and return value as in `chunked_softmax_cross_entropy`.
    """
    start, stop = _check_ce_inputs(hidden, table, targets, temperature, vocab_start, vocab_stop)
    n = hidden.shape[0]
    if chunk_size is None:
        if n * table.shape[0] <= FULL_LOGITS_LIMIT:
            logits = (hidden @ table.T) / temperature
            if start > 0:
                logits[:, :start] = float("-inf")
            if stop < table.shape[0]:
                logits[:, stop:] = float("-inf")
            return F.cross_entropy(logits, targets, reduction="none")
        chunk_size = max(_CHUNK_ELEMENTS // max(n, 1), _MIN_CHUNK)
    return chunked_softmax_cross_entropy(hidden, table, targets, temperature=temperature, vocab_start=start,
                                         vocab_stop=stop, chunk_size=chunk_size)


#: What ``train_softmax`` may be (regenerator and target models): the whole vocabulary, a sampled
#: softmax (`sampled_softmax_cross_entropy`), or the one of the two `resolve_train_softmax` picks.
TRAIN_SOFTMAX = ("full", "sampled", "auto")

#: ``train_softmax="auto"`` samples at this vocabulary size and above: the smallest measured size at
#: which a sampled training step is at least twice as fast as a full one. One regenerator step
#: (`RegenConfig()`, 256 pairs, 512 negatives), full / sampled, one thread, the variants alternating
#: step by step, medians of 10 (``OMP_NUM_THREADS=1 python benchmarks/sampled_softmax.py step --vocab
#: 2000 3000 4000 6000 8000 12000 16000 32000 64000 --steps 10``; 2 cores, Intel Xeon, load ~11;
#: benchmarks/results/sampled_softmax.csv): 1.26x at V = 2,000, 1.29x at 3,000, 1.44x at 4,000,
#: 1.70x at 6,000, 2.69x at 8,000, 3.75x at 12,000, 4.33x at 16,000, 5.9x at 32,000, 10.1x at
#: 64,000. The sampled step is never the slower one in that range (below ~2,000 ids the candidates
#: are most of the vocabulary, so the two cost alike); under 8,000 the gain is small next to what
#: an estimate of the normaliser may cost.
SAMPLED_SOFTMAX_MIN_VOCAB = 8_000

#: Uniform negatives per batch of a sampled softmax unless configured. A regenerator step at Beauty's
#: vocabulary (V = 12,103, `sampled_softmax.py step --vocab 12103 --variants source sampled:128
#: sampled:512 sampled:2048 full --steps 10`, one thread, load ~9.5): 0.221 s with 128 negatives,
#: 0.275 s with 512, 0.382 s with 2048, 0.921 s with the full softmax (0.201 s with the source
#: softmax). With 512, a regenerator trained 3 epochs on Beauty has a full-softmax held-out
#: single-memory loss 1.9% above the full-softmax-trained one (`sampled_softmax.py beauty --epochs
#: 3`); fewer negatives were not trained to a held-out loss, so 512 is the measured one.
DEFAULT_NUM_NEGATIVES = 512


def resolve_train_softmax(train_softmax: str, vocab_size: int) -> str:
    """``"full"`` or ``"sampled"``: ``train_softmax`` itself, or for ``"auto"`` sampled iff
    ``vocab_size >= SAMPLED_SOFTMAX_MIN_VOCAB``."""
    if train_softmax not in TRAIN_SOFTMAX:
        raise ValueError(f"train_softmax must be one of {', '.join(TRAIN_SOFTMAX)}; got {train_softmax!r}")
    if train_softmax != "auto":
        return train_softmax
    return "sampled" if int(vocab_size) >= SAMPLED_SOFTMAX_MIN_VOCAB else "full"


class NegativeSampler:
    """The candidates of a sampled softmax: uniform ids plus the batch's own targets, with their log-Q weights.

    Parameters
    ----------
    num_negatives : int
        Uniform draws (with replacement) from ``[vocab_start, vocab_stop)``
        per batch, shared by the batch's rows; at most the number of ids.
    vocab_start, vocab_stop : int
        The ids a target can be (the full softmax's range).
    frequencies : array-like of shape (vocab_stop,), optional
        How often each id is a training target (any non-negative weights;
        ids outside the range are ignored): the in-batch sampling
        probability ``p_j`` is its share. None: no in-batch negatives.

    Notes
    -----
    `sample` returns each distinct candidate once with ``log c_j - log E_j``
    (``c_j`` its draws, ``E_j = R / V + N p_j`` its expected draws, module
    docstring): one column per distinct id is the same loss as one per
    draw, and smaller.
    """

    def __init__(self, num_negatives: int, vocab_start: int, vocab_stop: int, frequencies=None) -> None:
        vocab = int(vocab_stop) - int(vocab_start)
        if not 0 <= int(vocab_start) < int(vocab_stop):
            raise ValueError(f"need 0 <= vocab_start < vocab_stop; got {vocab_start}, {vocab_stop}")
        if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
            raise ValueError(f"num_negatives must be a positive int, got {num_negatives!r}")
        if num_negatives > vocab:
            raise ValueError(f"num_negatives = {num_negatives} exceeds the {vocab} ids a target can be; "
                             f"use at most {vocab} (or the full softmax)")
        self.num_negatives, self.vocab_start, self.vocab_stop = num_negatives, int(vocab_start), int(vocab_stop)
        self.probability = None
        if frequencies is not None:
            f = torch.as_tensor(frequencies, dtype=torch.float64).flatten()
            if f.numel() != self.vocab_stop or bool((f < 0).any()) or not bool(torch.isfinite(f).all()):
                raise ValueError(f"frequencies must be {self.vocab_stop} finite values >= 0 (one per id), "
                                 f"got {f.numel()}")
            f = f.clone()
            f[: self.vocab_start] = 0
            total = float(f.sum())
            if total <= 0:
                raise ValueError("frequencies are all 0 in [vocab_start, vocab_stop): no id is ever a target")
            self.probability = f / total

    @property
    def in_batch(self) -> bool:
        return self.probability is not None

    def sample(self, targets: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Candidates for a batch whose scored targets are ``targets`` (N,).

        The uniform ids are drawn on the CPU from ``generator`` (the
        Trainer's, whose state its checkpoints keep), so a run is the same
        on every device and a resumed run draws what an uninterrupted one
        would.

        Returns
        -------
        (ids, log_weight) : torch.Tensor of int64 (C,), torch.Tensor of float32 (C,)
            Distinct candidate ids (sorted) and ``log c_j - log E_j``, on
            ``targets``' device.
        """
        R, V = self.num_negatives, self.vocab_stop - self.vocab_start
        pool = torch.randint(self.vocab_start, self.vocab_stop, (R,), generator=generator)
        if self.in_batch:
            pool = torch.cat([pool, targets.detach().reshape(-1).cpu()])
        ids, counts = torch.unique(pool, return_counts=True)
        expected = torch.full(ids.shape, R / V, dtype=torch.float64)
        if self.in_batch:
            expected += targets.numel() * self.probability[ids]
        log_weight = torch.log(counts.double()) - torch.log(expected)
        return ids.to(targets.device), log_weight.float().to(targets.device)


def sampled_softmax_cross_entropy(hidden: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                                  candidates: torch.Tensor, log_weight: torch.Tensor | None = None, *,
                                  temperature: float = 1.0) -> torch.Tensor:
    """Per-row softmax cross-entropy over the target and shared candidates, with the log-Q correction.

    ``loss_i = log(exp(z_{i,t_i}) + sum_{j in C, j != t_i} exp(z_{ij} + w_j)) - z_{i,t_i}`` with
    ``z = hidden @ table.T / temperature`` and ``w = log_weight`` (0 when
    None); a candidate equal to the row's target (an accidental hit) is
    left out. With ``candidates`` every id of a range once and no
    ``log_weight`` this is `full_softmax_cross_entropy` over that range.

    Parameters
    ----------
    hidden : torch.Tensor, shape (N, d), float
    table : torch.Tensor, shape (V, d), float
        Looked up with sparse gradients when it is a leaf (only the rows of
        targets and candidates get a gradient).
    targets : torch.Tensor of int64, shape (N,)
    candidates : torch.Tensor of int64, shape (C,)
        Shared by every row (`NegativeSampler.sample`).
    log_weight : torch.Tensor, shape (C,), optional
        Added to the candidates' logits (``log c_j - log E_j``).
    temperature : float, default 1.0

    Returns
    -------
    torch.Tensor, shape (N,)
        Differentiable in ``hidden`` and ``table``.
    """
    if hidden.dim() != 2 or table.dim() != 2 or hidden.shape[1] != table.shape[1]:
        raise ValueError(f"hidden (N, d) and table (V, d) do not match: {tuple(hidden.shape)} vs {tuple(table.shape)}")
    if targets.shape != (hidden.shape[0],):
        raise ValueError(f"targets must have shape ({hidden.shape[0]},), got {tuple(targets.shape)}")
    if candidates.dim() != 1 or (log_weight is not None and log_weight.shape != candidates.shape):
        raise ValueError(f"candidates must be (C,) and log_weight (C,) too; got {tuple(candidates.shape)}, "
                         f"{None if log_weight is None else tuple(log_weight.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if temperature != 1.0:
        hidden = hidden / temperature  # (N, d), not the (N, C) logits
    pos = (hidden * _rows(targets, table)).sum(-1)
    weights = _rows(candidates, table)
    if log_weight is None:
        neg = hidden @ weights.T
    else:
        neg = torch.addmm(log_weight.to(hidden.dtype)[None], hidden, weights.T)
    # accidental hits: a row's target among the candidates (each id at most once if they are sorted and
    # distinct, as `NegativeSampler.sample` gives them; any other order is found by the comparison)
    if candidates.numel():
        if bool((candidates[1:] > candidates[:-1]).all()):
            at = torch.searchsorted(candidates, targets).clamp_max(candidates.numel() - 1)
            rows = torch.nonzero(candidates[at] == targets).flatten()
            neg.index_put_((rows, at[rows]), torch.tensor(float("-inf"), dtype=neg.dtype, device=neg.device))
        else:
            neg = neg.masked_fill(targets[:, None] == candidates[None, :], float("-inf"))
    return torch.logaddexp(pos, torch.logsumexp(neg, 1)) - pos


# Whether `_rows` may give sparse gradients. A context variable, not a
# module flag, so that one thread's second-order block leaves others alone.
_SPARSE_LOOKUPS = contextvars.ContextVar("fastregen_sparse_lookups", default=True)


@contextlib.contextmanager
def dense_lookups():
    """Inside this block the losses' table lookups take dense gradients.

    Needed for second derivatives (the DR4SR+ hypergradient's Hessian-vector
    products): torch has no double backward through a sparse embedding
    gradient ("add(sparse, dense) is not supported").
    """
    token = _SPARSE_LOOKUPS.set(False)
    try:
        yield
    finally:
        _SPARSE_LOOKUPS.reset(token)


def _rows(ids: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """``table[ids]`` with a sparse gradient.

    A dense gradient of a lookup is a zero-filled copy of the whole table
    (700k x 64 items: 180 MB, freshly page-faulted each step) per lookup; a
    SASRec step at that size took twice as long. The model's own lookup of
    the same table keeps its gradient dense, and autograd adds the sparse
    parts into it, so callers see the same dense gradient as before (and
    `fastregen.training.Trainer` densifies any that stay sparse). A table
    computed from others (the GNN's propagated table) is not a leaf: the
    operations it came from take dense gradients only, so its lookups
    stay dense; so do all lookups inside `dense_lookups`.
    """
    return F.embedding(ids, table, sparse=table.is_leaf and _SPARSE_LOOKUPS.get())


def bce_per_target(hidden, item_weight, targets, negatives) -> torch.Tensor:
    """Binary cross-entropy with sampled negatives, per position.

    Parameters
    ----------
    hidden : torch.Tensor, shape (B, L, d)
    item_weight : torch.Tensor, shape (num_items + 1, d)
    targets : torch.Tensor of int64, shape (B, L)
        Next item per position, 0 where there is none.
    negatives : torch.Tensor of int64, shape (B, L, R)

    Returns
    -------
    torch.Tensor, shape (B, L)
        ``softplus(-h.e_t) + mean_r softplus(h.e_{n_r})``, 0 where ``targets == 0``.
    """
    pos = (hidden * _rows(targets, item_weight)).sum(-1)
    neg = torch.einsum("bld,blrd->blr", hidden, _rows(negatives, item_weight))
    per = F.softplus(-pos) + F.softplus(neg).mean(-1)
    return per * (targets > 0)


def sampled_softmax_per_target(hidden, item_weight, targets, negatives, temperature: float = 1.0) -> torch.Tensor:
    """Sampled softmax per position: the target against ``R`` negatives, logits / temperature.

    ``negatives`` has shape (R,) (shared by the batch) or (B, L, R). A
    negative equal to the position's target is masked. Returns (B, L), 0
    where ``targets == 0``.
    """
    pos = (hidden * _rows(targets, item_weight)).sum(-1, keepdim=True)
    if negatives.dim() == 1:
        neg = hidden @ _rows(negatives, item_weight).T  # (B, L, R)
        clash = targets[..., None] == negatives[None, None, :]
    else:
        neg = torch.einsum("bld,blrd->blr", hidden, _rows(negatives, item_weight))
        clash = targets[..., None] == negatives
    logits = torch.cat([pos, neg.masked_fill(clash, float("-inf"))], -1) / temperature
    per = torch.logsumexp(logits, -1) - logits[..., 0]
    return per * (targets > 0)


def softmax_per_target(hidden, item_weight, targets, temperature: float = 1.0,
                       chunk_size: int | None = None) -> torch.Tensor:
    """Full softmax cross-entropy over items 1..num_items (padding excluded), per position.

    Only positions with a target are scored (`full_softmax_cross_entropy`:
    the (#targets, num_items) logits up to `FULL_LOGITS_LIMIT` entries,
    item chunks above, or always with an int ``chunk_size``).
    Returns (B, L), 0 where ``targets == 0``.
    """
    sel = targets > 0
    out = hidden.new_zeros(targets.shape)
    out[sel] = full_softmax_cross_entropy(hidden[sel], item_weight, targets[sel], temperature=temperature,
                                          vocab_start=1, chunk_size=chunk_size).to(out.dtype)
    return out


def _mean(per: torch.Tensor, targets: torch.Tensor, weights) -> torch.Tensor:
    if weights is None:
        weights = (targets > 0).to(per.dtype)
    return (per * weights).sum() / (targets > 0).sum().clamp_min(1).to(per.dtype)


def bce_loss(hidden, item_weight, targets, negatives, weights=None) -> torch.Tensor:
    """`bce_per_target` weighted by ``weights`` (B, L) (default: 1 per target), summed, / #targets."""
    return _mean(bce_per_target(hidden, item_weight, targets, negatives), targets, weights)


def sampled_softmax_loss(hidden, item_weight, targets, negatives, weights=None, temperature: float = 1.0):
    """`sampled_softmax_per_target` weighted, summed, / #targets (see `bce_loss`)."""
    return _mean(sampled_softmax_per_target(hidden, item_weight, targets, negatives, temperature), targets, weights)


def softmax_loss(hidden, item_weight, targets, weights=None, temperature: float = 1.0) -> torch.Tensor:
    """`softmax_per_target` weighted, summed, / #targets (see `bce_loss`)."""
    return _mean(softmax_per_target(hidden, item_weight, targets, temperature), targets, weights)


@dataclass
class LossTerms:
    """What an objective returns for one batch (see `fastregen.training.Trainer`).

    Attributes
    ----------
    total : torch.Tensor, scalar
        Sum over the batch's targets of ``weight * loss``; the Trainer
        divides it by its constant targets-per-batch.
    aux : torch.Tensor, scalar, optional
        Terms that are already normalised (a contrastive loss, a
        regulariser); added as they are.
    logs : dict of str to float
        Per-batch values to average over the epoch (shown in the history).
    """

    total: torch.Tensor
    aux: torch.Tensor | None = None
    logs: dict = field(default_factory=dict)


class NextItemLoss:
    """The target models' objective: weighted next-item loss plus the model's auxiliary loss.

    Parameters
    ----------
    loss : {"bce", "sampled_softmax", "softmax"}
    num_negatives : int
        Negatives per position (bce) or per batch (sampled_softmax).
    temperature : float, default 1.0
    weight_fn : callable, optional
        ``weight_fn(model, batch, hidden) -> (B, L) tensor`` multiplied into
        the batch's target weights (a DR4SR+ personalizer). Without it the
        weights are the batch's own (sequence weights, 0 at padding).
    sampler : NegativeSampler, optional
        With ``loss="softmax"``: train with the sampled softmax and the
        log-Q correction over its candidates (``train_softmax="sampled"``,
        `fastregen.training.fit.negative_sampler`) instead of the full one.

    Notes
    -----
    The auxiliary loss (CL4SRec's InfoNCE) gets each row's mean target
    weight of the *data* (the sequence weight), never ``weight_fn``'s
    weights: DR4SR+ leaves the contrastive term unweighted.
    """

    def __init__(self, loss: str, num_negatives: int, temperature: float = 1.0, weight_fn=None,
                 sampler: NegativeSampler | None = None) -> None:
        if loss not in ("bce", "sampled_softmax", "softmax"):
            raise ValueError(f"unknown loss {loss!r}; valid: bce, sampled_softmax, softmax")
        if sampler is not None and loss != "softmax":
            raise ValueError(f"a sampler samples the softmax loss; loss is {loss!r}")
        self.loss, self.num_negatives, self.temperature, self.weight_fn = loss, int(num_negatives), temperature, weight_fn
        self.sampler = sampler

    def per_target(self, model, hidden: torch.Tensor, targets: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Loss of every target position (B, L) from hidden states (B, L, d)."""
        table = model.item_weight()
        N, R = model.num_items, self.num_negatives
        if self.loss == "bce":
            neg = torch.randint(1, N + 1, (*targets.shape, R), generator=generator).to(hidden.device)
            return bce_per_target(hidden, table, targets, neg)
        if self.loss == "sampled_softmax":
            neg = torch.randint(1, N + 1, (R,), generator=generator).to(hidden.device)
            return sampled_softmax_per_target(hidden, table, targets, neg, self.temperature)
        if self.sampler is not None:
            sel = targets > 0
            ids, log_weight = self.sampler.sample(targets[sel], generator)
            out = hidden.new_zeros(targets.shape)
            out[sel] = sampled_softmax_cross_entropy(hidden[sel], table, targets[sel], ids, log_weight,
                                                     temperature=self.temperature).to(out.dtype)
            return out
        return softmax_per_target(hidden, table, targets, self.temperature)

    def __call__(self, model, batch, generator: torch.Generator) -> LossTerms:
        hidden = model(batch.inputs, timestamps=batch.timestamps)
        per = self.per_target(model, hidden, batch.targets, generator)
        weights = batch.weights
        if self.weight_fn is not None:
            weights = weights * self.weight_fn(model, batch, hidden)
        total = (per * weights).sum()
        row_w = batch.weights.sum(1) / (batch.targets > 0).sum(1).clamp_min(1)
        aux = model.auxiliary_loss(batch.inputs, row_w, generator)
        return LossTerms(total=total, aux=aux)
