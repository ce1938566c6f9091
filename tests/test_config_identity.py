"""Options added by a later fastregen must not orphan finished stages or recorded runs."""

from __future__ import annotations

import dataclasses

import pytest

from fastregen.config import config_identity, config_to_dict
from fastregen.dr4sr import RegenConfig
from fastregen.dr4sr.pipeline import _stage_fields
from fastregen.pipeline import fingerprint
from fastregen.study import CompareConfig
from fastregen.study.runs import declare_runs
from fastregen.training import TrainConfig

# Computed by the code before train_softmax="sampled", num_negatives and item_updates existed (main at
# 99cb846, `fingerprint({"data": None, **{k: cfg[k] for k in sorted(_stage_fields(stage))}})` of
# RegenConfig(), and the run ids of CompareConfig(methods=("original", "dr4sr")) on data "x").
BEFORE = {"patterns": "a8ddb076e7f0fc42", "pairs": "2867f7a4b7fe3c89", "regenerator": "d9add6d744c6bbdd",
          "inference": "e070d94e8fff662d", "write": "237d0b23ae25e301"}
RUN_IDS_BEFORE = ["56b0e74bc9d7", "b1d170296ad4", "5b87ce993e90", "fde3b9f17ff4", "e21ad7f36e3f", "012dd741965e"]


def _stage_fingerprint(cfg: RegenConfig, stage: str) -> str:
    ident = config_identity(cfg)
    return fingerprint({"data": None, **{k: ident[k] for k in sorted(_stage_fields(stage)) if k in ident}})


@pytest.mark.parametrize("stage", sorted(BEFORE))
def test_stage_fingerprints_of_default_options_did_not_move(stage):
    assert _stage_fingerprint(RegenConfig(), stage) == BEFORE[stage]


def test_an_added_option_set_away_from_its_neutral_value_makes_a_new_fingerprint():
    for field, value in (("item_updates", "lazy"), ("num_negatives", 64), ("train_softmax", "sampled"),
                         ("pack_targets", True)):
        cfg = RegenConfig(**{field: value})
        assert field in config_identity(cfg)
        assert _stage_fingerprint(cfg, "regenerator") != BEFORE["regenerator"]
        assert _stage_fingerprint(cfg, "patterns") == BEFORE["patterns"]  # mining does not read it


def test_compare_run_ids_did_not_move():
    assert [r.run_id for r in declare_runs(CompareConfig(methods=("original", "dr4sr")), "x")] == RUN_IDS_BEFORE
    sampled = CompareConfig(methods=("original",), train={"train_softmax": "sampled", "num_negatives": 64})
    assert declare_runs(sampled, "x")[0].run_id != RUN_IDS_BEFORE[0]
    lazy = CompareConfig(methods=("original",), train={"item_updates": "lazy"})
    assert declare_runs(lazy, "x")[0].run_id != RUN_IDS_BEFORE[0]


@pytest.mark.parametrize("cls", [RegenConfig, TrainConfig])
def test_added_options_name_real_fields_at_their_defaults(cls):
    """An ADDED_OPTIONS entry must be a field whose default is the neutral value, or default configs
    would fingerprint differently from the configs written before the field existed."""
    defaults = config_to_dict(cls())
    names = {f.name for f in dataclasses.fields(cls)}
    for field, value in cls.ADDED_OPTIONS.items():
        assert field in names and defaults[field] == value, field
    assert not set(cls.ADDED_OPTIONS) & set(config_identity(cls()))
