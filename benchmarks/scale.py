"""Amazon-Books scale on one machine, and torch.distributed: time and peak memory per stage.

    # the paper's settings, every stage whole (rerun the same command to resume after the whole stages);
    # --threads 2 only on an otherwise idle machine: beside other busy processes a second thread spins
    # (BENCHMARKS.md, "Threads under load"), so there use --threads 1
    python benchmarks/scale.py pipeline --paper --threads 2 --work /tmp/scale-paper --tmp /tmp/scale
    # both cores by data parallelism (idle machine, ~30 min): pre-training, inference and the SASRec epoch on
    # 2 torchrun processes of one thread (each half of every global batch), validation and test on 2 threads
    python benchmarks/scale.py pipeline --paper --processes 2 --work /tmp/scale-paper-2p --tmp /tmp/scale
    # their total: 40 x pre-training epoch + inference + (SASRec epoch + validation) x Beauty's epochs
    python benchmarks/scale.py total            # --estimates: extrapolated rows where no whole one exists
    # a measured fraction of the long stages (extrapolated to the whole stage)
    nice -n 10 python benchmarks/scale.py pipeline --threads 1 --pretrain-steps 100 \
        --infer-sequences 4096 --train-steps 200 --valid-users 20000 --eval-users 20000
    # torchrun on CPU: 2-process inference on Beauty (byte-identical file), DDP training throughput
    python benchmarks/scale.py ddp --data ../shared/data/beauty.txt
    # hybrid decoding at V = 700k (CPU: chunked torch path; --device cuda: triton)
    python benchmarks/scale.py decode --sequences 2048 --threads 1
    # sparse item-table gradients vs dense; item_updates="lazy" vs fused Adam: pre-training and SASRec
    # steps at 700k items, side by side (CPU time per step with --cpu)
    python benchmarks/scale.py sparse --threads 1
    python benchmarks/scale.py steps --cpu --modes sparse,lazy --threads 1
    # lazy steps on 1 process and on 2 (torchrun, the row-sparse all-reduce): CPU per step per rank, all-reduce cost
    python benchmarks/scale.py steps --cpu --modes lazy --processes 1,2 --threads 1

``pipeline`` runs the stages of `fastregen.dr4sr.DR4SR` in its order
(``mine_patterns``, ``pretrain_pairs``, pre-training, ``hybrid_inference``,
the combined training set written to disk), then one SASRec epoch (BCE,
the "all" protocol, as DR4SR's target models, on the original training
split as the Beauty rows whose epochs `total` counts), one full-ranking
validation pass (what early stopping runs after every epoch) and the
full-ranking test evaluation, all in one process (``--processes N``: the
regenerator's and SASRec's training and the inference on N torchrun
processes, each taking the global batch / N, so the optimisation is the
one process's; the evaluations on rank 0 with ``--eval-threads``, default
threads x N; rows from rank 0, CPU seconds summed over the ranks). Each stage's peak RSS is
measured with `fastregen.memory.PeakRSS` (the kernel's high-water mark
reset at the stage's start), next to the memory model's estimate
(`fastregen.memory.pipeline_estimates`); the long stages' notes give their
CPU seconds too (all threads). A stage run on a fraction
(``--pretrain-steps`` of the epoch's steps, ``--infer-sequences``,
``--train-steps``, ``--valid-users``, ``--eval-users``) runs on the whole
data structures (whole model, optimizer state, pairs, output buffers where
the stage sizes them by the data) and its time is extrapolated linearly to
the whole stage (``full_seconds``; the ``fraction`` column says how much
ran). ``--paper`` refuses fractions and sets ``item_updates="lazy"`` for
the regenerator and SASRec (the Books-appropriate choice: the dense update
of the 700k-row table was most of both steps); ``--work DIR`` keeps the
stages run whole and their outputs (`Work`), so a rerun resumes after them.
``--skip-dr4sr`` runs only the SASRec epoch and the evaluations (their
rows say so). ``--valid-max-rank M`` ranks the validation pass only up to
rank M (``evaluate(max_rank=M)``, what ``TrainConfig.valid_max_rank``
does for early stopping: the same NDCG@20, each user's count ends once M
items beat its target); its row says so, and `total` counts it like any
whole validate row. The report shows, per stage, the latest row that ran the
whole stage, else the latest row: a later partial run (say, a few SASRec
steps before the evaluation) does not replace a measured whole stage.

Every stage appends one row to ``benchmarks/results/scale.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_result  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale.csv"
#: The extra columns of a scale row, after the core ones (benchmark ``scale/<experiment>``, variant: the stage,
#: metric ``seconds``); ``throughput_unit`` is the unit of ``throughput``.
EXTRA_COLUMNS = ["load", "sequences", "interactions", "items", "d", "batch", "processes", "fraction", "full_seconds",
                 "peak_rss_mib", "estimate_mib", "throughput", "throughput_unit", "note"]


class Recorder:
    def __init__(self, args, experiment: str, data: str) -> None:
        self.args, self.experiment, self.data = args, experiment, data
        self.commit = git_commit(HERE)
        self.machine = f"{os.cpu_count()} cores, {cpu_model()}"

    def row(self, stage: str, **values) -> dict:
        """Append the row of ``stage`` (``seconds`` its value; ``unit`` the throughput's) and return it.

        Under torchrun rank 0 alone writes (the others return an empty dict); ``processes`` defaults to
        the number of ranks.
        """
        from fastregen.training import distributed

        if not distributed.is_main():
            return {}
        world = distributed.current()
        values.setdefault("processes", 1 if world is None else world.size)
        start = values.pop("start", None)
        if start is not None:
            values["note"] = (values.get("note", "") + f"; RSS at start {start / 2**20:.0f} MiB").lstrip("; ")
        values = {k: (round(v, 5 if k == "fraction" else 3) if isinstance(v, float) else v) for k, v in values.items()}
        extra = {c: "" for c in EXTRA_COLUMNS}
        extra.update(load=f"{os.getloadavg()[0]:.1f}", throughput_unit=values.pop("unit", ""))
        threads = values.pop("threads", getattr(self.args, "threads", ""))
        device = getattr(self.args, "device", "cpu") if self.experiment == "decode" else "cpu"
        seconds = values.pop("seconds")
        extra.update(values)
        row = append_result(self.args.results, benchmark=f"scale/{self.experiment}", dataset=self.data, variant=stage,
                            metric="seconds", value=seconds, unit="s", threads=threads, device=device,
                            machine=self.machine, commit=self.commit, **extra)
        print(json.dumps({k: v for k, v in row.items() if v != ""}), flush=True)
        return row


def _mib(n: int | float) -> float:
    return round(n / 2**20, 1)


# --------------------------------------------------------------------------- pipeline
class UsageError(Exception):
    """A user error: printed as one line, exit code 2."""


#: The long stages a ``--work`` folder keeps once run whole (their outputs are reloaded on a rerun).
RESUMABLE = ("patterns", "pairs", "regenerator", "inference", "write", "sasrec_epoch", "validate", "evaluate")


class Work:
    """A ``--work`` folder: which stages ran whole, and the outputs later stages need.

    A rerun with the same folder and settings skips the stages recorded as
    whole (no new row) and reloads their outputs: the pre-trained
    regenerator (``regenerator.pt``), the regenerated sequences
    (``regenerated.npz``), the SASRec after its epoch (``sasrec.pt``). A
    stage interrupted midway runs again from its start. Without a folder
    every stage runs and nothing is kept.
    """

    def __init__(self, folder, ident: dict) -> None:
        self.folder, self.ident, self.done = None if folder is None else Path(folder), ident, []
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "stages.json"
        if path.exists():
            state = json.loads(path.read_text())
            if state["ident"] != ident:
                diff = sorted(k for k in {**ident, **state["ident"]} if ident.get(k) != state["ident"].get(k))
                raise UsageError(f"--work {self.folder} holds a run with other settings ({', '.join(diff)}: "
                                 f"{ {k: state['ident'].get(k) for k in diff} }); use another folder")
            self.done = list(state["done"])

    def ran(self, stage: str) -> bool:
        return stage in self.done

    def file(self, name: str) -> Path | None:
        return None if self.folder is None else self.folder / name

    def finish(self, stage: str, whole: bool) -> None:
        """Record ``stage`` as run whole (a stage run on a fraction is not kept)."""
        from fastregen._io import atomic_open
        from fastregen.training import distributed

        if self.folder is None or not whole or stage in self.done:
            return
        self.done.append(stage)
        if not distributed.is_main():  # every rank keeps the record; rank 0 writes it
            return
        with atomic_open(self.folder / "stages.json") as f:
            json.dump({"ident": self.ident, "done": self.done}, f, indent=1)

    def save_state(self, name: str, state: dict) -> None:
        import torch

        from fastregen._io import atomic_open
        from fastregen.training import distributed

        if self.folder is not None and distributed.is_main():
            with atomic_open(self.folder / name, "wb") as f:
                torch.save(state, f)


def pipeline(args) -> None:
    """The DR4SR stages and SASRec's at Books scale, one row each; on ``--processes`` N: under torchrun."""
    from fastregen.training import distributed

    fractions = {"--pretrain-steps": args.pretrain_steps, "--infer-sequences": args.infer_sequences,
                 "--train-steps": args.train_steps, "--valid-users": args.valid_users, "--eval-users": args.eval_users}
    if args.paper and any(fractions.values()):
        raise UsageError(f"--paper runs every stage whole; drop {', '.join(k for k, v in fractions.items() if v)}")
    for k, v in fractions.items():
        if v < 0:
            raise UsageError(f"{k} must be >= 0 (0: the whole stage), got {v}")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    if args.valid_max_rank and args.valid_max_rank < 20:
        raise UsageError(f"--valid-max-rank must be >= 20 (the rows report NDCG@20) or 0, got {args.valid_max_rank}")
    if args.paper and args.item_updates == "dense":
        raise UsageError("--paper sets --item-updates lazy (the Books-appropriate choice); drop --item-updates dense")
    n_proc = _check_processes(args, batch=256)  # both the regenerator's and SASRec's batch are 256
    if args.eval_threads is not None and args.eval_threads < 1:
        raise UsageError(f"--eval-threads must be >= 1, got {args.eval_threads}")
    from pretrain_speed import parse_options

    try:
        args.options = parse_options(args.option)
    except (ValueError, TypeError) as err:
        raise UsageError(f"--option: {err}") from None
    bad = sorted(set(args.skip) - set(SKIPPABLE))
    if bad:
        raise UsageError(f"--skip takes {', '.join(SKIPPABLE)}; got {', '.join(bad)}")
    if n_proc > 1 and distributed.requested_world_size() == 1:
        _books_file(args)  # written once here, before the ranks read it
        return _torchrun(args, n_proc)
    with distributed.session("cpu"):
        _pipeline(args)
    if distributed.requested_world_size() > 1:
        # a rank that trained under gloo may abort in the interpreter's teardown, its rows written (as the
        # step worker's did, `STEP_WORKER`): leave without it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


#: Stages ``pipeline --skip`` leaves out (their earlier rows stand in `total`): the regenerated data's
#: decoding (with the writing of the combined set, which needs it) and the test evaluation, each run once.
SKIPPABLE = ("inference", "evaluate")


def _check_processes(args, batch: int) -> int:
    """``--processes`` checked: >= 1, a divisor of the global ``batch`` (each rank takes ``batch / N``, so the
    optimisation is the one process's), and the number of ranks when already under torchrun."""
    from fastregen.training import distributed

    n = args.processes
    if n < 1:
        raise UsageError(f"--processes must be >= 1, got {n}")
    if batch % n:
        raise UsageError(f"--processes {n} does not divide the global batch of {batch}")
    ranks = distributed.requested_world_size()
    if ranks > 1 and ranks != n:
        raise UsageError(f"--processes {n} under a torchrun of {ranks} processes")
    return n


def _torchrun(args, n: int) -> None:
    """Run this command again on ``n`` processes (``torchrun --standalone``, one thread each unless
    ``--threads``); its rows are rank 0's."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", str(Path(__file__)),
           *args.argv]
    out = subprocess.run(cmd, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)), check=False)
    if out.returncode:
        raise SystemExit(f"scale.py {args.cmd}: the {n}-process run failed (exit {out.returncode})")


def _cpu_of_ranks(cpu: float) -> float:
    """This stage's CPU seconds summed over the ranks (on rank 0; its own elsewhere; ``cpu`` alone)."""
    from fastregen.training import distributed

    every = distributed.gather_object(cpu)
    return cpu if every is None else float(sum(every))


def _pipeline(args) -> None:
    """`pipeline`'s stages, in one process or on every rank of a torchrun."""
    import numpy as np
    import torch

    from fastregen import memory
    from fastregen._io import atomic_open
    from fastregen.data import SequenceDataset, concat, load, save
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import Regenerator, hybrid_inference
    from fastregen.generator.pretrain import RegeneratorLoss, holdout_split, pair_data, pretrain_optimizer
    from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs
    from fastregen.training import Trainer, distributed

    updates = "lazy" if args.paper else args.item_updates or "dense"
    torch.set_num_threads(args.threads)
    memory.limit_heap_retention()  # as the fastregen commands do
    if not memory.can_reset_peak():
        raise SystemExit("needs /proc/self/clear_refs (Linux) to measure each stage's peak")
    rec = Recorder(args, "pipeline", f"synthetic-books(n_users={args.users})")
    from pretrain_speed import options_label

    options = getattr(args, "options", {})
    label = options_label(options)
    work = Work(args.work, {"users": args.users, "item_updates": updates, "skip_dr4sr": args.skip_dr4sr,
                            **({"options": label} if label else {})})
    cfg = RegenConfig(**{"epochs": 1, "progress": args.progress, "seed": 0, "item_updates": updates, **options})
    tcfg = dict(embed_dim=64, max_len=50, batch=256, item_updates=updates)
    n_proc = args.processes
    # what the rows of stages that depend on the settings say about them
    layout = (f"{args.threads} thread(s)" if n_proc == 1 else
              f"{n_proc} processes (torchrun, gloo) x {args.threads} thread(s), the global batch / N per process; "
              "peak RSS is rank 0's (each process holds its own copy)")
    settings = (f"item_updates={updates}{', --paper' if args.paper else ''}{', regenerator ' + label if label else ''}; "
                f"{layout} on {os.cpu_count()} cores")

    # the pipeline reads a text file, as `fastregen regenerate` does (written once, then cached)
    path = _books_file(args)
    base = memory.current_rss()
    with memory.PeakRSS() as m:
        data = load(path)
    shape = dict(sequences=len(data), interactions=data.num_interactions, items=data.num_items, d=cfg.d_model)

    def estimate(stage, **known):
        return _mib(memory.pipeline_estimates(len(data), data.num_interactions, data.num_items, cfg, base=base,
                                              lengths=data.lengths, target_batch=tcfg["batch"], eval_batch=1024,
                                              **known)[stage].total)

    def row(stage, whole=True, **values):
        """The stage's row, unless a ``--work`` folder already holds the stage run whole."""
        if not work.ran(stage):
            rec.row(stage, **shape, **values)
            work.finish(stage, whole)

    rec.row("data", **shape, seconds=m.seconds, full_seconds=m.seconds, fraction=1, peak_rss_mib=_mib(m.peak),
            start=m.start, estimate_mib=estimate("data"), note=f"fastregen.data.load of {path.name}")

    if args.skip_dr4sr:
        return _target_model(args, rec, work, data, shape, estimate, tcfg, settings)
    # mining and pairs are short and deterministic: rerun on a resume (their outputs are not kept)
    with memory.PeakRSS() as m:
        train_input = dr4sr_input(data)
        patterns = mine_patterns(train_input, max_span=cfg.max_span, min_support=cfg.min_support)
    row("patterns", seconds=m.seconds, full_seconds=m.seconds, fraction=1, peak_rss_mib=_mib(m.peak), start=m.start,
        estimate_mib=estimate("patterns"), throughput=len(patterns), unit="patterns")

    with memory.PeakRSS() as m:
        pairs = pretrain_pairs(train_input, patterns, max_per_sequence=cfg.max_pairs_per_sequence, seed=cfg.seed,
                               max_len=cfg.max_len)
    row("pairs", seconds=m.seconds, full_seconds=m.seconds, fraction=1, peak_rss_mib=_mib(m.peak), start=m.start,
        estimate_mib=estimate("pairs", pairs=len(pairs)), throughput=len(pairs), unit="pairs")

    torch.manual_seed(cfg.seed)
    model = Regenerator(data.num_items, cfg)
    if work.ran("regenerator"):
        model.load_state_dict(torch.load(work.file("regenerator.pt"), weights_only=True))
        model.eval()
    else:
        # pre-training: what `pretrain` builds (pairs, held-out split, model, Adam, Trainer), one epoch or its first steps
        cpu = time.process_time()
        with memory.PeakRSS() as m:
            pdata = pair_data(pairs, cfg)
            valid_idx, train_idx = holdout_split(len(pdata), cfg)
            ptrain = pdata.subset(train_idx)
            opt = pretrain_optimizer(model, cfg)
            model.use_fused_attention(cfg.fused_attention)
            # on N processes each takes batch / N of every global batch: the steps of one process
            trainer = Trainer(model, RegeneratorLoss(cfg), optimizer=opt, batch_size=cfg.batch_size // n_proc,
                              seed=cfg.seed, progress=args.progress, desc="regenerator")
            trainer.set_normaliser(ptrain)
            order = ptrain.batch_order(cfg.batch_size, trainer.order_generator, True)
            steps = len(order) if not args.pretrain_steps else min(args.pretrain_steps, len(order))
            times = _step_times(trainer)
            t0 = time.perf_counter()
            trainer.run_epoch(ptrain, order=order[:steps])
            spent = time.perf_counter() - t0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}  # EarlyStopping keeps one
            model.use_fused_attention(False)  # as `pretrain` leaves it
            model.eval()
            model.zero_grad(set_to_none=True)  # as Trainer.fit does at its end
        cpu = _cpu_of_ranks(time.process_time() - cpu)
        per_step = statistics.median(times[2:]) if len(times) > 4 else spent / steps
        full = spent if steps == len(order) else per_step * len(order)
        if steps == len(order):
            work.save_state("regenerator.pt", model.state_dict())
        row("regenerator", whole=steps == len(order), batch=cfg.batch_size, seconds=spent, full_seconds=full,
            fraction=round(steps / len(order), 5), peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("regenerator", pairs=len(pairs)), throughput=round(cfg.batch_size / per_step, 1),
            unit="pairs/s", note=f"{steps} of {len(order)} steps, {len(ptrain)} training pairs; "
                                 f"median {per_step:.3f} s/step; CPU {cpu:.0f} s; {settings}")
        del trainer, opt, best_state, pdata, ptrain

    n_src = int((train_input.lengths > 0).sum())
    if "inference" in args.skip:
        del model, pairs, patterns, train_input
        return _target_model(args, rec, work, data, shape, estimate, tcfg, settings)
    if work.ran("inference"):
        with np.load(work.file("regenerated.npz")) as z:
            regenerated = SequenceDataset(z["offsets"], z["items"], num_items=int(z["num_items"]))
        done = n_src
    else:
        cpu = time.process_time()
        with memory.PeakRSS() as m:
            sources = train_input if not args.infer_sequences else train_input.subset(
                np.arange(min(args.infer_sequences, len(train_input))))
            regenerated, info = hybrid_inference(model, sources, config=cfg.decoding())  # sharded on N processes
        done, cpu = info["sequences"], _cpu_of_ranks(time.process_time() - cpu)
        if done == n_src and work.folder is not None and distributed.is_main():
            with atomic_open(work.file("regenerated.npz"), "wb") as f:
                np.savez(f, offsets=regenerated.offsets, items=regenerated.items, num_items=regenerated.num_items)
        row("inference", whole=done == n_src, batch=cfg.decode_batch_size, seconds=m.seconds,
            full_seconds=m.seconds * n_src / done, fraction=round(done / n_src, 5), peak_rss_mib=_mib(m.peak),
            start=m.start, estimate_mib=estimate("inference", pairs=len(pairs), decoded_sequences=done),
            throughput=round(done / m.seconds, 2), unit="sequences/s",
            note=f"{done} sequences x K={cfg.K}, {info['kept']} patterns kept, backend torch (chunked); CPU {cpu:.0f} s; "
                 + settings.replace("the global batch / N per process", "whole decode batches dealt round-robin"))

    if not work.ran("write") and distributed.is_main():
        with memory.PeakRSS() as m, tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            n, ids = data.num_items, data.item_ids
            original = concat(train_input, num_items=n, item_ids=ids, name="original", drop_empty=True)
            mined = concat(patterns.as_dataset(num_items=n), num_items=n, item_ids=ids, name="patterns", drop_empty=True)
            combined = concat(original, mined, regenerated, num_items=n, item_ids=ids, name="combined", drop_empty=True)
            save(combined, Path(tmp) / "regenerated.txt", drop_empty=True)
            size = (Path(tmp) / "regenerated.txt").stat().st_size
        # after a partial inference the set written is smaller: its row is no whole stage (not extrapolated)
        row("write", whole=done == n_src, seconds=m.seconds, full_seconds=m.seconds,
            fraction=1 if done == n_src else round(done / n_src, 5), peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("write", pairs=len(pairs), decoded_sequences=done),
            throughput=combined.num_interactions, unit="interactions",
            note=f"combined training set, {size / 2**20:.0f} MiB of text"
                 + ("" if done == n_src else f", after inference on {100 * done / n_src:.2f}% of the sources"))
        del original, mined, combined
    del model, regenerated, pairs, patterns, train_input
    _target_model(args, rec, work, data, shape, estimate, tcfg, settings)


