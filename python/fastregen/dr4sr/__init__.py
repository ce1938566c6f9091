"""DR4SR dataset regeneration: the regenerator, its pre-training, hybrid inference, the pipeline.

>>> from fastregen import DR4SR                                      # doctest: +SKIP
>>> train_set = DR4SR(epochs=10).fit("beauty.txt").regenerate()     # doctest: +SKIP

* `RegenConfig` -- every option (mining, pairs, model, pre-training, inference).
* `Regenerator` -- transformer encoder-decoder with K memories and a
  diversity promoter; token ids: PAD = 0, items 1..N, EOS = N + 1, BOS = N + 2.
* `pretrain` -- teacher-forced pre-training on `fastregen.patterns.pretrain_pairs`.
* `hybrid_inference` -- batched generative/restrictive greedy decoding of
  every memory, deduplicated.
* `DR4SR` -- the pipeline, resumable stage by stage in an output folder.
"""

from .config import RegenConfig
from .infer import dataset_sha256, deduplicate, hybrid_inference, step_modes, table2
from .model import PAD, Regenerator, bos_id, eos_id, load_checkpoint, save_checkpoint
from .pipeline import DR4SR, STAGES
from .pretrain import pretrain

__all__ = [
    "RegenConfig",
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
    "dataset_sha256",
    "table2",
    "DR4SR",
    "STAGES",
]
