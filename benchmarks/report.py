"""Tables from the result rows in ``benchmarks/results/``: what BENCHMARKS.md shows is generated here.

    python benchmarks/report.py dr4sr                       # print the DR4SR study's tables
    python benchmarks/report.py dr4sr --write BENCHMARKS.md # and replace its generated block there

The DR4SR report reads ``results/dr4sr.csv`` (one row per run, written by
``dr4sr_study.py``) and ``results/ranks/dr4sr/*.npz`` (each run's per-user
test ranks). The DR4SR setting is chosen among the selection runs by
**validation** NDCG@20 only. Each gain has a paired p-value: two-sided
Wilcoxon signed-rank over test users of the per-user NDCG@20, each side
averaged over its runs (seeds) first.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from _results import load_ranks, paired_p, per_user, read_rows  # noqa: E402 (this folder is on sys.path)
from paper_tables import table3  # noqa: E402

HERE = Path(__file__).resolve().parent


def _fmt_p(p: float) -> str:
    return "—" if p is None else (f"{p:.1e}" if p < 1e-3 else f"{p:.3f}")


def _mean_sd(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4f} ± {v.std(ddof=0):.4f}" if v.size > 1 else f"{v.mean():.4f}"


def _user_metric(rows, ranks_dir: Path, metric: str) -> np.ndarray:
    """Per-user ``metric`` averaged over the runs in ``rows``."""
    per_run = []
    for r in rows:
        ranks, cutoff = _ranks(ranks_dir, r["run_id"])
        per_run.append(per_user(ranks, metric, cutoff))
    return np.mean(per_run, axis=0)


def _ranks(ranks_dir: Path, run_id: str):
    path = ranks_dir / f"{run_id}.npz"
    if not path.exists():
        raise SystemExit(f"{path} is missing: every row of the results needs its ranks file")
    ranks, cutoff = load_ranks(path)
    return ranks, cutoff


def dr4sr_report(results: Path, ranks_dir: Path) -> str:
    sys.path.insert(0, str(HERE))
    import dr4sr_study as study

    rows = read_rows(results, study.COLUMNS)
    if not rows:
        return "_No DR4SR study rows yet (`python benchmarks/dr4sr_study.py select`)._\n"
    out = []
    # ---- selection (validation only)
    sel = {r.run_id: r for r in study.selection_runs() if r.train_set == "dr4sr"}
    by_id = {row["run_id"]: row for row in rows}
    setting = study.selected_setting(rows)
    out.append("Selection (Beauty, SASRec, target seed 0, regenerator seed 0): validation only.\n")
    out.append("| variant | K | gamma | valid N@20 | valid R@20 | epochs | |")
    out.append("|---|---|---|---|---|---|---|")
    for rid, r in sel.items():
        row = by_id.get(rid)
        mark = "**selected**" if setting == (r.variant, r.K, r.gamma) else ""
        if row is None:
            out.append(f"| {r.variant} | {r.K} | {r.gamma} | (not run) | | | |")
        else:
            out.append(f"| {r.variant} | {r.K} | {r.gamma} | {float(row['valid_ndcg@20']):.4f} | "
                       f"{float(row['valid_recall@20']):.4f} | {row['epochs']} | {mark} |")
    if setting is None:
        out.append("\nSelection unfinished: no DR4SR row is reported on test yet.\n")
        return "\n".join(out) + "\n"
    variant, K, gamma = setting
    out.append(f"\nSelected: {variant}, K = {K}, gamma = {gamma} "
               f"({'released code' if variant == 'V1' else 'paper'} setting).\n")

    # ---- test table of the selected setting and the controls
    groups = defaultdict(list)
    for row in rows:
        if row["train_set"] in ("dr4sr", "regenerated") and (row["variant"], int(row["K"]), float(row["gamma"])) != setting:
            continue  # the other selection settings are never read on test
        groups[(row["dataset"], row["model"], row["train_set"])].append(row)
    out.append("Test, full ranking; mean ± sd over runs; p: paired Wilcoxon over users (NDCG@20) against "
               "`original` of the same model and dataset; paper: DR4SR Table 3.\n")
    out.append("| dataset | model | training set | runs | N@20 | R@20 | N@10 | R@10 | vs original (N@20) | p | "
               "paper N@20 | paper vs base |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = ["original", "dr4sr", "original+patterns", "patterns", "regenerated"]
    for dataset in ("beauty", "sports", "toys"):
        for model in ("sasrec", "gru4rec"):
            base = groups.get((dataset, model, "original"))
            if not base:
                continue
            base_n20 = np.mean([float(r["test_ndcg@20"]) for r in base])
            base_user = _user_metric(base, ranks_dir, "ndcg@20")
            pb = table3(model, "base", dataset)
            for train_set in order:
                g = groups.get((dataset, model, train_set))
                if not g:
                    continue
                n20 = [float(r["test_ndcg@20"]) for r in g]
                cells = [_mean_sd(n20)] + [_mean_sd([float(r[f"test_{m}"]) for r in g])
                                           for m in ("recall@20", "ndcg@10", "recall@10")]
                gain, p = "", None
                if train_set != "original":
                    gain = f"{100 * (np.mean(n20) / base_n20 - 1):+.1f}%"
                    p = paired_p(base_user, _user_metric(g, ranks_dir, "ndcg@20"))
                paper, paper_gain = "", ""
                if train_set == "original" and pb:
                    paper = f"{pb['ndcg@20']:.4f}"
                    paper_gain = f"ours {100 * (base_n20 / pb['ndcg@20'] - 1):+.1f}% vs paper base"
                if train_set == "dr4sr":
                    pd = table3(model, "dr4sr", dataset)
                    if pd and pb:
                        paper, paper_gain = f"{pd['ndcg@20']:.4f}", f"{100 * (pd['ndcg@20'] / pb['ndcg@20'] - 1):+.1f}%"
                name = f"DR4SR ({variant}, K={K}, γ={gamma})" if train_set == "dr4sr" else train_set
                out.append(f"| {dataset} | {model} | {name} | {len(g)} | " + " | ".join(cells)
                           + f" | {gain} | {_fmt_p(p)} | {paper} | {paper_gain} |")
    return "\n".join(out) + "\n"


def _num(v: float) -> str:
    return f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"


def _cell(text: str) -> str:
    """A value safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def scale_report(results: Path, ranks_dir: Path) -> str:
    """Books scale and torch.distributed: the latest row of each (experiment, data, stage, processes, threads)."""
    sys.path.insert(0, str(HERE))
    import scale

    rows = read_rows(results, scale.COLUMNS)
    if not rows:
        return "_No scale rows yet (`python benchmarks/scale.py pipeline`)._\n"
    # per stage the latest row that ran the whole stage, else the latest row: a later run that measured a
    # fraction (e.g. a few SASRec steps to reach the evaluation) does not replace a measured whole stage
    latest: dict = {}
    for r in rows:
        # decode rows differ by machine and by their "device ..., backend ..." (the note's first two items)
        variant = (r["machine"], ",".join(r["note"].split(",")[:2])) if r["experiment"] == "decode" else ()
        key = (r["experiment"], r["data"], r["stage"], r["processes"], r["threads"], *variant)
        if key not in latest or float(r["fraction"] or 1) >= 1 or float(latest[key]["fraction"] or 1) < 1:
            latest[key] = r
    out = []
    pipe = [r for (e, *_), r in latest.items() if e == "pipeline"]
    for data in sorted({r["data"] for r in pipe}):
        part = [r for r in pipe if r["data"] == data]
        r0 = part[0]
        loads = [float(r["load"]) for r in part]
        out.append(f"Pipeline on `{data}` ({int(r0['sequences']):,} sequences, {int(r0['interactions']):,} "
                   f"interactions, {int(r0['items']):,} items), {r0['threads']} torch thread(s), {r0['machine']}, "
                   f"load average {min(loads)}-{max(loads)}:\n")
        out.append("| stage | measured s | share of the stage run | whole stage s (extrapolated) | peak RSS MiB "
                   "| estimate MiB | throughput | run | |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---|---|")
        total = 0.0
        for r in part:
            full = float(r["full_seconds"] or r["seconds"])
            total += full
            frac = float(r["fraction"])
            share = "all" if frac >= 1 else f"{100 * frac:.2f}%"
            thr = f"{_num(float(r['throughput']))} {r['unit']}" if r["throughput"] else ""
            out.append(f"| {r['stage']} | {float(r['seconds']):,.1f} | {share} | {full:,.0f} | "
                       f"{float(r['peak_rss_mib']):,.0f} | {float(r['estimate_mib']):,.0f} | {thr} | "
                       f"{r['commit']} {r['date'][:16].replace('T', ' ')} | {_cell(r['note'])} |")
        peak = max(float(r["peak_rss_mib"]) for r in part)
        out.append(f"\nAll stages: {total / 3600:.1f} h extrapolated, peak RSS {peak / 1024:.2f} GiB.\n")
    other = sorted((r for (e, *_), r in latest.items() if e != "pipeline"),
                   key=lambda r: (r["experiment"], r["data"], r["stage"], r["machine"], int(r["processes"]),
                                  -int(r["threads"] or 0), r["note"]))
    if other:
        out.append("| experiment | data | stage | machine | processes | threads per process | seconds | throughput "
                   "| run | |")
        out.append("|---|---|---|---|---:|---:|---:|---:|---|---|")
        for r in other:
            thr = f"{_num(float(r['throughput']))} {r['unit']}" if r["throughput"] else ""
            secs = float(r["seconds"])
            out.append(f"| {r['experiment']} | {r['data']} | {r['stage']} | {r['machine']} | {r['processes']} | "
                       f"{r['threads']} | {secs:,.{3 if secs < 10 else 1}f} | {thr} | {r['commit']} | "
                       f"{_cell(r['note'])} |")
        out.append("")
    return "\n".join(out) + "\n"