def _target_model(args, rec, work, data, shape, estimate, tcfg, settings) -> None:
    """One SASRec epoch on the training split, one full-ranking validation pass (what early stopping runs
    after every epoch), then the full-ranking test evaluation."""
    import torch

    from fastregen import memory
    from fastregen.data import leave_one_out
    from fastregen.models import build_model
    from fastregen.training import Examples, NextItemLoss, TrainConfig, Trainer, distributed
    from fastregen.training.fit import target_optimizer

    split = leave_one_out(data)
    shape = {**shape, "d": tcfg["embed_dim"]}
    torch.manual_seed(0)
    net = build_model("sasrec", data.num_items, embed_dim=tcfg["embed_dim"], max_len=tcfg["max_len"])
    # a --skip-dr4sr run starts these stages right after loading the data, not after the DR4SR stages
    after = "; in a --skip-dr4sr run" if args.skip_dr4sr else ""
    steps = total = 0
    if work.ran("sasrec_epoch"):
        net.load_state_dict(torch.load(work.file("sasrec.pt"), weights_only=True))
    else:
        cpu = time.process_time()
        with memory.PeakRSS() as m:
            examples = Examples(split.train, net.max_len, "all")
            opt = target_optimizer(TrainConfig(item_updates=tcfg["item_updates"], lr=1e-3), net)
            trainer = Trainer(net, NextItemLoss("bce", 1), optimizer=opt, batch_size=tcfg["batch"] // args.processes,
                              seed=0, progress=args.progress, desc="sasrec")
            trainer.set_normaliser(examples)
            order = examples.batch_order(tcfg["batch"], trainer.order_generator, True)
            total = len(order)
            steps = total if not args.train_steps else min(args.train_steps, total)
            times = _step_times(trainer)
            t0 = time.perf_counter()
            trainer.run_epoch(examples, order=order[:steps])
            spent = time.perf_counter() - t0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}  # what EarlyStopping keeps
            net.zero_grad(set_to_none=True)
        cpu = _cpu_of_ranks(time.process_time() - cpu)
        per_step = statistics.median(times[2:]) if len(times) > 4 else spent / steps
        full = spent if steps == total else per_step * total
        if steps == total:
            work.save_state("sasrec.pt", net.state_dict())
        rec.row("sasrec_epoch", **shape, batch=tcfg["batch"], seconds=spent, full_seconds=full,
                fraction=round(steps / total, 5), peak_rss_mib=_mib(m.peak), start=m.start,
                estimate_mib=estimate("train"), throughput=round(tcfg["batch"] / per_step, 1), unit="examples/s",
                note=f"{steps} of {total} steps (BCE, 'all' protocol); median {per_step:.3f} s/step; "
                     f"CPU {cpu:.0f} s; {settings}{after}")
        work.finish("sasrec_epoch", steps == total)
        del trainer, best_state, examples, opt
    trained = (f"after {steps} of {total} SASRec steps" if total else "after the SASRec epoch of this --work folder")
    if not distributed.is_main():  # rank 0 evaluates (as `EarlyStopping` does) on --eval-threads threads
        distributed.barrier()
        return
    threads = args.eval_threads or args.threads * args.processes
    torch.set_num_threads(threads)
    ranked = f"item_updates={tcfg['item_updates']}; {threads} thread(s) on {os.cpu_count()} cores"
    if args.processes > 1:
        ranked += f", rank 0 of {args.processes} processes"
    for stage, part, users in (("validate", split.valid, args.valid_users), ("evaluate", split.test, args.eval_users)):
        if not work.ran(stage) and stage not in args.skip:
            _rank_stage(rec, work, stage, net, part, users, shape, estimate, data.num_items,
                        f"{trained}; {ranked}{after}", threads,
                        max_rank=(args.valid_max_rank or None) if stage == "validate" else None)
    distributed.barrier()


