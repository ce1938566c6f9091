"""Fused ops of the regenerator, each a torch reference beside a fast kernel.

The GPU ops take ``backend="auto" | "torch" | "triton"``: ``"auto"`` runs the
triton kernel on CUDA tensors and the torch path otherwise. The torch path is
both the CPU implementation and the oracle the kernels are tested against
(under ``TRITON_INTERPRET=1`` on CPU). `ragged_attention`'s fast path is a
CPU kernel of the compiled core instead (``backend="auto" | "torch" |
"core"``; ``"auto"``: core on CPU, torch elsewhere). Importing this package
never imports triton or touches CUDA.

* `mix_memories` -- weighted sum of the K projected encoder memories
  (the diversity promoter's mixture), forward and backward.
* `ragged_attention` -- multi-head attention within ragged groups of rows
  (the regenerator's sequences and patterns), with dropout on the weights,
  forward and backward; its fast path is the compiled CPU kernel
  (``backend="core"``), not triton.
* `constrained_argmax` -- one hybrid-decoding step: per-row argmax over a
  large vocabulary (generative rows) or over the row's own items
  (restrictive rows), excluding already generated ids, without the (B, V)
  logits.
"""

from ._backend import BACKENDS, resolve_backend
from .hybrid_decode import constrained_argmax, constrained_argmax_naive, constrained_argmax_torch, table_max_abs
from .attention import ragged_attention, ragged_attention_torch
from .memory_mix import mix_memories, mix_memories_torch

__all__ = [
    "BACKENDS",
    "resolve_backend",
    "mix_memories",
    "mix_memories_torch",
    "ragged_attention",
    "ragged_attention_torch",
    "constrained_argmax",
    "constrained_argmax_torch",
    "constrained_argmax_naive",
    "table_max_abs",
]
