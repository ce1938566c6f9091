"""The stages `fastregen demo` runs after the data steps of `run_demo`.

The demo is the main job on built-in data: generate the synthetic dataset
(planted transition patterns), mine its patterns, measure its entropy,
regenerate it with DR4SR, and train the same target model on the original and
on the regenerated training set, printing a before/after table.
"""

from __future__ import annotations

import time

import typer

from ._data import register_demo_step

# A demonstration, not a benchmark: sized so that `./run.sh demo` ends well
# within two minutes on two CPU cores (README, "What fastregen demo prints").
# Half-width SASRec on the last 20 items (the demo sequences average 12) for
# 4 epochs: the planted transitions are learnt by then. One torch thread:
# these models are too small to gain from a second, and on two cores shared
# with any other job two threads spin-wait on each other (an epoch on the
# original set took 18 s with two threads and 0.8 s with one while another
# process ran on the 2-core VM).
DEMO_TRAIN = dict(epochs=4, patience=4, num_threads=1, embed_dim=32, max_len=20)


def _mining_step(result: dict, quiet: bool = False) -> dict:
    import numpy as np

    from ..patterns import dr4sr_input, mine_patterns

    ds = result["dataset"]
    pats = mine_patterns(dr4sr_input(ds), max_span=5, min_support=2)
    lengths, counts = np.unique(pats.lengths, return_counts=True)
    by_len = dict(zip(lengths.tolist(), counts.tolist()))
    mined = {pattern for pattern, _support in pats.to_list()}
    planted = [tuple(p) for p in ds.meta.get("patterns", []).tolist()]
    found = sum(p in mined for p in planted)
    typer.echo(f"mined {len(pats):,} span-5 patterns (support >= 2), by length {by_len}; "
               f"planted patterns recovered: {found}/{len(planted)}")
    return {"patterns": len(pats), "by_length": by_len, "planted_found": found, "planted": len(planted)}


def _entropy_step(result: dict, quiet: bool = False) -> dict:
    import numpy as np

    from ..entropy import predictability, real_entropy

    ds = result["dataset"]
    s = real_entropy(ds)
    n_distinct = np.array([np.unique(seq).size for seq in ds])
    pi = predictability(s, n_distinct)
    typer.echo(f"real entropy {np.nanmean(s):.3f} bits (mean), predictability {np.nanmean(pi):.3f}")
    return {"entropy_mean": float(np.nanmean(s)), "predictability_mean": float(np.nanmean(pi))}


def _dr4sr_step(result: dict, quiet: bool = False) -> dict:
    from ._regen import demo_step

    return demo_step(result, quiet=quiet)


def _target_step(result: dict, quiet: bool = False) -> dict:
    from ..training import fit_and_evaluate

    ds = result["dataset"]
    dr = result["dr4sr"]["dr4sr"]
    sets = {"original": None, "DR4SR (combined)": dr.regenerate("combined")}
    rows = {}
    for name, train_data in sets.items():
        # Progress lines, not only bars: the bars are silent when stdout is not a terminal.
        typer.echo(f"  training SASRec on {name} ({DEMO_TRAIN['epochs']} epochs max) ...")
        t0 = time.perf_counter()
        res = fit_and_evaluate(ds, model="sasrec", seed=result["seed"], train_data=train_data,
                               progress=not quiet, **DEMO_TRAIN)
        typer.echo(f"  training SASRec on {name} done in {time.perf_counter() - t0:.1f} s "
                   f"({res['epochs']} epochs, {res['seconds_per_epoch']:.1f} s each)")
        rows[name] = res["test"]
    typer.echo(f"SASRec, test split, full ranking ({DEMO_TRAIN['epochs']} epochs max):")
    typer.echo(f"  {'training set':<18}{'recall@20':>10}{'ndcg@20':>10}{'mrr':>10}")
    for name, m in rows.items():
        typer.echo(f"  {name:<18}{m['recall@20']:>10.4f}{m['ndcg@20']:>10.4f}{m['mrr']:>10.4f}")
    return rows


register_demo_step("mining", _mining_step, "mining span-5 patterns")
register_demo_step("entropy", _entropy_step, "real entropy and predictability")
register_demo_step("dr4sr", _dr4sr_step, "DR4SR regeneration (mine, pairs, pre-train, hybrid inference)")
register_demo_step("target", _target_step, "SASRec on the original and the DR4SR training sets")