def _rank_stage(rec, work, stage, net, part, users, shape, estimate, num_items, note, threads,
                max_rank=None) -> None:
    """One full-ranking pass over ``part`` (the validation or test split), or ``users`` of its users;
    with ``max_rank``, ranks capped there (`evaluate`'s ``max_rank``)."""
    import numpy as np

    from fastregen import memory
    from fastregen.data import EvalSplit
    from fastregen.evaluation import evaluate

    n = len(part)
    users = n if not users else min(users, n)
    if users < n:
        pick = np.sort(np.random.default_rng(0).choice(n, users, replace=False))
        part = EvalSplit(history=part.history.subset(pick), target=part.target[pick], users=part.users[pick])
    cpu = time.process_time()
    stats = {}
    capped = {} if max_rank is None else dict(ks=tuple(k for k in (10, 20, 50) if k <= max_rank), max_rank=max_rank,
                                              _stats=stats)
    with memory.PeakRSS() as m:
        metrics = evaluate(net.eval(), part, batch_size=1024, **capped)
    cpu = time.process_time() - cpu
    which = "validation" if stage == "validate" else "test"
    how = "full ranking"
    if max_rank is not None:
        share = f", {stats['scanned'] / (users * (num_items + 1)):.4f} of the (user, item) pairs scanned" if stats else ""
        how = f"ranks capped at {max_rank} (evaluate(max_rank={max_rank}){share})"
    rec.row(stage, **shape, batch=1024, threads=threads, processes=1, seconds=m.seconds, full_seconds=m.seconds * n / users,
            fraction=round(users / n, 5), peak_rss_mib=_mib(m.peak), start=m.start, estimate_mib=estimate("evaluate"),
            throughput=round(users / m.seconds, 1), unit="users/s",
            note=f"{how} over {num_items} items, {users} of {n} {which} users, item-chunked; "
                 f"NDCG@20 {metrics['ndcg@20']:.4f} {note}; CPU {cpu:.0f} s")
    work.finish(stage, users == n)


