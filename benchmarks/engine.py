"""Evaluation engine speed: the compiled rank count against the torch one, before/after (issues 25, 28).

    # (a) rank counting alone on Beauty's shape: the base commit's target_ranks vs the kernel, same scores
    python benchmarks/engine.py ranks --data ../shared/data/beauty.txt
    # (b) a whole validation pass: the base commit's evaluate vs today's, SASRec (untrained), valid split
    python benchmarks/engine.py validation --data ../shared/data/beauty.txt
    # (c) Books' shape: item_ranks over a 700k-item table for 2,000 users (synthetic, d = 64)
    python benchmarks/engine.py books --users 2000 --items 700000
    # (d) Books' shape, the whole evaluate() (SASRec forward pass included) on the test split of
    #     data.synthetic("books", n_users=2048) (700k items), against the code of the 3,258 s row
    python benchmarks/engine.py evaluate --users 2048 --reps 3 --before 70855a6
    # (e) the same, against the compiled count of 10c1c23 (the AMX two-pass count is the "after"), 1 and 2 threads
    python benchmarks/engine.py evaluate --users 2048 --reps 3 --before 10c1c23 [--threads 2]
    # (f) validation capped at rank 50 (evaluate(max_rank=50), early exit per user) against the full ranks of
    #     the same commit, on 4,096 validation users of data.synthetic("books", n_users=800_000) ranked by the
    #     SASRec trained one epoch by `scale.py pipeline --skip-dr4sr` (its --work folder's sasrec.pt)
    python benchmarks/engine.py evaluate --max-rank 50 --model WORK/sasrec.pt --users 4096 --reps 3
    # (g) the capped AMX count alone, per scan order (item ids, descending norm) and segment schedule, on one
    #     batch of that model's validation users (one process, variants alternating, CPU time)
    python benchmarks/engine.py scan-order --model WORK/sasrec.pt --max-rank 50 --users 1024 --reps 5

Every measurement runs in its own process (``engine.py _measure ...``), one
thread unless ``--threads`` says otherwise (``OMP_NUM_THREADS``,
``torch.set_num_threads``), before and
after alternating, ``--reps`` times each; the rows hold the medians (and
every repetition). "before" is the code of ``--before`` (a commit, default
the last one without the compiled count): its ``evaluation.py`` is read
from git and imported on its own, so both sides run in today's
environment. Each process saves its ranks and the parent asserts that both
sides gave identical ranks before it writes a row. The machine's load
(1-minute load average, and the nice'd study workers found running) is
recorded in each row's ``load`` column.

Each process also reports its CPU time (``time.process_time``): on a loaded
machine the wall time mostly measures the share of a core the process got,
and the CPU time what the code costs; both medians are written
(``seconds_median``, ``cpu_seconds_median``) with their ratios (``speedup``,
``cpu_speedup``).

With ``--max-rank M`` (``evaluate`` only) "before" is this commit's full
ranking and "after" the capped one (``evaluate(max_rank=M)``, ks <= M);
the parent asserts ``after == min(before, M)`` and records the share of
(user, item) pairs the capped AMX count scanned (``scanned_fraction``).
An untrained model ranks its targets uniformly at random, which lets the
cap stop most users after a few hundred items; ``--model`` ranks with a
trained SASRec instead (a state dict of d = 64, max_len = 50 for the
800,000-user Books preset, `scale.py pipeline`'s), on ``--users`` seeded
validation users of that data.

Rows are appended to ``benchmarks/results/engine.csv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import cpu_model, git_commit  # noqa: E402 (this folder is on sys.path)
from _results import append_result  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "engine.csv"
#: The extra columns of an engine row, after the core ones (`_results.CORE_COLUMNS`).
EXTRA_COLUMNS = ["load", "shape", "reps", "values", "identical_ranks", "before", "note"]
#: The last commit whose evaluation counts ranks with torch only.
BASE = "14f6ae4"
BATCH = 1024
#: The users of the Books preset a ``--model`` was trained on (`scale.py pipeline`'s data).
MODEL_USERS = 800_000


def _before_module(rev: str, workdir: Path):
    """``fastregen.evaluation`` as it was at ``rev`` (a module, or since the split a package), imported
    under another name."""
    listing = subprocess.run(["git", "ls-tree", "--name-only", rev, "python/fastregen/"], cwd=HERE.parent,
                             capture_output=True, text=True, check=True).stdout.split()
    if "python/fastregen/evaluation.py" in listing:
        src = subprocess.run(["git", "show", f"{rev}:python/fastregen/evaluation.py"], cwd=HERE.parent, capture_output=True,
                             text=True, check=True).stdout
        path = workdir / "evaluation_before.py"
        path.write_text(src)
        search = None
    else:  # the package: its files, read from git into a folder of its own
        pkg = workdir / "evaluation_before"
        pkg.mkdir()
        names = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:python/fastregen/evaluation"], cwd=HERE.parent,
                               capture_output=True, text=True, check=True).stdout.split()
        for name in names:
            (pkg / name).write_text(subprocess.run(["git", "show", f"{rev}:python/fastregen/evaluation/{name}"],
                                                   cwd=HERE.parent, capture_output=True, text=True, check=True).stdout)
        path, search = pkg / "__init__.py", [str(pkg)]
    # a submodule of the installed package, so that its relative imports (`from . import _core`) resolve
    spec = importlib.util.spec_from_file_location("fastregen._evaluation_before", path,
                                                  submodule_search_locations=search)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # a package's submodules import their parent by name
    spec.loader.exec_module(mod)
    return mod


def _model_and_split(data_path: str, seed: int):
    import torch

    from fastregen.data import leave_one_out, load
    from fastregen.models import build_model

    data = load(data_path)
    split = leave_one_out(data)
    torch.manual_seed(seed)
    model = build_model("sasrec", data.num_items, embed_dim=64, max_len=50).eval()
    return model, split.valid


def _measure(args) -> dict:
    """One timed run in this process; saves the ranks to ``args.out`` and returns the seconds."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.out).parent
    # with --max-rank, "before" is this commit's full ranking
    before = _before_module(args.before, work) if args.variant == "before" and not args.max_rank else None
    from fastregen import evaluation

    cpu = None
    stats = {}
    if args.kind in ("validation", "evaluate"):
        if args.kind == "validation":
            model, split = _model_and_split(args.data, args.seed)
        else:  # Books' shape: 700k items whatever the number of users
            model, split = _books_model_and_split(args)
        ev = before.evaluate if before else evaluation.evaluate
        capped = args.max_rank and args.variant == "after"
        kwargs = dict(ks=tuple(k for k in (10, 20, 50) if k <= args.max_rank), max_rank=args.max_rank,
                      _stats=stats) if capped else {}
        t0, c0 = time.perf_counter(), time.process_time()
        res = ev(model, split, batch_size=BATCH, return_ranks=True, **kwargs)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        ranks = res["ranks"]
        if capped:
            stats["pairs"] = len(split) * model.num_items  # item 0 included, as the kernel's segments
    elif args.kind == "ranks":
        # the validation pass's score batches, computed untimed; only the rank count is timed
        model, split = _model_and_split(args.data, args.seed)
        hist, targets = split.history, np.asarray(split.target, dtype=np.int64)
        table = model.item_weight().detach()
        ranks = np.empty(targets.size, dtype=np.int64)
        seconds = 0.0
        with torch.no_grad():
            for b in range(0, targets.size, BATCH):
                e = min(b + BATCH, targets.size)
                part = hist.subset(np.arange(b, e))
                x = torch.from_numpy(part.padded(model.max_len, side="left"))
                scores = model(x)[:, -1] @ table.T
                lengths = np.diff(hist.offsets[b : e + 1])
                rows = torch.from_numpy(np.repeat(np.arange(e - b), lengths))
                cols = torch.from_numpy(hist.items[hist.offsets[b] : hist.offsets[e]].astype(np.int64))
                t = torch.from_numpy(targets[b:e])
                t0 = time.perf_counter()
                if before:
                    r, _ = before.target_ranks(scores, t, rows, cols, inplace=True)
                else:
                    r, _ = evaluation.target_ranks(scores, t, rows, cols, backend="native")
                seconds += time.perf_counter() - t0
                ranks[b:e] = r.numpy()
    else:  # books: item_ranks over a synthetic 700k-item table, the automatic item chunks
        g = torch.Generator().manual_seed(args.seed)
        hidden = torch.randn(args.users, 64, generator=g)
        table = torch.randn(args.items + 1, 64, generator=g) / 8
        t = torch.randint(1, args.items + 1, (args.users,), generator=g)
        rows = torch.arange(args.users).repeat_interleave(20)
        cols = torch.randint(1, args.items + 1, (20 * args.users,), generator=g)
        ranks = np.empty(args.users, dtype=np.int64)
        ir = before.item_ranks if before else evaluation.item_ranks
        t0, c0 = time.perf_counter(), time.process_time()
        for b in range(0, args.users, BATCH):  # evaluate's batches
            e = min(b + BATCH, args.users)
            sel = (rows >= b) & (rows < e)
            r, _ = ir(hidden[b:e], table, t[b:e], rows[sel] - b, cols[sel])
            ranks[b:e] = r.numpy()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    np.save(args.out, ranks)
    scanned = stats["scanned"] / stats["pairs"] if "scanned" in stats else None
    return {"seconds": seconds, "cpu_seconds": cpu, "scanned_fraction": scanned}


