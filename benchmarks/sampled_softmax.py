"""The sampled softmax (``train_softmax="sampled"``) against the full one: step time, Beauty, Books.

    # one regenerator training step, full vs sampled, at several vocabulary sizes (the "auto" crossover)
    OMP_NUM_THREADS=1 python benchmarks/sampled_softmax.py step --vocab 2000 8000 16000 32000 64000 128000
    # Beauty: a regenerator trained each way (same seed, same epochs), held-out loss with the full softmax,
    # the regenerated training sets side by side
    OMP_NUM_THREADS=1 python benchmarks/sampled_softmax.py beauty --data ../shared/data/beauty.txt --epochs 5
    # Books: a fixed number of pre-training steps each way on synthetic("books"), extrapolated per epoch
    OMP_NUM_THREADS=1 python benchmarks/sampled_softmax.py books --steps 40

All on one thread. ``step`` and ``books`` time the variants in one process,
one step of each variant in turn, so that the machine's load
reaches them alike, and compare medians of the per-step times.
A variant ``SOFTMAX+lazy`` adds ``item_updates="lazy"`` (`fastregen.training.LazyAdam`). ``step``
runs the default regenerator (`RegenConfig()`: d 64, K 5) on one fixed
batch shaped like a Beauty batch (256 pairs, 64 distinct sources of 12
items, patterns of 2..5 items), ids drawn uniformly from the vocabulary;
the time is `Trainer.step`: forward, backward, the densified sparse
gradient and fused Adam. ``books`` runs `benchmarks/scale.py pipeline`'s
pre-training set-up (the whole model, optimizer and pairs of
``synthetic("books")``) for ``--steps`` steps of the epoch's batch order
per variant and extrapolates to the epoch's steps.

Rows go to ``benchmarks/results/sampled_softmax.csv`` (and ``books`` adds
one ``scale.csv`` row per variant, in that file's schema).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from pathlib import Path

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_row  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "sampled_softmax.csv"
COLUMNS = ["benchmark", "dataset", "variant", "metric", "value", "unit", "threads", "device", "machine", "commit",
           "date", "load", "note"]


class Rows:
    def __init__(self, args, benchmark: str, dataset: str) -> None:
        self.path, self.benchmark, self.dataset, self.threads = args.results, benchmark, dataset, args.threads
        self.commit, self.machine = git_commit(HERE), f"{os.cpu_count()} cores, {cpu_model()}"

    def add(self, variant: str, metric: str, value, unit: str, note: str = "") -> None:
        row = dict(benchmark=self.benchmark, dataset=self.dataset, variant=variant, metric=metric,
                   value=round(value, 6) if isinstance(value, float) else value, unit=unit, threads=self.threads,
                   device="cpu", machine=self.machine, commit=self.commit,
                   date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   load=f"{os.getloadavg()[0]:.1f}", note=note)
        append_row(self.path, row, COLUMNS)
        print(json.dumps(row), flush=True)


def _config(variant: str, **kw):
    """``"sampled"``, ``"source+lazy"``, ``"sampled:128"``: the training softmax, lazy item-table updates
    after "+", the number of negatives after ":" (default ``--negatives``)."""
    from fastregen.dr4sr import RegenConfig

    variant, _, negatives = variant.partition(":")
    softmax, _, lazy = variant.partition("+")
    if lazy not in ("", "lazy") or not (negatives == "" or negatives.isdigit()):
        raise SystemExit(f"unknown variant {variant!r} (SOFTMAX, SOFTMAX+lazy, optionally :NEGATIVES)")
    if negatives:
        kw["num_negatives"] = int(negatives)
    return RegenConfig(train_softmax=softmax, item_updates="lazy" if lazy else "dense", progress=False, seed=0,
                       **kw)


def _trainer(num_items: int, cfg, frequencies=None):
    import torch

    from fastregen.generator import Regenerator
    from fastregen.generator.pretrain import RegeneratorLoss, pretrain_optimizer
    from fastregen.training import Trainer

    torch.manual_seed(0)
    model = Regenerator(num_items, cfg)
    sampler = model.negative_sampler(frequencies) if model.train_softmax == "sampled" else None
    opt = pretrain_optimizer(model, cfg)
    trainer = Trainer(model, RegeneratorLoss(cfg, sampler=sampler), optimizer=opt, batch_size=cfg.batch_size, seed=0,
                      progress=False)
    trainer.model.train()
    return trainer


def _timed(trainer, batches) -> list[float]:
    out = []
    for b in batches:
        t0 = time.perf_counter()
        trainer.step(b)
        out.append(time.perf_counter() - t0)
    return out


def _alternating(trainers: dict, batches: list, steps: dict) -> dict[str, list[float]]:
    """Step times of each variant over ``batches``, one step of each in turn (round robin), so that
    a change of the machine's load reaches every variant alike; the first step of each is dropped."""
    times = {v: [] for v in trainers}
    for i, b in enumerate(batches[: max(steps.values()) + 1]):
        for v, tr in trainers.items():
            if i <= steps[v]:
                times[v] += _timed(tr, [b])
    return {v: t[1:] for v, t in times.items()}


