"""Amazon-Books scale on one machine, and torch.distributed: time and peak memory per stage.

    # the DR4SR pipeline + one SASRec epoch + full-ranking evaluation on data.synthetic("books")
    nice -n 10 python benchmarks/scale.py pipeline --threads 1
    # a measured fraction of the long stages (extrapolated to the whole stage)
    nice -n 10 python benchmarks/scale.py pipeline --threads 1 --pretrain-steps 100 \
        --infer-sequences 4096 --train-steps 200 --eval-users 20000
    # torchrun on CPU: 2-process inference on Beauty (byte-identical file), DDP training throughput
    python benchmarks/scale.py ddp --data ../shared/data/beauty.txt
    # hybrid decoding at V = 700k (CPU: chunked torch path; --device cuda: triton)
    python benchmarks/scale.py decode --sequences 2048 --threads 1
    # sparse item-table gradients vs dense, pre-training and SASRec steps at 700k items, side by side
    python benchmarks/scale.py sparse --threads 1

``pipeline`` runs the stages of `fastregen.dr4sr.DR4SR` in its order
(``mine_patterns``, ``pretrain_pairs``, pre-training, ``hybrid_inference``,
the combined training set written to disk), then one SASRec epoch (BCE,
the "all" protocol, as DR4SR's target models) and the full-ranking test
evaluation, all in one process. Each stage's peak RSS is measured with
`fastregen.memory.PeakRSS` (the kernel's high-water mark reset at the
stage's start), next to the memory model's estimate
(`fastregen.memory.pipeline_estimates`). A stage run on a fraction
(``--pretrain-steps`` of the epoch's steps, ``--infer-sequences``,
``--train-steps``, ``--eval-users``) runs on the whole data structures
(whole model, optimizer state, pairs, output buffers where the stage sizes
them by the data) and its time is extrapolated linearly to the whole stage
(``full_seconds``; the ``fraction`` column says how much ran).
``--skip-dr4sr`` runs only the SASRec epoch and the evaluation (their
rows say so). The report shows, per stage, the latest row that ran the
whole stage, else the latest row: a later partial run (say, a few SASRec
steps before the evaluation) does not replace a measured whole stage.

Every stage appends one row to ``benchmarks/results/scale.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
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
        """Append the row of ``stage`` (``seconds`` its value; ``unit`` the throughput's) and return it."""
        start = values.pop("start", None)
        if start is not None:
            values["note"] = (values.get("note", "") + f"; RSS at start {start / 2**20:.0f} MiB").lstrip("; ")
        values = {k: (round(v, 5 if k == "fraction" else 3) if isinstance(v, float) else v) for k, v in values.items()}
        extra = {c: "" for c in EXTRA_COLUMNS}
        extra.update(load=f"{os.getloadavg()[0]:.1f}", processes=1, throughput_unit=values.pop("unit", ""))
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
def pipeline(args) -> None:
    import numpy as np
    import torch

    from fastregen import memory
    from fastregen.data import load, save, synthetic
    from fastregen.data import concat
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import Regenerator, hybrid_inference
    from fastregen.generator.pretrain import RegeneratorLoss, holdout_split, pair_data
    from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs
    from fastregen.training import Trainer, adam

    torch.set_num_threads(args.threads)
    memory.limit_heap_retention()  # as the fastregen commands do
    if not memory.can_reset_peak():
        raise SystemExit("needs /proc/self/clear_refs (Linux) to measure each stage's peak")
    rec = Recorder(args, "pipeline", f"synthetic-books(n_users={args.users})")
    cfg = RegenConfig(epochs=1, progress=args.progress, seed=0)
    tcfg = dict(embed_dim=64, max_len=50, batch=256)

    # the pipeline reads a text file, as `fastregen regenerate` does (written once, then cached)
    path = Path(args.tmp or tempfile.gettempdir()) / f"books-{args.users}.txt"
    if not path.exists():
        save(synthetic("books", n_users=args.users), path)
    base = memory.current_rss()
    with memory.PeakRSS() as m:
        data = load(path)
    shape = dict(sequences=len(data), interactions=data.num_interactions, items=data.num_items, d=cfg.d_model)

    def estimate(stage, **known):
        return _mib(memory.pipeline_estimates(len(data), data.num_interactions, data.num_items, cfg, base=base,
                                              lengths=data.lengths, target_batch=tcfg["batch"], eval_batch=1024,
                                              **known)[stage].total)

    rec.row("data", **shape, seconds=m.seconds, full_seconds=m.seconds, fraction=1, peak_rss_mib=_mib(m.peak),
            start=m.start, estimate_mib=estimate("data"), note=f"fastregen.data.load of {path.name}")

    if args.skip_dr4sr:
        return _target_model(args, rec, data, shape, estimate, tcfg)
    with memory.PeakRSS() as m:
        train_input = dr4sr_input(data)
        patterns = mine_patterns(train_input, max_span=cfg.max_span, min_support=cfg.min_support)
    rec.row("patterns", **shape, seconds=m.seconds, full_seconds=m.seconds, fraction=1, peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("patterns"), throughput=len(patterns), unit="patterns")

    with memory.PeakRSS() as m:
        pairs = pretrain_pairs(train_input, patterns, max_per_sequence=cfg.max_pairs_per_sequence, seed=cfg.seed,
                               max_len=cfg.max_len)
    rec.row("pairs", **shape, seconds=m.seconds, full_seconds=m.seconds, fraction=1, peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("pairs", pairs=len(pairs)), throughput=len(pairs), unit="pairs")

    # pre-training: what `pretrain` builds (pairs, held-out split, model, Adam, Trainer), one epoch or its first steps
    with memory.PeakRSS() as m:
        pdata = pair_data(pairs, cfg)
        valid_idx, train_idx = holdout_split(len(pdata), cfg)
        ptrain = pdata.subset(train_idx)
        torch.manual_seed(cfg.seed)
        model = Regenerator(data.num_items, cfg)
        opt = adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), eps=1e-9)
        trainer = Trainer(model, RegeneratorLoss(cfg), optimizer=opt, batch_size=cfg.batch_size, seed=cfg.seed,
                          progress=args.progress, desc="regenerator")
        trainer.set_normaliser(ptrain)
        order = ptrain.batch_order(cfg.batch_size, trainer.generator, True)
        steps = len(order) if not args.pretrain_steps else min(args.pretrain_steps, len(order))
        times = _step_times(trainer)
        t0 = time.perf_counter()
        trainer.run_epoch(ptrain, order=order[:steps])
        spent = time.perf_counter() - t0
        best_state = {k: v.clone() for k, v in model.state_dict().items()}  # EarlyStopping keeps one
        model.eval()
        model.zero_grad(set_to_none=True)  # as Trainer.fit does at its end
    per_step = statistics.median(times[2:]) if len(times) > 4 else spent / steps
    full = spent if steps == len(order) else per_step * len(order)
    rec.row("regenerator", **shape, batch=cfg.batch_size, seconds=spent, full_seconds=full,
            fraction=round(steps / len(order), 5), peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("regenerator", pairs=len(pairs)), throughput=round(cfg.batch_size / per_step, 1),
            unit="pairs/s", note=f"{steps} of {len(order)} steps, {len(ptrain)} training pairs; "
                                 f"median {per_step:.3f} s/step")
    del trainer, opt, best_state, pdata, ptrain

    with memory.PeakRSS() as m:
        sources = train_input if not args.infer_sequences else train_input.subset(
            np.arange(min(args.infer_sequences, len(train_input))))
        regenerated, info = hybrid_inference(model, sources, config=cfg.decoding())
    n_src = int((train_input.lengths > 0).sum())
    done = info["sequences"]
    rec.row("inference", **shape, batch=cfg.decode_batch_size, seconds=m.seconds,
            full_seconds=m.seconds * n_src / done, fraction=round(done / n_src, 5), peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("inference", pairs=len(pairs), decoded_sequences=done),
            throughput=round(done / m.seconds, 2), unit="sequences/s",
            note=f"{done} sequences x K={cfg.K}, {info['kept']} patterns kept, backend torch (chunked)")

    with memory.PeakRSS() as m, tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        n, ids = data.num_items, data.item_ids
        original = concat(train_input, num_items=n, item_ids=ids, name="original", drop_empty=True)
        mined = concat(patterns.as_dataset(num_items=n), num_items=n, item_ids=ids, name="patterns", drop_empty=True)
        combined = concat(original, mined, regenerated, num_items=n, item_ids=ids, name="combined", drop_empty=True)
        save(combined, Path(tmp) / "regenerated.txt", drop_empty=True)
        size = (Path(tmp) / "regenerated.txt").stat().st_size
    rec.row("write", **shape, seconds=m.seconds, full_seconds=m.seconds, fraction=1, peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("write", pairs=len(pairs), decoded_sequences=done), throughput=combined.num_interactions, unit="interactions",
            note=f"combined training set, {size / 2**20:.0f} MiB of text")
    del model, regenerated, original, mined, combined, pairs, patterns, train_input
    _target_model(args, rec, data, shape, estimate, tcfg)


