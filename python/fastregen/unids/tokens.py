"""Pattern-token sequences (UniDS §4.3.1, uniform data formalisation): [P1, T1, P2, T2, ..., Pk, Tk].

Every sequence, cut into consecutive patterns by `fastregen.patterns.segment`,
becomes its segments each followed by one *T token* carrying side information
about that segment. Which information is chosen per stage (UniDS: "user,
session or domain information chosen per stage"; the paper never defines the
T vocabulary, so these are ours):

``"time"``
    The gap to the next segment, ``min(floor(log2(1 + seconds)), time_buckets - 1)``
    (HSTU's bucketing), or *end* for the last segment (the gap after it would
    be the validation target's time). Needs timestamps.
``"session"``
    Whether a new session starts after the segment (gap > ``session_gap``
    seconds): *same*, *new* or *end*. Needs timestamps.
``"position"``
    How recent the segment is: ``min(floor(log2(1 + segments after it)),
    position_buckets - 1)``. Works on any data.
``"category"``
    The category of the segment's last item (``data.meta["item_category"]``,
    e.g. from a RecBole ``.item`` file); 0 for an item without one.
``"none"``
    No T token: the segments alone (the "w/o UF" ablation).
``"auto"``
    ``"time"`` when the data has timestamps, else ``"position"``.

Token ids (`TokenVocab`): PAD 0, items ``1..num_items`` as in the data, then
one block of ids per T kind in use (in the order time, session, position,
category), then one *stage token* per stage (what a generator is told to
produce). A generator's own special tokens (the regenerator's EOS and BOS)
come after all of these. Removing every id above ``num_items``
(`TokenVocab.strip`) gives back the segmented item sequence exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import SequenceDataset

__all__ = ["TOKEN_KINDS", "TokenVocab", "build_vocab", "resolve_kind", "segment_tokens", "pattern_token_sequences"]

#: T-token kinds, in the order of their id blocks.
TOKEN_KINDS = ("time", "session", "position", "category")
_NEEDS_TIME = ("time", "session")


@dataclass(frozen=True)
class TokenVocab:
    """The token ids of pattern-token sequences.

    Attributes
    ----------
    num_items : int
        Items keep their ids 1..num_items.
    blocks : tuple of (kind, start, size)
        T-token id ranges ``start .. start + size - 1``, after the items.
    stages : tuple of str
        Stages with a stage token, ids right after the last block.
    time_buckets, position_buckets : int
        Sizes used by `segment_tokens`.
    session_gap : int
        Seconds between two items that start a new session.
    """

    num_items: int
    blocks: tuple = ()
    stages: tuple = ()
    time_buckets: int = 32
    position_buckets: int = 8
    session_gap: int = 3600

    @property
    def size(self) -> int:
        """Largest token id (items, T tokens and stage tokens): a generator's ``num_items``."""
        end = self.num_items + sum(b[2] for b in self.blocks)
        return end + len(self.stages)

    def block(self, kind: str) -> tuple[int, int]:
        """``(start, size)`` of a T-token kind's ids."""
        for k, start, size in self.blocks:
            if k == kind:
                return start, size
        raise ValueError(f"no {kind!r} tokens in this vocabulary (it has {[b[0] for b in self.blocks]})")

    def stage_token(self, stage: str) -> int:
        """The id of a stage's token."""
        if stage not in self.stages:
            raise ValueError(f"unknown stage {stage!r}; this vocabulary has {list(self.stages)}")
        return self.num_items + sum(b[2] for b in self.blocks) + 1 + self.stages.index(stage)

    def to_dict(self) -> dict:
        return {"num_items": self.num_items, "blocks": [list(b) for b in self.blocks], "stages": list(self.stages),
                "time_buckets": self.time_buckets, "position_buckets": self.position_buckets,
                "session_gap": self.session_gap}

    @classmethod
    def from_dict(cls, d: dict) -> "TokenVocab":
        return cls(int(d["num_items"]), tuple(tuple(b) for b in d["blocks"]), tuple(d["stages"]),
                   int(d["time_buckets"]), int(d["position_buckets"]), int(d["session_gap"]))

    def strip(self, ds: SequenceDataset) -> SequenceDataset:
        """The item sequences of token sequences: every T and stage token removed.

        Timestamps, when ``ds`` has them, follow the items.
        """
        keep = ds.items <= self.num_items
        seq_of = np.repeat(np.arange(len(ds)), ds.lengths)
        n_keep = np.bincount(seq_of[keep], minlength=len(ds))
        offsets = np.zeros(len(ds) + 1, dtype=np.int64)
        np.cumsum(n_keep, out=offsets[1:])
        ts = None if ds.timestamps is None else ds.timestamps[keep]
        return SequenceDataset(offsets, ds.items[keep], num_items=self.num_items, timestamps=ts, name=ds.name)


def resolve_kind(kind: str, data: SequenceDataset, option: str = "token") -> str:
    """``kind`` with ``"auto"`` filled in; a clear error when the data cannot give it.

    Parameters
    ----------
    kind : {"time", "session", "position", "category", "none", "auto"}
    data : SequenceDataset
    option : str
        The name of the option that asked for ``kind`` (named in errors).
    """
    valid = TOKEN_KINDS + ("none", "auto")
    if kind not in valid:
        raise ValueError(f"{option} = {kind!r} is not a T-token kind; choose one of {', '.join(valid)}")
    if kind == "auto":
        return "time" if data.timestamps is not None else "position"
    if kind in _NEEDS_TIME and data.timestamps is None:
        name = data.name or "the data"
        raise ValueError(f"{option} = {kind!r} needs timestamps, but {name} has none; "
                         f"set {option} to 'position' (or 'category'/'none')")
    if kind == "category" and "item_category" not in data.meta:
        name = data.name or "the data"
        raise ValueError(f"{option} = 'category' needs item categories (meta['item_category'], e.g. a RecBole "
                         f".item file), but {name} has none; set {option} to 'position'")
    return kind


