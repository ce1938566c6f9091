"""The report of a comparison: ``report.md`` and ``compare.png``, from ``results.csv`` and the stored ranks.

Validation selects, test is read once: a method with several settings is
reported at the setting with the best mean **validation** metric over its
finished seeds (ties: the first declared); the test columns are read only
to fill the tables of the selected settings. Every gain is paired at
matched seeds (original and method at the same seed, on the same device
kind: a pair whose arms ran on different devices is refused and listed),
per test user, with `fastregen.study.stats`.
"""

from __future__ import annotations

import json
import math

import numpy as np

from .runs import CompareConfig, Run
from .stats import bootstrap_gain, paired_p, per_user
from .store import METRICS, Store

__all__ = ["summarise", "write_report", "check_plotting"]


def check_plotting() -> None:
    """ImportError (one line, with the install command) if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("compare.png needs matplotlib: pip install 'fastregen[plot]' (or pass --no-plot)") from None


def _mean_sd(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else float("nan"))


def summarise(store: Store, cfg: CompareConfig, runs: list[Run]) -> dict:
    """Selection, test tables and paired gains of the finished runs of ``runs``.

    Returns
    -------
    dict
        ``selected`` (method -> setting tuple), ``settings`` (validation per
        (method, setting)), ``methods`` (per method: the selected setting's
        rows, test mean/sd, devices), ``gains`` (list of dicts: method,
        metric, p, Gain fields, seeds, refused_seeds), ``done``, ``declared``.
    """
    done = store.done()
    metric = cfg.valid_metric
    rows = {r.run_id: done[r.run_id] for r in runs if r.run_id in done}
    by_method: dict = {}
    for r in runs:
        by_method.setdefault(r.method, {}).setdefault(r.setting, []).append(r)
    settings, selected = [], {}
    for method, per_setting in by_method.items():
        best, best_v = None, -math.inf
        for setting, rs in per_setting.items():
            vals = [float(rows[r.run_id][f"valid_{metric}"]) for r in rs if r.run_id in rows]
            v = float(np.mean(vals)) if vals else float("nan")
            settings.append({"method": method, "setting": setting, "seeds": len(vals), "valid": v})
            if vals and v > best_v:
                best, best_v = setting, v
        if best is not None:
            selected[method] = best
    for s in settings:
        s["selected"] = selected.get(s["method"]) == s["setting"]
    methods = {}
    for method, setting in selected.items():
        rs = [r for r in by_method[method][setting] if r.run_id in rows]
        test = {m: _mean_sd([float(rows[r.run_id][f"test_{m}"]) for r in rs]) for m in METRICS}
        methods[method] = {"setting": setting, "runs": rs, "test": test,
                           "devices": sorted({rows[r.run_id]["device"] for r in rs})}
    gains = []
    base = methods.get("original")
    for method, info in methods.items():
        if method == "original" or base is None:
            continue
        base_by_seed = {r.seed: r for r in base["runs"]}
        seeds, refused = [], []
        for r in info["runs"]:
            o = base_by_seed.get(r.seed)
            if o is None:
                continue
            if rows[o.run_id]["device"] != rows[r.run_id]["device"]:
                refused.append((r.seed, rows[o.run_id]["device"], rows[r.run_id]["device"]))
            else:
                seeds.append((r.seed, o, r))
        for gm in cfg.gain_metrics:
            g = {"method": method, "metric": gm, "seeds": [s for s, _, _ in seeds], "refused": refused}
            if seeds:
                a = np.mean([per_user(store.load_ranks(o.run_id), gm) for _, o, _ in seeds], axis=0)
                b = np.mean([per_user(store.load_ranks(r.run_id), gm) for _, _, r in seeds], axis=0)
                g.update(bootstrap_gain(a, b, cfg.bootstrap, cfg.bootstrap_seed), p=paired_p(a, b),
                         base=float(a.mean()), value=float(b.mean()))
            gains.append(g)
    return {"selected": selected, "settings": settings, "methods": methods, "gains": gains,
            "rows": rows, "done": len(rows), "declared": len(runs), "metric": metric,
            "other_rows": len(set(done) - set(rows))}


def _fmt(x: float, digits: int = 4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:+.1f}%"


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def _label(setting: tuple) -> str:
    return " ".join(f"{k}={v}" for k, v in setting) or "-"


def render(summary: dict, cfg: CompareConfig, info: dict) -> str:
    """``report.md``'s text."""
    metric = summary["metric"]
    out = [f"# fastregen compare: {info['dataset'] or 'data'}", ""]
    out.append(f"Data: {info['dataset'] or '(in memory)'}: {info['users']:,} users, {info['items']:,} items, "
               f"{info['interactions']:,} interactions (content sha256 {info['data_sha256'][:12]}). "
               f"Target model: {cfg.model}; target seeds 0-{cfg.seeds - 1}; "
               f"{summary['done']}/{summary['declared']} declared runs finished."
               + (f" results.csv holds {summary['other_rows']} more row(s) of other declarations (other options), "
                  "left out of this report." if summary.get("other_rows") else ""))
    out += ["", (f"**Selection.** Validation selects, test is read once: a method with several settings is reported "
                 f"at the setting with the best mean validation {metric} over its finished seeds (early stopping "
                 f"also reads validation {metric}); test metrics are read only to fill the tables below."), ""]
    out += ["## Test metrics (mean ± sd over seeds)", "",
            "| method | setting | seeds | " + " | ".join(METRICS) + " | device |",
            "|---|---|---|" + "---|" * len(METRICS) + "---|"]
    for method, m in summary["methods"].items():
        cells = []
        for name in METRICS:
            mean, sd = m["test"][name]
            cells.append(_fmt(mean) + ("" if math.isnan(sd) else f" ± {sd:.4f}"))
        out.append(f"| {method} | {_label(m['setting'])} | {len(m['runs'])} | " + " | ".join(cells)
                   + f" | {', '.join(m['devices'])} |")
    out += ["", "## Gain over original", "",
            (f"Per test user, each arm's metric is averaged over the seeds at which both ran (on the same device "
             f"kind); gain = mean(method) / mean(original) - 1. p: two-sided Wilcoxon signed-rank test of the "
             f"per-user differences (users with no difference drop out). 95% CI: percentile bootstrap over users "
             f"({cfg.bootstrap} resamples, seed {cfg.bootstrap_seed})."), "",
            "| method | metric | original | method | gain | 95% CI | abs. gain | 95% CI | p (Wilcoxon) | users | seeds |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for g in summary["gains"]:
        if not g["seeds"]:
            out.append(f"| {g['method']} | {g['metric']} | - | - | - | - | - | - | - | - | none paired |")
        else:
            out.append(
                f"| {g['method']} | {g['metric']} | {_fmt(g['base'])} | {_fmt(g['value'])} | {_pct(g['relative'])} | "
                f"[{_pct(g['relative_lo'])}, {_pct(g['relative_hi'])}] | {g['absolute']:+.4f} | "
                f"[{g['absolute_lo']:+.4f}, {g['absolute_hi']:+.4f}] | {_p(g['p'])} | {g['n_users']:,} | "
                f"{','.join(map(str, g['seeds']))} |")
        for seed, da, db in g["refused"]:
            note = (f"- {g['method']} seed {seed}: not paired: original ran on {da}, {g['method']} on {db} "
                    "(paired arms must share a device kind)")
            if note not in notes:
                notes.append(note)
    if notes:
        out += ["", *notes]
    out += ["", f"## Settings (validation {metric}, mean over finished seeds)", "",
            "| method | setting | seeds | valid " + metric + " | reported |", "|---|---|---|---|---|"]
    for s in summary["settings"]:
        out.append(f"| {s['method']} | {_label(s['setting'])} | {s['seeds']} | {_fmt(s['valid'])} | "
                   f"{'yes' if s['selected'] else ''} |")
    out += ["", "## Runs and devices", "", "| run | method | setting | seed | device | threads | epochs | seconds |",
            "|---|---|---|---|---|---|---|---|"]
    for run_id, row in summary["rows"].items():
        setting = _label(tuple(sorted(json.loads(row["setting"]).items())))
        out.append(f"| {run_id} | {row['method']} | {setting} | {row['seed']} | {row['device']} | "
                   f"{row['threads'] or '-'} | {row['epochs']} | {row['seconds']} |")
    return "\n".join(out) + "\n"


def plot(summary: dict, path) -> None:
    """``compare.png``: each method's relative gain over original, per gain metric, with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import atomic_open

    metrics = list(dict.fromkeys(g["metric"] for g in summary["gains"])) or ["-"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 1.2 + 0.5 * max(
        2, len(summary["methods"]) - 1)), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        gs = [g for g in summary["gains"] if g["metric"] == metric and g["seeds"]]
        y = np.arange(len(gs))
        x = np.array([100 * g["relative"] for g in gs])
        lo = np.array([100 * g["relative_lo"] for g in gs])
        hi = np.array([100 * g["relative_hi"] for g in gs])
        if gs:
            ax.errorbar(x, y, xerr=[x - lo, hi - x], fmt="o", capsize=4)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, [f"{g['method']} (p={_p(g['p'])})" for g in gs])
        ax.set_xlabel(f"test {metric} gain over original (%)")
        ax.invert_yaxis()
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def write_report(store: Store, cfg: CompareConfig, runs: list[Run], info: dict, *, figure: bool = True) -> dict:
    """Write ``report.md`` (and ``compare.png`` with ``figure``) into the store's folder; return the summary."""
    from .._io import atomic_write_text

    summary = summarise(store, cfg, runs)
    atomic_write_text(store.root / "report.md", render(summary, cfg, info))
    if figure:
        plot(summary, store.root / "compare.png")
    return summary