def _target_model(args, rec, data, shape, estimate, tcfg) -> None:
    """One SASRec epoch on the training split, then the full-ranking test evaluation."""
    import numpy as np
    import torch

    from fastregen import memory
    from fastregen.data import EvalSplit, leave_one_out
    from fastregen.evaluation import evaluate
    from fastregen.models import build_model
    from fastregen.training import Examples, NextItemLoss, Trainer

    split = leave_one_out(data)
    with memory.PeakRSS() as m:
        torch.manual_seed(0)
        net = build_model("sasrec", data.num_items, embed_dim=tcfg["embed_dim"], max_len=tcfg["max_len"])
        examples = Examples(split.train, net.max_len, "all")
        trainer = Trainer(net, NextItemLoss("bce", 1), batch_size=tcfg["batch"], seed=0, progress=args.progress,
                          desc="sasrec")
        trainer.set_normaliser(examples)
        order = examples.batch_order(tcfg["batch"], trainer.generator, True)
        steps = len(order) if not args.train_steps else min(args.train_steps, len(order))
        times = _step_times(trainer)
        t0 = time.perf_counter()
        trainer.run_epoch(examples, order=order[:steps])
        spent = time.perf_counter() - t0
        best_state = {k: v.clone() for k, v in net.state_dict().items()}  # what EarlyStopping keeps
        net.zero_grad(set_to_none=True)
    per_step = statistics.median(times[2:]) if len(times) > 4 else spent / steps
    full = spent if steps == len(order) else per_step * len(order)
    # a --skip-dr4sr run starts these stages right after loading the data, not after the DR4SR stages
    after = "; in a --skip-dr4sr run" if args.skip_dr4sr else ""
    rec.row("sasrec_epoch", **{**shape, "d": tcfg["embed_dim"]}, batch=tcfg["batch"], seconds=spent, full_seconds=full,
            fraction=round(steps / len(order), 5), peak_rss_mib=_mib(m.peak), start=m.start,
            estimate_mib=estimate("train"), throughput=round(tcfg["batch"] / per_step, 1),
            unit="examples/s",
            note=f"{steps} of {len(order)} steps (BCE, 'all' protocol); median {per_step:.3f} s/step{after}")
    del trainer, best_state, examples

    test = split.test
    users = len(test) if not args.eval_users else min(args.eval_users, len(test))
    if users < len(test):
        pick = np.random.default_rng(0).choice(len(test), users, replace=False)
        pick.sort()
        test = EvalSplit(history=test.history.subset(pick), target=test.target[pick], users=test.users[pick])
    with memory.PeakRSS() as m:
        metrics = evaluate(net.eval(), test, batch_size=1024)
    rec.row("evaluate", **{**shape, "d": tcfg["embed_dim"]}, batch=1024, seconds=m.seconds,
            full_seconds=m.seconds * len(split.test) / users, fraction=round(users / len(split.test), 5),
            peak_rss_mib=_mib(m.peak), start=m.start, estimate_mib=estimate("evaluate"),
            throughput=round(users / m.seconds, 1), unit="users/s",
            note=f"full ranking over {data.num_items} items, {users} of {len(split.test)} test users, item-chunked; "
                 f"NDCG@20 {metrics['ndcg@20']:.4f} after {steps} of {len(order)} SASRec steps{after}")