def _step_times(trainer) -> list[float]:
    from fastregen.training import CallbackHook

    times, last = [], [time.perf_counter()]

    def step(t, b, v):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    trainer.hooks.append(CallbackHook(step=step))
    return times


# --------------------------------------------------------------------------- total
#: Pre-training epochs of the paper's settings (issue 28 item 6; the released DR4SR configs, V1 of
#: BENCHMARKS.md's declared study); ``scale.py total --pretrain-epochs`` changes it.
PAPER_PRETRAIN_EPOCHS = 40
#: The pipeline stages of the total and how many times each runs: once, per pre-training epoch, or per
#: target-model epoch (an epoch's training and the validation pass early stopping runs after it).
TOTAL_TERMS = {"data": "once", "patterns": "once", "pairs": "once", "regenerator": "pretrain", "inference": "once",
               "write": "once", "sasrec_epoch": "epochs", "validate": "epochs", "evaluate": "once"}
#: Stages whose time depends on ``item_updates`` (their rows' notes say ``item_updates=lazy`` when lazy).
UPDATE_STAGES = ("regenerator", "sasrec_epoch")


def beauty_epochs(dr4sr_csv) -> tuple[float, list[int]]:
    """The mean of ``epochs`` (epochs trained, early stopping's patience included) over the
    fastregen-scheme (``protocol`` "all", not "all/authors") SASRec rows on the original Beauty data of
    ``dr4sr_csv``, and the values it averages."""
    import csv

    path = Path(dr4sr_csv)
    if not path.is_file():
        raise UsageError(f"--dr4sr {path}: no such file")
    with open(path, newline="") as f:
        epochs = [int(r["epochs"]) for r in csv.DictReader(f)
                  if (r["dataset"], r["model"], r["train_set"], r["protocol"]) == ("beauty", "sasrec", "original", "all")
                  and r["epochs"]]
    if not epochs:
        raise UsageError(f"--dr4sr {path}: no fastregen-scheme SASRec row on the original Beauty data "
                         "(dataset beauty, model sasrec, train_set original, protocol all)")
    return statistics.mean(epochs), epochs


