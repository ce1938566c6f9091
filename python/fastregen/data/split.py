"""Leave-one-out splits, as used by DR4SR and the SASRec / CL4SRec line of work."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import SequenceDataset

__all__ = ["EvalSplit", "LeaveOneOutSplit", "leave_one_out"]


@dataclass(frozen=True)
class EvalSplit:
    """Histories and the one held-out target of each evaluated user.

    Attributes
    ----------
    history : SequenceDataset
        What the model sees for each evaluated user (oldest item first).
    target : np.ndarray of int32, shape (n_users,)
        The item to rank, aligned with ``history``.
    users : np.ndarray of int64, shape (n_users,)
        Index of each evaluated user in the source dataset.
    """

    history: SequenceDataset
    target: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return int(self.target.size)


@dataclass(frozen=True)
class LeaveOneOutSplit:
    """``train``: every sequence without its last two items; ``valid``/``test``: see `leave_one_out`."""

    train: SequenceDataset
    valid: EvalSplit
    test: EvalSplit


def leave_one_out(ds: SequenceDataset) -> LeaveOneOutSplit:
    """Split each user's sequence leave-one-out.

    For a sequence ``s`` of length n:

    * ``train`` holds ``s[:-2]`` (all users, possibly empty sequences for n <= 2,
      so row u of ``train`` is user u);
    * ``valid`` ranks target ``s[-2]`` given history ``s[:-2]``
      (users with n >= 3, so the history is not empty);
    * ``test`` ranks target ``s[-1]`` given history ``s[:-1]``
      (users with n >= 2).

    This matches the DR4SR paper and its peers (SASRec, CL4SRec, ICLRec): the
    last item is the test target, the one before it the validation target.

    Parameters
    ----------
    ds : SequenceDataset
        Sequences, oldest first.

    Returns
    -------
    LeaveOneOutSplit
    """
    if len(ds) == 0:
        raise ValueError("cannot split an empty dataset (no sequences)")
    lengths = ds.lengths
    train = ds.slice_sequences(0, -2)
    valid_users = np.flatnonzero(lengths >= 3)
    test_users = np.flatnonzero(lengths >= 2)
    valid = EvalSplit(
        history=ds.subset(valid_users).slice_sequences(0, -2),
        target=ds.items[ds.offsets[valid_users + 1] - 2].astype(np.int32),
        users=valid_users,
    )
    test = EvalSplit(
        history=ds.subset(test_users).slice_sequences(0, -1),
        target=ds.items[ds.offsets[test_users + 1] - 1].astype(np.int32),
        users=test_users,
    )
    return LeaveOneOutSplit(train=train, valid=valid, test=test)


def save_split(split: LeaveOneOutSplit, out_dir, *, progress: bool = False) -> dict:
    """Write a leave-one-out split as three ``lines`` text files in ``out_dir``.

    * ``train.txt``: ``user item ...`` per user with a non-empty training
      sequence (users with at most two items have none and are left out);
    * ``valid.txt`` and ``test.txt``: ``user h_1 ... h_k target`` per evaluated
      user, i.e. the history followed by the held-out target as its last item.

    Users are written as their ``user_ids`` when those are integers, else as
    their 1-based row in the source dataset. Each file is written atomically.

    Returns
    -------
    dict
        ``{"train": n_train_users, "valid": n_valid, "test": n_test}``.
    """
    from pathlib import Path

    from .io import save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = split.train
    if train.user_ids is None or np.asarray(train.user_ids).dtype.kind not in "iu":
        train = train.replace(user_ids=np.arange(1, len(train) + 1, dtype=np.int64))
    n_train = int((train.lengths > 0).sum())
    save(train, out / "train.txt", format="lines", drop_empty=True, progress=progress)
    for name, part in (("valid", split.valid), ("test", split.test)):
        h = part.history
        lengths = h.lengths + 1
        offsets = np.zeros(len(h) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = np.empty(int(offsets[-1]), dtype=np.int32)
        is_target = np.zeros(items.size, dtype=bool)
        is_target[offsets[1:] - 1] = True
        items[is_target] = part.target
        items[~is_target] = h.items
        users = h.user_ids
        if users is None or np.asarray(users).dtype.kind not in "iu":
            users = np.asarray(part.users, dtype=np.int64) + 1
        full = SequenceDataset(offsets, items, num_items=h.num_items, user_ids=users)
        save(full, out / f"{name}.txt", format="lines", progress=progress)
    return {"train": n_train, "valid": len(split.valid), "test": len(split.test)}
