"""Tables from the result rows in ``benchmarks/results/``: what BENCHMARKS.md shows is generated here.

    python benchmarks/report.py dr4sr                       # print the DR4SR study's tables
    python benchmarks/report.py dr4sr --write BENCHMARKS.md # and replace its generated block there
    python benchmarks/report.py --update                    # rewrite every generated block of BENCHMARKS.md, README.md
    python benchmarks/report.py --check                     # exit 1 naming each block the rows no longer give (CI)

A generated block is the text between ``<!-- report:NAME -->`` and
``<!-- /report:NAME -->``; NAME is a report of `REPORTS`, rendered from its
default rows (`default_paths`). Reports read only ``results/`` (no dataset,
no clock, no machine query), so ``--check`` gives the same answer anywhere.

The DR4SR report reads ``results/dr4sr.csv`` (one row per run, written by
``dr4sr_study.py``) and ``results/ranks/dr4sr/*.npz`` (each run's per-user
test ranks). The DR4SR setting is chosen among the selection runs by
**validation** NDCG@20 only. Each gain has a paired p-value: two-sided
Wilcoxon signed-rank over test users of the per-user NDCG@20, each side
averaged over its runs (seeds) first.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from _results import load_ranks, paired_p, per_user, read_results, read_rows  # noqa: E402 (this folder is on sys.path)
from paper_tables import TABLE4_END_TO_END, table3  # noqa: E402

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


def _rebuilt(rows: list[dict], column: str, key: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    """(current rows, first-build rows): a row whose ``column`` is "rebuild" (the same run again on a
    regenerator or generator rebuilt on the study's machine: ``dr4sr_study.REBUILDS``, ``unids.REBUILT``)
    takes the place of the rows with its ``key`` columns, declared so before its figures were read; the
    first build's rows are reported on their own line, never paired."""
    def run(r):
        return tuple(r[c] for c in key)
    rebuilt = {run(r) for r in rows if r[column] == "rebuild"}
    first = [r for r in rows if r[column] != "rebuild" and run(r) in rebuilt]
    return [r for r in rows if r not in first], first


def _first_builds(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """`_rebuilt` of dr4sr.csv's rows (a run: its data, model, training set, regenerator, seed and scheme)."""
    return _rebuilt(rows, "stage", ("dataset", "model", "train_set", "variant", "K", "gamma", "regen_seed",
                                    "target_seed", "protocol"))


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
    current, first = _first_builds(rows)
    groups = defaultdict(list)
    for row in current + [dict(r, train_set=r["train_set"] + " (first build)") for r in first]:
        if row["train_set"].startswith(("dr4sr", "regenerated")) \
                and (row["variant"], int(row["K"]), float(row["gamma"])) != setting:
            continue  # the other selection settings are never read on test
        groups[(row["dataset"], row["model"], row["train_set"], row["protocol"])].append(row)
    out.append("Test, full ranking; mean ± sd over runs; p: paired Wilcoxon over users (NDCG@20) against "
               "`original` of the same model and dataset; paper: DR4SR Table 3.\n")
    out.append("| dataset | model | training set | runs | N@20 | R@20 | N@10 | R@10 | vs original (N@20) | p | "
               "paper N@20 | paper vs base |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = ["original", "dr4sr", "dr4sr (first build)", "original+patterns", "patterns", "regenerated"]
    # "all": fastregen's trainer; "all/authors": the same runs under the DR4SR authors' training scheme
    # (dr4sr_study.SCHEMES), each compared with the original of its own scheme
    for dataset, model, protocol in ((d, m, p) for d in ("beauty", "sports", "toys") for m in ("sasrec", "gru4rec")
                                     for p in ("all", "all/authors")):
        base = groups.get((dataset, model, "original", protocol))
        if not base:
            continue
        base_n20 = np.mean([float(r["test_ndcg@20"]) for r in base])
        base_user = _user_metric(base, ranks_dir, "ndcg@20")
        pb = table3(model, "base", dataset)
        for train_set in order:
            g = groups.get((dataset, model, train_set, protocol))
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
            name = (f"DR4SR ({variant}, K={K}, γ={gamma}{', first build' if 'first' in train_set else ''})"
                    if train_set.startswith("dr4sr") else train_set)
            if protocol != "all":
                name += f" ({protocol.split('/')[1]}' scheme)"
                paper = paper_gain = ""  # the paper's figures stand beside fastregen's scheme only
            out.append(f"| {dataset} | {model} | {name} | {len(g)} | " + " | ".join(cells)
                       + f" | {gain} | {_fmt_p(p)} | {paper} | {paper_gain} |")
    return "\n".join(out) + "\n"


def _num4(cell: str) -> str:
    """A row's number to 4 decimals, or "—" where the run has none (e.g. no weights with the personalizer off)."""
    return f"{float(cell):.4f}" if cell != "" else "—"


def _dr4srplus_explore(rows: list[dict], results: Path, ranks_dir: Path) -> list[str]:
    """dr4srplus.py's stage "explore" (post hoc) beside the issue-26 run it varies (same seed and rates) and
    beside DR4SR at that seed (README's verdict rows: the regenerator DR4SR+ trains on); an option run at
    several seeds also gets a line over those seeds, each side's per-user NDCG@20 averaged over them."""
    runs = [r for r in rows if r["stage"] == "explore"]
    if not runs:
        return []
    dr4sr = None
    if (results.parent / "dr4sr.csv").exists():
        dr4sr = _plain_dr4sr(verdict_pairings(results.parent, ranks_dir.parent)[0], "beauty", "sasrec")
    plus_user = lambda rs: _user_metric(rs, ranks_dir, "ndcg@20")  # noqa: E731

    def versus_dr4sr(rs):
        seeds = {r["target_seed"] for r in rs}
        dr = [r for r in dr4sr.method if r["target_seed"] in seeds] if dr4sr else []
        if len(dr) != len(seeds):
            return "", ""
        mean = np.mean([float(r["test_ndcg@20"]) for r in dr])
        return f"{mean:.4f}", _fmt_p(paired_p(dr4sr.method_user(dr, "ndcg@20"), plus_user(rs)))

    def line(rs, option, p=""):
        row = rs[0]
        seeds = ", ".join(r["target_seed"] for r in rs)
        mean = lambda col: np.mean([float(r[col]) for r in rs])  # noqa: E731
        dr_mean, dr_p = versus_dr4sr(rs)
        ident = row["run_id"] if len(rs) == 1 else f"mean of {len(rs)}"
        return (f"| {ident} | {option} | {seeds} | {mean('valid_ndcg@20'):.4f} | {mean('test_ndcg@20'):.4f} | "
                + (f"{row['epochs']} ({row['best_epoch']}) | {_num4(row['weight_mean'])} | " if len(rs) == 1 else
                   f"best {', '.join(r['best_epoch'] for r in rs)} | | ")
                + f"{p} | {dr_mean} | {dr_p} |")

    def varied(r):  # the issue-26 run this one varies: same model, seed and upper-level rates
        return [b for b in rows if b["stage"] == "issue26" and (b["model"], b["target_seed"], b["upper_lr"],
                b["upper_weight_decay"]) == (r["model"], r["target_seed"], r["upper_lr"], r["upper_weight_decay"])]

    def option(r):
        plus = json.loads(r["plus_config"]) if r["plus_config"] else {}
        base = varied(r)
        released = json.loads(base[0]["plus_config"]) if base and base[0]["plus_config"] else {}
        return ", ".join(f"{k}={v}" for k, v in sorted(plus.items()) if released and released.get(k) != v) or "?"

    out = ["\nExploratory, declared after the test figures above were read (`python benchmarks/dr4srplus.py explore`; "
           "never in the verdict): the selected run again with one option changed, beside it. p: paired Wilcoxon over "
           "test users of NDCG@20 against the run as released; DR4SR: README's verdict rows at the same seeds (the "
           "regenerator DR4SR+ trains on) and the p against them. A line over several seeds averages each user over "
           "them.\n",
           "| run | option | target seeds | valid N@20 | test N@20 | epochs (best) | final mean w | p vs released "
           "| DR4SR test N@20 | p vs DR4SR |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    shown = set()
    by_option = defaultdict(list)
    for r in sorted(runs, key=lambda r: (r["model"], int(r["target_seed"]))):
        base, opt = varied(r), option(r)
        for b in base:
            if b["run_id"] not in shown:
                shown.add(b["run_id"])
                out.append(line([b], "as released"))
        out.append(line([r], opt, _fmt_p(paired_p(plus_user(base), plus_user([r]))) if base else ""))
        by_option[opt].append(r)
    for opt, rs in by_option.items():
        base = [b for r in rs for b in varied(r)]
        if len(rs) > 1 and len(base) == len(rs):
            out.append(line(base, "as released"))
            out.append(line(rs, opt, _fmt_p(paired_p(plus_user(base), plus_user(rs)))))
    return out


def dr4srplus_report(results: Path, ranks_dir: Path) -> str:
    """DR4SR+ vs DR4SR vs the original data (and the controls), from ``dr4srplus.py``'s rows."""
    sys.path.insert(0, str(HERE))
    import dr4srplus as study

    rows = read_rows(results, study.COLUMNS)
    out = []
    overhead = read_results(results.with_name("dr4srplus_overhead.csv"))
    if overhead:
        out.append("Time cost per training epoch, plain vs bi-level, epochs alternating in one process (medians; "
                   "CPU seconds of the process, which the shared machine's other jobs do not inflate, and wall "
                   "seconds; paper Table 5, GPU: 7.618 -> 9.476 s on Beauty, +24%).\n")
        out.append("| dataset | model | training set | epochs each | plain CPU s | bi-level CPU s | overhead (CPU) | "
                   "plain wall s | bi-level wall s | overhead (wall) | upper steps / epoch | upper wall s | threads | "
                   "machine | commit |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in overhead:
            out.append(f"| {r['dataset']} | {r['model']} | {r['train_set']} | {r['epochs']} | "
                       f"{r['plain_cpu_s_median']} | {r['bilevel_cpu_s_median']} | "
                       f"{100 * float(r['value']):+.1f}% | {r['plain_s_median']} | {r['bilevel_s_median']} | "
                       f"{100 * float(r['overhead']):+.1f}% | {r['upper_steps_per_epoch']} | {r['upper_s_median']} | "
                       f"{r['threads']} | {r['machine']} | {r['commit']} |")
        out.append("")
    if not rows:
        out.append("_No DR4SR+ study rows yet (`python benchmarks/dr4srplus.py select ...`)._\n")
        return "\n".join(out) + "\n"
    # ---- selection on validation, per regenerator (the DR4SR data every DR4SR / DR4SR+ row trains on) and grid
    settings = {}
    sel_rows = [r for r in rows if r["stage"] == "select"]
    if sel_rows:
        out.append("Selection (seed 0): the grid's rate (`upper_lr`: the paper; `alpha`: the authors' sweep file) x "
                   "upper weight decay, **validation** NDCG@20 only.\n")
        out.append("| dataset | model | regenerator | grid | rate | weight decay | valid N@20 | upper steps (skipped) | "
                   "final mean w | |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
    for dataset, model, regen, grid in sorted({(r["dataset"], r["model"], r["regen"], r["grid"]) for r in sel_rows}):
        setting = study.selected(rows, dataset, model, regen, grid)
        settings[(dataset, model, regen, grid)] = setting
        for r in sel_rows:
            if (r["dataset"], r["model"], r["regen"], r["grid"]) != (dataset, model, regen, grid):
                continue
            mark = "**selected**" if setting == (float(r[grid]), float(r["upper_weight_decay"])) else ""
            w = f"{float(r['weight_mean']):.3f}" if r["weight_mean"] else ""
            out.append(f"| {dataset} | {model} | {regen} | {grid} | {r[grid]} | {r['upper_weight_decay']} | "
                       f"{float(r['valid_ndcg@20']):.4f} | {r['upper_steps']} ({r['upper_skipped']}) | {w} | {mark} |")
    # ---- issue 26 (stage 5): the declared upper-level rates at seed 0, validation only; their test rows
    # pair with dr4sr_study's original and DR4SR rows in README's verdict
    i26 = {float(r["upper_lr"]): r for r in rows if r["stage"] == "issue26" and r["model"] == "sasrec"
           and r["target_seed"] == "0"}
    if i26:
        chosen = (max(i26.values(), key=lambda r: float(r["valid_ndcg@20"]))
                  if len(i26) == len(study.ISSUE26_RATES) else None)
        out.append("\nIssue 26, stage 5 (Beauty SASRec, target seed 0, the study's DR4SR regenerator): the three declared "
                   "upper-level SGD rates, **validation** NDCG@20 only; the selected one runs seeds 1-2 and GRU4Rec, "
                   "and README's verdict pairs it with `dr4sr.csv`'s original rows.\n")
        out.append("| upper lr | valid N@20 | epochs (best) | upper steps (skipped) | final mean w | final var w | |")
        out.append("|---|---|---|---|---|---|---|")
        for rate in study.ISSUE26_RATES:
            r = i26.get(float(rate))
            if r is None:
                out.append(f"| {rate:g} | (not run) | | | | | |")
                continue
            mark = "**selected**" if r is chosen else ""
            out.append(f"| {rate:g} | {float(r['valid_ndcg@20']):.4f} | {r['epochs']} ({r['best_epoch']}) | "
                       f"{r['upper_steps']} ({r['upper_skipped']}) | {float(r['weight_mean']):.4f} | "
                       f"{float(r['weight_var']):.4f} | {mark} |")
    out += _dr4srplus_explore(rows, results, ranks_dir)
    # ---- test table: DR4SR / DR4SR+ rows grouped per regenerator (and grid), the controls shared
    groups = defaultdict(list)
    for r in rows:
        if r["stage"] in ("issue26", "explore"):
            continue  # issue 26's pair in the verdict, with dr4sr_study's controls; "explore" has its own table
        ts = r["train_set"]
        if ts == "dr4sr+":
            owner = "sasrec" if r["stage"] == "others" else r["model"]  # the other models use SASRec's setting
            want = settings.get((r["dataset"], owner, r["regen"], r["grid"]))
            if want != (float(r[r["grid"]]), float(r["upper_weight_decay"])):
                continue  # the other selection settings are never read on test
            if r["grid"] != "upper_lr":
                ts = f"dr4sr+[{r['grid']}]"
        label = ts if not r["regen"] else f"{ts} @{r['regen']}"
        groups[(r["dataset"], r["model"], label)].append(r)
    if not any(key[2] == "original" for key in groups):
        return "\n".join(out) + "\n"
    out.append("\nTest, full ranking; mean ± sd over seeds; p: paired Wilcoxon over users of NDCG@20 (each side "
               "averaged over its seeds first). `@id`: the regenerator (its output's sha256 prefix). Paper: DR4SR "
               "Table 3 (base / DR4SR / DR4SR+ rows) and Table 4 (C).\n")
    out.append("| dataset | model | training set | seeds | N@20 | R@20 | N@10 | R@10 | vs original | p vs original | "
               "step | p step | final mean w | paper N@20 | paper vs base |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    bar = []
    paper_row = {"original": "base", "dr4sr": "dr4sr", "dr4sr+": "dr4sr+"}
    for dataset in ("beauty", "sports", "toys"):
        for model in ("sasrec", "gru4rec", "fmlp", "gnn", "cl4srec"):
            if not groups.get((dataset, model, "original")):
                continue
            regens = sorted({lab.split(" @")[1] for (d, m, lab) in groups if (d, m) == (dataset, model) and " @" in lab})
            labels = ["original", "original+patterns"] + [f"{ts} @{rg}" for rg in regens for ts in
                                                          ("dr4sr", "dr4sr+", "dr4sr+[alpha]", "dr4sr+e2e")]
            labels = [lab for lab in labels if groups.get((dataset, model, lab))]
            g_of = {lab: groups[(dataset, model, lab)] for lab in labels}
            user = {lab: _user_metric(g, ranks_dir, "ndcg@20") for lab, g in g_of.items()}
            means = {lab: np.mean([float(r["test_ndcg@20"]) for r in g]) for lab, g in g_of.items()}
            pb = table3(model, "base", dataset)
            pvals = {}
            for lab in labels:
                g, ts = g_of[lab], lab.split(" @")[0]
                cells = [_mean_sd([float(r[f"test_{m}"]) for r in g])
                         for m in ("ndcg@20", "recall@20", "ndcg@10", "recall@10")]
                gain = p0 = step = ps = ""
                if lab != "original":
                    gain = f"{100 * (means[lab] / means['original'] - 1):+.1f}%"
                    pvals[(lab, "original")] = paired_p(user["original"], user[lab])
                    p0 = _fmt_p(pvals[(lab, "original")])
                rg = lab.split(" @")[1] if " @" in lab else ""
                prev = {"dr4sr+": f"dr4sr @{rg}", "dr4sr+[alpha]": f"dr4sr @{rg}", "dr4sr+e2e": f"dr4sr+ @{rg}"}.get(ts)
                if prev in user:
                    step = f"{100 * (means[lab] / means[prev] - 1):+.1f}% vs {prev.split(' @')[0]}"
                    pvals[(lab, prev)] = paired_p(user[prev], user[lab])
                    ps = _fmt_p(pvals[(lab, prev)])
                w = [float(r["weight_mean"]) for r in g if r["weight_mean"]]
                wcell = f"{np.mean(w):.3f}" if w else ""
                paper, paper_gain = "", ""
                if ts in paper_row and table3(model, paper_row[ts], dataset):
                    v = table3(model, paper_row[ts], dataset)["ndcg@20"]
                    paper = f"{v:.4f}"
                    if ts != "original" and pb:
                        paper_gain = f"{100 * (v / pb['ndcg@20'] - 1):+.1f}%"
                if ts == "dr4sr+e2e" and dataset in TABLE4_END_TO_END and model == "sasrec":
                    paper = f"{TABLE4_END_TO_END[dataset]:.4f}"
                out.append(f"| {dataset} | {model} | {lab} | {len(g)} | " + " | ".join(cells)
                           + f" | {gain} | {p0} | {step} | {ps} | {wcell} | {paper} | {paper_gain} |")
            for rg in regens:
                plus, dr = f"dr4sr+ @{rg}", f"dr4sr @{rg}"
                if plus not in means or dr not in means:
                    continue
                ok = (means[plus] > means[dr] > means["original"] and pvals[(dr, "original")] < 0.05
                      and pvals[(plus, dr)] < 0.05)
                ctrl = means.get("original+patterns")
                verdict = "not run" if ctrl is None else ("yes" if means[plus] >= ctrl else "no")
                bar.append(f"- {dataset}/{model} @{rg}: DR4SR+ {means[plus]:.4f}, DR4SR {means[dr]:.4f}, original "
                           f"{means['original']:.4f}: ordered with p < 0.05 at each step: {'yes' if ok else 'no'}; "
                           f"DR4SR+ >= original+patterns{'' if ctrl is None else f' ({ctrl:.4f})'}: {verdict}")
    if bar:
        out.append("\nThe bar (issue 18):\n")
        out += bar
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ UniDS
def _stage_user(rows, ranks_dir: Path, metric: str) -> np.ndarray:
    """Per-user ``metric`` (ndcg@K / hr@K from the ranks, auc / mrr / logloss from the stage file), mean over runs."""
    per_run = []
    for r in rows:
        if metric in ("auc", "mrr", "logloss"):
            path = ranks_dir / f"{r['run_id']}.stage.npz"
            if not path.exists():
                raise SystemExit(f"{path} is missing: every row of the results needs its stage file")
            with np.load(path) as z:
                per_run.append(z[metric].astype(np.float64))
        else:
            ranks, cutoff = _ranks(ranks_dir, r["run_id"])
            per_run.append(per_user(ranks, metric.replace("hr@", "recall@"), cutoff))
    return np.mean(per_run, axis=0)


def _unids_compare(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(compare rows, first-build rows): `_rebuilt` of unids.csv's compare and rebuild rows (the theta sweep
    is another experiment)."""
    return _rebuilt([r for r in rows if r["experiment"] in ("compare", "rebuild")], "experiment",
                    ("dataset", "model", "variant", "setting", "theta", "gen_seed", "seed"))


def _unids_selected(rows: list[dict], variant: str) -> list[dict]:
    """The rows of ``variant`` under the setting with the best mean validation NDCG@10 (validation only)."""
    by_setting = defaultdict(list)
    for r in rows:
        if r["variant"] == variant:
            by_setting[r["setting"]].append(r)
    if not by_setting:
        return []
    best = max(by_setting, key=lambda k: np.mean([float(r["valid_ndcg@10"]) for r in by_setting[k]]))
    return by_setting[best]


def _unids_against_full(compare: list[dict], ranks_dir: Path) -> list[str]:
    """The comparisons of UniDS's own bar: RepPad and DR4SR (Table 1) and each ablation (Table 3) against the
    full UniDS at the seeds both ran (relative change of the seed means; paired two-sided Wilcoxon over test
    users, each side averaged over its seeds), the paper's change on ML-1M (HSTU) beside it, from the table
    that reports that arm. No lines until such an arm has a row."""
    from paper_tables import unids_table1, unids_table3

    out = []
    for dataset, model in sorted({(r["dataset"], r["model"]) for r in compare}):
        here = [r for r in compare if (r["dataset"], r["model"]) == (dataset, model)]
        full = _unids_selected(here, "unids")
        for variant in ("reppad", "dr4sr", "no_tc", "no_uf", "no_ug"):
            full_rows, arm = _paired(full, _unids_selected(here, variant), "seed")
            if not arm:
                continue
            cells, ps = [], []
            for m in ("auc", "mrr", "ndcg@10"):
                f, a = (np.mean([float(r[f"test_{m}"]) for r in g]) for g in (full_rows, arm))
                cells.append(f"{100 * (a / f - 1):+.1f}%")
                ps.append(_fmt_p(paired_p(_stage_user(full_rows, ranks_dir, m), _stage_user(arm, ranks_dir, m))))
            if variant.startswith("no_"):
                table, pf, pa = "3", unids_table3("ml-1m", "unids"), unids_table3("ml-1m", variant)
            else:
                table, pf, pa = "1", unids_table1("ml-1m", "hstu", "unids"), unids_table1("ml-1m", "hstu", variant)
            paper = [f"{100 * (pa[m] / pf[m] - 1):+.1f}%" for m in ("auc", "mrr", "ndcg@10")]
            out.append(f"| {dataset} | {model} | {variant} | {len(arm)} | " + " | ".join(cells) + " | "
                       + " | ".join(ps) + " | " + " | ".join(paper) + f" | {table} |")
    if not out:
        return []
    return ["Against the full UniDS (its bar: at least RepPad and DR4SR; each ablation below it): test, relative "
            "change of the seed means at the seeds both ran; p: paired two-sided Wilcoxon over test users (each "
            "side averaged over its seeds); the paper's change on ML-1M (HSTU) beside ours, from its Table 1 or 3.\n",
            "| dataset | model | arm | seeds | ΔAUC | ΔMRR | ΔN@10 | p (AUC) | p (MRR) | p (N@10) "
            "| paper ΔAUC | paper ΔMRR | paper ΔN@10 | paper table |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|", *out, ""]


def unids_report(results: Path, ranks_dir: Path) -> str:
    sys.path.insert(0, str(HERE))
    import unids as bench

    from paper_tables import unids_table1, unids_table3

    rows = read_rows(results, bench.COLUMNS)
    if not rows:
        return "_No UniDS rows yet (`python benchmarks/unids.py compare`)._\n"
    out = []
    metrics = ("auc", "mrr", "hr@50", "hr@10", "ndcg@50", "ndcg@10", "logloss")
    compare, first = _unids_compare(rows)
    compare += [dict(r, variant=r["variant"] + " (first build)") for r in first]
    keys = sorted({(r["dataset"], r["model"]) for r in compare})
    out.append("Test, full ranking over all items, leave-one-out; per-user AUC and softmax log loss "
               "(`fastregen.evaluation.evaluate_stages`); mean ± sd over seeds; Δ and p: NDCG@10 against "
               "`original`, paired two-sided Wilcoxon over test users (each side averaged over its seeds); UniDS "
               "settings chosen by validation NDCG@10 only.\n")
    out.append("| dataset | model | training data | runs | AUC | MRR | HR@50 | HR@10 | NDCG@50 | NDCG@10 | Logloss "
               "| ΔN@10 | p (N@10) | p (AUC) | p (MRR) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for dataset, model in keys:
        here = [r for r in compare if (r["dataset"], r["model"]) == (dataset, model)]
        base = [r for r in here if r["variant"] == "original"]
        base_user = {m: _stage_user(base, ranks_dir, m) for m in ("ndcg@10", "auc", "mrr")} if base else None
        for variant in ("original", "reppad", "dr4sr", "unids", "unids (first build)", "no_tc", "no_uf", "no_ug"):
            g = _unids_selected(here, variant)
            if not g:
                continue
            cells = [_mean_sd([float(r[f"test_{m}"]) for r in g]) for m in metrics]
            gain, ps = "", ["—"] * 3
            if variant != "original" and base:
                b = np.mean([float(r["test_ndcg@10"]) for r in base])
                gain = f"{100 * (np.mean([float(r['test_ndcg@10']) for r in g]) / b - 1):+.1f}%"
                ps = [_fmt_p(paired_p(base_user[m], _stage_user(g, ranks_dir, m))) for m in ("ndcg@10", "auc", "mrr")]
            name = variant + (f" {g[0]['setting']}" if g[0]["setting"] not in ("", "{}") else "")
            out.append(f"| {dataset} | {model} | {name} | {len(g)} | " + " | ".join(cells)
                       + f" | {gain} | " + " | ".join(ps) + " |")
    out.append("\nPaper (UniDS Table 1, ML-1M, HSTU; not comparable data): "
               + "; ".join(f"{row} " + " ".join(f"{v:.4f}" for v in unids_table1("ml-1m", "hstu", row).values())
                           for row in ("base", "reppad", "dr4sr", "unids"))
               + " (AUC MRR HR@50 HR@10 NG@50 NG@10). Table 3 (ML-1M; AUC NG@10 HR@10 MRR): "
               + "; ".join(f"{row} " + " ".join(f"{v:.4f}" for v in unids_table3("ml-1m", row).values())
                           for row in ("no_tc", "no_uf", "no_ug", "unids")) + ".\n")
    out += _unids_against_full(compare, ranks_dir)
    theta = [r for r in rows if r["experiment"] == "theta"]
    if theta:
        out.append("Theta sweep (UniDS Fig. 2: every stage at one theta, as a scale of the mean seed entropy; "
                   "test, mean over seeds; `fastregen plot thresholds`):\n")
        out.append("| dataset | model | data | theta | runs | AUC | NDCG@10 | MRR | valid NDCG@10 | generated items |")
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        groups = defaultdict(list)
        for r in theta:
            groups[(r["dataset"], r["model"], r["variant"], float(r["theta"]))].append(r)
        for (dataset, model, variant, th), g in sorted(groups.items()):
            cells = [f"{np.mean([float(r[f'test_{m}']) for r in g]):.4f}" for m in ("auc", "ndcg@10", "mrr")]
            out.append(f"| {dataset} | {model} | {variant} | {th:g} | {len(g)} | " + " | ".join(cells)
                       + f" | {np.mean([float(r['valid_ndcg@10']) for r in g]):.4f} | "
                       + f"{int(np.mean([int(r['generated_interactions']) for r in g])):,} |")
    return "\n".join(out) + "\n"


def _num(v: float) -> str:
    return f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"


def _cell(text: str) -> str:
    """A value safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def _scale_view(row: dict) -> dict:
    """A scale row under the names the tables use: experiment and stage (benchmark ``scale/<experiment>``,
    variant), data, seconds (the value) and the throughput's unit."""
    return {**row, "experiment": row["benchmark"].split("/", 1)[-1], "stage": row["variant"], "data": row["dataset"],
            "seconds": row["value"], "unit": row.get("throughput_unit", "")}


def _procs(row: dict) -> str:
    """`` x N proc`` for a stage run on N > 1 torchrun processes (``scale.py pipeline --processes``), else nothing."""
    n = int(row.get("processes") or 1)
    return f" x {n} proc" if n > 1 else ""


def scale_report(results: Path, ranks_dir: Path) -> str:
    """Books scale and torch.distributed: the latest row of each (experiment, data, stage, processes, threads)."""
    rows = [_scale_view(r) for r in read_results(results)]
    if not rows:
        return "_No scale rows yet (`python benchmarks/scale.py pipeline`)._\n"
    # per stage the latest row that ran the whole stage, else the latest row: a later run that measured a
    # fraction (e.g. a few SASRec steps to reach the evaluation) does not replace a measured whole stage
    latest: dict = {}
    for r in rows:
        # decode rows differ by machine and by their "device ..., backend ..." (the note's first two items)
        variant = (r["machine"], ",".join(r["note"].split(",")[:2])) if r["experiment"] == "decode" else ()
        # pipeline stages: the latest whole row whatever its threads (each row's threads are in its run cell)
        threads = () if r["experiment"] == "pipeline" else (r["processes"], r["threads"])
        key = (r["experiment"], r["data"], r["stage"], *threads, *variant)
        if key not in latest or float(r["fraction"] or 1) >= 1 or float(latest[key]["fraction"] or 1) < 1:
            latest[key] = r
    out = []
    pipe = [r for (e, *_), r in latest.items() if e == "pipeline"]
    for data in sorted({r["data"] for r in pipe}):
        part = [r for r in pipe if r["data"] == data]
        r0 = part[0]
        loads = [float(r["load"]) for r in part]
        out.append(f"Pipeline on `{data}` ({int(r0['sequences']):,} sequences, {int(r0['interactions']):,} "
                   f"interactions, {int(r0['items']):,} items), "
                   f"{'-'.join(sorted({str(r['threads']) for r in part}))} torch thread(s) (per row: run), {' / '.join(sorted({r['machine'] for r in part}))}, "
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
                       f"{r['commit']} {r['date'][:16].replace('T', ' ')}, {r['threads']} thr{_procs(r)} | {_cell(r['note'])} |")
        peak = max(float(r["peak_rss_mib"]) for r in part)
        # one paragraph: the sum of the rows shown, then the paper-settings totals
        out.append(f"\nAll stages: {total / 3600:.1f} h extrapolated, peak RSS {peak / 1024:.2f} GiB.")
        out.extend(_paper_totals(rows, data, results.parent / "dr4sr.csv"))
        out.append("")
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


def _paper_totals(rows: list[dict], data: str, dr4sr: Path) -> list[str]:
    """Lines of `scale.paper_total` (the paper's settings) per ``item_updates`` whose rows exist, estimates
    allowed and labelled; none when ``dr4sr`` holds no original Beauty SASRec row to take the epochs from."""
    import scale

    try:
        epochs, values = scale.beauty_epochs(dr4sr)
    except scale.UsageError:
        return []
    out = []
    for updates in ("dense", "lazy"):
        try:
            res = scale.paper_total(rows, data, epochs, item_updates=updates, estimates=True)
            cpu = scale.paper_total(rows, data, epochs, item_updates=updates, estimates=True, clock="cpu")
        except scale.UsageError:
            continue
        walled = [t["stage"] for t in cpu["terms"] if "no CPU figure" in t["source"] and t["total"] > 60]
        shares = sorted(res["terms"], key=lambda t: -t["total"])[:3]
        guessed = [t["stage"] for t in res["terms"] if not t["whole"]]
        out.append(f"Paper settings, item_updates={updates} (`scale.py total --item-updates {updates} "
                   f"--estimates`): {res['pretrain_epochs']} x pre-training epoch + inference + {epochs:.0f} x "
                   f"(SASRec epoch + validation) + the once-only stages = **{res['hours']:.1f} h** wall, "
                   f"{cpu['hours']:.1f} h CPU (`--clock cpu`"
                   + (f"; wall for {', '.join(walled)}, whose rows give no CPU figure)" if walled else ")")
                   + (f" (estimate: {', '.join(guessed)} not run whole)" if guessed else " (every stage run whole)")
                   + f", peak RSS {res['peak_rss_mib'] / 1024:.2f} GiB; largest: "
                   + ", ".join(f"{t['stage']} {100 * t['total'] / res['seconds']:.0f}%" for t in shares)
                   + f". Epochs: mean of {', '.join(map(str, values))}.")
    return out


def engine_report(results: Path, ranks_dir: Path) -> str:
    """results/engine.csv: the compiled rank count, the validation pass and the whole evaluate() before/after
    (`engine.py`, one row per thread count), and the training epoch's CPU time per training set
    (`epoch_cost.py`); the latest measurement of each."""
    rows = read_results(results)
    if not rows:
        return "_No engine rows yet (`python benchmarks/engine.py ranks ...`)._\n"
    out = []
    kinds = ("ranks", "validation", "books", "evaluate")
    timed = [r for r in rows if r["benchmark"] in kinds]
    latest: dict[tuple, dict] = {}
    for r in timed:  # rows come in order: a later measurement of the same case replaces an earlier one
        latest[(r["benchmark"], r["dataset"], r["shape"], r["threads"], r["variant"], r["metric"])] = r
    def order(k):  # kind, threads, then the shape's leading size (the sort must not hang on set order)
        size = re.match(r"[\d,]+", k[2])
        return kinds.index(k[0]), int(k[3]), int(size.group().replace(",", "")) if size else 0, k[1], k[2]

    cases = sorted({k[:4] for k in latest}, key=order)
    if cases:
        out.append("Before (the code of the commit in *before*: torch's comparison matrix, or for *evaluate* the "
                   "compiled count) and after (the compiled count; for *evaluate* the AMX two-pass count; with *before* "
                   "\"full ranks, same commit\", `evaluate(max_rank=50)`, `engine.py --max-rank`), "
                   "alternating processes of *threads* threads, medians of wall time and, where measured, of CPU "
                   "time (which the load does not inflate); ranks identical in every repetition.\n")
        out.append("| benchmark | data | shape | threads | before (s) | after (s) | speed-up | CPU speed-up | reps | "
                   "ranks identical | before | commit | date | load |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for b, d, shape, threads in cases:
            before = latest.get((b, d, shape, threads, "before", "seconds_median"))
            after = latest.get((b, d, shape, threads, "after", "seconds_median"))
            ratio = latest.get((b, d, shape, threads, "after/before", "speedup"))
            cpu = latest.get((b, d, shape, threads, "after/before", "cpu_speedup"))
            if not (before and after and ratio):
                continue
            cpu_cell = f"**{float(cpu['value']):.2f}x**" if cpu and cpu["commit"] == after["commit"] else ""
            out.append(f"| {b} | {d} | {shape} | {threads} | {float(before['value']):.2f} | "
                       f"{float(after['value']):.2f} | **{float(ratio['value']):.2f}x** | {cpu_cell} | "
                       f"{after['reps']} | {after['identical_ranks']} | {after['before']} | {after['commit']} | "
                       f"{after['date'][:10]} | {_cell(after['load'].split(';')[0])} |")
    ckpt = [r for r in rows if r["benchmark"] == "checkpoint"]
    if ckpt:
        last = [r for r in ckpt if r["date"] == max(r["date"] for r in ckpt)]
        by = defaultdict(list)
        for r in last:
            by[r["metric"]].append(float(r["value"]))
        share = [c / e for c, e in zip(by["checkpoint_seconds"], by["epoch_seconds"])]
        out.append(f"\nThe epoch checkpoint (`checkpoint_cost.py`, {last[0]['dataset']}, {last[0]['variant'].split()[0]}, "
                   f"{last[0]['commit']}, {last[0]['date'][:10]}, load {last[0]['load']}): "
                   f"{min(by['checkpoint_seconds']):.3f}-{max(by['checkpoint_seconds']):.3f} s and "
                   f"{max(by['checkpoint_mib']):.1f} MiB per checkpoint against "
                   f"{min(by['epoch_seconds']):.1f}-{max(by['epoch_seconds']):.1f} s per epoch (training + "
                   f"validation): at most {100 * max(share):.2f}% of an epoch.\n")
    cost = [r for r in rows if r["benchmark"] == "epoch_cost"]
    if cost:
        last_date = max(r["date"] for r in cost)
        run = [r for r in cost if r["date"] == last_date]
        out.append("\nA SASRec training epoch per training set (`train_targets=\"all\"`, batch 256, length "
                   f"bucketing, one thread; `epoch_cost.py`, {run[0]['commit']}, {last_date[:10]}, load "
                   f"{run[0]['load']}): CPU time, which a loaded machine does not inflate, beside wall time.\n")
        out.append("| training set | examples | batches | targets | CPU s (median) | wall s (median) | "
                   "CPU ms per batch |")
        out.append("|---|---|---|---|---|---|---|")
        for r in run:
            if r["metric"] != "train_cpu_seconds":
                continue
            info = dict(re.findall(r"(examples|batches|targets) (\d+)", r["note"]))
            wall = next(w for w in run if w["variant"] == r["variant"] and w["metric"] == "train_wall_seconds")
            cpu = float(r["value"])
            out.append(f"| {r['variant']} | {int(info['examples']):,} | {info['batches']} | "
                       f"{int(info['targets']):,} | {cpu:.2f} | {float(wall['value']):.2f} | "
                       f"{1000 * cpu / int(info['batches']):.1f} |")
    return "\n".join(out) + "\n"


def _paired(base: list[dict], method: list[dict], seed_key: str) -> tuple[list[dict], list[dict]]:
    """The rows of both arms at the seeds both ran (each side's other seeds are left out)."""
    common = {r[seed_key] for r in base} & {r[seed_key] for r in method}
    return [r for r in base if r[seed_key] in common], [r for r in method if r[seed_key] in common]


def _paper_gain(model: str, method: str, dataset: str) -> str:
    """The paper's relative NDCG@20 gain of ``method`` over the original data (DR4SR Table 3), or "—"."""
    base, ours = table3(model, "base", dataset), table3(model, method, dataset)
    return f"{100 * (ours['ndcg@20'] / base['ndcg@20'] - 1):+.1f}%" if base and ours else "—"


@dataclasses.dataclass
class Pairing:
    """A method's rows against the original data's at the seeds both ran (a verdict line)."""

    label: str
    dataset: str
    model: str
    metric: str
    base: list
    method: list
    base_user: Callable  # (rows, metric) -> per-user values, mean over the rows' runs
    method_user: Callable
    paper_gain: str

    def users(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-user ``metric`` of the original and of the method, each averaged over its seeds."""
        return self.base_user(self.base, self.metric), self.method_user(self.method, self.metric)


def _verdict_row(pair: Pairing) -> str:
    """One line of the verdict table."""
    from fastregen.study.stats import bootstrap_gain

    a, b = pair.users()
    g = bootstrap_gain(a, b, resamples=2000, seed=0)
    ours = [float(r[f"test_{pair.metric}"]) for r in pair.method]
    orig = [float(r[f"test_{pair.metric}"]) for r in pair.base]
    return (f"| {pair.label} | {pair.dataset} | {pair.model} | {pair.metric.replace('ndcg', 'N')} | {len(pair.method)} | "
            f"{_mean_sd(orig)} | {_mean_sd(ours)} | **{100 * g['relative']:+.1f}%** | [{100 * g['relative_lo']:+.1f}%, "
            f"{100 * g['relative_hi']:+.1f}%] | {_fmt_p(paired_p(a, b))} | {pair.paper_gain} |")


def verdict_pairings(results: Path, ranks_dir: Path) -> tuple[list[Pairing], str]:
    """Every method of the studies against the original data, and a note on DR4SR+'s selection while it runs.

    ``results`` and ``ranks_dir`` are the results folder and its ranks folder (read: dr4sr.csv,
    authors.csv, unids.csv and dr4srplus.csv there)."""
    sys.path.insert(0, str(HERE))
    import dr4sr_study as study
    import unids as unids_bench

    from paper_tables import unids_table1

    folder = results if results.is_dir() else results.parent
    ranks_root = ranks_dir if ranks_dir.name == "ranks" else ranks_dir.parent
    pairs: list[Pairing] = []
    rows = read_rows(folder / "dr4sr.csv", study.COLUMNS)
    setting = study.selected_setting(rows)
    rows = _first_builds(rows)[0]  # a run again on a rebuilt regenerator pairs in place of its first build
    dr_user = lambda rs, m: _user_metric(rs, ranks_root / "dr4sr", m)  # noqa: E731
    if setting is not None:
        variant, K, gamma = setting
        # one line per training scheme: fastregen's ("all") and the authors' ("all/authors") are
        # different target-model trainings, never paired with each other
        for protocol, dataset, model in ((p, d, m) for p in ("all", "all/authors") for d in ("beauty", "toys", "sports")
                                         for m in ("sasrec", "gru4rec")):
            here = [r for r in rows if (r["dataset"], r["model"], r["protocol"]) == (dataset, model, protocol)]
            base = [r for r in here if r["train_set"] == "original"]
            dr = [r for r in here if r["train_set"] == "dr4sr" and r["regen_seed"] == "0"
                  and (r["variant"], int(r["K"]), float(r["gamma"])) == setting]
            base, dr = _paired(base, dr, "target_seed")
            if not dr:
                continue
            scheme = "" if protocol == "all" else f", the {protocol.split('/')[1]}' training scheme"
            pairs.append(Pairing(f"DR4SR ({variant}, K={K}, γ={gamma}{scheme})", dataset, model, "ndcg@20", base, dr,
                                 dr_user, dr_user, _paper_gain(model, "dr4sr", dataset)))
        # the authors' own trainer (authors.py, one seed: theirs): their run on the original split against
        # theirs on fastregen's DR4SR set of the selected setting (authors.QUEUE); capped runs are checks
        if (folder / "authors.csv").exists():
            import authors as authors_bench

            # authors.py records an uncapped run's max_epochs as their configs' 1000, a check run's cap below it
            arows = [r for r in read_rows(folder / "authors.csv", authors_bench.COLUMNS)
                     if r["dataset"] == "beauty" and int(float(r["max_epochs"] or 1000)) >= 1000]
            base, dr = _paired([r for r in arows if r["train_set"] == "original"],
                               [r for r in arows if r["train_set"].startswith("dr4sr:")], "seed")
            if dr:
                au_user = lambda rs, m: _user_metric(rs, ranks_root / "authors", m)  # noqa: E731
                pairs.append(Pairing(f"DR4SR ({variant}, K={K}, γ={gamma}, the authors' own trainer)", "beauty",
                                     "sasrec", "ndcg@20", base, dr, au_user, au_user,
                                     _paper_gain("sasrec", "dr4sr", "beauty")))
    rows = read_rows(folder / "unids.csv", unids_bench.COLUMNS)
    compare = _unids_compare(rows)[0]
    st_user = lambda rs, m: _stage_user(rs, ranks_root / "unids", m)  # noqa: E731
    for dataset, model in sorted({(r["dataset"], r["model"]) for r in compare}):
        here = [r for r in compare if (r["dataset"], r["model"]) == (dataset, model)]
        base = [r for r in here if r["variant"] == "original"]
        for variant, label in (("unids", "UniDS"), ("reppad", "RepPad"), ("dr4sr", "DR4SR (UniDS's variant)")):
            g = _unids_selected(here, variant)
            b, g = _paired(base, g, "seed")
            if not g:
                continue
            pb, pm = unids_table1("ml-1m", "hstu", "base"), unids_table1("ml-1m", "hstu", variant)
            paper = (f"{100 * (pm['ndcg@10'] / pb['ndcg@10'] - 1):+.1f}% (ML-1M)" if pb and pm and "ndcg@10" in pm
                     else "—")
            pairs.append(Pairing(label, dataset, model, "ndcg@10", b, g, st_user, st_user, paper))
    import dr4srplus as plus_bench

    plus_rows = []
    if (folder / "dr4srplus.csv").exists():
        plus_rows = [r for r in read_rows(folder / "dr4srplus.csv", plus_bench.COLUMNS) if r["stage"] == "issue26"]
    sel = [r for r in plus_rows if r["model"] == "sasrec" and r["target_seed"] == "0"]
    note = ""
    if len(sel) == len(plus_bench.ISSUE26_RATES) and setting is not None:
        best = max(sel, key=lambda r: float(r["valid_ndcg@20"]))
        chosen = [r for r in plus_rows if (r["upper_lr"], r["upper_weight_decay"])
                  == (best["upper_lr"], best["upper_weight_decay"])]
        plus_user = lambda rs, m: _user_metric(rs, ranks_root / "dr4srplus", m)  # noqa: E731
        dr_rows = read_rows(folder / "dr4sr.csv", study.COLUMNS)
        for model in ("sasrec", "gru4rec"):
            # fastregen's training scheme only: DR4SR+ trains under it (the "protocol" column tells the schemes apart)
            base = [r for r in dr_rows if (r["dataset"], r["model"], r["train_set"], r["protocol"])
                    == ("beauty", model, "original", "all")]
            g = [r for r in chosen if r["model"] == model]
            base, g = _paired(base, g, "target_seed")
            if not g:
                continue
            pairs.append(Pairing(f"DR4SR+ (upper lr {float(best['upper_lr']):g})", "beauty", model, "ndcg@20",
                                 base, g, dr_user, plus_user, _paper_gain(model, "dr4sr+", "beauty")))
    else:
        note = (f"DR4SR+: {len(sel)} of its 3 declared selection runs have finished "
                "(`python benchmarks/dr4srplus.py plan`).")
    return pairs, note


def verdict_report(results: Path, ranks_dir: Path) -> str:
    """README's "Does regeneration help?": every method against the original data, from all study rows
    (`verdict_pairings`)."""
    pairs, note = verdict_pairings(results, ranks_dir)
    out = ["Test split, full ranking; each row pairs a method with the original data at the seeds both "
           "ran (target-model seeds); gain: relative change of the mean, its 95% interval a percentile "
           "bootstrap over test users (2,000 resamples, seed 0); p: two-sided Wilcoxon signed-rank over "
           "test users, each user's metric averaged over the seeds. Settings were selected on validation.\n",
           "| method | data | model | metric | seeds | original | method | gain | 95% interval | p | paper's gain |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [_verdict_row(p) for p in pairs] or ["| (no paired rows yet) | | | | | | | | | | |"]
    if note:
        out.append("\n" + note)
    return "\n".join(out) + "\n"


def _quartiles(counts: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(low, high, mask) of the test users in each quarter of ``counts`` (quartile edges of the users'
    values; ties stay in one bucket, so the buckets are near, not exactly, equal)."""
    edges = np.quantile(counts, [0.25, 0.5, 0.75], method="lower").astype(int)
    lows, highs = [int(counts.min()), *(edges + 1)], [*edges, int(counts.max())]
    return [(lo, hi, (counts >= lo) & (counts <= hi)) for lo, hi in zip(lows, highs)]


def breakdown_report(results: Path, ranks_dir: Path) -> str:
    """Each verdict pairing by the popularity of the users' test targets (exploratory, post hoc).

    Reads the verdict's rows and ranks and ``results/strata/DATASET.npz`` (`user_strata.py`)."""
    folder = results if results.is_dir() else results.parent
    pairs, _ = verdict_pairings(results, ranks_dir)
    out = ["Exploratory, chosen after the test figures above were read (so no claim rests on it): each verdict "
           "line again within quarters of its test users, split by how often the user's test target occurs in "
           "the training split (`results/strata/`, `python benchmarks/user_strata.py`). Cell: original -> method "
           "(the line's metric, mean over the seeds), relative change, two-sided Wilcoxon p over that quarter's "
           "users.\n",
           "| method | data | model | rarest targets | 2nd quarter | 3rd quarter | most popular targets |",
           "|---|---|---|---|---|---|---|"]
    n = len(out)
    for pair in pairs:
        path = folder / "strata" / f"{pair.dataset}.npz"
        if not path.exists():
            continue
        with np.load(path) as z:
            counts = z["target_count"]
        a, b = pair.users()
        if a.size != counts.size:
            raise SystemExit(f"{path} holds {counts.size} test users, the ranks of {pair.label} on {pair.dataset} "
                             f"{a.size}: rerun `python benchmarks/user_strata.py --datasets {pair.dataset}`")
        cells = []
        for lo, hi, mask in _quartiles(counts):
            ma, mb = a[mask].mean(), b[mask].mean()
            gain = f"{100 * (mb / ma - 1):+.0f}%" if ma > 0 else "—"
            cells.append(f"{lo}-{hi} ({int(mask.sum()):,} users): {ma:.4f} -> {mb:.4f}, {gain}, "
                         f"p {_fmt_p(paired_p(a[mask], b[mask]))}")
        out.append(f"| {pair.label} | {pair.dataset} | {pair.model} | " + " | ".join(cells) + " |")
    if len(out) == n:
        out.append("| (no pairing with its dataset's strata yet) | | | | | | |")
    return "\n".join(out + _plus_dev_table(pairs, folder)) + "\n"


def _plain_dr4sr(pairs: list, dataset: str, model: str):
    """The verdict's DR4SR line of ``dataset``/``model`` under fastregen's own trainer and scheme (the one
    DR4SR+ trains beside; the authors' scheme and trainer have lines of their own), or None."""
    return next((p for p in pairs if (p.dataset, p.model) == (dataset, model) and p.label.startswith("DR4SR (")
                 and "authors'" not in p.label), None)


def _plus_dev_table(pairs: list, folder: Path) -> list[str]:
    """DR4SR+ against DR4SR (both under fastregen's trainer) by how many copies of each user's original
    training sequence DR4SR+'s lower level kept (``results/strata/dr4srplus-dev/``, `plus_dev_strata.py`)."""
    out = []
    for plus in (p for p in pairs if p.label.startswith("DR4SR+")):
        path = folder / "strata" / "dr4srplus-dev" / f"{plus.dataset}.npz"
        dr = _plain_dr4sr(pairs, plus.dataset, plus.model)
        if not path.exists() or dr is None:
            continue
        with np.load(path) as z:
            kept = z["copies_kept"]
        a, b = dr.users()[1], plus.users()[1]
        if a.size != kept.size:
            raise SystemExit(f"{path} holds {kept.size} test users, the ranks of {plus.label} {a.size}: rerun "
                             f"`python benchmarks/plus_dev_strata.py --dataset {plus.dataset}`")
        if not out:
            out = ["\nDR4SR+ holds a seeded 10% of the original rows of its training set out as its dev set (the "
                   "authors draw the dev batch from the training file itself: e25d0c3 `model/metamodel.py:86-87`). The "
                   "same users split by how many of the two copies of their original training sequence DR4SR+'s "
                   "lower level kept "
                   "(`results/strata/dr4srplus-dev/`, `python benchmarks/plus_dev_strata.py`): DR4SR -> DR4SR+ "
                   "(the line's metric, mean over the seeds), relative change, two-sided Wilcoxon p.\n",
                   "| method | data | model | both copies kept | one kept | none kept |", "|---|---|---|---|---|---|"]
        cells = []
        for c in (2, 1, 0):
            m = kept == c
            cells.append(f"{int(m.sum()):,} users: {a[m].mean():.4f} -> {b[m].mean():.4f}, "
                         f"{100 * (b[m].mean() / a[m].mean() - 1):+.0f}%, p {_fmt_p(paired_p(a[m], b[m]))}"
                         if m.any() and a[m].mean() > 0 else "—")
        out.append(f"| {plus.label} against {dr.label} | {plus.dataset} | {plus.model} | "
                   + " | ".join(cells) + " |")
    return out


def curves_report(results: Path, ranks_dir: Path) -> str:
    """results/epoch_curves.csv (`epoch_curves.py`): study runs trained again bit for bit with the test split
    scored after every epoch (exploratory, post hoc)."""
    sys.path.insert(0, str(HERE))
    import epoch_curves

    rows = read_rows(results, epoch_curves.COLUMNS)
    if not rows:
        return "_No curves yet (`python benchmarks/epoch_curves.py RUN_ID`)._\n"
    windows = ((0, 10), (10, 20), (20, 30), (30, 40), (40, 60), (60, 80))
    out = ["Exploratory, run after the test figures were read (no setting is chosen by it): study runs trained "
           "again bit for bit (each epoch's validation NDCG@20 equal to the study's log, the selected epoch's test "
           "figures equal to its row) with the test split scored after every epoch "
           "(`python benchmarks/epoch_curves.py RUN_ID`). Test NDCG@20 at the epoch early stopping selected "
           "(validation NDCG@20, patience as the study's), its mean over windows of epochs (a single epoch's "
           "figure moves by +-0.002; `(n)`: the run ended after n epochs of the window), and its best epoch.\n",
           "| run | training | epochs | selected epoch | valid N@20 there | test N@20 there | "
           + " | ".join(f"mean test N@20, epochs {lo}-{hi - 1}" for lo, hi in windows)
           + " | best test N@20 (epoch) | mean weight at the end |",
           "|---|---|---|---|---|---|" + "---|" * len(windows) + "---|---|"]
    runs: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        runs[r["run_id"]].append(r)
    for rid, rs in runs.items():
        rs.sort(key=lambda r: int(r["epoch"]))
        (sel,) = [r for r in rs if r["selected"] == "1"]
        top = max(rs, key=lambda r: float(r["test_ndcg@20"]))
        cells = []
        for lo, hi in windows:
            got = [float(r["test_ndcg@20"]) for r in rs if lo <= int(r["epoch"]) < hi]
            cells.append("—" if not got else f"{np.mean(got):.4f}" + ("" if len(got) == hi - lo else f" ({len(got)})"))
        w = rs[-1]["weight_mean"]
        out.append(f"| {rid} | {_cell(rs[0]['label'])} | {len(rs)} | {sel['epoch']} | "
                   f"{float(sel['valid_ndcg@20']):.4f} | {float(sel['test_ndcg@20']):.4f} | " + " | ".join(cells)
                   + f" | {float(top['test_ndcg@20']):.4f} ({top['epoch']}) | {f'{float(w):.3f}' if w else '—'} |")
    return "\n".join(out) + "\n"


def threads_report(results: Path, ranks_dir: Path) -> str:
    """results/threads.csv (`threads.py`): each run's variants side by side, as multiples of one thread."""
    rows = read_results(results)
    if not rows:
        return "_No thread rows yet (`python benchmarks/threads.py --data ...`)._\n"
    variants = [v for v in ("default", "1", "2", "2-spin", "2-short") if any(r["variant"] == v for r in rows)]
    runs: dict = defaultdict(dict)  # (date, load condition, benchmark) -> variant -> row, in file order
    for r in rows:
        runs[(r["date"], r["load"].split(";")[0], r["benchmark"], r["dataset"])][r["variant"]] = r
    out = ["Seconds per epoch, median of the repeats (x: against one thread in the same run); each run's variants "
           "alternate in fresh processes.\n",
           "| run (UTC) | commit | load | benchmark | " + " | ".join(f"{v} thread(s)" if v.isdigit() else v
                                                                    for v in variants) + " |",
           "|---|---|---|---|" + "---|" * len(variants)]
    for (date, load, bench, data), by_variant in runs.items():
        one = by_variant.get("1")
        cells = []
        for v in variants:
            r = by_variant.get(v)
            if r is None:
                cells.append("—")
                continue
            ratio = f" ({float(r['value']) / float(one['value']):.2f}x)" if one is not None and v != "1" else ""
            cells.append(f"{float(r['value']):.2f} s{ratio}")
        commit = next(iter(by_variant.values()))["commit"]
        out.append(f"| {date[:16].replace('T', ' ')} | {commit} | {_cell(load)} | {bench} ({data}) | "
                   + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def peer_report(results: Path, ranks_dir: Path) -> str:
    """results/peer.csv: the authors' code against fastregen, stage by stage (`peer.py`), the latest rows."""
    sys.path.insert(0, str(HERE))
    from peer import COLUMNS, ratio_table

    rows = read_rows(results, COLUMNS)
    if not rows:
        return "_No peer rows yet (`python benchmarks/peer.py --authors DIR ...`)._\n"
    return ratio_table(rows)


def _value(value: str, unit: str) -> str:
    """A value with its unit; seconds to 3 significant digits in s, ms or µs."""
    try:
        v = float(value)
    except ValueError:
        return f"{value} {unit}".strip()
    if unit == "s" and v != 0:
        scale, name = next((f, n) for f, n in ((1, "s"), (1e-3, "ms"), (1e-6, "µs")) if abs(v) >= f or n == "µs")
        return f"{v / scale:#.3g} {name}".replace(". ", " ")
    return f"{value} {unit}".strip()


def measurements_report(results: Path, ranks_dir: Path, extras: tuple = ("load", "note")) -> str:
    """Any core-schema results file: the latest row of each (benchmark, dataset, variant, metric, threads, device),
    in file order, with the ``extras`` columns that any of them fills."""
    rows = read_results(results)
    if not rows:
        return f"_No rows yet in `results/{results.name}`._\n"
    latest: dict = {}
    for r in rows:
        key = (r["benchmark"], r["dataset"], r["variant"], r["metric"], r["threads"], r["device"])
        latest.pop(key, None)
        latest[key] = r
    shown = [c for c in extras if any(r.get(c) for r in latest.values())]
    out = ["| benchmark | data | variant | metric | value | threads | device | machine | commit | date |"
           + "".join(f" {c} |" for c in shown),
           "|---|---|---|---|---:|---|---|---|---|---|" + "---|" * len(shown)]
    for r in latest.values():
        out.append(f"| {r['benchmark']} | {r['dataset']} | {_cell(r['variant'])} | {r['metric']} | "
                   f"{_value(r['value'], r['unit'])} | {r['threads']} | {r['device']} | {_cell(r['machine'])} | "
                   f"{r['commit']} | {r['date'][:10]} |" + "".join(f" {_cell(r.get(c, ''))} |" for c in shown))
    return "\n".join(out) + "\n"


REPORTS = {"dr4sr": dr4sr_report, "dr4srplus": dr4srplus_report, "unids": unids_report, "scale": scale_report,
           "engine": engine_report, "verdict": verdict_report, "breakdown": breakdown_report,
           "threads": threads_report, "peer": peer_report, "epoch_curves": curves_report}
#: Measurement files shown as one table of their latest rows (`measurements_report`), with these extra columns.
MEASUREMENTS = {"pretrain_speed": ("baseline", "baseline_s", "current_s", "baseline_all", "current_all", "pairs",
                                   "baseline_cpu_s", "current_cpu_s", "load", "note"),
                "mining": ("runs", "patterns", "identical", "peak_rss_mib", "load"),
                "entropy": ("runs", "identical", "load"), "load": ("size", "runs", "peak_rss_mib", "rss_before_mib"),
                "decode": ("extra_peak_mib", "same_ids"), "train": ("epochs", "best_epoch", "note")}
for _name, _extras in MEASUREMENTS.items():
    REPORTS[_name] = functools.partial(measurements_report, extras=_extras)
#: The documents whose ``<!-- report:NAME -->`` blocks `--check` and `--update` regenerate.
DOCS = (HERE.parent / "BENCHMARKS.md", HERE.parent / "README.md")
_BLOCK = re.compile(r"<!-- report:([\w-]+) -->.*?<!-- /report:\1 -->", re.S)


def default_paths(name: str) -> tuple[Path, Path]:
    """(results, ranks) a report reads by default: results/NAME.csv and results/ranks/NAME (the verdict and its
    breakdown: the results folder and the whole ranks folder)."""
    whole = name in ("verdict", "breakdown")
    results = HERE / "results" if whole else HERE / "results" / f"{name}.csv"
    return results, HERE / "results" / "ranks" / ("" if whole else name)


def render(name: str, results: Path | None = None, ranks: Path | None = None) -> str:
    """The text of report ``name`` from its result rows (default paths: `default_paths`)."""
    if name not in REPORTS:
        raise SystemExit(f"unknown report {name!r}; choose one of: {', '.join(REPORTS)}")
    d_results, d_ranks = default_paths(name)
    try:
        return REPORTS[name](results or d_results, ranks or d_ranks)
    except ValueError as err:  # a results file with other columns, say
        raise SystemExit(f"error: {err}") from None


def _block(name: str, text: str) -> str:
    return (f"<!-- report:{name} -->\n<!-- generated by `python benchmarks/report.py {name}`; do not edit by hand -->\n"
            f"{text}<!-- /report:{name} -->")


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the text between ``<!-- report:NAME -->`` and ``<!-- /report:NAME -->`` in ``path``."""
    doc = path.read_text()
    start, end = f"<!-- report:{name} -->", f"<!-- /report:{name} -->"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{path} has no {start} ... {end} block to replace")
    path.write_text(pattern.sub(lambda _: _block(name, text), doc))


def regenerate(doc: str) -> str:
    """``doc`` with every generated block rebuilt from the result rows (each report rendered once)."""
    cache: dict = {}

    def sub(m):
        name = m.group(1)
        if name not in cache:
            cache[name] = render(name)
        return _block(name, cache[name])
    return _BLOCK.sub(sub, doc)


def stale_blocks(path: Path) -> list[str]:
    """Names of the generated blocks of ``path`` whose text differs from what the rows give now."""
    doc = path.read_text()
    fresh = regenerate(doc)
    if fresh == doc:
        return []
    now = {m.group(1): m.group(0) for m in _BLOCK.finditer(fresh)}
    return [m.group(1) for m in _BLOCK.finditer(doc) if now.get(m.group(1)) != m.group(0)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", nargs="?", help=f"one of: {', '.join(REPORTS)}")
    ap.add_argument("--results", default=None, help="results CSV (default benchmarks/results/REPORT.csv)")
    ap.add_argument("--ranks", default=None, help="ranks folder (default benchmarks/results/ranks/REPORT)")
    ap.add_argument("--write", default=None, metavar="MARKDOWN", help="replace the report's block in this file")
    ap.add_argument("--check", action="store_true",
                    help="regenerate every generated block of BENCHMARKS.md and README.md in memory; exit 1 naming "
                         "each stale block")
    ap.add_argument("--update", action="store_true", help="rewrite every generated block of BENCHMARKS.md and README.md")
    args = ap.parse_args(argv)
    if args.check or args.update:
        if args.report or args.write or args.results or args.ranks:
            raise SystemExit("--check and --update take no report name, --write, --results or --ranks")
        stale = []
        for doc in DOCS:
            names = stale_blocks(doc)
            if names and args.update:
                doc.write_text(regenerate(doc.read_text()))
                print(f"{doc.name}: regenerated {', '.join(names)}")
            stale += [f"{doc.name}: report:{n}" for n in names]
        if args.check and stale:
            print("stale generated blocks (the rows in benchmarks/results/ changed; run "
                  "`python benchmarks/report.py --update` and commit):\n  " + "\n  ".join(stale), file=sys.stderr)
            return 1
        return 0
    if not args.report:
        ap.error("name a report, or give --check or --update")
    text = render(args.report, Path(args.results) if args.results else None, Path(args.ranks) if args.ranks else None)
    print(text)
    if args.write:
        write_block(Path(args.write), args.report, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
