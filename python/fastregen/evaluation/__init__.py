"""Full-ranking leave-one-out evaluation (Krichene & Rendle, KDD 2020: no sampled metrics).

Each evaluated user has one held-out target item; the model scores **every**
item, and the metrics are functions of the target's 0-based rank ``r``:

* ``recall@K`` (= HR@K with one target): ``1[r < K]``;
* ``ndcg@K``: ``1[r < K] / log2(r + 2)``;
* ``mrr``: ``1 / (r + 1)`` (untruncated);
* ``auc``: ``1 - r / (C - 1)``, the fraction of the ``C - 1`` other
  candidates scored below the target.

Ties are broken **pessimistically**: every other candidate whose score equals
the target's counts as ranked ahead of it, ``r = #{j != t : s_j >= s_t}``.
This is deterministic and never rewards a model for constant scores (a model
scoring everything 0 gets the worst rank, not an id-dependent one).

History exclusion: with ``exclude_history=True`` (the default, what DR4SR's
and RecBole's code do) the items already in the user's history are removed
from the candidates, except the target itself, which is ranked with
``repeated_target="keep"`` (the default); ``"mask"`` masks it too, as
DR4SR's evaluator does (see `REPEATED_TARGET`), which only matters for
repeat consumption. Pass ``exclude_history=False`` for repeat-consumption
data. Padding (id 0) is never a candidate.

Backends: on CPU the ranks are counted by a compiled kernel
(`fastregen._core.rank_counts`, reference `fastregen.reference.ranks`)
without the ``B x C`` comparison matrix; ``backend="torch"`` is the tensor
path (any device) it is tested against; both give identical ranks. On CPUs
with AMX tiles, ``"auto"`` has `item_ranks` / `evaluate` take
``backend="amx"`` (`fastregen._core.amx_rank_counts`, csrc/amx_ranks.hpp):
a bf16 tile pass decides every comparison outside a proven error bound and
the exact float32 score decides the rest, never holding more than 32 x 32
scores; identical ranks again (the exact score, an fma chain over the
dimensions, is what MKL's sgemm computes at these shapes).

Ranking only as far as the metrics need: ``evaluate(..., max_rank=m)`` /
``item_ranks(..., max_rank=m)`` return ``min(rank, m)`` exactly, which
decides every ``recall@K`` / ``ndcg@K`` with K <= m (``mrr``, ``auc`` and
larger K are then never reported). The AMX count scans the items in
descending norm order a segment at a time and stops each user once m items
beat its target, or once no later item's norm can reach its target's
score, so most users stop after a small share of the catalogue; validation
for early stopping uses it (`fastregen.training.TrainConfig.valid_max_rank`).

For the fine-ranking stage (pointwise labels), `binary_metrics` gives AUC
and Logloss. `evaluate_stages` reports UniDS's three stages (recall: MRR,
HR@10/50; coarse ranking: NDCG@10/50; fine ranking: AUC, Logloss), each
per user over all items, scoring the catalogue in chunks.


Vocabulary scale: `evaluate` ranks with `item_ranks`, which scores the items
a chunk at a time (history mask and counts chunk by chunk), so a batch never
holds ``batch x num_items`` scores once that would exceed
`FULL_SCORES_LIMIT` (at 700k items, 1,024 x V would be 2.7 GiB). Below the
limit it is `target_ranks` on the full score matrix, as before.

Modules: `ranks` (the rank count), `metrics` (metrics of ranks and labels),
`full_ranking` (`evaluate`, `evaluate_stages` over a model and a split).
"""

from .full_ranking import REPEATED_TARGET, evaluate, evaluate_stages, stage_scores
from .metrics import (DEFAULT_KS, STAGE_METRICS, auc_from_ranks, binary_metrics, mrr, ndcg_at_k, ranking_metrics,
                      recall_at_k, stage_metrics)
from .ranks import FULL_SCORES_LIMIT, item_ranks, target_ranks

__all__ = [
    "target_ranks",
    "ranking_metrics",
    "recall_at_k",
    "ndcg_at_k",
    "mrr",
    "auc_from_ranks",
    "binary_metrics",
    "evaluate",
    "item_ranks",
    "FULL_SCORES_LIMIT",
    "REPEATED_TARGET",
    "DEFAULT_KS",
    "STAGE_METRICS",
    "stage_metrics",
    "stage_scores",
    "evaluate_stages",
]