def _step_times(trainer) -> list[float]:
    from fastregen.training import CallbackHook

    times, last = [], [time.perf_counter()]

    def step(t, b, v):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    trainer.hooks.append(CallbackHook(step=step))
    return times


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
import json, statistics, sys, time
import numpy as np, torch
import torch.nn.functional as F
from fastregen import memory
memory.limit_heap_retention()
torch.set_num_threads(int(sys.argv[3]))
what, mode, steps, path = sys.argv[1], sys.argv[2], int(sys.argv[4]), sys.argv[5]
if mode == "dense":  # the gradients before sparse lookups: every lookup of an item table dense
    import fastregen.generator.model as regen_model
    import fastregen.training.losses as losses
    dense_embedding = lambda ids, table, *a, **k: F.embedding(ids, table, *a, **{**k, "sparse": False})
    regen_model.F = type("F", (), {**{n: getattr(F, n) for n in dir(F) if not n.startswith("_")},
                                   "embedding": staticmethod(dense_embedding)})
    losses._rows = lambda ids, table: F.embedding(ids, table)
from fastregen.data import load, leave_one_out
from fastregen.training import CallbackHook, Examples, NextItemLoss, TrainConfig, Trainer, adam
data = load(path)
times, cpu, last = [], [], [0.0, 0.0]
def tick(t, b, v):
    now, now_cpu = time.perf_counter(), time.process_time()
    times.append(now - last[0]); cpu.append(now_cpu - last[1]); last[:] = [now, now_cpu]