# --------------------------------------------------------------------------- step
def step(args) -> None:
    import numpy as np
    import torch

    from fastregen.generator.pretrain import PairBatch

    rows = Rows(args, "train_step", "random Beauty-shaped batch")
    for V in args.vocab:
        n = V - 1  # ids a pattern can hold: items + EOS
        g = np.random.default_rng(V)
        S, L, B = 64, 12, 256
        src = torch.from_numpy(g.integers(1, n + 1, (S, L)))
        lengths = g.integers(2, 6, B)
        pattern = torch.from_numpy(g.integers(1, n + 1, (B, 5)) * (np.arange(5)[None] < lengths[:, None]))
        batch = PairBatch(src, torch.from_numpy(g.integers(0, S, B)), pattern)
        freq = np.bincount(pattern.numpy().ravel(), minlength=n + 2).astype(np.float64)
        freq[0], freq[n + 1] = 0, B
        trainers = {v: _trainer(n, _config(v, num_negatives=min(args.negatives, n + 1)), freq) for v in args.variants}
        times = _alternating(trainers, [batch] * (args.steps + 1), {v: args.steps for v in trainers})
        med = {v: statistics.median(t) for v, t in times.items()}
        for v in args.variants:
            rows.add(v, "seconds_per_step", med[v], "s",
                     note=f"V={V}; median of {len(times[v])} steps, variants alternating step by step; "
                          f"num_negatives {trainers[v].model.config.num_negatives}; RegenConfig() K=5 d=64")
        if "full" in med and "sampled" in med:
            rows.add("sampled", "speedup_vs_full", med["full"] / med["sampled"], "x", note=f"V={V}")
        del trainers


