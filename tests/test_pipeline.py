"""The one stage runner (`fastregen.pipeline`) and the migration of folders written before it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from fastregen.pipeline import RECORD, Pipeline, Stage, dataset_sha256, fingerprint, write_provenance

STAGES = (Stage("a", ("a.txt",)), Stage("b", ("b.txt",), ("a",)), Stage("c", ("c.txt",), ("b",)),
          Stage("x", ("x.txt",)))


READS = {"a": "a", "b": "ab", "c": "abc", "x": "x"}  # each stage's options and those of the stages it reads


def _run(out, opts, calls, legacy=None):
    """Run the four toy stages: a -> b -> c, and x alone; each writes its options to its file."""
    pipe = Pipeline(STAGES, out)
    pipe.open()
    got = {}
    for name in ("a", "b", "c", "x"):
        o = {k: opts[k] for k in READS[name]}

        def compute(name=name, o=o):
            calls.append(name)
            return json.dumps(o)

        def save(value, name=name):
            (out / f"{name}.txt").write_text(value)

        got[name] = pipe.run(name, o, compute, save=save, load=lambda name=name: (out / f"{name}.txt").read_text(),
                             legacy=None if legacy is None else (lambda name=name: legacy(name)))
    return pipe, got


def test_done_stages_are_reused_and_a_changed_one_is_redone_with_its_dependants(tmp_path):
    calls: list = []
    pipe, first = _run(tmp_path, {"a": 1, "b": 2, "c": 3, "x": 4}, calls)
    assert calls == ["a", "b", "c", "x"]
    record = json.loads((tmp_path / RECORD).read_text())
    assert set(record) == {"a", "b", "c", "x"} and record["a"] == fingerprint({"a": 1})
    calls.clear()
    pipe, again = _run(tmp_path, {"a": 1, "b": 2, "c": 3, "x": 4}, calls)
    assert calls == [] and again == first and pipe.seconds == dict.fromkeys("abcx", 0.0)
    # b changed: b and c (which reads b) are redone, a and x are not
    calls.clear()
    _run(tmp_path, {"a": 1, "b": 5, "c": 3, "x": 4}, calls)
    assert calls == ["b", "c"]
    # a lost file makes its stage not done
    calls.clear()
    (tmp_path / "x.txt").unlink()
    _run(tmp_path, {"a": 1, "b": 5, "c": 3, "x": 4}, calls)
    assert calls == ["x"]


def test_invalidate_removes_dependants_files_and_records(tmp_path):
    _run(tmp_path, {"a": 1, "b": 2, "c": 3, "x": 4}, [])
    pipe = Pipeline(STAGES, tmp_path)
    pipe.open()
    pipe.invalidate("a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "stages.json", "x.txt"]
    assert set(json.loads((tmp_path / RECORD).read_text())) == {"x"}


def test_an_interrupted_stage_is_not_done(tmp_path):
    pipe = Pipeline(STAGES, tmp_path)
    pipe.open()

    def dies():
        (tmp_path / "a.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pipe.run("a", {"a": 1}, dies)
    assert not pipe.done("a", {"a": 1})
    calls: list = []
    _run(tmp_path, {"a": 1, "b": 2, "c": 3, "x": 4}, calls)
    assert calls == ["a", "b", "c", "x"]


def test_legacy_folders_are_adopted_only_by_their_check(tmp_path):
    for name in "abcx":
        (tmp_path / f"{name}.txt").write_text("old")
    calls: list = []
    pipe, got = _run(tmp_path, {"a": 1, "b": 2, "c": 3, "x": 4}, calls, legacy=lambda name: name in ("a", "x"))
    assert pipe.legacy and calls == ["b", "c"] and got["a"] == "old" and got["x"] == "old"
    # once recorded, the folder is no longer a legacy one
    pipe = Pipeline(STAGES, tmp_path)
    pipe.open()
    assert not pipe.legacy


def test_in_memory_runs_every_stage(tmp_path):
    pipe = Pipeline(STAGES)
    pipe.open()
    assert pipe.run("a", {"a": 1}, lambda: 7) == 7 and pipe.path("a.txt") is None and "a" in pipe.seconds


def test_open_refuses_other_data_and_records_the_source(tmp_path):
    from fastregen.data import SequenceDataset

    one = SequenceDataset.from_lists([[1, 2], [3]], num_items=3)
    two = SequenceDataset.from_lists([[1, 3], [3]], num_items=3)
    seen = []
    pipe = Pipeline(STAGES, tmp_path)
    src = pipe.open(one, prepare=lambda out, legacy: seen.append(legacy))
    assert src["sha256"] == dataset_sha256(one) and seen == [True]
    assert json.loads((tmp_path / "source.json").read_text())["sha256"] == dataset_sha256(one)
    with pytest.raises(ValueError, match="on different data"):
        Pipeline(STAGES, tmp_path).open(two)


def test_write_provenance_is_atomic_json(tmp_path):
    write_provenance(tmp_path / "p.json", {"n": np.int64(3), "f": np.float32(0.5), "p": tmp_path})
    assert json.loads((tmp_path / "p.json").read_text()) == {"n": 3, "f": 0.5, "p": os.fspath(tmp_path)}
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    with pytest.raises(TypeError, match="cannot serialise"):
        write_provenance(tmp_path / "q.json", {"x": object()})


# ------------------------------------------------------------------ migrations of the methods' folders
TINY = dict(d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, K=3, epochs=1,
            batch_size=64, max_len=12, max_pattern_len=5, progress=False, dropout=0.1)


def _planted():
    from test_dr4sr_pipeline import planted_data

    return planted_data(n=60)


def test_dr4sr_folder_without_stages_json_is_adopted_when_its_config_matches(tmp_path):
    from fastregen.config import save_config
    from fastregen.dr4sr import DR4SR, RegenConfig

    data = _planted()
    out = tmp_path / "run"
    first = DR4SR(RegenConfig(**TINY)).fit(data, out_dir=out)
    combined = first.regenerate()
    files = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix in (".txt", ".npz", ".pt")}
    (out / RECORD).unlink()  # what a folder written before the runner holds
    again = DR4SR(RegenConfig(**TINY)).fit(data, out_dir=out)
    assert again.regenerate().to_lists() == combined.to_lists()
    assert all(again.stage_seconds[s] == 0.0 for s in ("patterns", "pairs", "regenerator", "inference", "write"))
    assert {n: (out / n).stat().st_mtime_ns for n in files} == files
    assert set(json.loads((out / RECORD).read_text())) == {"patterns", "pairs", "regenerator", "inference", "write"}
    # a folder whose config.yaml differs in a decoding field: the regenerator is adopted, decoding redone
    (out / RECORD).unlink()
    save_config(RegenConfig(**{**TINY, "gamma": 0.9}), out / "config.yaml")
    third = DR4SR(RegenConfig(**TINY)).fit(data, out_dir=out)
    third.regenerate()
    assert third.stage_seconds["regenerator"] == 0.0 and third.stage_seconds["inference"] > 0.0
    assert (out / "regenerator.pt").stat().st_mtime_ns == files["regenerator.pt"]
    # one that differs in a pre-training field: the regenerator is trained again
    (out / RECORD).unlink()
    save_config(RegenConfig(**{**TINY, "lr": 0.5}), out / "config.yaml")
    fourth = DR4SR(RegenConfig(**TINY)).fit(data, out_dir=out)
    assert fourth.stage_seconds["pairs"] == 0.0 and fourth.stage_seconds["regenerator"] > 0.0


def test_dr4sr_interrupted_pretraining_of_other_options_is_refused(tmp_path, monkeypatch):
    from fastregen.dr4sr import DR4SR, RegenConfig
    from fastregen.training import Trainer

    data = _planted()
    out = tmp_path / "run"
    real = Trainer.step

    def dying(self, batch):
        if self.epoch == 1:
            raise KeyboardInterrupt
        return real(self, batch)

    monkeypatch.setattr(Trainer, "step", dying)
    with pytest.raises(KeyboardInterrupt):
        DR4SR(RegenConfig(**{**TINY, "epochs": 2})).fit(data, out_dir=out)
    monkeypatch.setattr(Trainer, "step", real)
    assert (out / "regenerator.resume.pt").exists()
    with pytest.raises(ValueError, match=r"config\.lr: 0\.001 in the checkpoint, 0\.002 now"):
        DR4SR(RegenConfig(**{**TINY, "epochs": 2, "lr": 2e-3})).fit(data, out_dir=out)
    assert (out / "regenerator.resume.pt").exists()  # the hours of the interrupted run are kept
    resumed = DR4SR(RegenConfig(**{**TINY, "epochs": 2})).fit(data, out_dir=out)
    assert len(resumed.history) == 2 and not (out / "regenerator.resume.pt").exists()


def test_dr4sr_plus_folder_without_stages_json_is_adopted_by_its_fingerprint(tmp_path):
    from test_dr4sr_plus import SMALL, _tiny

    from fastregen.dr4sr.plus import PlusConfig, personalize

    data, train = _tiny(n=80)
    out = tmp_path / "run"
    plus = PlusConfig(interval=4, warmup_epochs=1)
    res = personalize(data, train, "sasrec", plus=plus, out_dir=out, epochs=1, **SMALL)
    (out / RECORD).unlink()
    again = personalize(data, train, "sasrec", plus=plus, out_dir=out, epochs=1, **SMALL)
    assert again["resumed"] and again["test"] == res["test"]
    assert set(json.loads((out / RECORD).read_text())) == {"personalize"}
    (out / RECORD).unlink()
    with pytest.raises(ValueError, match=r"plus_config\.interval: 4 in the checkpoint, 5 now"):
        personalize(data, train, "sasrec", plus=PlusConfig(interval=5, warmup_epochs=1), out_dir=out, epochs=1,
                    **SMALL)