#: `scan-order`'s segment schedules: (first segment, growth, largest), items.
SCHEDULES = ((256, 2, 8192), (1024, 2, 32768), (2048, 2, 65536), (8192, 2, 131072))


def scan_order(args) -> None:
    """The capped AMX count (`_core.amx_rank_counts` with ``max_rank``) alone, on one batch of ``--users``
    validation users of the ``--model``: each scan order x `SCHEDULES`, CPU time per call, variants
    alternating in this process, ``--reps`` times; counts == min(full count, cap) asserted. Rows:
    ``scan_order`` in engine.csv (median CPU seconds and the share of pairs scanned per variant)."""
    import numpy as np
    import torch

    from fastregen import _core
    from fastregen.evaluation import ranks as R

    torch.set_num_threads(1)
    if not _core.amx_available():
        raise SystemExit("scan-order measures the AMX count; this CPU (or OS) has no AMX tiles")
    args.seed = 0
    model, split = _books_model_and_split(args)
    hist, targets = split.history, np.asarray(split.target, dtype=np.int64)
    with torch.no_grad():
        hidden = model(torch.from_numpy(hist.padded(model.max_len, side="left")))[:, -1].contiguous().numpy()
    table = model.item_weight().detach()
    B, C = hidden.shape[0], table.shape[0]
    rows = torch.from_numpy(np.repeat(np.arange(B), hist.lengths))
    inputs = {}
    for order in R.SCAN_ORDERS:
        packed = R._amx_table(table, "amx", 1, order=order)
        pos = (lambda x: x) if packed.position is None else (lambda x: packed.position[x])
        csr = R._exclusion_csr(rows, torch.from_numpy(pos(hist.items.astype(np.int64))), B, C)
        inputs[order] = (packed, pos(targets), *csr)
    packed, t, off, ex = inputs["id"]
    full = _core.amx_rank_counts(hidden, packed.table, packed.packed, t, off, ex, 1)[0]
    variants = [(o, s) for o in R.SCAN_ORDERS for s in SCHEDULES]
    cpu = {v: [] for v in variants}
    scanned = {}
    load_start = _load()
    for rep in range(args.reps):
        for order, sched in variants if rep % 2 == 0 else variants[::-1]:
            packed, t, off, ex = inputs[order]
            bounds = R._segments(C, *sched)
            c0 = time.process_time()
            count, _, _, _, pairs = _core.amx_rank_counts(hidden, packed.table, packed.packed, t, off, ex, 1,
                                                          max_rank=args.max_rank, bounds=bounds)
            cpu[(order, sched)].append(time.process_time() - c0)
            if not np.array_equal(count, np.minimum(full, args.max_rank)):
                raise SystemExit(f"{order} {sched}: counts differ from min(full, {args.max_rank}); no row written")
            scanned[(order, sched)] = pairs / (B * C)
    base = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": git_commit(HERE),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores", "device": "cpu", "threads": 1,
            "load": f"{load_start} (start), {_load()} (end)", "benchmark": "scan_order",
            "dataset": f"synthetic('books', n_users={MODEL_USERS})", "shape": f"{B} validation users x {C} columns, d=64",
            "reps": args.reps, "identical_ranks": True, "before": "",
            "note": f"_core.amx_rank_counts(max_rank={args.max_rank}) on one batch of hidden states of the SASRec "
                    f"{args.model}; counts == min(full count, {args.max_rank}) asserted; CPU time per call, variants "
                    "alternating in one process; variant: scan order, then (first segment, growth, largest)"}
    for order, sched in variants:
        name = f"{order} {'/'.join(map(str, sched))}"
        med = statistics.median(cpu[(order, sched)])
        append_result(RESULTS, **base, variant=name, metric="cpu_seconds_median", value=f"{med:.5f}", unit="s",
                      values=";".join(f"{x:.5f}" for x in cpu[(order, sched)]))
        append_result(RESULTS, **base, variant=name, metric="scanned_fraction", value=f"{scanned[(order, sched)]:.5f}",
                      unit="share", values="")
        print(f"{name}: {1000 * med:.1f} ms CPU, {scanned[(order, sched)]:.4f} of the pairs scanned")


