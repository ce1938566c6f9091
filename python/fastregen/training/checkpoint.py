"""Resumable training: the epoch checkpoint `Trainer.fit` writes and resumes from.

A run given a checkpoint path (``Trainer(..., checkpoint=PATH)``) writes,
at the end of every epoch, everything the rest of the run depends on:

* the model's and the optimizer's state, the scheduler's;
* the epoch reached, the optimizer steps taken, the history, ``stop``;
* every hook's `Hook.state_dict` (`EarlyStopping`: the best metrics, epoch,
  score, weights and the evaluations without gain; a DR4SR+ upper level:
  phi, its optimizer, its generator and the batches it has still to use);
* every random state the loop draws from: torch's global generator (CPU
  and CUDA; dropout, Gumbel noise), NumPy's and Python's global ones, the
  Trainer's generators (batch order, negatives) -- saved after the epoch's
  last draw, so the next epoch's batch order is drawn from the same state
  whether the run went on or was resumed.

The file is written atomically (a temporary file, fsync, `os.replace`,
`fastregen._io.atomic_open`): a run killed while writing leaves the
previous epoch's checkpoint. A run killed at any point therefore loses at
most the epoch under way, and on the CPU the resumed run ends with the
very weights and metrics of an uninterrupted one (same torch build, same
thread count).

When the loop ends (after the hooks' ``on_fit_end``) the checkpoint is
rewritten once more with ``finished = True`` and without the optimizer,
scheduler and random states: a rerun restores the final model and hooks
and trains nothing.

Every checkpoint records a *fingerprint*: the caller's description of the
run (its config, hashes of its data) and the Trainer's own settings. A
checkpoint whose fingerprint differs from the run's is refused with a
one-line ``ValueError`` naming each differing field with both values,
before anything is written (``on_mismatch="restart"``, for pipelines whose
stages already redo what a changed option affects, trains from scratch
instead and overwrites it at the end of the first epoch).

The file is a ``torch.save`` payload that ``torch.load(weights_only=True)``
reads (NumPy arrays and scalars are stored as bytes / Python numbers).
Under torch.distributed rank 0 writes it with the random states of every
rank, and every rank loads it and takes its own.
"""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import torch

__all__ = ["Checkpoint", "array_sha256", "fingerprint_diff", "rng_state", "set_rng_state"]

FORMAT = 1


def array_sha256(*arrays) -> str:
    """Content hash of arrays (dtype, shape and bytes of each), for fingerprints of training data."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        if isinstance(a, torch.Tensor):
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------- encoding
def _pack(obj):
    """``obj`` with NumPy arrays and scalars made loadable by ``torch.load(weights_only=True)``."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": np.ascontiguousarray(obj).tobytes(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_pack(v) for v in obj)
    return obj


def _unpack(obj):
    """Inverse of `_pack`."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.frombuffer(obj["__ndarray__"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unpack(v) for v in obj)
    return obj


# ----------------------------------------------------------------- random states
def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict:
    """The global random states (torch CPU and CUDA, NumPy, Python) and those of ``generators``."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "generators": {k: g.get_state() for k, g in (generators or {}).items()},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    """Restore what `rng_state` returned (``generators`` by the same names)."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(tuple(state["numpy"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    for name, g in (generators or {}).items():
        if name in state["generators"]:
            g.set_state(state["generators"][name])


# ----------------------------------------------------------------- fingerprints
def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def fingerprint_diff(old: dict, new: dict, only=None, defaults: dict | None = None) -> list[str]:
    """``"field: OLD in the checkpoint, NEW now"`` for each field (dotted path) where two fingerprints differ.

    ``only``: top-level keys to compare (default all of both). ``defaults``: a
    fingerprint of default values; a field the checkpoint lacks (written by a
    version without that option) matches when its value now is the default,
    so adding an option with a default never orphans a run in progress.
    """
    if only is not None:
        old = {k: v for k, v in old.items() if k in only}
        new = {k: v for k, v in new.items() if k in only}
    a, b = _flatten(_pack(old)), _flatten(_pack(new))
    d = _flatten(_pack(defaults or {}))
    missing = object()
    diff = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, missing), b.get(k, missing)
        if va is missing and k in d and _normal(d[k]) == _normal(vb):
            continue
        if _normal(va) != _normal(vb):
            show = lambda v: "(absent)" if v is missing else repr(v)
            diff.append(f"{k}: {show(va)} in the checkpoint, {show(vb)} now")
    return diff


