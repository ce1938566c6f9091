"""How each compared method trains a target model, and the prerequisites it shares.

=========  ======================================================  =========================
method     training data / procedure                               shared prerequisite
=========  ======================================================  =========================
original   the train split of the data                             -
dr4sr      `DR4SR.training_sets()[regen.training_set]`             the DR4SR regenerator
dr4sr+     the same set, trained with the DR4SR+ personalizer      the DR4SR regenerator
unids      `UniDS.generate()` (original + generated)               the UniDS generator
reppad     the train split, RepPad-padded (``reppad=1|2``)         -
=========  ======================================================  =========================

A prerequisite is built once per comparison folder (``DIR/prereq/NAME``)
under a file lock, so that workers needing it wait for the first one to
finish it and then reuse it; ``--regen DIR`` supplies a finished
`fastregen regenerate` folder instead of building one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

from .runs import _RUNTIME_REGEN_FIELDS, Run, method_config
from .store import file_lock

__all__ = ["Context", "check_regen_dir", "regenerate_once", "train_run"]


@dataclasses.dataclass
class Context:
    """What a worker needs to train any run: the data, the folder and the runtime options."""

    data: object  # SequenceDataset
    root: Path
    cfg: object  # CompareConfig
    device: str = "cpu"
    threads: int = 1
    regen_dir: Path | None = None
    progress: bool = False
    _cache: dict = dataclasses.field(default_factory=dict)


def check_regen_dir(regen_dir, data) -> dict:
    """Check that ``regen_dir`` is a finished DR4SR folder made from ``data``; return its config (a dict).

    Reads only. ValueError (one line) when it is not a finished folder, when
    its regenerator's item count differs from the data's, or when it was
    regenerated from other data.
    """
    import torch

    from ..config import config_to_dict, load_config
    from ..dr4sr import RegenConfig
    from ..pipeline import dataset_sha256

    regen_dir = Path(regen_dir)
    needed = ("config.yaml", "source.json", "regenerator.pt", "regenerated.json")
    missing = [f for f in needed if not (regen_dir / f).is_file()]
    if missing:
        raise ValueError(f"--regen {regen_dir}: not a finished `fastregen regenerate` folder (no {', '.join(missing)}); "
                         "run `fastregen regenerate DATA --out DIR` first")
    try:
        record = torch.load(os.fspath(regen_dir / "regenerator.pt"), map_location="cpu", weights_only=True)
        n_items = int(record["num_items"])
    except Exception as e:  # a corrupt or foreign file: name it
        raise ValueError(f"--regen {regen_dir}: regenerator.pt is not a DR4SR checkpoint ({type(e).__name__})") from None
    if n_items != data.num_items:
        raise ValueError(f"--regen {regen_dir}: its regenerator was trained on {n_items} items, the data has "
                         f"{data.num_items}: regenerate this dataset, or pass the folder made from it")
    source = json.loads((regen_dir / "source.json").read_text())
    if source.get("sha256") != dataset_sha256(data):
        raise ValueError(f"--regen {regen_dir}: it was regenerated from other data ({source.get('path')!r}, "
                         "same item count, other sequences); pass the folder made from this dataset")
    regen = config_to_dict(load_config(RegenConfig, regen_dir / "config.yaml"))
    return {"folder_sha256": source.get("sha256"),
            **{k: v for k, v in regen.items() if k not in _RUNTIME_REGEN_FIELDS}}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links refused: a copy does as well
        import shutil

        shutil.copy2(src, dst)


def regenerate_once(data, config, *, pretrain_dir, decode_dir, lock_dir, item_embedding=None,
                    pretrain_config=None):
    """A fitted, regenerated `fastregen.dr4sr.DR4SR` of ``config``, built once however many workers ask.

    The regenerator is pre-trained once in ``pretrain_dir`` and decoded in
    ``decode_dir`` (the pre-training's files hard-linked in), so several
    decoding settings (a grid over ``gamma``) share one pre-training. Each
    folder is built under its own file lock in ``lock_dir``: a worker asking
    for a folder another is building waits for it, then reuses it; a folder
    already built is only read. `fastregen compare` (``prereq/``) and
    ``benchmarks/dr4sr_study.py`` (``regen/``, ``decode/``) both build their
    regenerators here.

    Parameters
    ----------
    data : SequenceDataset
    config : RegenConfig
        The decoding folder's config.
    pretrain_dir, decode_dir, lock_dir : path
    item_embedding : torch.Tensor, optional
        ``(num_items + 1, d)`` initial item table (DR4SR's baseline SASRec).
    pretrain_config : RegenConfig, optional
        The pre-training folder's config (default ``config``); it may differ
        from ``config`` only in fields the decoding and writing stages read.
    """
    from ..dr4sr import DR4SR

    pretrain_dir, decode_dir, lock_dir = Path(pretrain_dir), Path(decode_dir), Path(lock_dir)
    with file_lock(lock_dir / f"{pretrain_dir.name}.lock"):
        DR4SR(pretrain_config or config).fit(data, item_embedding=item_embedding, out_dir=pretrain_dir)
    with file_lock(lock_dir / f"{decode_dir.name}.lock"):
        decode_dir.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "source.json", "patterns.txt", "pairs.npz", "regenerator.pt"):
            if not (decode_dir / name).exists():
                _link_or_copy(pretrain_dir / name, decode_dir / name)
        dr = DR4SR(config).fit(data, item_embedding=item_embedding, out_dir=decode_dir)
        dr.regenerate()  # hybrid inference and the written set, once, under the lock
    return dr


def _dr4sr_set(ctx: Context, regen: dict):
    """The DR4SR training set of ``regen`` (RegenConfig fields), its regenerator built once (`regenerate_once`).

    Pre-trained once per pre-training config (``prereq/dr4sr-pretrain-HASH``)
    and decoded once per decoding config (``prereq/dr4sr-HASH``), so a grid
    over ``gamma`` pre-trains once.
    """
    from ..config import config_from_dict, load_config
    from ..dr4sr import DR4SR, RegenConfig

    # The pipeline's own record of which fields only its decoding and writing read.
    from ..dr4sr.pipeline import _STAGE_FIELDS

    runtime = {"progress": ctx.progress, "device": ctx.device}
    if ctx.regen_dir is not None:
        folder = ctx.regen_dir
        cfg = dataclasses.replace(load_config(RegenConfig, folder / "config.yaml"), **runtime)
    else:
        decode_only = _STAGE_FIELDS["inference"] | _STAGE_FIELDS["write"]
        pre_folder = ctx.root / "prereq" / f"dr4sr-pretrain-{_digest({k: v for k, v in regen.items() if k not in decode_only})}"
        folder = ctx.root / "prereq" / f"dr4sr-{_digest(regen)}"
        cfg = config_from_dict(RegenConfig, {**regen, **runtime})
    key = ("dr4sr", os.fspath(folder))
    if key not in ctx._cache:
        if ctx.regen_dir is not None:
            with file_lock(ctx.root / "locks" / f"prereq-{folder.name}.lock"):
                dr = DR4SR(cfg).fit(ctx.data, out_dir=folder)
                dr.regenerate()
        else:
            dr = regenerate_once(ctx.data, cfg, pretrain_dir=pre_folder, decode_dir=folder,
                                 lock_dir=ctx.root / "locks" / "prereq")
        ctx._cache[key] = dr.training_sets()[cfg.training_set]
    return ctx._cache[key]


def _unids_set(ctx: Context, unids: dict):
    from ..config import config_from_dict
    from ..unids import UniDS, UniDSConfig

    folder = ctx.root / "prereq" / f"unids-{_digest(unids)}"
    key = ("unids", os.fspath(folder))
    if key not in ctx._cache:
        cfg = config_from_dict(UniDSConfig, {**unids, "progress": ctx.progress, "device": ctx.device})
        with file_lock(ctx.root / "locks" / f"prereq-{folder.name}.lock"):
            ctx._cache[key] = UniDS(cfg).fit(ctx.data, out_dir=folder).generate()
    return ctx._cache[key]


def train_run(ctx: Context, run: Run) -> tuple[dict, object]:
    """Train ``run`` into ``ctx.root/runs/RUN_ID`` (resumable there); return (result, training set or None).

    ``result`` is what `fastregen.training.fit_and_evaluate` returns
    (``valid``, ``test``, ``test_ranks``, ``epochs``, ...).
    """
    from ..training import fit_and_evaluate

    setting = run.setting_dict
    resolved = method_config(ctx.cfg, run.method, setting)
    train_kwargs = dict(resolved["train"], num_threads=ctx.threads if ctx.device == "cpu" else 0,
                        device=ctx.device, progress=ctx.progress)
    model = train_kwargs.pop("model")
    out = ctx.root / "runs" / run.run_id
    if run.method in ("original", "reppad"):
        return fit_and_evaluate(ctx.data, model=model, seed=run.seed, out_dir=out, **train_kwargs), None
    if run.method == "unids":
        train = _unids_set(ctx, resolved["unids"])
        return fit_and_evaluate(ctx.data, model=model, seed=run.seed, train_data=train, out_dir=out,
                                **train_kwargs), train
    train = _dr4sr_set(ctx, resolved["regen"])
    if run.method == "dr4sr":
        return fit_and_evaluate(ctx.data, model=model, seed=run.seed, train_data=train, out_dir=out,
                                **train_kwargs), train
    from ..config import config_from_dict
    from ..dr4sr.plus import PlusConfig, personalize

    plus = config_from_dict(PlusConfig, resolved["plus"])
    return personalize(ctx.data, train, model, run.seed, plus=plus, out_dir=out, **train_kwargs), train