def _books_model_and_split(args):
    """``evaluate``'s model and users: an untrained SASRec on the test split of
    ``synthetic("books", n_users=args.users)``, or (``--model``) the trained one on ``args.users``
    validation users (seed 0) of the 800,000-user preset it was trained on."""
    import numpy as np
    import torch

    from fastregen.data import EvalSplit, leave_one_out, synthetic
    from fastregen.models import build_model

    if not args.model:
        data = synthetic("books", n_users=args.users)
        torch.manual_seed(args.seed)
        return build_model("sasrec", data.num_items, embed_dim=64, max_len=50).eval(), leave_one_out(data).test
    data = synthetic("books", n_users=MODEL_USERS)
    model = build_model("sasrec", data.num_items, embed_dim=64, max_len=50)
    model.load_state_dict(torch.load(args.model, weights_only=True))
    part = leave_one_out(data).valid
    pick = np.sort(np.random.default_rng(0).choice(len(part), min(args.users, len(part)), replace=False))
    return model.eval(), EvalSplit(history=part.history.subset(pick), target=part.target[pick], users=part.users[pick])


def _load() -> str:
    workers = subprocess.run(["pgrep", "-fc", "dr4sr_study.py"], capture_output=True, text=True).stdout.strip()
    return f"loadavg {os.getloadavg()[0]:.1f}; {workers or 0} nice'd 1-thread dr4sr_study workers running"