def _updates(row: dict) -> str:
    return "lazy" if "item_updates=lazy" in row["note"] else "dense"


def paper_total(rows: list[dict], data: str, epochs: float, *, pretrain_epochs: int = PAPER_PRETRAIN_EPOCHS,
                item_updates: str = "lazy", threads: int | None = None, estimates: bool = False,
                clock: str = "wall") -> dict:
    """The time of the paper's settings on ``data`` from ``scale.csv`` rows (as `_results.read_results` gives them).

    ``pretrain_epochs`` x the regenerator epoch + inference + ``epochs`` x
    (SASRec epoch + validation pass) + the stages that run once (data,
    patterns, pairs, write, test evaluation), each from the latest pipeline
    row of that stage that ran it whole (``fraction`` 1), with
    ``item_updates`` for the stages it changes, on ``threads`` torch
    threads when given, whatever its number of processes: a run of some
    stages on 2 processes (``pipeline --processes 2``) replaces those
    stages' terms and leaves the others' rows standing. ``estimates=True`` takes the latest row where no
    whole one exists (its time extrapolated from a fraction; a missing
    ``validate`` takes the test ``evaluate`` row, the same pass over the
    same number of users), and says so per term. ``clock="cpu"`` counts
    the CPU seconds a row's note gives (``CPU N s``, all threads and processes; divided by
    the row's fraction) instead of its wall time: on a shared machine, the
    time the stages would take with a core to themselves. A row without a
    CPU figure (the short stages) counts its wall time, and says so.

    Returns
    -------
    dict
        ``terms`` (one dict per stage: ``stage``, ``seconds`` of one run,
        ``times``, ``total``, ``whole`` (measured whole), ``source`` (how it
        was found), ``commit``, ``threads``, ``processes``, ``peak_rss_mib``), ``seconds``,
        ``hours``, ``peak_rss_mib`` (the largest stage peak), ``whole``
        (every term measured whole), ``epochs``, ``pretrain_epochs``.
    """
    pipe = [r for r in rows if r["benchmark"] == "scale/pipeline" and r["dataset"] == data
            and (threads is None or str(r["threads"]) == str(threads))]
    times = {"once": 1, "pretrain": pretrain_epochs, "epochs": epochs}
    terms, missing = [], []
    for stage, how in TOTAL_TERMS.items():
        mine = [r for r in pipe if r["variant"] == stage and (stage not in UPDATE_STAGES or _updates(r) == item_updates)]
        whole = [r for r in mine if float(r["fraction"] or 1) >= 1]
        source = "whole stage"
        if whole:
            r = whole[-1]
        elif estimates and mine:
            r, source = mine[-1], f"extrapolated from {100 * float(mine[-1]['fraction']):.2f}% of the stage"
        elif estimates and stage == "validate" and (test := [r for r in pipe if r["variant"] == "evaluate"]):
            r, source = test[-1], "the test evaluation's row (same users, same items)"
        else:
            missing.append(stage)
            continue
        if capped := re.search(r"ranks capped at \d+", r["note"]):
            source += f"; {capped.group(0)}"
        one = float(r["full_seconds"] or r["value"])
        if clock == "cpu":
            cpu = re.search(r"\bCPU (\d+(?:\.\d+)?) s\b", r["note"])
            if cpu:
                one = float(cpu.group(1)) / float(r["fraction"] or 1)
            else:
                source += "; wall time (no CPU figure)"
        terms.append(dict(stage=stage, seconds=one, times=times[how], total=one * times[how],
                          whole=source.startswith("whole stage"), source=source, commit=r["commit"], threads=r["threads"],
                          processes=int(r.get("processes") or 1), peak_rss_mib=float(r["peak_rss_mib"] or 0)))
    if missing:
        wanted = f"item_updates={item_updates}" + ("" if threads is None else f", {threads} thread(s)")
        raise UsageError(f"no {'' if estimates else 'whole-stage '}pipeline row of {', '.join(missing)} for {data} "
                         f"({wanted}); run `scale.py pipeline --paper --work DIR`"
                         + ("" if estimates else " or pass --estimates"))
    seconds = sum(t["total"] for t in terms)
    return dict(terms=terms, seconds=seconds, hours=seconds / 3600, peak_rss_mib=max(t["peak_rss_mib"] for t in terms),
                whole=all(t["whole"] for t in terms), epochs=epochs, pretrain_epochs=pretrain_epochs)


