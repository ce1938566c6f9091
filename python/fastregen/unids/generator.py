"""The uniform generator (UniDS §4.3.2, eq. 7-8): the DR4SR regenerator on pattern-token sequences.

One generator serves every stage. Its training pairs come from every stage's
pattern-token sequences (`fastregen.unids.tokens`):

* source: a stage token, then the most recent whole segments of a user's
  [P1, T1, ..., Pk, Tk] that fit in ``max_len - 1`` tokens;
* target (``target="segment"``, the default): one segment ``[P_i, T_i]`` of
  that window per pair, DR4SR's pairs with the segments as patterns; or
  (``target="sequence"``, eq. 7-8 read literally) the whole window
  [P1, T1, ..., Pk, Tk], every token tagged with its segment.

The model is `fastregen.generator.Regenerator`, over the token vocabulary
(items, T tokens and stage tokens are its "items"; its EOS and BOS come
after them): the encoder memory is projected into K memories and the
diversity promoter weighs them *per segment*, ``pi_i = Softmax(MLP(h_{P_i}))``
from segment i's tokens alone, and every target token j is decoded from
its segment's mixture ``m_final(phi(j)) = sum_k pi_{phi(j),k} m'_k``
(`Regenerator.segment_mixture`; the cross-attention reads the K memories'
keys and values mixed per position, which is exactly attention to the mixed
memory). The teacher-forced cross-entropy over a target is UniDS's
``L_pretrain = sum_i [L_pattern(P_i) + L_token(T_i)]`` (eq. 8). It is
trained by `fastregen.generator.pretrain` (the one Trainer).

Diversity term: UniDS writes ``L = L_rec + L_div`` with ``L_div = -sum pi log pi
= H(pi)``; minimising it *lowers* the promoter's entropy, which is not the
diversity the paper says the term is for. We minimise ``L_rec - lambda H(pi)``
(``RegenConfig.entropy_weight = -lambda``), which raises it; set
``diversity_weight`` to 0 to drop the term, or negative for the paper's
sign as written.

Generation reuses DR4SR's hybrid decoding (`fastregen.generator.hybrid_inference`):
every memory decodes each (stage, user) source alone (no target, so no
promoter), restrictive steps choosing among the source's tokens, generative
ones among all; items never repeat within a decoded sequence, T and stage
tokens may. The T and stage tokens are then stripped (`TokenVocab.strip`),
item sequences shorter than ``min_items`` dropped and repeats removed. A
budget caps the generated items (UniDS's Table 2 has about 1.7 generated
tokens per original one on ML-1M).

Timestamps of generated sequences: an item the user interacted with takes
the time of that interaction (its last occurrence in the training sequence);
an item the generator brought in from elsewhere takes the time of the item
before it in the generated sequence (of the one after it when it comes first;
the user's last training time when none matches). So a time-aware model
(HSTU) reads generated data on the clock of the user it came from.
"""

from __future__ import annotations

import numpy as np

from ..data import SequenceDataset
from ..generator import GeneratorConfig, PretrainConfig, hybrid_inference, load_checkpoint, pretrain, save_checkpoint
from ..patterns import PretrainPairs
from .tokens import TokenVocab

__all__ = ["build_sources", "build_pairs", "train_generator", "load_generator", "generate", "stamp"]


