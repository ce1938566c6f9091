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