updates = "lazy" if mode == "lazy" else "dense"  # "dense" and "sparse": fused Adam over the whole table
if what == "regenerator":
    from fastregen.dr4sr import RegenConfig
    from fastregen.generator import Regenerator
    from fastregen.generator.pretrain import RegeneratorLoss, holdout_split, pair_data, pretrain_optimizer
    from fastregen.patterns import dr4sr_input, mine_patterns, pretrain_pairs
    train = dr4sr_input(data)
    cfg = RegenConfig(progress=False, item_updates=updates)
    pairs = pair_data(pretrain_pairs(train, mine_patterns(train, max_span=5, min_support=2), max_len=50), cfg)
    examples = pairs.subset(holdout_split(len(pairs), cfg)[1])  # the pre-training split, as `pretrain`
    torch.manual_seed(0)
    model = Regenerator(data.num_items, cfg)
    model.item_embedding.sparse = mode != "dense"
    trainer = Trainer(model, RegeneratorLoss(cfg), optimizer=pretrain_optimizer(model, cfg), batch_size=256,
                      progress=False, hooks=[CallbackHook(step=tick)])
else:
    from fastregen.models import build_model
    from fastregen.training.fit import target_optimizer
    torch.manual_seed(0)
    model = build_model("sasrec", data.num_items, embed_dim=64, max_len=50)
    examples = Examples(leave_one_out(data).train, 50, "all")
    trainer = Trainer(model, NextItemLoss("bce", 1), optimizer=target_optimizer(TrainConfig(item_updates=updates), model),
                      batch_size=256, progress=False, hooks=[CallbackHook(step=tick)])
trainer.set_normaliser(examples)
order = examples.batch_order(256, trainer.generator, True)[:steps]
last[:] = [time.perf_counter(), time.process_time()]
trainer.run_epoch(examples, order=order)
print(json.dumps({"median_s": statistics.median(times[2:]), "median_cpu_s": statistics.median(cpu[2:]),
                  "steps": len(times), "steps_per_epoch": len(examples.batch_order(256, None, True)),
                  "weights": float(sum(p.detach().double().abs().sum() for p in model.parameters()))}))