def total(args) -> None:
    """Print the paper-settings total from the latest whole-stage pipeline rows (`paper_total`)."""
    from _results import read_results

    if not Path(args.results).is_file():
        raise UsageError(f"--results {args.results}: no such file")
    if args.pretrain_epochs < 1:
        raise UsageError(f"--pretrain-epochs must be >= 1, got {args.pretrain_epochs}")
    epochs, values = beauty_epochs(args.dr4sr)
    res = paper_total(read_results(args.results), args.data, epochs, pretrain_epochs=args.pretrain_epochs,
                      item_updates=args.item_updates, threads=args.threads, estimates=args.estimates,
                      clock=args.clock)
    print(f"Paper settings on {args.data}, item_updates={args.item_updates}, {args.clock} seconds: "
          f"{res['pretrain_epochs']} pre-training "
          f"epochs; target-model epochs {epochs:.1f} = mean of `epochs` over the fastregen-scheme SASRec rows on "
          f"the original Beauty data in {Path(args.dr4sr).name} ({', '.join(map(str, values))})\n")
    print("| stage | seconds per run | runs | seconds | threads | processes | peak RSS MiB | from | commit |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for t in res["terms"]:
        print(f"| {t['stage']} | {t['seconds']:,.1f} | {t['times']:g} | {t['total']:,.0f} | {t['threads']} | "
              f"{t['processes']} | {t['peak_rss_mib']:,.0f} | {t['source']} | {t['commit']} |")
    label = "measured (every stage run whole)" if res["whole"] else "ESTIMATE (some stages extrapolated)"
    print(f"\nTotal: {res['hours']:.1f} h, peak RSS {res['peak_rss_mib'] / 1024:.2f} GiB; {label}; "
          f"bar <= 12 h: {'met' if res['hours'] <= 12 else 'not met'}, < 12 GiB: "
          f"{'met' if res['peak_rss_mib'] < 12 * 1024 else 'not met'}")


# --------------------------------------------------------------------------- decode
def decode(args) -> None:
    import numpy as np
    import torch

    from fastregen import memory
    from fastregen.data import synthetic
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import Regenerator, hybrid_inference
    from fastregen.patterns import dr4sr_input

    torch.set_num_threads(args.threads)
    memory.limit_heap_retention()
    rec = Recorder(args, "decode", "synthetic-books")
    if args.device.startswith("cuda"):
        rec.machine = f"{torch.cuda.get_device_name(args.device)}, {rec.machine}"
    data = dr4sr_input(synthetic("books", n_users=max(args.sequences, 1000)))
    sources = data.subset(np.arange(args.sequences))
    cfg = RegenConfig(progress=False, device=args.device, backend=args.backend)
    torch.manual_seed(0)
    model = Regenerator(data.num_items, cfg).to(args.device).eval()
    hybrid_inference(model, sources.subset(np.arange(min(64, len(sources)))), config=cfg.decoding())  # warm-up (kernels, allocator)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    with memory.PeakRSS() as m:
        out, info = hybrid_inference(model, sources, config=cfg.decoding())
        if cuda:
            torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - before) if cuda else m.growth
    rec.row("decode", sequences=len(sources), interactions=sources.num_interactions, items=data.num_items,
            d=cfg.d_model, batch=cfg.decode_batch_size, seconds=m.seconds, full_seconds="", fraction=1,
            peak_rss_mib=_mib(m.peak), start=m.start, throughput=round(len(sources) / m.seconds, 2), unit="sequences/s",
            note=f"device {args.device}, backend {args.backend}, K={cfg.K}, gamma={cfg.gamma}, untrained regenerator; "
                 f"extra peak {'GPU' if cuda else 'RSS'} {_mib(peak)} MiB; {info['kept']} patterns kept")


# --------------------------------------------------------------------------- sparse
STEP_WORKER = r"""
import json, os, statistics, sys, time
import numpy as np, torch
import torch.nn.functional as F
from fastregen import memory
memory.limit_heap_retention()
torch.set_num_threads(int(sys.argv[3]))
def _exit_now():
    # a rank of this worker that had trained under gloo aborted at interpreter exit in ~1 of 3 runs, after
    # its work and output ("terminate called without an active exception", no Python frame left; not seen
    # with plain torch collectives): leave without the interpreter's teardown once the output is out
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)
what, mode, steps, path = sys.argv[1], sys.argv[2], int(sys.argv[4]), sys.argv[5]
if mode == "dense":  # the gradients before sparse lookups: every lookup of an item table dense
    import fastregen.generator.model as regen_model
    import fastregen.training.losses as losses
    dense_embedding = lambda ids, table, *a, **k: F.embedding(ids, table, *a, **{**k, "sparse": False})
    regen_model.F = type("F", (), {**{n: getattr(F, n) for n in dir(F) if not n.startswith("_")},
                                   "embedding": staticmethod(dense_embedding)})
    losses._rows = lambda ids, table: F.embedding(ids, table)
from fastregen.data import load, leave_one_out
from fastregen.training import CallbackHook, Examples, NextItemLoss, TrainConfig, Trainer, adam, distributed
world = distributed.init_from_env()  # under torchrun: each rank takes 256 / N of every global batch of 256
ranks = 1 if world is None else world.size
data = load(path)
times, cpu, last = [], [], [0.0, 0.0]
def tick(t, b, v):
    now, now_cpu = time.perf_counter(), time.process_time()
    times.append(now - last[0]); cpu.append(now_cpu - last[1]); last[:] = [now, now_cpu]
sync_wall, sync_cpu, sync_rows, sync_floats = [], [], [], []
real_sync = distributed.sync_gradients
def timed_sync(params, world, loss=None, sparse=()):
    params, sparse = list(params), list(sparse)
    t0, c0 = time.perf_counter(), time.process_time()
    out = real_sync(params, world, loss, sparse=sparse)
    sync_wall.append(time.perf_counter() - t0); sync_cpu.append(time.process_time() - c0)
    lazy = {id(p) for p in sparse if p.grad is not None and p.grad.is_sparse}
    rows = sum(p.grad._nnz() for p in sparse if id(p) in lazy)
    sync_rows.append(rows)  # the union's rows, every table updated row by row
    sync_floats.append(sum(p.numel() for p in params if id(p) not in lazy)
                       + sum(p.grad._values().numel() for p in sparse if id(p) in lazy))
    return out
distributed.sync_gradients = timed_sync
updates = "lazy" if mode.startswith("lazy") else "dense"  # "dense" and "sparse": fused Adam over the whole table
if what == "regenerator":
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import Regenerator
    from fastregen.generator.pretrain import RegeneratorLoss, holdout_split, pair_data, pretrain_optimizer
    from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs
    train = dr4sr_input(data)
    cfg = RegenConfig(progress=False, item_updates=updates, pack_targets="-packed" in mode,
                      fused_attention=mode.endswith("-fused"))
    pairs = pair_data(pretrain_pairs(train, mine_patterns(train, max_span=5, min_support=2), max_len=50), cfg)
    examples = pairs.subset(holdout_split(len(pairs), cfg)[1])  # the pre-training split, as `pretrain`
    torch.manual_seed(0)
    model = Regenerator(data.num_items, cfg)
    model.item_embedding.sparse = mode != "dense"
    model.use_fused_attention(cfg.fused_attention)
    trainer = Trainer(model, RegeneratorLoss(cfg), optimizer=pretrain_optimizer(model, cfg), batch_size=256 // ranks,
                      progress=False, hooks=[CallbackHook(step=tick)])
else:
    from fastregen.models import build_model
    from fastregen.training.fit import target_optimizer
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, embed_dim=64, max_len=50)
    examples = Examples(leave_one_out(data).train, 50, "all")
    trainer = Trainer(model, NextItemLoss("bce", 1), optimizer=target_optimizer(TrainConfig(item_updates=updates), model),
                      batch_size=256 // ranks, progress=False, hooks=[CallbackHook(step=tick)])
trainer.set_normaliser(examples)
order = examples.batch_order(256, trainer.order_generator, True)[:steps]
last[:] = [time.perf_counter(), time.process_time()]
trainer.run_epoch(examples, order=order)
med = lambda xs: statistics.median(xs[2:]) if len(xs) > 2 else float("nan")
mine = {"cpu": med(cpu), "sync_cpu": med(sync_cpu), "sync_wall": med(sync_wall)}
res = {"median_s": med(times), "median_cpu_s": mine["cpu"], "processes": ranks,
       "steps": len(times), "steps_per_epoch": len(examples.batch_order(256, None, True)),
       "weights": float(sum(p.detach().double().abs().sum() for p in model.parameters()))}
if world is not None:
    # what a dense all-reduce of the item table alone (700k x 64 float32, 180 MB) costs here, for scale
    table = torch.zeros_like(model.item_embedding.weight)
    dense_wall = []
    for _ in range(3):
        t0 = time.perf_counter(); torch.distributed.all_reduce(table); dense_wall.append(time.perf_counter() - t0)
    del table
    every = distributed.gather_object(mine)
    if world.is_main:
        res.update(median_cpu_s=statistics.mean(e["cpu"] for e in every),  # per rank
                   cpu_all_ranks_s=sum(e["cpu"] for e in every), sync_wall_s=mine["sync_wall"],
                   sync_cpu_s=statistics.mean(e["sync_cpu"] for e in every), union_rows=med(sync_rows),
                   sync_mb=med(sync_floats) * 4 / 2**20, dense_table_all_reduce_s=statistics.median(dense_wall))
    torch.distributed.destroy_process_group()
if world is None or world.is_main:
    print(json.dumps(res))
if world is not None:
    _exit_now()
"""
#: What `STEP_WORKER`'s modes mean (the rows' notes say it).
STEP_MODES = {"dense": "dense lookup gradients, fused Adam", "sparse": "sparse lookup gradients, fused Adam",
              "lazy": "sparse lookup gradients, item_updates='lazy' (LazyAdam)",
              "lazy-packed": "as lazy, and the regenerator's targets packed (pack_targets=True)",
              "lazy-packed-fused": "as lazy-packed, and the compiled attention kernel (fused_attention=True)"}