def build_vocab(num_items: int, kinds, stages=(), *, categories: int = 0, time_buckets: int = 32,
                position_buckets: int = 8, session_gap: int = 3600) -> TokenVocab:
    """The vocabulary for the T kinds in use (``"none"`` ignored) and one token per stage.

    ``categories`` is the number of item categories (ids 1..C; the block
    holds C + 1 tokens, 0 = none).
    """
    for name, v in (("time_buckets", time_buckets), ("position_buckets", position_buckets)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if isinstance(session_gap, bool) or not isinstance(session_gap, int) or session_gap < 0:
        raise ValueError(f"session_gap must be an int >= 0 (seconds), got {session_gap!r}")
    sizes = {"time": time_buckets + 1, "session": 3, "position": position_buckets, "category": int(categories) + 1}
    used = set(kinds) - {"none"}
    blocks, start = [], num_items + 1
    for kind in TOKEN_KINDS:
        if kind in used:
            blocks.append((kind, start, sizes[kind]))
            start += sizes[kind]
    return TokenVocab(int(num_items), tuple(blocks), tuple(stages), time_buckets, position_buckets, session_gap)


def segment_tokens(seg, kind: str, vocab: TokenVocab) -> np.ndarray:
    """The T token of every segment of a `fastregen.patterns.Segmentation`.

    Returns
    -------
    np.ndarray of int64, shape (n_segments,)
        Token ids in ``vocab``'s block of ``kind``.
    """
    data = seg.data
    n_seg = seg.num_segments
    start, size = vocab.block(kind)
    seq_of = np.repeat(np.arange(len(data)), np.diff(seg.offsets))
    last = np.zeros(n_seg, dtype=bool)
    if n_seg:
        last[seg.offsets[1:][np.diff(seg.offsets) > 0] - 1] = True
    if kind in _NEEDS_TIME:
        ts = data.timestamps
        end_t = ts[seg.bounds[1:] - 1] if n_seg else np.zeros(0, np.int64)
        nxt = np.where(last, seg.bounds[:-1], np.minimum(seg.bounds[1:], max(data.num_interactions - 1, 0)))
        gap = np.maximum(ts[nxt] - end_t, 0) if n_seg else np.zeros(0, np.int64)
        if kind == "time":
            value = np.minimum(np.floor(np.log2(1.0 + gap)).astype(np.int64), vocab.time_buckets - 1)
            value = np.where(last, vocab.time_buckets, value)
        else:
            value = np.where(last, 2, (gap > vocab.session_gap).astype(np.int64))
    elif kind == "position":
        after = seg.offsets[seq_of + 1] - 1 - np.arange(n_seg)
        value = np.minimum(np.floor(np.log2(1.0 + after)).astype(np.int64), vocab.position_buckets - 1)
    elif kind == "category":
        cat = np.asarray(data.meta["item_category"], dtype=np.int64)
        value = cat[data.items[seg.bounds[1:] - 1]] if n_seg else np.zeros(0, np.int64)
        if value.size and value.max() >= size:
            raise ValueError(f"item category {int(value.max())} is beyond the vocabulary's {size - 1} categories")
    else:
        raise ValueError(f"unknown T-token kind {kind!r}; choose one of {', '.join(TOKEN_KINDS)}")
    return start + value


def pattern_token_sequences(seg, kind: str, vocab: TokenVocab) -> tuple[SequenceDataset, np.ndarray]:
    """[P1, T1, ..., Pk, Tk] for every sequence of a segmentation (``kind="none"``: [P1, ..., Pk]).

    Parameters
    ----------
    seg : fastregen.patterns.Segmentation
    kind : {"time", "session", "position", "category", "none"}
    vocab : TokenVocab

    Returns
    -------
    (tokens, segment_end) : SequenceDataset, np.ndarray of int64 (n_segments,)
        The token sequences (one per sequence of ``seg.data``; ``num_items`` =
        ``vocab.size``; timestamps follow the items, a T token takes its
        segment's last one) and, for every segment, the position in
        ``tokens.items`` just past its T token (past its last item for
        ``"none"``), so that segment k is ``tokens.items[start:segment_end[k]]``
        with ``start = segment_end[k - 1]`` inside a sequence.
    """
    data = seg.data
    n_seg = seg.num_segments
    extra = 0 if kind == "none" else 1
    offsets = data.offsets + extra * seg.offsets
    total = data.num_interactions + extra * n_seg
    items = np.empty(total, dtype=np.int64)
    seg_len = np.diff(seg.bounds)
    seg_id = np.repeat(np.arange(n_seg), seg_len)
    pos = np.arange(data.num_interactions) + extra * seg_id
    items[pos] = data.items
    end = seg.bounds[1:] + extra * np.arange(1, n_seg + 1)
    ts = None
    if data.timestamps is not None:
        ts = np.empty(total, dtype=np.int64)
        ts[pos] = data.timestamps
    if extra:
        items[end - 1] = segment_tokens(seg, kind, vocab)
        if ts is not None:
            ts[end - 1] = data.timestamps[seg.bounds[1:] - 1]
    out = SequenceDataset(offsets, items, num_items=vocab.size, timestamps=ts, name=f"{data.name}:pt-{kind}")
    return out, end.astype(np.int64)