"""
#: What `STEP_WORKER`'s modes mean (the rows' notes say it).
STEP_MODES = {"dense": "dense lookup gradients, fused Adam", "sparse": "sparse lookup gradients, fused Adam",
              "lazy": "sparse lookup gradients, item_updates='lazy' (LazyAdam)"}


def _books_file(args) -> Path:
    from fastregen.data import save, synthetic

    path = Path(args.tmp or tempfile.gettempdir()) / f"books-{args.users}.txt"
    if not path.exists():
        save(synthetic("books", n_users=args.users), path)
    return path


def _side_by_side(args, experiment: str, modes: list[str], what: list[str]) -> None:
    """Per model, the step time of each mode in turn (alternating processes, so all see the machine's load
    alike), ``args.repeats`` times; one row per model: the last mode's median against the first's."""
    path = _books_file(args)
    rec = Recorder(args, experiment, f"synthetic-books(n_users={args.users})")
    for name in what:
        wall: dict[str, list[float]] = {m: [] for m in modes}
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        weights, per_epoch, loads = {}, 0, [os.getloadavg()[0]]
        for _ in range(args.repeats):
            for mode in modes:
                out = subprocess.run([sys.executable, "-c", STEP_WORKER, name, mode, str(args.threads),
                                      str(args.steps), str(path)], capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(out.stderr[-3000:])
                res = json.loads(out.stdout.strip().splitlines()[-1])
                wall[mode].append(res["median_s"])
                cpu[mode].append(res["median_cpu_s"])
                weights[mode], per_epoch = res["weights"], res["steps_per_epoch"]
                loads.append(os.getloadavg()[0])
        base, new = modes[0], modes[-1]
        med = {m: statistics.median(cpu[m] if args.cpu else wall[m]) for m in modes}
        clock = "CPU" if args.cpu else "wall"
        runs = "; ".join(f"{m} ({STEP_MODES[m]}) {clock} {med[m]:.4f} (runs {' '.join(f'{t:.4f}' for t in (cpu if args.cpu else wall)[m])}), "
                         f"wall {statistics.median(wall[m]):.4f}" for m in modes)
        rec.row(f"{name}_step", items=700_000, d=64, batch=256, seconds=med[new], fraction=1,
                full_seconds=round(med[new] * per_epoch, 1),
                throughput=round(med[base] / med[new], 2), unit=f"x faster than {base}",
                note=f"median {clock} s/step over {args.steps} steps x {args.repeats} runs, modes alternating: {runs}; "
                     f"full_seconds = {per_epoch} steps per epoch x the {new} median (estimate); "
                     f"load average {min(loads):.1f}-{max(loads):.1f}; sum of absolute weights after: "
                     + ", ".join(f"{m} {weights[m]:.6g}" for m in modes))


def sparse(args) -> None:
    """Step time with sparse item-table gradients vs the dense ones they replaced, side by side."""
    _side_by_side(args, "sparse_gradients", ["dense", "sparse"], ["regenerator", "sasrec"])


def steps(args) -> None:
    """Step time of ``--modes`` (first: the baseline) side by side, per ``--what`` model, at Books shape."""
    modes, what = args.modes.split(","), args.what.split(",")
    for m in modes:
        if m not in STEP_MODES:
            raise SystemExit(f"unknown mode {m!r}; valid: {', '.join(STEP_MODES)}")
    for w in what:
        if w not in ("sasrec", "regenerator"):
            raise SystemExit(f"unknown model {w!r}; valid: sasrec, regenerator")
    _side_by_side(args, "item_updates", modes, what)


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
    p.add_argument("--eval-users", type=int, default=0, help="evaluate this many test users (0: all)")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--skip-dr4sr", action="store_true", help="only the SASRec epoch and the evaluation")
    d = sub.add_parser("decode")
    d.add_argument("--sequences", type=int, default=2048)
    d.add_argument("--device", default="cpu")
    d.add_argument("--backend", default="auto")
    sp = sub.add_parser("sparse")
    st = sub.add_parser("steps")
    st.add_argument("--modes", default="sparse,lazy", help=f"comma-separated, the first the baseline: {', '.join(STEP_MODES)}")
    st.add_argument("--what", default="sasrec,regenerator", help="comma-separated: sasrec, regenerator")
    for q in (sp, st):
        q.add_argument("--users", type=int, default=800_000)
        q.add_argument("--steps", type=int, default=25)
        q.add_argument("--repeats", type=int, default=3)
        q.add_argument("--cpu", action="store_true", help="compare CPU time per step (time.process_time), not wall")
    r = sub.add_parser("ddp")
    r.add_argument("--data", required=True)
    r.add_argument("--regen-epochs", type=int, default=1)
    r.add_argument("--train-epochs", type=int, default=3)
    for q in (p, d, r, sp, st):
        q.add_argument("--threads", type=int, default=1, help="torch threads (per process for ddp)")
        q.add_argument("--results", default=str(RESULTS))
        q.add_argument("--tmp", default=None, help="folder for temporary outputs")
    args = ap.parse_args(argv)
    {"pipeline": pipeline, "decode": decode, "ddp": ddp, "sparse": sparse, "steps": steps}[args.cmd](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
