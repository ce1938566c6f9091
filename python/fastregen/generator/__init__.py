"""The regenerator shared by the methods: its model, pre-training and hybrid decoding.

DR4SR (`fastregen.dr4sr`) regenerates patterns with it and UniDS
(`fastregen.unids`) generates pattern-token sequences with it; neither
owns it.

* `GeneratorConfig`, `PretrainConfig`, `DecodeConfig` -- its options: the
  architecture (all a checkpoint stores), pre-training, decoding; the
  methods' configs build them (`split_options`).
* `Regenerator` -- transformer encoder-decoder with K memories and a
  diversity promoter; token ids: PAD = 0, items 1..N, EOS = N + 1, BOS = N + 2.
* `pretrain` -- teacher-forced pre-training on `fastregen.patterns.pretrain_pairs`.
* `hybrid_inference` -- batched generative/restrictive greedy decoding of
  every memory, deduplicated.
"""

from .config import DecodeConfig, GeneratorConfig, PretrainConfig, split_options
from .decode import deduplicate, deduplicate_rows, hybrid_inference, step_modes, table2
from .model import PAD, Regenerator, bos_id, eos_id, load_checkpoint, save_checkpoint
from .pretrain import pretrain

__all__ = [
    "GeneratorConfig",
    "PretrainConfig",
    "DecodeConfig",
    "split_options",
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
    "table2",
]
