"""The DR4SR regenerator: a transformer encoder-decoder with K memories and a diversity promoter.

Vocabulary (``V = num_items + 3`` rows of the shared item table):

====================  ======================================================
id                    meaning
====================  ======================================================
``0``                 PAD (row kept at zero, never generated)
``1 .. num_items``    items, as in `fastregen.data.SequenceDataset`
``num_items + 1``     EOS (ends a pattern; allowed at every decoding step)
``num_items + 2``     BOS (first decoder input; never generated)
====================  ======================================================

Putting EOS before BOS makes "every id that may be generated" the contiguous
range ``[1, num_items + 2)``, which is what `fastregen.ops.constrained_argmax`
takes as ``vocab_start, vocab_stop``.

One item table is shared by the encoder input, the decoder input and the
output layer (scores are ``state @ item_embedding.weight.T``), and can be
initialised from a trained target model's table (the authors initialise it
from SASRec's).

Why one module of ~560 lines: the regenerator's forward pass, its three
training softmaxes and the held-out scoring read the same item table,
memories and promoter; the layers it stacks are in `generator.layers`.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.nn.functional as F
from torch import nn

from ..models.base import Dropout, masked_mean
from ..ops import mix_memories
from ..training.losses import (NegativeSampler, full_softmax_cross_entropy, resolve_train_softmax,
                               sampled_softmax_cross_entropy)
from .config import BACKENDS, GeneratorConfig, as_architecture
from .layers import DecoderCache, DecoderLayer, EncoderLayer, Packing, Stack

__all__ = ["Regenerator", "PAD", "eos_id", "bos_id", "save_checkpoint", "load_checkpoint"]

PAD = 0
_FORMAT = "fastregen-regenerator"
_FORMAT_VERSION = 1


def eos_id(num_items: int) -> int:
    """EOS token id for a vocabulary of ``num_items`` items (``num_items + 1``)."""
    return num_items + 1


def bos_id(num_items: int) -> int:
    """BOS token id for a vocabulary of ``num_items`` items (``num_items + 2``)."""
    return num_items + 2


class Regenerator(nn.Module):
    """Transformer encoder-decoder that turns a sequence into patterns (DR4SR §4.2).

    Parameters
    ----------
    num_items : int
        Items of the dataset (ids 1..num_items).
    config : GeneratorConfig, optional
        The architecture (d_model, layers, heads, K, diversity, ...), or a
        method's config that builds one (`as_architecture`); default
        ``GeneratorConfig()``. The model keeps the architecture alone as
        ``config`` (and its checkpoint stores it alone).
    backend : {"auto", "torch", "triton"}, optional
        Backend of the fused ops (`fastregen.ops`); default the config's
        ``backend`` when it has one, else "auto". A run-time choice, not
        part of the architecture.

    Notes
    -----
    * The encoder memory ``m`` (B, L, D) is projected into K spaces
      ``m'_k`` by a two-layer MLP (D -> K*D -> K*D), giving (B, L, K, D).
    * The diversity promoter encodes the target pattern with its own
      transformer encoder, mean-pools it and maps it to ``pi`` (B, K) with an
      MLP and a softmax (or a Gumbel-softmax). The decoder cross-attends to
      ``sum_k pi_k m'_k`` (`fastregen.ops.mix_memories`).
    * Without a target pattern (inference) each memory ``m'_k`` is decoded
      on its own, so one sequence yields up to K patterns.
    """

    def __init__(self, num_items: int, config: GeneratorConfig | None = None, *, backend: str | None = None) -> None:
        super().__init__()
        backend = getattr(config, "backend", "auto") if backend is None else backend
        config = as_architecture(config)
        if isinstance(num_items, bool) or not isinstance(num_items, int) or num_items < 1:
            raise ValueError(f"num_items must be a positive int, got {num_items!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
        config.validate()
        self.config = config
        self.backend = backend
        self.num_items = num_items
        if self.train_softmax == "sampled" and config.num_negatives > num_items + 1:
            raise ValueError(f"num_negatives = {config.num_negatives} exceeds the {num_items + 1} ids a pattern can "
                             f"hold (items and EOS): lower it, or use train_softmax='full'")
        d, K = config.d_model, config.K
        # sparse gradients: at 700k items one dense (V, d) gradient per lookup was most of a step on a
        # CPU; the Trainer sums them into one dense buffer before the optimizer (same update)
        self.item_embedding = nn.Embedding(num_items + 3, d, padding_idx=PAD, sparse=True)
        self.position_embedding = nn.Embedding(max(config.max_len, config.max_pattern_len + 1), d)
        self.dropout = Dropout(config.dropout)

        def encoder():
            return Stack(EncoderLayer(d, config.n_heads, config.d_ff, config.dropout)
                         for _ in range(config.n_encoder_layers))

        self.encoder = encoder()
        self.decoder = Stack(DecoderLayer(d, config.n_heads, config.d_ff, config.dropout)
                             for _ in range(config.n_decoder_layers))
        self.memory_projection = nn.Sequential(nn.Linear(d, d * K), nn.ReLU(), nn.Linear(d * K, d * K))
        if K > 1:
            self.promoter_encoder = encoder()
            self.promoter_head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, K))
        self.apply(self._init)
        self.tau = float(config.tau_start)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # N(0, 0.02) as in the authors' code (and SASRec / BERT)
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()

    # ---------------------------------------------------------------- tokens
    @property
    def eos(self) -> int:
        return eos_id(self.num_items)

    @property
    def bos(self) -> int:
        return bos_id(self.num_items)

    @property
    def train_softmax(self) -> str:
        """The training softmax in force: ``"source"``, ``"full"`` or ``"sampled"`` (``"auto"`` resolved
        against the ``num_items + 1`` ids a pattern can hold, `fastregen.training.resolve_train_softmax`)."""
        if self.config.train_softmax == "source":
            return "source"
        return resolve_train_softmax(self.config.train_softmax, self.num_items + 1)

    def negative_sampler(self, frequencies=None) -> NegativeSampler:
        """The `NegativeSampler` of ``train_softmax="sampled"``: ``config.num_negatives`` uniform ids over
        the items and EOS, plus in-batch negatives when ``frequencies`` (num_items + 2,) says how often
        each id is a target (`fastregen.dr4sr.pretrain.target_frequencies`)."""
        return NegativeSampler(self.config.num_negatives, PAD + 1, self.bos, frequencies)

    @property
    def device(self) -> torch.device:
        return self.item_embedding.weight.device

    def init_item_embedding(self, weight: torch.Tensor) -> None:
        """Copy a target model's item table (shape (num_items + 1, D), row 0 = padding) into rows 0..num_items.

        EOS and BOS keep their random initialisation.
        """
        weight = torch.as_tensor(weight).detach()
        want = (self.num_items + 1, self.config.d_model)
        if weight.dim() != 2 or tuple(weight.shape) != want:
            raise ValueError(
                f"item table must have shape (num_items + 1, d_model) = {want}, got {tuple(weight.shape)}"
            )
        with torch.no_grad():
            self.item_embedding.weight[: self.num_items + 1].copy_(weight.to(self.item_embedding.weight))
            self.item_embedding.weight[PAD].zero_()

    def _embed(self, ids: torch.Tensor, packing: Packing | None = None) -> torch.Tensor:
        """Embedded ids (B, L) with positions and dropout: (B, L, D), or with ``packing`` its real tokens (N, D)."""
        L = ids.shape[1]
        if L > self.position_embedding.num_embeddings:
            raise ValueError(f"input of length {L} exceeds the {self.position_embedding.num_embeddings} positions")
        if packing is not None:
            return self.dropout(self.item_embedding(packing.pack(ids)) + self.position_embedding(packing.cols))
        pos = self.position_embedding(torch.arange(L, device=ids.device))
        return self.dropout(self.item_embedding(ids) + pos[None])

    # -------------------------------------------------------------- modules
    def encode(self, src: torch.Tensor) -> torch.Tensor:
        """K memories of right-padded sources (B, L) -> (B, L, K, D)."""
        if src.dim() != 2:
            raise ValueError(f"src must be (B, L), got {tuple(src.shape)}")
        pad = src == PAD
        if bool(pad.all(dim=1).any()):
            raise ValueError("every source sequence needs at least one item")
        memory = self.encoder(self._embed(src), key_padding=pad)
        B, L, D = memory.shape
        return self.memory_projection(memory).view(B, L, self.config.K, D)

    def promote(self, pattern: torch.Tensor, *, pack: bool = False) -> torch.Tensor:
        """Diversity promoter logits (B, K) of right-padded target patterns (B, P).

        ``pack``: run the promoter's encoder on the patterns' items alone (`Packing`).
        """
        B = pattern.shape[0]
        if self.config.K == 1:
            return torch.zeros(B, 1, device=pattern.device)
        pad = pattern == PAD
        if pack:
            packing = Packing(~pad)
            return self.promoter_head(packing.mean(self.promoter_encoder(self._embed(pattern, packing),
                                                                         packing=packing)))
        h = self.promoter_encoder(self._embed(pattern), key_padding=pad)
        return self.promoter_head(masked_mean(h, ~pad))

    def use_fused_attention(self, on: bool = True) -> None:
        """Run every attention layer's `forward` by the compiled ragged-attention kernel on CPU
        (`fastregen.ops.ragged_attention`; `PretrainConfig.fused_attention`), or by torch ops (``False``).
        Cached decoding (`decode_step`) always uses torch ops."""
        from .layers import MultiheadAttention

        for m in self.modules():
            if isinstance(m, MultiheadAttention):
                m.fused = bool(on)

    def mixture(self, logits: torch.Tensor) -> torch.Tensor:
        """pi (B, K) from promoter logits: softmax, or Gumbel-softmax at the current tau when training."""
        if self.config.diversity == "gumbel" and self.training:
            return F.gumbel_softmax(logits, tau=self.tau, dim=-1)
        return torch.softmax(logits, dim=-1)

    def anneal(self) -> None:
        """One step of the Gumbel temperature schedule: ``tau <- max(tau * tau_decay, tau_min)``."""
        self.tau = max(self.tau * self.config.tau_decay, self.config.tau_min)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor,
               mix: torch.Tensor | None = None, *, pack: bool = False) -> torch.Tensor:
        """Decoder states (B, T, D) for decoder inputs (B, T) reading memory (B, L, D), or the K
        memories (B, L, K, D) mixed per position by ``mix`` (B, T, K).

        ``pack``: compute the states of the real (right-padded) inputs alone
        (`Packing`); zeros at padding. The same function in another float
        order, and dropout draws other masks (fewer of them).
        """
        if pack:
            packing = Packing(tgt_in != PAD)
            states = self.decoder(self._embed(tgt_in, packing), memory, memory_padding=src_pad, mix=mix,
                                  packing=packing)
            return packing.unpack(states)
        return self.decoder(self._embed(tgt_in), memory, tgt_padding=tgt_in == PAD, memory_padding=src_pad, mix=mix)

    def start_decoding(self, memory: torch.Tensor, src_pad: torch.Tensor, steps: int) -> DecoderCache:
        """A `DecoderCache` for greedy decoding of up to ``steps`` positions (eval mode) from one memory
        (B, L, D), or from each of the K memories (B, L, K, D) of `encode` as K x B rows (row ``k B + b``:
        memory k of sequence b); ``src_pad`` (B, L)."""
        if self.training:
            raise RuntimeError("cached decoding is for inference: call model.eval() first (it applies no dropout)")
        if steps > self.position_embedding.num_embeddings:
            raise ValueError(f"{steps} decoder positions exceed the {self.position_embedding.num_embeddings} positions")
        return DecoderCache(self.decoder.layers, memory, src_pad, steps)

    def decode_step(self, ids: torch.Tensor, position: int, cache: DecoderCache) -> torch.Tensor:
        """Decoder states (B, D) at ``position`` given its inputs ``ids`` (B,), the earlier positions in ``cache``.

        ``decode(tgt_in, memory, src_pad)[:, t]`` for a prefix ``tgt_in`` (B, t + 1)
        without padding, computed from ``tgt_in[:, t]`` and the cache alone
        when steps ``0 .. t - 1`` went through the same cache (the
        hybrid-inference loop): each step costs one position, not the whole prefix.
        The same arithmetic in another float order (matmuls of other shapes), so
        the states match `decode`'s to ~1e-6, not bit for bit: a greedy choice
        can differ only at a near tie (tests/test_decode_cache.py).
        """
        pos = self.position_embedding(torch.tensor([position], device=ids.device))
        x = self.item_embedding(ids[:, None]) + pos[None]  # as _embed (dropout is off in eval mode)
        for i, layer in enumerate(self.decoder.layers):
            x = layer.step(x, cache, i, position)
        return x[:, 0]

    def segment_mixture(self, pattern: torch.Tensor, segments: torch.Tensor, *,
                        pack: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The promoter per segment (UniDS eq. 7): pi of every segment and the mixture of every decoding step.

        Parameters
        ----------
        pattern : torch.Tensor of int64, shape (B, P)
            Right-padded targets.
        segments : torch.Tensor of int64, shape (B, P)
            Segment of each target token, 0, 1, ... in order and contiguous
            within a row; -1 at padding.

        Returns
        -------
        (pi, mix)
            ``pi`` (n_segments, K): the promoter's mixture of each segment,
            computed from that segment's tokens alone (row-major order);
            ``mix`` (B, P + 1, K): the mixture each decoding step reads, that
            of the segment of the token it predicts (the final EOS: the last
            segment's), the paper's ``m_final`` of ``phi(j)``. ``pack``: as `promote`'s.
        """
        B, P = pattern.shape
        valid = segments >= 0
        if not bool(valid.any(1).all()):
            raise ValueError("every target needs at least one segment")
        per_row = segments.max(1).values + 1
        base = torch.cumsum(per_row, 0) - per_row
        g = torch.where(valid, base[:, None] + segments, 0)
        n_seg = int(per_row.sum())
        cols = torch.arange(P, device=pattern.device).expand(B, P)
        first = torch.full((n_seg,), P, dtype=torch.long, device=pattern.device)
        first = first.scatter_reduce(0, g[valid], cols[valid], reduce="amin")
        pos = cols - first[g]
        seg_len = torch.bincount(g[valid], minlength=n_seg)
        rows = torch.zeros(n_seg, int(seg_len.max()), dtype=pattern.dtype, device=pattern.device)
        rows[g[valid], pos[valid]] = pattern[valid]
        pi = self.mixture(self.promote(rows, pack=pack))
        last = (per_row - 1)[:, None].expand(B, 1)
        step_seg = torch.cat([torch.where(valid, segments, last.expand(B, P)), last], 1)
        return pi, pi[base[:, None] + step_seg]

    # ----------------------------------------------------------------- loss
    def _encode_pairs(self, src: torch.Tensor, src_index: torch.Tensor | None):
        """Encode each distinct source once: its K memories (S, L, K, D), each pair's source (B, L) and
        ``src_index`` (the memories stay per source: `_per_pair` or `mix_memories` index them by pair)."""
        memories = self.encode(src)
        if src_index is None:
            return memories, src, None
        return memories, src[src_index], src_index

    @staticmethod
    def _per_pair(memories: torch.Tensor, src_index: torch.Tensor | None) -> torch.Tensor:
        """The K memories of each pair (B, L, K, D) from those of the sources."""
        return memories if src_index is None else memories[src_index]

    def loss(self, src: torch.Tensor, pattern: torch.Tensor, src_index: torch.Tensor | None = None,
             reduction: str = "mean", segments: torch.Tensor | None = None, *,
             sampler: NegativeSampler | None = None, generator: torch.Generator | None = None,
             pack: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Teacher-forced cross-entropy of the patterns given the sources (paper eq. 2).

        Parameters
        ----------
        src : torch.Tensor, shape (S, L), int64
            Right-padded input sequences.
        pattern : torch.Tensor, shape (B, P), int64
            Right-padded target patterns (without BOS/EOS).
        src_index : torch.Tensor of int64, shape (B,), optional
            Row of ``src`` each pattern is decoded from, so that a source
            shared by several patterns is encoded once; default: row b for
            pattern b (S = B).
        reduction : {"mean", "sum"}, default "mean"
            Cross-entropy per scored target token, or summed over them.
        segments : torch.Tensor of int64, shape (B, P), optional
            Segment of each target token (-1 at padding): the promoter then
            weighs the memories per segment (`segment_mixture`, UniDS)
            instead of once per target (DR4SR).
        sampler : NegativeSampler, optional
            With ``train_softmax`` resolving to ``"sampled"``: draws the
            batch's candidates (one draw shared by the K memories); default
            `negative_sampler` without in-batch negatives.
        generator : torch.Generator, optional
            Feeds the sampler's draws (the Trainer passes its own, whose
            state its checkpoints keep); default torch's global generator.
        pack : bool, default False
            Run the decoder and the promoter on the targets' real tokens
            alone (`decode`, `fastregen.generator.PretrainConfig.pack_targets`):
            the same loss up to float rounding, with other dropout masks.

        Returns
        -------
        (ce, entropy, pi)
            Cross-entropy over the target tokens (items and the final EOS),
            mean entropy of ``pi`` and ``pi`` itself (B, K), or
            (n_segments, K) with ``segments``. With
            ``diversity="hard"`` (K > 1) each pattern is scored by the memory
            that decodes it best, ``pi`` is one-hot on that memory and the
            entropy is 0 (its "mean" divides by every target token).
        """
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        candidates = None
        if self.train_softmax == "sampled":
            _, tgt_out = self._teacher_forcing(pattern)
            sampler = sampler or self.negative_sampler()
            candidates = sampler.sample(tgt_out[tgt_out != PAD], generator)
        memories, src, src_index = self._encode_pairs(src, src_index)
        if self.config.diversity == "hard" and self.config.K > 1:
            if segments is not None:
                raise ValueError("diversity='hard' picks one memory per target; it has no per-segment form")
            nll, _ = self._memory_nll(self._per_pair(memories, src_index), src, pattern, candidates,
                                      pack=pack)  # (K, B)
            best = nll.detach().argmin(0)
            ce = nll.gather(0, best[None]).sum()
            if reduction == "mean":
                ce = ce / (int((pattern != PAD).sum()) + pattern.shape[0])  # items + one EOS per pattern
            pi = F.one_hot(best, self.config.K).to(nll.dtype)
            return ce, torch.zeros((), device=src.device), pi
        pi, logits, labels = self._mixture_logits(memories, src, pattern, segments, src_index, pack=pack)
        ce = self._cross_entropy(logits, labels, reduction, candidates)
        entropy = -(pi * torch.log(pi + 1e-12)).sum(-1).mean()
        return ce, entropy, pi

    def heldout_nll(self, src: torch.Tensor, pattern: torch.Tensor, src_index: torch.Tensor | None = None,
                    segments: torch.Tensor | None = None, *, pack: bool = False) -> tuple[float, float, int]:
        """Summed NLL of a batch with the promoter's mixture (what `loss`
        minimises) and with the best single memory per pattern (what
        inference can reach, see `memory_nll`), running the encoder once.

        Returns
        -------
        (mixture, best, tokens) : float, float, int
            NLL sums and the number of scored tokens (items and one EOS per
            pattern, less any item the restricted softmax cannot score
            because truncation dropped it from the source). With the soft
            or Gumbel mixture ``mixture / tokens`` is `loss`'s cross-entropy;
            with ``diversity="hard"`` the two sums are equal, and `loss`
            divides by every target token, scored or not. ``pack``: as `loss`'s.
        """
        memories, src, src_index = self._encode_pairs(src, src_index)
        nll, tokens = self._memory_nll(self._per_pair(memories, src_index), src, pattern, pack=pack)
        best = float(nll.min(0).values.sum())
        if self.config.diversity == "hard" and self.config.K > 1:
            return best, best, tokens
        _, logits, labels = self._mixture_logits(memories, src, pattern, segments, src_index, pack=pack)
        mixture = self._cross_entropy(logits, labels, "sum")
        return float(mixture), best, tokens

    def memory_nll(self, src: torch.Tensor, pattern: torch.Tensor,
                   src_index: torch.Tensor | None = None, *, pack: bool = False) -> torch.Tensor:
        """Teacher-forced NLL of each pattern when the decoder reads one memory alone.

        This is what inference sees (no target pattern, so no promoter: each
        memory is decoded on its own), unlike `loss`, whose mixture weights
        ``pi`` come from the target pattern itself. With a soft mixture the
        two can differ widely; ``memory_nll(...).min(0)`` is the loss with
        the best memory chosen per pattern.

        Returns
        -------
        torch.Tensor, shape (K, B), float
            Summed over each pattern's tokens (items and the final EOS).
            ``pack``: as `loss`'s.
        """
        memories, src, src_index = self._encode_pairs(src, src_index)
        return self._memory_nll(self._per_pair(memories, src_index), src, pattern, pack=pack)[0]

    def _decoder_logits(self, memory: torch.Tensor, src: torch.Tensor, pattern: torch.Tensor, pack: bool = False):
        """Teacher-forced logits and labels (`_logits`) decoding the patterns from one memory (B, L, D)."""
        tgt_in, tgt_out = self._teacher_forcing(pattern)
        states = self.decode(tgt_in, memory, src == PAD, pack=pack)
        return self._logits(states, src, tgt_out)

    def _mixture_logits(self, memories: torch.Tensor, src: torch.Tensor, pattern: torch.Tensor,
                        segments: torch.Tensor | None = None, src_index: torch.Tensor | None = None,
                        pack: bool = False):
        """pi (B, K) from the promoter, and the logits and labels of decoding ``sum_k pi_k m'_k``;
        with ``segments``, pi per segment and each step decoded from its segment's mixture.
        ``memories`` are the sources' (S, L, K, D), pair b reading source ``src_index[b]``."""
        if segments is not None and self.config.K > 1:
            pi, mix = self.segment_mixture(pattern, segments, pack=pack)
            tgt_in, tgt_out = self._teacher_forcing(pattern)
            states = self.decode(tgt_in, self._per_pair(memories, src_index), src == PAD, mix=mix, pack=pack)
            return (pi, *self._logits(states, src, tgt_out))
        pi = self.mixture(self.promote(pattern, pack=pack))
        mixed = mix_memories(memories, pi, src_index, backend=self.backend)
        return (pi, *self._decoder_logits(mixed, src, pattern, pack))

    def _memory_nll(self, memories: torch.Tensor, src: torch.Tensor, pattern: torch.Tensor,
                    candidates=None, pack: bool = False) -> tuple[torch.Tensor, int]:
        """(K, B) NLL, summed over each pattern's tokens, with each of the K
        memories (B, L, K, D) read alone, and the number of scored tokens."""
        out = []
        for k in range(self.config.K):
            logits, labels = self._decoder_logits(memories[:, :, k], src, pattern, pack)
            nll = self._cross_entropy(logits, labels, "none", candidates)
            out.append(nll.view(src.shape[0], -1).sum(1))
        return torch.stack(out), int((labels != -100).sum())

    def _teacher_forcing(self, pattern: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs (BOS + pattern) and targets (pattern + EOS), both (B, P + 1)."""
        B = pattern.shape[0]
        lengths = (pattern != PAD).sum(1)
        bos = torch.full((B, 1), self.bos, dtype=pattern.dtype, device=pattern.device)
        tgt_in = torch.cat([bos, pattern], 1)
        tgt_out = torch.cat([pattern, torch.zeros_like(bos)], 1)
        tgt_out[torch.arange(B, device=pattern.device), lengths] = self.eos
        return tgt_in, tgt_out

    def _logits(self, states: torch.Tensor, src: torch.Tensor, tgt_out: torch.Tensor):
        """Training logits (B, T, C) and labels (B, T), -100 where nothing is scored.

        With ``train_softmax`` "full" or "sampled" the decoder states
        (B, T, D) come back in place of the logits, which would be
        (B, T, V): `_cross_entropy` scores them against the item table (in
        chunks at a large vocabulary) or the sampled candidates.
        """
        B = src.shape[0]
        table = self.item_embedding.weight
        if self.train_softmax != "source":
            return states, tgt_out.masked_fill(tgt_out == PAD, -100)
        # normalise over the source's distinct items plus EOS only
        cand = torch.cat([src, torch.full((B, 1), self.eos, dtype=src.dtype, device=src.device)], 1)
        S = cand.shape[1]
        earlier = torch.tril(torch.ones(S, S, dtype=torch.bool, device=src.device), -1)
        dup = ((cand[:, :, None] == cand[:, None, :]) & earlier).any(-1)
        valid = (cand != PAD) & ~dup
        logits = torch.einsum("btd,bsd->bts", states, F.embedding(cand, table, sparse=True))
        logits = logits.masked_fill(~valid[:, None, :], float("-inf"))
        match = (tgt_out[:, :, None] == cand[:, None, :]) & valid[:, None, :]
        labels = match.float().argmax(-1)
        labels = labels.masked_fill(~match.any(-1) | (tgt_out == PAD), -100)
        return logits, labels

    def _cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str,
                       candidates=None) -> torch.Tensor:
        """Cross-entropy of `_logits`'s output (B, T, C) against labels (B, T) (-100: not scored).

        ``reduction``: "sum", "mean" (over scored tokens) or "none" ((B*T,), 0 where not scored).
        With ``train_softmax`` "full" or "sampled" ``logits`` are decoder
        states and the softmax runs over every id a pattern can hold (items
        and EOS, not PAD or BOS) by
        `fastregen.training.full_softmax_cross_entropy`, or, given
        ``candidates`` (ids, log weights: `NegativeSampler.sample`), over
        the target and the candidates with the log-Q correction
        (`fastregen.training.sampled_softmax_cross_entropy`). Held-out
        scores (`heldout_nll`, `memory_nll`) pass no candidates: a
        regenerator trained with the sampled softmax is scored exactly.
        """
        if self.train_softmax == "source":
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                                   reduction=reduction)
        flat = labels.reshape(-1)
        scored = flat != -100
        states = logits.reshape(-1, logits.shape[-1])[scored]
        if candidates is not None:
            per = sampled_softmax_cross_entropy(states, self.item_embedding.weight, flat[scored], *candidates)
        else:
            per = full_softmax_cross_entropy(states, self.item_embedding.weight, flat[scored],
                                             vocab_start=PAD + 1, vocab_stop=self.bos)
        if reduction == "sum":
            return per.sum()
        if reduction == "mean":
            return per.sum() / scored.sum().clamp_min(1)
        out = per.new_zeros(flat.shape)
        out[scored] = per
        return out


def save_checkpoint(model: Regenerator, path, **extra) -> None:
    """Write the regenerator (weights, architecture, vocabulary size, extra fields) atomically."""
    from .._io import atomic_open

    record = {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "num_items": model.num_items,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "tau": model.tau,
    }
    record.update(extra)
    with atomic_open(path, "wb") as f:
        torch.save(record, f)


def load_checkpoint(path, num_items: int | None = None, device: str | torch.device = "cpu",
                    backend: str = "auto") -> tuple[Regenerator, dict]:
    """Read a checkpoint written by `save_checkpoint`.

    Checkpoints written before the model stored its architecture alone hold
    a whole `fastregen.dr4sr.RegenConfig` (or UniDS's) under ``"config"``:
    its architecture fields are taken and the rest ignored (decoding options
    are `fastregen.generator.hybrid_inference`'s arguments).

    Parameters
    ----------
    path : path-like
    num_items : int, optional
        Item count of the data the regenerator will be used on; a checkpoint
        trained on a different vocabulary is a ValueError.
    device : str or torch.device
    backend : {"auto", "torch", "triton"}, default "auto"
        Backend of the fused ops (`Regenerator`).

    Returns
    -------
    (model, record)
        The model in eval mode and the whole saved record.
    """
    record = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != _FORMAT:
        raise ValueError(f"{path} is not a fastregen regenerator checkpoint")
    if num_items is not None and int(record["num_items"]) != int(num_items):
        raise ValueError(
            f"checkpoint {path} was trained on a vocabulary of {record['num_items']} items, "
            f"but the data has {num_items}: regenerate with a checkpoint trained on this dataset"
        )
    names = {f.name for f in dataclasses.fields(GeneratorConfig)}
    config = GeneratorConfig(**{k: v for k, v in dict(record["config"]).items() if k in names})
    model = Regenerator(int(record["num_items"]), config, backend=backend)
    model.load_state_dict(record["state_dict"])
    model.tau = float(record.get("tau", config.tau_start))
    return model.to(device).eval(), record