REPORTS = {"dr4sr": dr4sr_report, "scale": scale_report}


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` in ``path``."""
    doc = path.read_text()
    start, end = f"<!-- report:{name} -->", f"<!-- /report:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path} has no {start} ... {end} block to replace")
    block = f"{start}\n<!-- generated by `python benchmarks/report.py {name}`; do not edit by hand -->\n{text}{end}"
    path.write_text(pattern.sub(lambda _: block, doc))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help=f"one of: {', '.join(REPORTS)}")
    ap.add_argument("--results", default=None, help="results CSV (default benchmarks/results/REPORT.csv)")
    ap.add_argument("--ranks", default=None, help="ranks folder (default benchmarks/results/ranks/REPORT)")
    ap.add_argument("--write", default=None, metavar="MARKDOWN", help="replace the report's block in this file")
    args = ap.parse_args(argv)
    if args.report not in REPORTS:
        raise SystemExit(f"unknown report {args.report!r}; choose one of: {', '.join(REPORTS)}")
    results = Path(args.results) if args.results else HERE / "results" / f"{args.report}.csv"
    ranks = Path(args.ranks) if args.ranks else HERE / "results" / "ranks" / args.report
    try:
        text = REPORTS[args.report](results, ranks)
    except ValueError as err:  # a results file with other columns, say
        raise SystemExit(f"error: {err}") from None
    print(text)
    if args.write:
        write_block(Path(args.write), args.report, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