# --------------------------------------------------------------------------- beauty
def beauty(args) -> None:
    import numpy as np
    import torch

    from fastregen.data import load
    from fastregen.generator import hybrid_inference, pretrain
    from fastregen.dr4sr.pipeline import combine
    from fastregen.generator.pretrain import validation_losses
    from fastregen.mining import dr4sr_input, mine_patterns, pretrain_pairs

    rows = Rows(args, "regenerator_beauty", Path(args.data).name)
    data = load(args.data)
    train = dr4sr_input(data)
    patterns = mine_patterns(train, max_span=5, min_support=2)
    pairs = pretrain_pairs(train, patterns, max_per_sequence=10, seed=0, max_len=50)
    n, ids = data.num_items, data.item_ids
    summary = {}
    for v in args.variants:
        cfg = _config(v, epochs=args.epochs, num_negatives=args.negatives)
        t0 = time.perf_counter()
        model, history = pretrain(pairs, n, cfg)
        seconds = time.perf_counter() - t0
        held = validation_losses(model, pairs)  # train_softmax "full" / "sampled": scored with the full softmax
        regenerated, info = hybrid_inference(model, train, progress=False)
        original = combine(train, num_items=n, item_ids=ids, name="original")
        mined = combine(patterns.as_dataset(num_items=n), num_items=n, item_ids=ids, name="patterns")
        combined = combine(original, mined, regenerated, num_items=n, item_ids=ids, name="combined")
        lengths = np.bincount(regenerated.lengths, minlength=args.max_len_hist + 1)
        summary[v] = held["valid_best_memory_loss"]
        note = f"{args.epochs} epochs, seed 0, RegenConfig() K=5; num_negatives {args.negatives}"
        rows.add(v, "valid_best_memory_loss_full_softmax", held["valid_best_memory_loss"], "nats/token",
                 note=f"{note}; {held['pairs']} held-out pairs, best epoch's weights")
        rows.add(v, "valid_loss_full_softmax", held["valid_loss"], "nats/token", note=note)
        rows.add(v, "pretrain_seconds", seconds, "s", note=f"{note}; train + full-softmax validation per epoch; "
                 f"train seconds per epoch {[round(h['seconds'], 1) for h in history]}")
        rows.add(v, "regenerated_patterns", len(regenerated), "sequences", note=f"kept {info['kept']}")
        rows.add(v, "regenerated_interactions", int(regenerated.lengths.sum()), "items")
        rows.add(v, "regenerated_mean_length", float(regenerated.lengths.mean()), "items")
        rows.add(v, "regenerated_length_histogram", " ".join(str(int(c)) for c in lengths[2:]), "count",
                 note="patterns of length 2, 3, ... (min_pattern_len 2)")
        rows.add(v, "combined_sequences", len(combined), "sequences", note="original + mined + regenerated")
        rows.add(v, "combined_interactions", int(combined.num_interactions), "items")
        torch.save(model.state_dict(), Path(args.out) / f"regenerator-{v}.pt") if args.out else None
    if "full" in summary and "sampled" in summary:
        rows.add("sampled", "valid_best_memory_loss_ratio", summary["sampled"] / summary["full"], "x full",
                 note="held-out single-memory loss, full softmax, sampled / full")


