"""Hybrid inference, this checkout against an earlier commit, side by side, and the same output.

    # a regenerator trained 1 epoch on Beauty (fastregen regenerate ... --epochs 1), every sequence
    python benchmarks/decode_speed.py beauty --data ../shared/data/beauty.txt \
        --checkpoint RUN/regenerator.pt --baseline cb1866a --repeats 3
    # Books-shaped: synthetic("books") (700,000 items), its first 2,048 sequences, untrained regenerator
    python benchmarks/decode_speed.py books --sequences 2048 --baseline cb1866a --repeats 3

Both versions run `hybrid_inference` (`fastregen.generator`, or `fastregen.dr4sr` before it) with the model's
configuration (K = 5, gamma = 0.1, seed 0, batches of 1,024 sequences) on
the same inputs, each in its own process, alternating (baseline, current,
baseline, ...), with one torch thread; the medians are compared (the
machine's load drifts, and alternating exposes both versions to it alike).
Each run hashes its decoded patterns (ids, the sequence and the memory each
came from); the note says whether every run of both versions gave the same
hash. The baseline's Python package comes from ``git archive BASELINE``
and runs on this checkout's compiled core (`_harness.baseline_tree`). Without
``--checkpoint`` the regenerator is `Regenerator(num_items, RegenConfig())`
after ``torch.manual_seed(0)``, untrained, as ``scale.py decode`` uses it.

Two rows go to ``benchmarks/results/scale.csv`` (experiment
``decode_cache``): stage ``inference_before`` (the baseline) and
``inference`` (this checkout), throughput in sequences/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import baseline_tree  # noqa: E402 (this folder is on sys.path)
from scale import RESULTS, Recorder  # noqa: E402

WORKER = r"""
import hashlib, json, os, resource, sys, time
if os.environ.get("FASTREGEN_BASELINE"):
    # an editable install of this checkout redirects `import fastregen` ahead of PYTHONPATH: drop that finder
    sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
    sys.path.insert(0, os.environ["FASTREGEN_BASELINE"])
import numpy as np, torch
import fastregen
from fastregen.data import load, synthetic
from fastregen.dr4sr import RegenConfig
try:  # the generator package (since issue 27)
    from fastregen.generator import Regenerator, hybrid_inference, load_checkpoint
    from fastregen.patterns import dr4sr_input
except ImportError:  # a baseline from before it
    from fastregen.dr4sr import Regenerator, hybrid_inference
    from fastregen.dr4sr.model import load_checkpoint
    from fastregen.mining import dr4sr_input
torch.set_num_threads(1)
what, path, n, ckpt = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
data = dr4sr_input(synthetic("books", n_users=max(n, 1000)) if what == "books" else load(path))
sources = data.subset(np.arange(min(n, len(data)))) if n else data
if ckpt:
    model, _ = load_checkpoint(ckpt, num_items=data.num_items, progress=False)
else:
    torch.manual_seed(0)
    model = Regenerator(data.num_items, RegenConfig(progress=False)).eval()
hybrid_inference(model, sources.subset(np.arange(min(64, len(sources)))), progress=False)  # warm-up (allocator, lazy imports)
t0 = time.perf_counter()
got, info = hybrid_inference(model, sources, progress=False)
seconds = time.perf_counter() - t0
h = hashlib.sha256()
for a, t in ((got.offsets, np.int64), (got.items, np.int32), (got.meta["source"], np.int64),
             (got.meta["memory"], np.int64)):
    h.update(np.ascontiguousarray(a, dtype=t).tobytes())
print(json.dumps({"seconds": seconds, "sequences": info["sequences"], "kept": info["kept"], "sha256": h.hexdigest(),
                  "interactions": int(sources.num_interactions), "items": int(data.num_items),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "fastregen": fastregen.__file__}))
"""


def _run(baseline: str | None, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "FASTREGEN_BASELINE"}
    env["OMP_NUM_THREADS"] = "1"
    if baseline is not None:
        env["FASTREGEN_BASELINE"] = baseline
    cmd = [sys.executable, "-c", WORKER, args.what, args.data or "", str(args.sequences), args.checkpoint or ""]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"decode worker failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if baseline is not None and not res["fastregen"].startswith(baseline):
        raise SystemExit(f"the worker imported fastregen from {res['fastregen']}, not the version asked for")
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["beauty", "books"], help="a dataset file (--data) or synthetic('books')")
    ap.add_argument("--data", help="the dataset file (beauty)")
    ap.add_argument("--checkpoint", help="a regenerator.pt trained on --data (default: untrained, seed 0)")
    ap.add_argument("--sequences", type=int, default=0, help="decode the first N sequences (0: all; books: 2048)")
    ap.add_argument("--baseline", default="cb1866a", help="commit to compare against (before the decoder cache)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--results", default=str(RESULTS))
    args = ap.parse_args(argv)
    args.threads = 1
    if args.what == "beauty" and not args.data:
        ap.error("beauty needs --data")
    if args.what == "books" and not args.sequences:
        args.sequences = 2048
    data_name = Path(args.data).name if args.what == "beauty" else f"synthetic-books(n_users={max(args.sequences, 1000)})"
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        old = os.fspath(baseline_tree(args.baseline, Path(tmp)))
        for r in range(args.repeats):
            for name, path in (("baseline", old), ("current", None)):
                res = _run(path, args)
                runs[name].append(res)
                loads.append(os.getloadavg()[0])
                print(f"repeat {r}: {name:<8} {res['seconds']:8.1f} s  {res['sequences'] / res['seconds']:7.1f} seq/s  "
                      f"{res['kept']} patterns  {res['sha256'][:12]}", flush=True)
    hashes = {res["sha256"] for name in runs for res in runs[name]}
    same = len(hashes) == 1
    med = {name: statistics.median(r["seconds"] for r in runs[name]) for name in runs}
    ratio = med["baseline"] / med["current"]
    print(f"median: baseline {args.baseline} {med['baseline']:.1f} s, current {med['current']:.1f} s -> "
          f"{ratio:.2f}x; identical output in every run: {same}")
    rec = Recorder(args, "decode_cache", data_name)
    r0 = runs["current"][0]
    shape = dict(sequences=r0["sequences"], interactions=r0["interactions"], items=r0["items"], d=64, batch=1024,
                 fraction=1)
    model = f"regenerator {Path(args.checkpoint).name}" if args.checkpoint else "untrained regenerator (seed 0)"
    common = (f"{model}, K=5, gamma=0.1; alternating processes, median of {args.repeats}, 1 thread; load average "
              f"{min(loads):.1f}-{max(loads):.1f} (two nice'd study workers and other jobs on the 2 cores)")
    for name, stage in (("baseline", "inference_before"), ("current", "inference")):
        secs = [r["seconds"] for r in runs[name]]
        note = (f"{'baseline ' + args.baseline if name == 'baseline' else 'this commit'}: "
                f"runs {' '.join(f'{s:.1f}' for s in secs)} s; {common}")
        if name == "current":
            note += (f"; {ratio:.2f}x the baseline's {r0['sequences'] / med['baseline']:.1f} sequences/s; "
                     f"decoded patterns identical in every run of both: {same}")
        rec.row(stage, **shape, seconds=med[name], full_seconds=med[name],
                peak_rss_mib=round(statistics.median(r["peak_rss_mib"] for r in runs[name]), 1),
                throughput=round(r0["sequences"] / med[name], 2), unit="sequences/s", note=note)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
