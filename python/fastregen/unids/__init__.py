"""UniDS: uniform data synthesis for the stages of a recommender (recall, coarse and fine ranking).

>>> from fastregen import UniDS, UniDSConfig                       # doctest: +SKIP
>>> train_set = UniDS(UniDSConfig()).fit(ds, out_dir="run").generate()  # doctest: +SKIP

* `stages` -- stage-wise entropy thresholds and mining, p_m pluggable;
* `tokens` -- pattern-token sequences [P1, T1, P2, T2, ...] (uniform data formalisation);
* `generator` -- the uniform generator: DR4SR's regenerator on them (K
  memories, a promoter per segment), hybrid decoding, timestamps;
* `pipeline` -- `UniDS`, resumable stage by stage, with the ablations
  w/o TC / w/o UF / w/o UG as config fields;
* `config` -- `UniDSConfig`.

The reading of the paper's gaps and errors taken here is in each module's
docstring; `fastregen.evaluation.evaluate_stages` gives its metrics.
"""

from .config import UniDSConfig
from .generator import build_pairs, build_sources, generate, load_generator, stamp, train_generator
from .pipeline import PIPELINE_STAGES, UniDS
from .stages import STAGES, check_stages, mine_stages, model_probs, stage_thetas
from .tokens import TOKEN_KINDS, TokenVocab, build_vocab, pattern_token_sequences, resolve_kind, segment_tokens

__all__ = [
    "UniDS",
    "UniDSConfig",
    "PIPELINE_STAGES",
    "STAGES",
    "check_stages",
    "stage_thetas",
    "mine_stages",
    "model_probs",
    "TOKEN_KINDS",
    "TokenVocab",
    "build_vocab",
    "resolve_kind",
    "segment_tokens",
    "pattern_token_sequences",
    "build_sources",
    "build_pairs",
    "train_generator",
    "load_generator",
    "generate",
    "stamp",
]