def _books_file(args) -> Path:
    from fastregen.data import save, synthetic

    path = Path(args.tmp or tempfile.gettempdir()) / f"books-{args.users}.txt"
    if not path.exists():
        save(synthetic("books", n_users=args.users), path)
    return path


def _side_by_side(args, experiment: str, modes: list[str], what: list[str], processes=(1,)) -> None:
    """Per model, the step time of each mode (on each number of ``processes``) in turn (alternating
    processes, so all see the machine's load alike), ``args.repeats`` times; one row per model: the last
    variant's median against the first's. On N > 1 processes (torchrun) each rank takes 256 / N of every
    global batch of 256, and the CPU time is per rank (the mean of the ranks' medians)."""
    path = _books_file(args)
    rec = Recorder(args, experiment, f"synthetic-books(n_users={args.users})")
    variants = [(m, n) for m in modes for n in processes]
    label = {(m, n): m if len(processes) == 1 else f"{m} x{n}" for m, n in variants}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        worker = Path(tmp) / "step_worker.py"
        worker.write_text(STEP_WORKER)
        for name in what:
            wall: dict = {v: [] for v in variants}
            cpu: dict = {v: [] for v in variants}
            weights, extra, per_epoch, loads = {}, {}, 0, [os.getloadavg()[0]]
            for _ in range(args.repeats):
                for v in variants:
                    mode, n = v
                    head = [sys.executable] if n == 1 else [sys.executable, "-m", "torch.distributed.run",
                                                            "--standalone", f"--nproc-per-node={n}"]
                    out = subprocess.run(head + [str(worker), name, mode, str(args.threads), str(args.steps), str(path)],
                                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(args.threads)))
                    if out.returncode:
                        raise SystemExit(out.stderr[-3000:])
                    res = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
                    wall[v].append(res["median_s"])
                    cpu[v].append(res["median_cpu_s"])
                    weights[v], per_epoch = res["weights"], res["steps_per_epoch"]
                    if n > 1:
                        extra.setdefault(v, []).append(res)
                    loads.append(os.getloadavg()[0])
            base, new = variants[0], variants[-1]
            med = {v: statistics.median(cpu[v] if args.cpu else wall[v]) for v in variants}
            clock = "CPU" if args.cpu else "wall"
            runs = "; ".join(f"{label[v]} ({STEP_MODES[v[0]]}{'' if v[1] == 1 else f', {v[1]} processes'}) {clock} "
                             f"{med[v]:.4f} (runs {' '.join(f'{t:.4f}' for t in (cpu if args.cpu else wall)[v])}), "
                             f"wall {statistics.median(wall[v]):.4f}" for v in variants)
            comm = "".join(
                f"; {label[v]}: all-reduce per step wall {statistics.median(r['sync_wall_s'] for r in rs):.4f} s, "
                f"CPU {statistics.median(r['sync_cpu_s'] for r in rs):.4f} s per rank, "
                f"{statistics.median(r['sync_mb'] for r in rs):.1f} MB ({statistics.median(r['union_rows'] for r in rs):,.0f} "
                f"union rows of the lazy tables); CPU per step all ranks {statistics.median(r['cpu_all_ranks_s'] for r in rs):.4f} s; "
                f"one dense all-reduce of the 700k x 64 table {statistics.median(r['dense_table_all_reduce_s'] for r in rs):.3f} s"
                for v, rs in extra.items())
            rec.row(f"{name}_step", items=700_000, d=64, batch=256, seconds=med[new], fraction=1, processes=new[1],
                    full_seconds=round(med[new] * per_epoch, 1),
                    throughput=round(med[base] / med[new], 2), unit=f"x faster than {label[base]}",
                    note=f"median {clock} s/step over {args.steps} steps x {args.repeats} runs, variants alternating: {runs}{comm}; "
                         f"global batch 256 (256 / N per process); "
                         f"full_seconds = {per_epoch} steps per epoch x the {label[new]} median (estimate); "
                         f"load average {min(loads):.1f}-{max(loads):.1f}; sum of absolute weights after: "
                         + ", ".join(f"{label[v]} {weights[v]:.6g}" for v in variants))


def sparse(args) -> None:
    """Step time with sparse item-table gradients vs the dense ones they replaced, side by side."""
    _side_by_side(args, "sparse_gradients", ["dense", "sparse"], ["regenerator", "sasrec"])


def steps(args) -> None:
    """Step time of ``--modes`` (first: the baseline) on ``--processes`` side by side, per ``--what`` model,
    at Books shape."""
    modes, what = args.modes.split(","), args.what.split(",")
    for m in modes:
        if m not in STEP_MODES:
            raise SystemExit(f"unknown mode {m!r}; valid: {', '.join(STEP_MODES)}")
    for w in what:
        if w not in ("sasrec", "regenerator"):
            raise SystemExit(f"unknown model {w!r}; valid: sasrec, regenerator")
    try:
        procs = [int(n) for n in args.processes.split(",")]
    except ValueError:
        raise UsageError(f"--processes takes comma-separated integers, got {args.processes!r}") from None
    if any(n < 1 or 256 % n for n in procs):
        raise UsageError(f"--processes must divide the global batch of 256, got {args.processes}")
    _side_by_side(args, "item_updates" if procs == [1] else "ddp_steps", modes, what, procs)


# --------------------------------------------------------------------------- ddp
def _run(cmd, env=None) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t0, out.stdout


