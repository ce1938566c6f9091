"""Hybrid-decoding step: vocabulary-chunked torch path (and triton on CUDA) vs naive full logits.

    python benchmarks/decode.py --vocab 12000 700000 --batch 256 --steps 10 --repeats 3

Each (method, V) runs in a fresh subprocess so that its peak memory can be
read from the process high-water mark: ``extra peak`` is the growth of the
peak RSS over the RSS after the inputs were allocated (CPU), or
``torch.cuda.max_memory_allocated`` growth (CUDA). One "sequence" is one row
decoded for ``--steps`` steps (half the rows generative, half restrictive
with 50 allowed items, ``--steps`` generated ids excluded per row), so
sequences/s = batch / (steps x seconds per step), the median of
``--repeats`` timed runs after one warm-up. Each (method, V) is appended as a
row to ``benchmarks/results/decode.csv`` (``--results``; value = ms per step).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _current_rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def worker(method: str, V: int, B: int, D: int, steps: int, repeats: int, chunk: int, threads: int,
           device: str) -> dict:
    import torch

    from fastregen.ops import constrained_argmax, constrained_argmax_naive

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(V, D, generator=g).to(device)
    states = torch.randn(steps, B, D, generator=g).to(device)
    allowed = torch.randint(1, V, (B, 50), generator=g).to(device)
    generated = torch.randint(1, V, (B, steps), generator=g).to(device)
    generative = (torch.arange(B) % 2 == 0).to(device)
    cuda = device.startswith("cuda")

    def run(table=table):
        out = None
        for s in range(steps):
            gen = generated[:, :s]
            if method == "naive":
                out = constrained_argmax_naive(states[s], table, allowed, gen, generative, vocab_start=1)
            else:
                out = constrained_argmax(states[s], table, allowed, gen, generative, vocab_start=1,
                                         backend=method, chunk_size=chunk)
        if cuda:
            torch.cuda.synchronize()
        return out

    # a small call first, so that lazily loaded kernels do not count as the op's memory
    small = min(V, 2048)
    allowed.clamp_(max=small - 1)
    generated.clamp_(max=small - 1)
    run(table[:small])
    g = torch.Generator().manual_seed(1)
    allowed.copy_(torch.randint(1, V, (B, 50), generator=g))
    generated.copy_(torch.randint(1, V, (B, steps), generator=g))
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _current_rss_kib() * 1024
    ids = run()  # warm-up (and the memory peak)
    peak = (torch.cuda.max_memory_allocated() if cuda else _rss_kib() * 1024) - base
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"method": method, "V": V, "B": B, "D": D, "steps": steps, "seconds_per_step": med / steps,
            "sequences_per_s": B / med, "extra_peak_bytes": int(peak), "logits_bytes": B * V * 4,
            "ids_checksum": int(ids[0].sum())}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", type=int, nargs="+", default=[12000, 700000])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=["naive", "torch"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "V"))
    ap.add_argument("--results", default=str(Path(__file__).resolve().parent / "results" / "decode.csv"),
                    help="append result rows to this CSV ('' for none)")
    args = ap.parse_args(argv)
    if args.worker:
        res = worker(args.worker[0], int(args.worker[1]), args.batch, args.dim, args.steps, args.repeats,
                     args.chunk, args.threads, args.device)
        print(json.dumps(res))
        return
    rows = []
    for V in args.vocab:
        for method in args.methods:
            cmd = [sys.executable, __file__, "--worker", method, str(V), "--batch", str(args.batch), "--dim",
                   str(args.dim), "--steps", str(args.steps), "--repeats", str(args.repeats), "--chunk",
                   str(args.chunk), "--threads", str(args.threads), "--device", args.device]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    checks = {}
    for r in rows:
        checks.setdefault(r["V"], set()).add(r["ids_checksum"])
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}; device {args.device}; "
          f"B={args.batch}, D={args.dim}, steps={args.steps}, chunk={args.chunk}, threads={args.threads}\n")
    print("| V | method | ms / step | sequences/s | extra peak memory | full logits (B x V fp32) | memory vs naive |")
    print("|---|---|---|---|---|---|---|")
    naive = {r["V"]: r for r in rows if r["method"] == "naive"}
    for r in rows:
        ratio = ""
        if r["method"] != "naive" and r["V"] in naive and r["extra_peak_bytes"] > 0:
            ratio = f"{naive[r['V']]['extra_peak_bytes'] / r['extra_peak_bytes']:.1f}x less"
        print(f"| {r['V']:,} | {r['method']} | {1000 * r['seconds_per_step']:.1f} | {r['sequences_per_s']:.0f} | "
              f"{r['extra_peak_bytes'] / 2**20:.1f} MiB | {r['logits_bytes'] / 2**20:.1f} MiB | {ratio} |")
    same = all(len(v) == 1 for v in checks.values())
    print(f"\nsame argmax ids across methods: {same}")
    if args.results:
        from _results import append_result

        load = f"{os.getloadavg()[0]:.1f}"
        for r in rows:
            append_result(args.results, benchmark="constrained_argmax step", dataset=f"synthetic V={r['V']}",
                          variant=r["method"], metric="ms_per_step", value=f"{1000 * r['seconds_per_step']:.2f}",
                          unit="ms", threads=args.threads, device=args.device,
                          extra_peak_mib=f"{r['extra_peak_bytes'] / 2**20:.1f}", same_ids=same,
                          sequences_per_s=f"{r['sequences_per_s']:.0f}", load=load,
                          params=f"B={args.batch}, D={args.dim}, steps={args.steps}, chunk={args.chunk}, "
                                 f"repeats={args.repeats}")


if __name__ == "__main__":
    main()
