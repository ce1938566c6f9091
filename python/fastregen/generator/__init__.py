"""The regenerator shared by the methods: its model, pre-training and hybrid decoding.

DR4SR (`fastregen.dr4sr`) regenerates patterns with it and UniDS
(`fastregen.unids`) generates pattern-token sequences with it; neither
owns it.

* `Regenerator` -- transformer encoder-decoder with K memories and a
  diversity promoter; token ids: PAD = 0, items 1..N, EOS = N + 1, BOS = N + 2.
* `pretrain` -- teacher-forced pre-training on `fastregen.patterns.pretrain_pairs`.
* `hybrid_inference` -- batched generative/restrictive greedy decoding of
  every memory, deduplicated.
"""

from .. import dr4sr as _dr4sr  # noqa: F401  (the generator still reads RegenConfig; loads it first)
from .decode import dataset_sha256, deduplicate, deduplicate_rows, hybrid_inference, step_modes, table2
from .model import PAD, Regenerator, bos_id, eos_id, load_checkpoint, save_checkpoint
from .pretrain import pretrain

__all__ = [
    "Regenerator",
    "PAD",
    "eos_id",
    "bos_id",
    "save_checkpoint",
    "load_checkpoint",
    "pretrain",
    "hybrid_inference",
    "step_modes",
    "deduplicate",
    "deduplicate_rows",
    "dataset_sha256",
    "table2",
]
