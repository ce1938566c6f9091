"""Backend selection shared by every op: ``"auto"``, ``"torch"`` or ``"triton"``.

Nothing here imports triton or queries CUDA at import time: the triton kernels
are compiled (or interpreted, under ``TRITON_INTERPRET=1``) on first use.
"""

from __future__ import annotations

import functools
import os

import torch

__all__ = ["BACKENDS", "resolve_backend", "triton_available", "triton_interpret"]

BACKENDS = ("auto", "torch", "triton")


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether triton can be imported (it is optional off Linux x86-64)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def triton_interpret() -> bool:
    """Whether triton runs in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def resolve_backend(backend: str, *tensors: torch.Tensor) -> str:
    """Return ``"torch"`` or ``"triton"`` for ``backend`` and the tensors it will run on.

    ``"auto"`` picks triton when every tensor is on a CUDA device and triton
    imports, torch otherwise. ``"triton"`` on CPU tensors is only possible in
    triton's interpreter (``TRITON_INTERPRET=1`` set before the first call),
    which is what the tests use; otherwise it is an error, not a silent
    fallback, so benchmarks never measure the wrong path.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    on_cuda = bool(tensors) and all(t.is_cuda for t in tensors)
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if on_cuda and triton_available() else "torch"
    if not triton_available():
        raise RuntimeError("backend='triton' needs the triton package, which is not installed")
    if not on_cuda and not triton_interpret():
        raise RuntimeError(
            "backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for triton's CPU "
            "interpreter); got tensors on " + ", ".join(sorted({str(t.device) for t in tensors}))
        )
    return "triton"