def _compare(args, shape: str, dataset: str) -> None:
    import numpy as np

    n = str(args.threads)
    env = dict(os.environ, OMP_NUM_THREADS=n, MKL_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n)
    times = {"before": [], "after": []}
    cpu = {"before": [], "after": []}
    scanned = []
    cap = getattr(args, "max_rank", 0)
    load_start = _load()
    with tempfile.TemporaryDirectory() as tmp:
        ranks = {}
        for rep in range(args.reps):
            for variant in ("before", "after") if rep % 2 == 0 else ("after", "before"):
                out = Path(tmp) / f"{variant}{rep}" / "ranks.npy"
                out.parent.mkdir()
                cmd = [sys.executable, str(Path(__file__).resolve()), "_measure", "--kind", args.command,
                       "--variant", variant, "--out", str(out), "--before", args.before, "--seed", str(args.seed),
                       "--threads", str(args.threads)]
                if args.command in ("books", "evaluate"):
                    cmd += ["--users", str(args.users), "--items", str(args.items)]
                if args.command == "evaluate":
                    cmd += ["--max-rank", str(args.max_rank)] + (["--model", args.model] if args.model else [])
                else:
                    cmd += ["--data", args.data]
                r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=HERE.parent)
                if r.returncode != 0:
                    raise SystemExit(f"{variant} run failed:\n{r.stderr[-3000:]}")
                measured = json.loads(r.stdout.strip().splitlines()[-1])
                times[variant].append(measured["seconds"])
                if measured.get("scanned_fraction") is not None:
                    scanned.append(measured["scanned_fraction"])
                if measured["cpu_seconds"] is not None:
                    cpu[variant].append(measured["cpu_seconds"])
                got = np.load(out)
                if variant in ranks and not np.array_equal(ranks[variant], got):
                    raise SystemExit(f"{variant}: ranks differ between repetitions")
                ranks[variant] = got
                print(f"{args.command} rep {rep} {variant}: {times[variant][-1]:.3f} s"
                      + (f" ({cpu[variant][-1]:.3f} s CPU)" if cpu[variant] else ""), flush=True)
        want = np.minimum(ranks["before"], cap) if cap else ranks["before"]
        identical = bool(np.array_equal(want, ranks["after"]))
        if not identical:
            raise SystemExit(f"before and after ranks differ for {int((want != ranks['after']).sum())} "
                             f"of {want.size} users{f' (after capped at {cap})' if cap else ''}; no row written")
    load = f"{load_start} (start), {_load()} (end)"
    what = {"ranks": "target_ranks (base: torch, inplace) vs target_ranks(backend='native'), score batches of "
                     f"{BATCH} users of an untrained SASRec (d=64, max_len=50), history excluded; only the count timed",
            "validation": "evaluate() of an untrained SASRec (d=64, max_len=50, seed "
                          f"{args.seed}) on the leave-one-out valid split, batch {BATCH}, history excluded, "
                          "forward pass included",
            "books": f"item_ranks (automatic item chunks) in batches of {BATCH} users, 20 excluded items per user, "
                     "random hidden/table (seeded), float32",
            "evaluate": f"evaluate() of an untrained SASRec (d=64, max_len=50, seed {args.seed}) on the leave-one-out "
                        f"test split of data.synthetic('books', n_users={args.users}), batch {BATCH}, history "
                        "excluded, forward pass included"}[args.command]
    if args.command == "evaluate" and getattr(args, "model", None):
        what = (f"evaluate() of the SASRec {args.model} (d=64, max_len=50, trained on data.synthetic('books', "
                f"n_users={MODEL_USERS})) on {args.users} of its leave-one-out validation users (seed 0), batch "
                f"{BATCH}, history excluded, forward pass included")
    if cap:
        what += (f"; before: this commit's full ranks, after: evaluate(max_rank={cap}) (ks <= {cap}; ranks == "
                 f"min(before, {cap}) asserted); median share of (user, item) pairs scanned "
                 f"{statistics.median(scanned):.4f}")
    base = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": git_commit(HERE),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores", "device": "cpu", "threads": args.threads, "load": load,
            "benchmark": args.command, "dataset": dataset, "shape": shape, "reps": args.reps,
            "identical_ranks": identical, "before": "full ranks, same commit" if cap else args.before, "note": what}
    med = {}
    for variant in ("before", "after"):
        med[variant] = statistics.median(times[variant])
        append_result(RESULTS, **base, variant=variant, metric="seconds_median", value=f"{med[variant]:.4f}",
                      unit="s", values=";".join(f"{x:.4f}" for x in times[variant]))
    append_result(RESULTS, **base, variant="after/before", metric="speedup",
                  value=f"{med['before'] / med['after']:.2f}", unit="x", values="")
    if scanned:
        append_result(RESULTS, **base, variant="after", metric="scanned_fraction",
                      value=f"{statistics.median(scanned):.5f}", unit="share", values=";".join(f"{x:.5f}" for x in scanned))
    print(f"{args.command}: before {med['before']:.3f} s, after {med['after']:.3f} s, "
          f"speedup {med['before'] / med['after']:.2f}x, identical ranks: {identical}")
    if cpu["before"] and cpu["after"]:
        cmed = {v: statistics.median(cpu[v]) for v in cpu}
        for variant in ("before", "after"):
            append_result(RESULTS, **base, variant=variant, metric="cpu_seconds_median",
                          value=f"{cmed[variant]:.4f}", unit="s", values=";".join(f"{x:.4f}" for x in cpu[variant]))
        append_result(RESULTS, **base, variant="after/before", metric="cpu_speedup",
                      value=f"{cmed['before'] / cmed['after']:.2f}", unit="x", values="")
        print(f"{args.command} CPU: before {cmed['before']:.3f} s, after {cmed['after']:.3f} s, "
              f"speedup {cmed['before'] / cmed['after']:.2f}x")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("ranks", "validation"):
        p = sub.add_parser(name)
        p.add_argument("--data", required=True, help="a `user item item ...` file (Beauty)")
    p = sub.add_parser("books")
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--items", type=int, default=700_000)
    p = sub.add_parser("evaluate")
    p.add_argument("--users", type=int, default=2048, help="n_users of data.synthetic('books') (700k items)")
    p.add_argument("--max-rank", type=int, default=0,
                   help="compare evaluate(max_rank=M) with this commit's full ranks (0: off, --before as usual)")
    p.add_argument("--model", default=None,
                   help=f"a trained SASRec state dict (d=64, max_len=50) for data.synthetic('books', "
                        f"n_users={MODEL_USERS}); --users of its validation users")
    p.set_defaults(items=700_000)
    for p in sub.choices.values():
        p.add_argument("--reps", type=int, default=5, help="runs of each side, alternating (default 5)")
        p.add_argument("--before", default=BASE, help=f"the commit measured as 'before' (default {BASE})")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=1, help="threads of each run (torch, OpenMP; default 1)")
    so = sub.add_parser("scan-order")
    so.add_argument("--model", required=True, help="a trained SASRec state dict (see evaluate --model)")
    so.add_argument("--max-rank", type=int, default=50)
    so.add_argument("--users", type=int, default=1024)
    so.add_argument("--reps", type=int, default=5)
    m = sub.add_parser("_measure")  # one run, in its own process
    m.add_argument("--kind", choices=["ranks", "validation", "books", "evaluate"], required=True)
    m.add_argument("--variant", choices=["before", "after"], required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--before", default=BASE)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--data")
    m.add_argument("--users", type=int, default=2000)
    m.add_argument("--items", type=int, default=700_000)
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--max-rank", type=int, default=0)
    m.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    if args.command == "_measure":
        print(json.dumps(_measure(args)))
        return
    if args.reps < 1:
        parser.error(f"--reps must be >= 1, got {args.reps}")
    if args.command == "scan-order":
        if args.max_rank < 1 or args.users < 1:
            parser.error(f"--max-rank and --users must be >= 1, got {args.max_rank} and {args.users}")
        if not Path(args.model).is_file():
            parser.error(f"--model: no such file: {args.model}")
        return scan_order(args)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.command == "books":
        _compare(args, f"{args.users} users x {args.items + 1} columns, d=64", "synthetic (Books shape)")
    elif args.command == "evaluate":
        if args.max_rank < 0:
            parser.error(f"--max-rank must be >= 1 (0: off), got {args.max_rank}")
        if args.model and not Path(args.model).is_file():
            parser.error(f"--model: no such file: {args.model}")
        which = "validation" if args.model else "test"
        _compare(args, f"{args.users} {which} users x 700001 columns, d=64",
                 f"synthetic('books', n_users={MODEL_USERS})" if args.model else "synthetic('books')")
    else:
        if not Path(args.data).is_file():
            parser.error(f"--data: no such file: {args.data}")
        from fastregen.data import load

        data = load(args.data)
        _compare(args, f"{data.num_sequences:,} users x {data.num_items + 1:,} columns", Path(args.data).stem)


if __name__ == "__main__":
    main()