def _segment_starts(seg, end: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Start of every segment in the token array (the previous segment's end within a sequence)."""
    n_seg = end.size
    seq_of = np.repeat(np.arange(offsets.size - 1), np.diff(seg.offsets))
    start = np.r_[0, end[:-1]].astype(np.int64) if n_seg else np.zeros(0, np.int64)
    first = np.ones(n_seg, dtype=bool)
    if n_seg:
        first[1:] = seq_of[1:] != seq_of[:-1]
    start[first] = offsets[seq_of[first]]
    return start


def build_sources(stage_tokens: dict, vocab: TokenVocab, max_len: int, use_stage_tokens: bool = True):
    """The generator's input of every (stage, user): its stage token, then its most recent whole segments.

    Parameters
    ----------
    stage_tokens : dict of stage to (tokens, segment_end, seg)
        `pattern_token_sequences` of each stage and its segmentation.
    vocab : TokenVocab
    max_len : int
        Tokens per source, the stage token included.
    use_stage_tokens : bool, default True

    Returns
    -------
    (sources, info)
        ``sources`` a `SequenceDataset` of token ids, one row per (stage,
        user) in stage order (empty rows for users without a segment);
        ``info`` a dict of int64 arrays: ``stage`` (index into the stages)
        and ``user`` per source row, and per segment of every stage
        (concatenated in stage order): ``seg_source`` (its source row),
        ``seg_start``/``seg_end`` (its tokens in ``sources.items``, -1 when it
        falls outside the window) and ``seg_items`` (its number of items).
    """
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2 (a stage token and a segment), got {max_len}")
    budget = max_len - (1 if use_stage_tokens else 0)
    shift = 1 if use_stage_tokens else 0
    rows, stage_of, user_of = [], [], []
    seg_source, seg_start, seg_end, seg_items = [], [], [], []
    base = row = 0  # token position and row index of the stage's first source
    for si, (stage, (tokens, end, seg)) in enumerate(stage_tokens.items()):
        start = _segment_starts(seg, end, tokens.offsets)
        seq_of = np.repeat(np.arange(len(tokens)), np.diff(seg.offsets))
        seq_end = tokens.offsets[1:]
        # the window: the most recent segments that fit in `budget` tokens together
        inside = start >= seq_end[seq_of] - budget
        win_start = seq_end.copy()
        np.minimum.at(win_start, seq_of[inside], start[inside])
        lens = (seq_end - win_start) + shift * (win_start < seq_end)
        row_base = base + np.r_[0, np.cumsum(lens)].astype(np.int64)
        for u in range(len(tokens)):
            toks = tokens.items[win_start[u]:seq_end[u]].tolist()
            rows.append(([vocab.stage_token(stage)] if shift and toks else []) + toks)
        stage_of.append(np.full(len(tokens), si, dtype=np.int64))
        user_of.append(np.arange(len(tokens), dtype=np.int64))
        first = row_base[seq_of] + (start - win_start[seq_of]) + shift
        seg_source.append(row + seq_of)
        seg_start.append(np.where(inside, first, -1))
        seg_end.append(np.where(inside, first + (end - start), -1))
        seg_items.append(np.diff(seg.bounds))
        base, row = int(row_base[-1]), row + len(tokens)
    sources = SequenceDataset.from_lists(rows, num_items=vocab.size, name="unids-sources")
    info = {"stage": np.concatenate(stage_of), "user": np.concatenate(user_of),
            "seg_source": np.concatenate(seg_source), "seg_start": np.concatenate(seg_start),
            "seg_end": np.concatenate(seg_end), "seg_items": np.concatenate(seg_items)}
    return sources, info


def build_pairs(sources: SequenceDataset, info: dict, *, target: str = "segment", min_items: int = 2,
                max_pairs: int = 10, seed: int = 0) -> PretrainPairs:
    """The generator's pre-training pairs.

    Parameters
    ----------
    sources, info
        From `build_sources`.
    target : {"segment", "sequence"}, default "segment"
        ``"sequence"``: one pair per source, its target every segment of the
        window ([P1, T1, ..., Pk, Tk] without the stage token), with
        ``segments`` naming each token's segment, so the promoter weighs the
        memories per segment (UniDS eq. 7-8). ``"segment"``: one pair per
        segment of ``min_items`` items or more, at most ``max_pairs`` per
        source drawn uniformly without replacement (seeded): DR4SR's pairs
        with the segments as its patterns.
    min_items, max_pairs, seed
        See ``target``.
    """
    if target not in ("sequence", "segment"):
        raise ValueError(f"target must be 'sequence' or 'segment', got {target!r}")
    if target == "sequence":
        inside = np.flatnonzero(info["seg_start"] >= 0)
        src = info["seg_source"][inside]
        rows = np.unique(src)
        seg_rank = np.arange(src.size) - np.searchsorted(src, src)  # segments are grouped by source, in order
        first = np.searchsorted(src, rows)
        last = np.searchsorted(src, rows, side="right") - 1
        starts, ends = info["seg_start"][inside][first], info["seg_end"][inside][last]
        seg_tokens = info["seg_end"][inside] - info["seg_start"][inside]
        seg_ids = np.repeat(seg_rank, seg_tokens) + 1
        pair_src, pattern_index = rows, rows
    else:
        cand = np.flatnonzero((info["seg_start"] >= 0) & (info["seg_items"] >= min_items))
        src = info["seg_source"][cand]
        key = np.random.default_rng(seed).random(cand.size)
        order = np.lexsort((key, src))
        cand, src = cand[order], src[order]
        rank = np.arange(src.size) - np.searchsorted(src, src)
        keep = rank < max_pairs
        cand, src = cand[keep], src[keep]
        order = np.lexsort((cand, src))  # by source, then segment: a deterministic layout
        cand, src = cand[order], src[order]
        starts, ends = info["seg_start"][cand], info["seg_end"][cand]
        pair_src, pattern_index, seg_ids = src, cand, None
    lens = ends - starts
    offsets = np.zeros(lens.size + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    gather = np.repeat(starts - offsets[:-1], lens) + np.arange(int(offsets[-1]))
    targets = SequenceDataset(offsets, sources.items[gather], num_items=sources.num_items, name="unids-targets")
    segments = None if seg_ids is None else SequenceDataset(offsets, seg_ids, name="unids-segments")
    return PretrainPairs(sequences=sources.subset(pair_src), patterns=targets, source=pair_src,
                         pattern_index=pattern_index, segments=segments)


# The DR4SR mining options of the RegenConfig a UniDS generator was configured with before the generator had
# configs of its own (always their defaults): kept in its epoch checkpoint's fingerprint so that a pre-training
# interrupted then still resumes.
_LEGACY_IDENTITY = {"max_span": 5, "min_support": 2, "max_pairs_per_sequence": 10}


def train_generator(pairs: PretrainPairs, vocab: TokenVocab, architecture: GeneratorConfig,
                    config: PretrainConfig, checkpoint=None):
    """Pre-train the generator (`fastregen.generator.pretrain`) and save it with its vocabulary.

    With a ``checkpoint`` an interrupted pre-training resumes from its epoch
    checkpoint (``generator.resume.pt``); one of another config or other
    pairs is refused with a ValueError naming the fields (`fastregen.pipeline`'s
    policy: an epoch checkpoint never yields to other options).

    Returns ``(model, history)``.
    """
    model, history = pretrain(pairs, vocab.size, config, architecture=architecture, checkpoint=checkpoint,
                              fingerprint=_LEGACY_IDENTITY)
    if checkpoint is not None:
        save_checkpoint(model, checkpoint, history=history, complete=True, vocab=vocab.to_dict())
    return model, history


def load_generator(path, vocab: TokenVocab, device="cpu", backend: str = "auto"):
    """A generator checkpoint, checked against this run's token vocabulary.

    Returns ``(model, record)``; ``record["complete"]`` says whether training finished.

    Raises
    ------
    ValueError
        The checkpoint was trained on another token vocabulary (or is a DR4SR
        regenerator, which has none).
    """
    model, record = load_checkpoint(path, device=device, backend=backend)
    saved = record.get("vocab")
    if saved is None:
        if record.get("complete"):
            raise ValueError(f"{path} is not a UniDS generator checkpoint (it records no token vocabulary)")
        return model, record  # written during training: only complete checkpoints carry the vocabulary
    if saved != vocab.to_dict():
        raise ValueError(
            f"generator checkpoint {path} was trained on another token vocabulary ({_describe(saved)}) than "
            f"this run's ({_describe(vocab.to_dict())}); use another output folder or delete the checkpoint")
    return model, record


def _describe(v: dict) -> str:
    blocks = ", ".join(f"{b[0]} x{b[2]}" for b in v["blocks"]) or "no T tokens"
    return f"{v['num_items']} items, {blocks}, stages {v['stages']}"


def stamp(gen: SequenceDataset, users: np.ndarray, train: SequenceDataset) -> np.ndarray:
    """Timestamps of generated sequences on the clock of the user each came from (see the module docstring).

    Parameters
    ----------
    gen : SequenceDataset
        Generated item sequences.
    users : np.ndarray of int64, shape (len(gen),)
        The training sequence (user) each was generated from.
    train : SequenceDataset
        The training sequences, with timestamps.

    Returns
    -------
    np.ndarray of int64, shape (len(gen.items),)
    """
    out = np.zeros(gen.num_interactions, dtype=np.int64)
    for r in range(len(gen)):
        u = int(users[r])
        seq, ts = train[u], train.timestamps[train.offsets[u]:train.offsets[u + 1]]
        when = {int(i): int(t) for i, t in zip(seq.tolist(), ts.tolist())}  # last occurrence wins
        items = gen[r].tolist()
        vals = [when.get(i) for i in items]
        known = [v for v in vals if v is not None]
        prev = known[0] if known else (int(ts[-1]) if ts.size else 0)
        for k, v in enumerate(vals):
            prev = v if v is not None else prev
            vals[k] = prev
        out[gen.offsets[r]:gen.offsets[r + 1]] = vals
    return out


def generate(model, sources: SequenceDataset, info: dict, vocab: TokenVocab, train: SequenceDataset, *,
             min_items: int = 2, budget: int | None = None, seed: int = 0, dedup: str = "user",
             **decode) -> tuple[SequenceDataset, dict]:
    """Decode sources with every memory, strip the T and stage tokens, deduplicate, timestamp.

    Parameters
    ----------
    model : Regenerator
        The trained generator.
    sources, info
        From `build_sources`.
    vocab : TokenVocab
    train : SequenceDataset
        The training sequences the sources were built from (timestamps, when
        it has them, are given to the generated sequences, `stamp`).
    min_items : int, default 2
        Shorter item sequences are dropped.
    budget : int, optional
        Generate about this many items: sources are decoded in a seeded
        random order, only as many as the budget needs (each gives up to K
        sequences), and the kept sequences are cut at the budget. None:
        every source.
    seed : int, default 0
        Seeds the source order and the generative/restrictive draws.
    dedup : {"user", "global"}, default "user"
        Drop a generated sequence repeated for the same user (each user keeps
        its own copy of a common pattern, on its own clock), or repeated
        anywhere (DR4SR's rule: one row per distinct pattern).
    **decode
        Options of `fastregen.generator.hybrid_inference` (gamma, schedule, ...).

    Returns
    -------
    (generated, info)
        Item sequences (ids of ``train``) with ``meta["user"]`` and
        ``meta["stage"]`` (index into the stages) of each; decoding counts.
    """
    if dedup not in ("user", "global"):
        raise ValueError(f"dedup must be 'user' or 'global', got {dedup!r}")
    rows = np.flatnonzero(sources.lengths > 0)
    if budget is not None:
        rows = np.random.default_rng(seed).permutation(rows)
        n_items = np.bincount(np.repeat(np.arange(len(sources)), sources.lengths),
                              weights=(sources.items <= vocab.num_items), minlength=len(sources))
        # K decodes per source, each at most max_pattern_len tokens; a margin for what deduplication drops
        per_decode = np.minimum(n_items[rows], model.config.max_pattern_len)
        need = np.searchsorted(np.cumsum(per_decode * model.config.K), 1.25 * budget) + 1
        rows = rows[: max(int(need), 1)]
    # every decode: the deduplication below is on the item sequences (T tokens stripped), per user or global
    decoded, dinfo = hybrid_inference(model, sources.subset(rows), min_pattern_len=1, seed=seed,
                                      repeatable_from=vocab.num_items + 1, unique=False, **decode)
    items = vocab.strip(decoded)
    src = rows[decoded.meta["source"]]
    keep, seen, total = [], set(), 0
    for r in range(len(items)):
        s = items[r]
        key = s.tobytes() if dedup == "global" else (int(info["user"][src[r]]), s.tobytes())
        if s.size >= min_items and key not in seen:
            if budget is not None and total >= budget:
                break
            seen.add(key)
            keep.append(r)
            total += s.size
    keep = np.asarray(keep, dtype=np.int64)
    gen = items.subset(keep)
    users, stages = info["user"][src[keep]], info["stage"][src[keep]]
    ts = stamp(gen, users, train) if train.timestamps is not None else None
    gen = SequenceDataset(gen.offsets, gen.items, num_items=train.num_items, timestamps=ts,
                          item_ids=train.item_ids, name="generated", meta={"user": users, "stage": stages})
    dinfo = dict(dinfo, sources_decoded=int(rows.size), items_kept=int(keep.size))
    return gen, dinfo

