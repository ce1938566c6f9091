"""DR4SR dataset regeneration: its options and pipeline (the regenerator is `fastregen.generator`).

>>> from fastregen import DR4SR                                      # doctest: +SKIP
>>> train_set = DR4SR(epochs=10).fit("beauty.txt").regenerate()     # doctest: +SKIP

* `RegenConfig` -- every option (mining, pairs, model, pre-training, inference).
* `DR4SR` -- the pipeline, resumable stage by stage in an output folder.
"""

from .config import RegenConfig
from .pipeline import DR4SR, STAGES

__all__ = [
    "RegenConfig",
    "DR4SR",
    "STAGES",
]