def ddp(args) -> None:
    from fastregen.data import load

    ds = load(args.data)
    rec = Recorder(args, "ddp", Path(args.data).name)
    shape = dict(sequences=len(ds), interactions=ds.num_interactions, items=ds.num_items)
    py = sys.executable
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = [py, "-m", "torch.distributed.run", "--standalone"]
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        one = tmp / "one"
        common = ["--epochs", str(args.regen_epochs), "--quiet"]
        secs, _ = _run([py, "-m", "fastregen", "regenerate", args.data, "--out", str(one), "--threads",
                        str(args.threads * 2), *common], env)
        prov = json.loads((one / "regenerated.json").read_text())
        rec.row("regenerate_1proc", **shape, d=64, threads=args.threads * 2, processes=1, seconds=secs,
                fraction=1, note=f"whole pipeline, {args.regen_epochs} pre-training epoch(s); stage seconds "
                                 + json.dumps({k: round(v, 1) for k, v in prov["stage_seconds"].items()}))
        # the reference run's threads (2 x --threads), one process on --threads, N processes on --threads each
        layouts = [(1, args.threads * 2), (1, args.threads), (2, args.threads)]
        for procs, threads in layouts:
            dst = tmp / f"infer{procs}x{threads}"
            dst.mkdir()
            for f in ("config.yaml", "source.json", "patterns.txt", "pairs.npz", "regenerator.pt"):
                shutil.copy(one / f, dst / f)
            head = torchrun + [f"--nproc-per-node={procs}", "-m", "fastregen"] if procs > 1 else [py, "-m", "fastregen"]
            secs, _ = _run(head + ["regenerate", args.data, "--out", str(dst), "--threads", str(threads), *common], env)
            same = (dst / "regenerated.txt").read_bytes() == (one / "regenerated.txt").read_bytes()
            inf = json.loads((dst / "regenerated.json").read_text())["stage_seconds"]["inference"]
            rec.row("inference", **shape, d=64, threads=threads, processes=procs, seconds=inf, fraction=1,
                    throughput=round(len(ds) / inf, 1), unit="sequences/s",
                    note=f"regenerated.txt byte-identical to the 1-process run: {same}; command {secs:.0f} s")
            if not same:
                raise SystemExit(f"{procs}-process regenerated.txt differs from the 1-process one")
        for procs, threads in layouts:
            out = tmp / f"train{procs}x{threads}"
            head = torchrun + [f"--nproc-per-node={procs}", "-m", "fastregen"] if procs > 1 else [py, "-m", "fastregen"]
            secs, _ = _run(head + ["train", "--data", args.data, "--out", str(out), "--epochs", str(args.train_epochs),
                                   "--threads", str(threads), "--no-progress", "--set", "patience=1000"], env)
            metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            per_epoch = statistics.median(r["train_seconds"] for r in metrics)
            from fastregen.training import Examples

            n_ex = len(Examples(load(args.data).slice_sequences(0, -2), 50, "all"))
            rec.row("sasrec_train", **shape, d=64, batch=256, threads=threads, processes=procs, seconds=per_epoch,
                    fraction=1, throughput=round(n_ex / per_epoch / procs, 1), unit="examples/s per process",
                    note=f"median of {len(metrics)} epochs' train seconds (batch 256 per process; "
                         f"{round(n_ex / per_epoch, 1)} examples/s in all)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pipeline")
    p.add_argument("--users", type=int, default=800_000, help="n_users of the books preset (700k items whatever)")
    p.add_argument("--pretrain-steps", type=int, default=0, help="run this many steps of the epoch (0: all)")
    p.add_argument("--infer-sequences", type=int, default=0, help="decode this many sequences (0: all)")
    p.add_argument("--train-steps", type=int, default=0, help="SASRec steps of the epoch (0: all)")
    p.add_argument("--valid-users", type=int, default=0, help="validate on this many users (0: all)")
    p.add_argument("--eval-users", type=int, default=0, help="evaluate this many test users (0: all)")
    p.add_argument("--item-updates", choices=("dense", "lazy"), default=None,
                   help="Adam over the item tables of the regenerator and SASRec (item_updates; default dense)")
    p.add_argument("--paper", action="store_true",
                   help="the rows `scale.py total` needs: every stage whole, --item-updates lazy")
    p.add_argument("--work", default=None,
                   help="folder of finished whole stages and their outputs: a rerun resumes after them")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--skip-dr4sr", action="store_true", help="only the SASRec epoch and the evaluation")
    p.add_argument("--valid-max-rank", type=int, default=0,
                   help="rank the validation pass only up to this rank (>= 20; 0: full ranks)")
    p.add_argument("--skip", type=lambda v: [x for x in v.split(",") if x], default=[],
                   help=f"comma-separated stages not to run (their earlier rows stand): {', '.join(SKIPPABLE)}")
    p.add_argument("--processes", type=int, default=1,
                   help="the regenerator's and SASRec's training (and inference) on N processes under torchrun, "
                        "each with --threads threads and the global batch / N")
    p.add_argument("--option", action="append", metavar="NAME=VALUE",
                   help="a RegenConfig option of the regenerator (repeatable), e.g. fused_attention=true")
    p.add_argument("--eval-threads", type=int, default=None,
                   help="threads of the validation and test passes (rank 0's; default --threads x --processes)")
    d = sub.add_parser("decode")
    d.add_argument("--sequences", type=int, default=2048)
    d.add_argument("--device", default="cpu")
    d.add_argument("--backend", default="auto")
    sp = sub.add_parser("sparse")
    st = sub.add_parser("steps")
    st.add_argument("--modes", default="sparse,lazy", help=f"comma-separated, the first the baseline: {', '.join(STEP_MODES)}")
    st.add_argument("--what", default="sasrec,regenerator", help="comma-separated: sasrec, regenerator")
    st.add_argument("--processes", default="1",
                    help="comma-separated numbers of processes (torchrun) to run each mode on, e.g. 1,2")
    for q in (sp, st):
        q.add_argument("--users", type=int, default=800_000)
        q.add_argument("--steps", type=int, default=25)
        q.add_argument("--repeats", type=int, default=3)
        q.add_argument("--cpu", action="store_true", help="compare CPU time per step (time.process_time), not wall")
    tt = sub.add_parser("total")
    tt.add_argument("--data", default="synthetic-books(n_users=800000)", help="the rows' dataset column")
    tt.add_argument("--dr4sr", default=str(HERE / "results" / "dr4sr.csv"),
                    help="the study rows the target-model epochs come from")
    tt.add_argument("--pretrain-epochs", type=int, default=PAPER_PRETRAIN_EPOCHS)
    tt.add_argument("--item-updates", choices=("dense", "lazy"), default="lazy")
    tt.add_argument("--threads", type=int, default=None, help="only rows on this many torch threads")
    tt.add_argument("--estimates", action="store_true",
                    help="where no whole-stage row exists, use the latest extrapolated one (labelled)")
    tt.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="sum the rows' wall seconds, or the CPU seconds their notes give")
    tt.add_argument("--results", default=str(RESULTS))
    r = sub.add_parser("ddp")
    r.add_argument("--data", required=True)
    r.add_argument("--regen-epochs", type=int, default=1)
    r.add_argument("--train-epochs", type=int, default=3)
    for q in (p, d, r, sp, st):
        q.add_argument("--threads", type=int, default=1, help="torch threads (per process for ddp)")
        q.add_argument("--results", default=str(RESULTS))
        q.add_argument("--tmp", default=None, help="folder for temporary outputs")
    args = ap.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what `_torchrun` passes on to each rank
    try:
        {"pipeline": pipeline, "decode": decode, "ddp": ddp, "sparse": sparse, "steps": steps,
         "total": total}[args.cmd](args)
    except UsageError as e:
        print(f"scale.py {args.cmd}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