def _normal(v):
    """Compare lists and tuples alike (a YAML round trip turns one into the other)."""
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    return v


class Checkpoint:
    """The epoch checkpoint of one run (see the module docstring).

    Parameters
    ----------
    path : path-like
        The checkpoint file (e.g. ``RUN_DIR/checkpoint.pt``).
    fingerprint : dict, optional
        The caller's description of the run (JSON-like: config fields,
        data hashes); `Trainer.fit` adds its own settings under
        ``"trainer"``.
    on_mismatch : {"raise", "restart"}, default "raise"
        What a checkpoint of another run does: refused with a ValueError
        naming the differing fields, or ignored (training starts over and
        replaces it).
    defaults : dict, optional
        Default values in the fingerprint's shape: a field the stored
        fingerprint lacks matches when its value now is the default (see
        `fingerprint_diff`).

    Attributes
    ----------
    path : pathlib.Path
    """

    def __init__(self, path, fingerprint: dict | None = None, *, on_mismatch: str = "raise",
                 defaults: dict | None = None) -> None:
        if on_mismatch not in ("raise", "restart"):
            raise ValueError(f"on_mismatch must be 'raise' or 'restart', got {on_mismatch!r}")
        self.path = Path(path)
        self.fingerprint = dict(fingerprint or {})
        self.defaults = dict(defaults or {})
        self.on_mismatch = on_mismatch
        self._cache: dict | None = None
        self._loaded = False

    def __repr__(self) -> str:
        return f"Checkpoint({os.fspath(self.path)!r})"

    def read(self) -> dict | None:
        """The stored state (cached after the first read), or None when there is no file."""
        if not self._loaded:
            if self.path.is_file():
                raw = torch.load(os.fspath(self.path), map_location="cpu", weights_only=True)
                if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                    raise ValueError(f"{self.path} is not a fastregen training checkpoint (format {FORMAT}); "
                                     "remove it to start over")
                self._cache = _unpack(raw)
            self._loaded = True
        return self._cache

    def load(self, fingerprint: dict | None = None, only=None, defaults: dict | None = None) -> dict | None:
        """The stored state if it belongs to this run, None when there is none (or it is ignored).

        Parameters
        ----------
        fingerprint : dict, optional
            The run's full fingerprint (default: this object's).
        only : iterable of str, optional
            Compare these top-level fields alone (a caller checking its own
            part before the Trainer adds its settings).
        defaults : dict, optional
            Defaults of further top-level fields (the Trainer's own), merged
            over this object's ``defaults``.

        Raises
        ------
        ValueError
            One line naming every differing field with both values
            (``on_mismatch="raise"``).
        """
        state = self.read()
        if state is None:
            return None
        fingerprint = self.fingerprint if fingerprint is None else fingerprint
        diff = fingerprint_diff(state.get("fingerprint", {}), fingerprint, only, {**self.defaults, **(defaults or {})})
        if diff:
            if self.on_mismatch == "restart":
                return None
            raise ValueError(f"{self.path} is the checkpoint of a run with another config ({'; '.join(diff)}); "
                             "rerun with the same config to resume, or use another output folder")
        return state

    def save(self, state: dict) -> None:
        """Write ``state`` (with the format tag) atomically."""
        from .._io import atomic_open

        state = {**state, "format": FORMAT}
        with atomic_open(self.path, "wb") as f:
            torch.save(_pack(state), f)
        # not cached: a state dict holds the live parameters, which move on after this
        self._cache, self._loaded = None, False

    def forget(self) -> None:
        """Drop the state `read` cached (once restored it is only memory)."""
        self._cache, self._loaded = None, False

    def remove(self) -> None:
        """Delete the file (a finished run that keeps its result elsewhere)."""
        self.path.unlink(missing_ok=True)
        self._cache, self._loaded = None, True
