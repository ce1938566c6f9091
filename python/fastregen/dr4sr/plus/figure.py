"""Fig. 4 of the DR4SR paper: heatmaps of the personalizer's weights, one panel per target model.

Each panel shows ``n`` random training sequences (rows) x their target
positions (columns, the first target left), from a run's ``weights.npz``
(`fastregen.dr4sr.plus.personalize`); cells past a sequence's end are blank.
The title gives the model and the variance of the weights in the panel (the
paper reports .0244-.0280 on Toys). Pinned sequences (weight fixed at 1) are
not drawn from. Needs matplotlib (``pip install 'fastregen[plot]'``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_weights", "weight_files", "weight_panel"]


def weight_files(run_dirs) -> list[Path]:
    """The ``weights.npz`` of each run folder, or of the run folders inside it (sorted)."""
    found: list[Path] = []
    for d in run_dirs:
        d = Path(d)
        if d.is_file() and d.name.endswith(".npz"):
            found.append(d)
        elif (d / "weights.npz").exists():
            found.append(d / "weights.npz")
        elif d.is_dir():
            found += sorted(d.glob("**/weights.npz"))
        else:
            raise ValueError(f"{d} is neither a run folder nor a weights.npz")
    if not found:
        raise ValueError(f"no weights.npz in {', '.join(map(str, run_dirs))}: run `fastregen personalize` "
                         "(any mode but 'off') first")
    return found


def weight_panel(weights: dict, n: int = 25, seed: int = 0, kind: str = "sampled", max_positions: int = 50,
                 source: str | None = None, min_length: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The (n, positions) matrix of one panel (NaN where no target) and the sequences it shows.

    Parameters
    ----------
    weights : dict
        A ``weights.npz`` as `fastregen.dr4sr.plus.load_weights` reads it.
    n : int, default 25
        Sequences drawn (fewer if fewer have a target).
    seed : int, default 0
    kind : {"sampled", "noise_free"}, default "sampled"
    max_positions : int, default 50
        Columns shown at most (a sequence's first targets).
    source : str, optional
        Draw only sequences of this source (``source_names``: "original",
        "patterns", "regenerated"); the mined and regenerated patterns are
        short, so the original sequences show more positions.
    min_length : int, default 2
        Draw only sequences with at least this many items.
    """
    if kind not in ("sampled", "noise_free"):
        raise ValueError(f"kind must be 'sampled' or 'noise_free', got {kind!r}")
    if n < 1 or max_positions < 1:
        raise ValueError(f"n and max_positions must be >= 1, got {n} and {max_positions}")
    missing = sorted({"offsets", kind} - set(weights))
    if missing:
        raise ValueError(f"the weights file has no {', '.join(missing)} array: not a `fastregen personalize` weights.npz")
    offsets, w = weights["offsets"], weights[kind]
    lengths = np.diff(offsets)
    # a target with weight exactly 1 in every position is a pinned row: nothing to see
    first = np.minimum(offsets[:-1] + 1, offsets[1:])
    has_target = lengths >= max(2, min_length)
    if source is not None:
        names = [str(x) for x in weights.get("source_names", [])]
        if source not in names:
            raise ValueError(f"source {source!r} is not in this weights file (it has {names})")
        has_target &= np.asarray(weights["source"]) == names.index(source)
    candidates = np.flatnonzero(has_target)
    if candidates.size:
        pinned = np.array([np.all(w[first[s]:offsets[s + 1]] == 1.0) for s in candidates])
        candidates = candidates[~pinned]
    if candidates.size == 0:
        raise ValueError("no sequence with a personalized target in this weights file")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(candidates, min(n, candidates.size), replace=False))
    width = int(min(max_positions, lengths[rows].max() - 1))
    mat = np.full((rows.size, width), np.nan, dtype=np.float64)
    for r, s in enumerate(rows):
        vals = w[offsets[s] + 1:offsets[s + 1]][:width]
        mat[r, :vals.size] = vals
    return mat, rows


def plot_weights(run_dirs, out, *, n: int = 25, seed: int = 0, kind: str = "sampled", max_positions: int = 50,
                 source: str | None = None, min_length: int = 2, dpi: int = 150) -> list[dict]:
    """Draw Fig. 4 from one or more run folders into ``out`` (png, pdf, svg: by its suffix).

    Returns one dict per panel: ``model``, ``path``, ``variance`` (of the
    panel's cells), ``sequences`` (their indices in the training set).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("fastregen's figures need matplotlib: pip install 'fastregen[plot]'") from None
    from .pipeline import load_weights

    files = weight_files(list(run_dirs) if not isinstance(run_dirs, (str, Path)) else [run_dirs])
    panels = []
    for path in files:
        wts = load_weights(path)
        mat, rows = weight_panel(wts, n=n, seed=seed, kind=kind, max_positions=max_positions, source=source,
                                 min_length=min_length)
        model = str(wts["model"]) if "model" in wts else path.parent.name
        panels.append({"model": model, "path": str(path), "variance": float(np.nanvar(mat)), "matrix": mat,
                       "sequences": rows})
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 0.8, 3.6), squeeze=False)
    image = None
    for ax, p in zip(axes[0], panels):
        image = ax.imshow(np.ma.masked_invalid(p["matrix"]), aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis",
                          interpolation="nearest")
        ax.set_title(f"{p['model']}  (var {p['variance']:.4f})", fontsize=9)
        ax.set_xlabel("target position")
        ax.set_ylabel("sequence")
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.85, label=f"w ({kind})")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from ..._io import atomic_open

    with atomic_open(out, "wb") as f:
        fig.savefig(f, dpi=dpi, format=out.suffix.lstrip(".") or "png", bbox_inches="tight")
    plt.close(fig)
    for p in panels:
        p.pop("matrix")
    return panels
