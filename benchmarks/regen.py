"""DR4SR end to end on a real dataset: regenerate, then train target models on each training set.

(The tool of the earlier, superseded study: see BENCHMARKS.md. The declared
study under the authors' protocol is `benchmarks/dr4sr_study.py`.)

    python benchmarks/regen.py --data ../shared/data/beauty.txt --out /tmp/regen-bench \
        --seeds 0 1 2 --models sasrec gru4rec --regen-epochs 10 --epochs 50

For each target model and seed it trains on the original training split and
on the regenerated training sets (``combined`` = original + mined patterns +
regenerated, ``regenerated`` only, ``original+patterns`` = ``combined`` without the
regenerated patterns, ``patterns`` only = the paper's Table 4
row B), all evaluated on the original data's leave-one-out validation/test
targets; ``--ablate-k1`` adds the "-diversity" regenerator (K = 1). A
run that asks only for sets without regenerated patterns (``original``, ``patterns``,
``original+patterns``) mines and trains, without pre-training a regenerator. Each
finished run is appended to ``OUT/results.jsonl`` at once (a long job can be
stopped and still report), and ``OUT/summary.md`` gets the mean +- std table.
The regenerator's item table is initialised from the seed-0 SASRec trained
on the original data (as the authors do) unless ``--no-init``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch
from _harness import config_overrides  # noqa: E402 (this folder is on sys.path)

_MINED_ONLY = {"original", "patterns", "original+patterns"}


def _log(out: Path, record: dict) -> None:
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def _done(out: Path) -> dict:
    path = out / "results.jsonl"
    if not path.exists():
        return {}
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["model"], r["train_set"], r["seed"]): r for r in recs if "test" in r}


def summarise(out: Path, metrics=("ndcg@20", "recall@20"), extra: tuple = ()) -> str:
    """Mean +- std table of OUT/results.jsonl (and of the ``extra`` folders' results), to OUT/summary.md.

    "vs original" compares means; "per seed" lists each seed's relative
    change against the original-data run of the same model and seed.
    """
    runs = _done(out)
    for folder in extra:
        runs.update(_done(Path(folder)))
    groups: dict = {}
    for (model, train_set, seed), r in runs.items():
        groups.setdefault((model, train_set), []).append(r)
    lines = ["| model | training set | seeds | " + " | ".join(f"test {m}" for m in metrics)
             + f" | vs original ({metrics[0]}) | per seed |",
             "|---|---|---|" + "---|" * len(metrics) + "---|---|"]
    base = {}
    for (model, train_set), rs in sorted(groups.items()):
        if train_set == "original":
            base[model] = np.mean([r["test"][metrics[0]] for r in rs])
    for (model, train_set), rs in sorted(groups.items()):
        cells = []
        for m in metrics:
            v = np.array([r["test"][m] for r in rs])
            cells.append(f"{v.mean():.4f} ± {v.std():.4f}")
        mean0 = np.mean([r["test"][metrics[0]] for r in rs])
        rel = f"{100 * (mean0 / base[model] - 1):+.1f}%" if model in base and train_set != "original" else ""
        seeds = ",".join(str(r["seed"]) for r in sorted(rs, key=lambda r: r["seed"]))
        paired = []
        for r in sorted(rs, key=lambda r: r["seed"]):
            b = runs.get((model, "original", r["seed"]))
            if b is not None and train_set != "original":
                paired.append(f"{100 * (r['test'][metrics[0]] / b['test'][metrics[0]] - 1):+.1f}%")
        lines.append(f"| {model} | {train_set} | {seeds} | " + " | ".join(cells) + f" | {rel} | {', '.join(paired)} |")
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def _transition_keys(pairs: np.ndarray, num_items: int) -> np.ndarray:
    """One int64 key per item transition (a, b), rows of an (n, 2) array."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return pairs[:, 0] * np.int64(num_items + 2) + pairs[:, 1]


def _promoter_use(regenerator, patterns: torch.Tensor, batch: int = 4096) -> list | None:
    """Share of the (N, P) pre-training patterns whose largest ``pi`` is on each memory
    (the finished regenerator's promoter, so older checkpoints without `memory_use` are read too);
    None with ``diversity="hard"``, which has no promoter."""
    if regenerator.config.diversity == "hard" and regenerator.config.K > 1:
        return None
    regenerator.eval()
    with torch.no_grad():
        best = torch.cat([regenerator.promote(patterns[i:i + batch]).argmax(1) for i in range(0, len(patterns), batch)])
    return (torch.bincount(best, minlength=regenerator.config.K).double() / max(len(best), 1)).tolist()


def fidelity(data, regen_dir: Path) -> dict:
    """How close a regenerator's patterns stay to the data it was trained on.

    For the decoded patterns of ``regen_dir/regenerated_patterns.npz``: the
    share that are exactly a mined pattern, and the share of their item
    transitions (a -> b) that occur in the training sequences adjacently,
    within the mining span, or only in the reverse order (b before a); and
    the regenerator's held-out losses with the promoter's mixture and with
    the best single memory per pattern (`validation_losses`).
    """
    from fastregen.config import load_config
    from fastregen.patterns import Patterns, dr4sr_input, mine_patterns, window_counts
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import load_checkpoint
    from fastregen.patterns import PretrainPairs
    from fastregen.generator.pretrain import pair_tensors, validation_losses

    cfg = load_config(RegenConfig, regen_dir / "config.yaml")
    # read-only: load the finished stages, never (re)train into a folder another run may be writing
    regenerator, record = load_checkpoint(regen_dir / "regenerator.pt", num_items=data.num_items)
    if not record.get("complete") or not (regen_dir / "regenerated_patterns.npz").exists():
        raise SystemExit(f"{regen_dir}: the regenerator or its inference is not finished")
    pairs = PretrainPairs.load(regen_dir / "pairs.npz")
    losses = validation_losses(regenerator, pairs, cfg)
    # every transition of the training sequences, adjacent and within the mining span (compiled counters)
    train = dr4sr_input(data)
    adjacent = _transition_keys(window_counts(train, 2, 1).items, data.num_items)
    within = _transition_keys(mine_patterns(train, max_span=cfg.max_span, min_support=1, max_len=2).items,
                              data.num_items)
    mined = {p for p, _ in Patterns.load(regen_dir / "patterns.txt").to_list()}
    with np.load(regen_dir / "regenerated_patterns.npz") as z:
        offsets, items = z["offsets"], z["items"].astype(np.int64)
    pats = [tuple(items[a:b].tolist()) for a, b in itertools.pairwise(offsets)]
    # a transition starts at every position but each pattern's last
    starts = np.flatnonzero(np.isin(np.arange(len(items)), offsets[1:] - 1, invert=True))
    fwd = _transition_keys(np.stack([items[starts], items[starts + 1]], 1), data.num_items)
    rev = _transition_keys(np.stack([items[starts + 1], items[starts]], 1), data.num_items)
    in_within = np.isin(fwd, within)
    return {
        "patterns": len(pats),
        "mean_length": float(np.diff(offsets).mean()) if len(pats) else 0.0,
        "exact_mined": float(np.mean([p in mined for p in pats])) if pats else 0.0,
        "transitions": len(fwd),
        "adjacent_in_train": float(np.isin(fwd, adjacent).mean()) if len(fwd) else 0.0,
        "within_span_in_train": float(in_within.mean()) if len(fwd) else 0.0,
        "reverse_only": float((~in_within & np.isin(rev, within)).mean()) if len(fwd) else 0.0,
        "diversity": cfg.diversity, "entropy_weight": cfg.entropy_weight, "balance_weight": cfg.balance_weight,
        "K": cfg.K, "restrict": cfg.restrict,
        "memory_use": _promoter_use(regenerator, pair_tensors(pairs.sequences, pairs.patterns, cfg)[1]),
        **losses,
    }


def diversity_study(data, out: Path, epochs: int, seed: int = 0) -> str:
    """Effect of the diversity options (Gumbel-softmax, entropy term) on pi and on the patterns."""
    from fastregen.dr4sr import DR4SR, RegenConfig

    variants = [
        ("soft, no entropy term (default)", dict(diversity="soft", entropy_weight=0.0)),
        ("soft, entropy weight 1", dict(diversity="soft", entropy_weight=1.0)),
        ("gumbel, no entropy term", dict(diversity="gumbel", entropy_weight=0.0)),
        ("gumbel, entropy weight 1 (authors' code)", dict(diversity="gumbel", entropy_weight=1.0)),
        ("gumbel, entropy weight 1, balance weight 1",
         dict(diversity="gumbel", entropy_weight=1.0, balance_weight=1.0)),
    ]
    lines = ["| variant | final train CE | valid CE | entropy of pi (max ln 5 = 1.61) | patterns kept "
             "| duplicates across memories | mean length per memory |", "|---|---|---|---|---|---|---|"]
    for name, kw in variants:
        cfg = RegenConfig(epochs=epochs, seed=seed, progress=False, **kw)
        dr = DR4SR(cfg).fit(data)
        dr.regenerate()
        h, info = dr.history[-1], dr.inference_info
        lens = ", ".join(f"{x:.2f}" for x in info["mean_length_per_memory"])
        lines.append(f"| {name} | {h['train_loss']:.3f} | {h['valid_loss']:.3f} | {h['entropy']:.3f} | "
                     f"{info['kept']:,} / {info['decoded']:,} | {info['duplicates']:,} | {lens} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    (out / "diversity.md").write_text(text)
    return text


def main(argv=None) -> None:
    from fastregen.data import load
    from fastregen.dr4sr import DR4SR, RegenConfig
    from fastregen.training import fit_and_evaluate

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--models", nargs="+", default=["sasrec", "gru4rec"])
    ap.add_argument("--train-sets", nargs="+", default=["original", "combined", "regenerated", "patterns"])
    ap.add_argument("--epochs", type=int, default=200, help="target-model epoch cap (early stopping on valid)")
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--regen-epochs", type=int, default=20)
    ap.add_argument("--ablate-k1", action="store_true")
    ap.add_argument("--no-init", action="store_true")
    ap.add_argument("--train-targets", default="auto", choices=["auto", "all", "last", "packed"],
                    help="how target models see their training data (TrainConfig.train_targets); 'all' "
                         "is the authors' released protocol (SeparateDataset), 'packed' their unused "
                         "CondenseDataset")
    ap.add_argument("--init-from", default=None,
                    help="model.pt whose item table initialises the regenerator (default: this run's "
                         "seed-0 SASRec on the original data)")
    ap.add_argument("--regen-root", default=None,
                    help="folder holding (or to hold) regen-K*/ (default: --out); lets runs with another "
                         "training protocol reuse one regenerator")
    ap.add_argument("--regen-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra RegenConfig field (YAML value), e.g. diversity=gumbel; use a --regen-root of "
                         "its own")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--regenerate-only", action="store_true",
                    help="only time the regeneration stages (no target models)")
    ap.add_argument("--summarise", nargs="*", metavar="DIR", default=None,
                    help="only write OUT/summary.md from OUT's results and these folders' results.jsonl")
    ap.add_argument("--fidelity", nargs="+", metavar="REGEN_DIR", default=None,
                    help="only print how close each regen-K*/ folder's patterns stay to the training data")
    ap.add_argument("--diversity-study", type=int, metavar="N_SEQUENCES", default=0,
                    help="compare the diversity options on the first N sequences, then stop")
    args = ap.parse_args(argv)

    regen_extra = config_overrides(args.regen_set, "--regen-set")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.summarise is not None:
        print(summarise(out, extra=tuple(args.summarise)))
        return
    data = load(args.data)
    if args.fidelity:
        rows = [{"regenerator": d, **fidelity(data, Path(d))} for d in args.fidelity]
        (out / "fidelity.json").write_text(json.dumps(rows, indent=2))
        print(json.dumps(rows, indent=2))
        return
    if args.diversity_study:
        print(diversity_study(data.subset(range(min(args.diversity_study, len(data)))), out, args.regen_epochs))
        return
    if args.regenerate_only:
        cfg = RegenConfig(epochs=args.regen_epochs, seed=0, progress=False, **regen_extra)
        dr = DR4SR(cfg).fit(data, out_dir=out / "regen-K5")
        dr.regenerate()
        rec = {"stage_seconds": dr.stage_seconds, "statistics": dr.statistics(), "inference": dr.inference_info,
               "history": dr.history, "torch_threads": torch.get_num_threads()}
        (out / "regenerate_only.json").write_text(json.dumps(rec, indent=2))
        print(json.dumps(rec, indent=2))
        return
    done = _done(out)
    if args.train_targets != "auto":
        other = {r.get("train_targets", "all") for r in done.values()} - {args.train_targets}
        if other:
            raise SystemExit(f"{out / 'results.jsonl'} holds runs with train_targets={sorted(other)}; "
                             f"use another --out for --train-targets {args.train_targets}")
    train_kw = dict(epochs=args.epochs, patience=args.patience, progress=False, num_threads=args.threads,
                    train_targets=args.train_targets)
    regen_root = Path(args.regen_root) if args.regen_root else out

    def run(model, train_set, seed, train_data):
        if (model, train_set, seed) in done:
            return done[(model, train_set, seed)]
        t0 = time.perf_counter()
        res = fit_and_evaluate(data, model=model, seed=seed, train_data=train_data,
                               out_dir=out / f"{model}-{train_set}-{seed}", **train_kw)
        rec = {"model": model, "train_set": train_set, "seed": seed, "train_targets": res["train_targets"],
               "valid": res["valid"], "test": res["test"],
               "best_epoch": res.get("best_epoch"), "seconds": time.perf_counter() - t0,
               "train_sequences": None if train_data is None else len(train_data)}
        _log(out, rec)
        done[(model, train_set, seed)] = rec
        return rec

    # 1. the baseline whose item table initialises the regenerator
    from fastregen.models import load_model

    # sets with no regenerated pattern need no regenerator, hence no item table for it
    needs_regenerator = args.ablate_k1 or not set(args.train_sets) <= _MINED_ONLY
    init = needs_regenerator and not args.no_init
    emb = None
    if args.init_from and init:
        emb = load_model(args.init_from).item_embedding.weight.detach()
    if "original" in args.train_sets or (emb is None and init):
        # (with --no-init and a finished regen-K* folder this is only the baseline)
        run("sasrec", "original", args.seeds[0], None)
        if emb is None and init:
            emb = load_model(out / f"sasrec-original-{args.seeds[0]}" / "model.pt").item_embedding.weight.detach()

    # 2. regenerate (stage times recorded in regen-K*/regenerated.json)
    variants = {"": 5}
    if args.ablate_k1:
        variants["-k1"] = 1
    sets_by_variant = {}
    if set(args.train_sets) == {"original"}:
        variants = {}  # nothing regenerated is trained on: skip the regenerator
    elif not needs_regenerator:
        # no regenerated pattern is trained on: mining alone gives these sets, so the
        # regenerator (tens of minutes) is neither needed nor trained
        variants = {}
        cfg = RegenConfig(**{"epochs": args.regen_epochs, "seed": 0, "progress": False, **regen_extra})
        sets_by_variant[""] = DR4SR(cfg).mine(data, out_dir=regen_root / "regen-K5").training_sets()
    for suffix, K in variants.items():
        cfg = RegenConfig(**{"epochs": args.regen_epochs, "seed": 0, "progress": False, **regen_extra, "K": K})
        t0 = time.perf_counter()
        dr = DR4SR(cfg).fit(data, item_embedding=emb, out_dir=regen_root / f"regen-K{K}")
        dr.regenerate()
        sets_by_variant[suffix] = dr.training_sets()
        _log(out, {"regen": f"K{K}", "stage_seconds": dr.stage_seconds, "seconds": time.perf_counter() - t0,
                   "statistics": {k: v for k, v in dr.statistics().items()}, "inference": dr.inference_info,
                   "history": dr.history})

    # 3. target models on every training set, seed by seed
    for seed in args.seeds:
        for model in args.models:
            for train_set in args.train_sets:
                if train_set == "original":
                    run(model, "original", seed, None)
                    continue
                for suffix, sets in sets_by_variant.items():
                    if suffix and train_set != "combined":
                        continue  # the K = 1 ablation only on the DR4SR training set
                    run(model, train_set + suffix, seed, sets[train_set])
            print(summarise(out), flush=True)
    print(summarise(out))


if __name__ == "__main__":
    main()