# --------------------------------------------------------------------------- books
def books(args) -> None:
    import numpy as np
    import torch

    from fastregen.data import load, save, synthetic
    from fastregen.generator.pretrain import holdout_split, pair_data, target_frequencies
    from fastregen.mining import dr4sr_input, mine_patterns, pretrain_pairs

    sys.path.insert(0, os.fspath(HERE))
    import scale

    dataset = f"synthetic-books(n_users={args.users})"
    rows = Rows(args, "regenerator_books", dataset)
    path = Path(args.tmp or "/tmp") / f"books-{args.users}.txt"
    if not path.exists():
        save(synthetic("books", n_users=args.users), path)
    data = load(path)
    train_input = dr4sr_input(data)
    cfg0 = _config("source")
    patterns = mine_patterns(train_input, max_span=cfg0.max_span, min_support=cfg0.min_support)
    pairs = pretrain_pairs(train_input, patterns, max_per_sequence=cfg0.max_pairs_per_sequence, seed=0,
                           max_len=cfg0.max_len)
    pdata = pair_data(pairs, cfg0)
    _, train_idx = holdout_split(len(pdata), cfg0)
    ptrain = pdata.subset(train_idx)
    freq = target_frequencies(ptrain, data.num_items)
    trainers = {}
    for v in args.variants:
        trainers[v] = _trainer(data.num_items, _config(v, num_negatives=args.negatives), freq)
        trainers[v].set_normaliser(ptrain)
    order = ptrain.batch_order(cfg0.batch_size, torch.Generator().manual_seed(0), True)
    # the epoch's first steps, the same batches for every variant (the slow full softmax takes fewer)
    steps = {v: args.steps if not v.startswith("full") else min(args.full_steps, args.steps) for v in args.variants}
    times = _alternating(trainers, [ptrain.batch(idx) for idx in order[: args.steps + 1]], steps)
    med = {v: statistics.median(t) for v, t in times.items()}
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        for v, tr in trainers.items():
            batches = [ptrain.batch(idx) for idx in order[-args.profile:]]
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                _timed(tr, batches)
            print(f"== {v}: {args.profile} steps\n" + prof.key_averages().table(sort_by="self_cpu_time_total",
                                                                               row_limit=20), flush=True)
    for v in args.variants:
        # one experiment per variant: the scale report shows the latest row of each (experiment, stage)
        rec = scale.Recorder(argparse.Namespace(results=args.scale_results, threads=args.threads),
                             f"sampled_softmax:{v}", dataset)
        epoch = med[v] * len(order)
        note = (f"{len(times[v])} steps (variants alternating step by step), median {med[v]:.4f} s/step x "
                f"{len(order)} steps per epoch (extrapolated), variant {v!r} (train_softmax, +lazy: item_updates='lazy'), "
                f"num_negatives {args.negatives}")
        rows.add(v, "seconds_per_step", med[v], "s", note=note)
        rows.add(v, "seconds_per_epoch_extrapolated", epoch, "s", note=note)
        rec.row("regenerator", sequences=len(data), interactions=data.num_interactions, items=data.num_items,
                d=cfg0.d_model, batch=cfg0.batch_size, seconds=round(sum(times[v]), 3), full_seconds=epoch,
                fraction=round(len(times[v]) / len(order), 5), throughput=round(cfg0.batch_size / med[v], 1),
                unit="pairs/s", note=note)
    for v in args.variants:
        if v != args.reference and args.reference in med:
            rows.add(v, f"speedup_vs_{args.reference}", med[args.reference] / med[v], "x",
                     note="per-step medians in one run, alternating")
    if args.baseline_epoch:
        for v in args.variants:
            rows.add(v, "speedup_vs_recorded_epoch", args.baseline_epoch / (med[v] * len(order)), "x",
                     note=f"against the recorded {args.baseline_epoch:.0f} s per epoch (scale.csv, another run)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    for name in ("step", "beauty", "books"):
        p = sub.add_parser(name)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--results", default=str(RESULTS))
        p.add_argument("--negatives", type=int, default=None, help="default: DEFAULT_NUM_NEGATIVES")
        p.add_argument("--variants", nargs="+", default=["full", "sampled"])
        if name == "step":
            p.add_argument("--vocab", type=int, nargs="+", default=[2000, 8000, 16000, 32000, 64000, 128000])
            p.add_argument("--steps", type=int, default=12)
        if name == "beauty":
            p.add_argument("--data", required=True)
            p.add_argument("--epochs", type=int, default=5)
            p.add_argument("--out", default=None, help="folder for the two regenerators' weights")
            p.add_argument("--max-len-hist", type=int, default=24)
        if name == "books":
            p.add_argument("--users", type=int, default=800_000)
            p.add_argument("--tmp", default=None)
            p.add_argument("--steps", type=int, default=40)
            p.add_argument("--full-steps", type=int, default=4, help="steps of the (slow) full softmax")
            p.add_argument("--reference", default="source")
            p.add_argument("--profile", type=int, default=0, help="profile this many more steps per variant")
            p.add_argument("--baseline-epoch", type=float, default=3276.052,
                           help="the recorded seconds per epoch to compare with (scale.csv, 2026-12-04)")
            p.add_argument("--scale-results", default=str(HERE / "results" / "scale.csv"))
    args = ap.parse_args(argv)
    import torch

    from fastregen.training import DEFAULT_NUM_NEGATIVES

    torch.set_num_threads(args.threads)
    if args.negatives is None:
        args.negatives = DEFAULT_NUM_NEGATIVES
    {"step": step, "beauty": beauty, "books": books}[args.what](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
