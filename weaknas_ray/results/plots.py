"""Figures of a run: best-so-far curves per method, and the paper's search-dynamics t-SNE.

The t-SNE embedding of a pool is computed once and cached by a hash of the features (in the cache
folder: ``$WEAKNAS_CACHE`` or ``~/.cache/weaknas-ray``), since it takes minutes on a laptop.

Figures are ``matplotlib.figure.Figure`` objects drawn straight to files: no pyplot state and no
backend switch, so plotting from a notebook or a GUI program leaves its matplotlib setup alone.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd

from weaknas_ray.results.aggregate import best_curves, counted, regret
from weaknas_ray.results.records import atomic_write

# NOTE: t-SNE of a 423k-row pool would take hours; pools above this size get no dynamics figure.
MAX_TSNE_POOL = 50_000
# NOTE: 500 iterations (250 of them early exaggeration) give a stable map at half the default's cost.
TSNE_ITERATIONS = 500
# NOTE: the y axis of curves.png starts at this query: the first few random queries span the whole
# accuracy range and would flatten the part of the curves that tells methods apart.
ZOOM_FROM_QUERY = 10
REGRET_LINEAR_BELOW = 1e-3  # log-regret curves: a linear y axis below this, logarithmic above
# NOTE: one dash pattern per run of a comparison figure (colours stay the method's).
LINE_STYLES = ("-", "--", ":", "-.")
# NOTE: accuracies below this percentile share the bottom colour, so the good region keeps its contrast.
COLOUR_FLOOR_PERCENTILE = 10
# NOTE: panels of the dynamics figure: iterations spread evenly from the first to the last.
DYNAMICS_PANELS = 4


def _figure(**kwargs):
    """A new figure outside pyplot (imported here: matplotlib is heavy and only plotting needs it)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def method_colours() -> dict[str, str]:
    """One colour per known method, the same in every figure (other names take the next free ones)."""
    from weaknas_ray.engine import METHODS

    return {method: f"C{i}" for i, method in enumerate(METHODS)}


def plot_curves(
    runs: dict[str, tuple[pd.DataFrame, int]],
    path: Path,
    optimum: float | None = None,
    log_x: bool = False,
    regret_kind: str = "difference",
) -> Path:
    """Mean +/- std over repeats of the best reported value versus queries, one line per method; for runs
    that measure regret in log(loss) (``regret_kind="log"`` with a known ``optimum``), the log-regret instead.

    Args:
        runs: label prefix (``""`` for a single run) -> (query rows of that run, its budget
            ``max_sample``); each curve ends at its own run's budget.
        path: where to save the PNG.
        optimum: the pool's best reported value, drawn as a dashed line when given.
        log_x: logarithmic query axis.
        regret_kind: see :func:`~weaknas_ray.results.aggregate.regret`.

    Returns:
        ``path``.
    """
    fig = _figure(figsize=(7, 4.5))
    ax = fig.subplots()
    colours = method_colours()
    as_regret = regret_kind == "log" and optimum is not None
    lows, highs = [], [] if optimum is None or as_regret else [optimum]
    for run, (prefix, (results, max_sample)) in enumerate(runs.items()):
        x = np.arange(1, max_sample + 1)
        for method, rows in results.groupby("method", sort=False):
            curves = best_curves(rows, max_sample)
            curves = regret(curves, optimum, regret_kind) if as_regret else curves
            mean, std = np.nanmean(curves, axis=0), np.nanstd(curves, axis=0)
            below = np.maximum(mean - std, 0.0) if as_regret else mean - std  # a regret is never below 0
            colour = colours.setdefault(method, f"C{len(colours) % 10}")
            line = ax.plot(x, mean, color=colour, linestyle=LINE_STYLES[run % len(LINE_STYLES)],
                           label=f"{prefix}{method} ({counted(curves.shape[0], 'repeat')})")[0]
            ax.fill_between(x, below, mean + std, color=line.get_color(), alpha=0.2)
            start = min(ZOOM_FROM_QUERY, max_sample) - 1
            lows.append(np.nanmin(below[start:]))
            highs.append(np.nanmax((mean + std)[start:]))
    low, high = np.nanmin(lows), np.nanmax(highs)
    if as_regret:  # regrets span decades down to 0: linear below REGRET_LINEAR_BELOW, logarithmic above
        ax.set_yscale("symlog", linthresh=REGRET_LINEAR_BELOW)
        ax.set_ylim(0.0, 1.5 * high + 1e-9)
    else:
        ax.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low) + 1e-9)
    if optimum is not None and not as_regret:
        ax.axhline(optimum, color="black", linestyle="--", linewidth=1, label=f"global optimum {optimum:.2f}")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel("queries")
    ax.set_ylabel("regret so far: log(loss) - log(optimal loss)" if as_regret else "best reported value so far")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    return path


def tsne_embedding(features: np.ndarray, cache_dir: Path, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of the pool, cached under ``cache_dir`` by a hash of ``features`` and ``seed``.

    Args:
        features: the pool, shape ``(n, d)``.
        cache_dir: folder of ``tsne_<hash>.npy`` files.
        seed: t-SNE's random state.

    Returns:
        float32 array of shape ``(n, 2)``.
    """
    digest = hashlib.sha256(np.ascontiguousarray(features, dtype=np.float32).tobytes()).hexdigest()[:16]
    path = Path(cache_dir) / f"tsne_{digest}_s{seed}_i{TSNE_ITERATIONS}.npy"
    if path.is_file():
        return np.load(path)
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, init="pca", random_state=seed, max_iter=TSNE_ITERATIONS, n_jobs=os.cpu_count())
    emb = tsne.fit_transform(features).astype(np.float32)
    atomic_write(path, lambda tmp: tmp.write_bytes(_npy_bytes(emb)))
    return emb


def _npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in the ``.npy`` format (``np.save`` to a path appends ``.npy`` to a temporary name)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def plot_search_dynamics(
    embedding: np.ndarray, accuracy: np.ndarray, rows: pd.DataFrame, path: Path, title: str = ""
) -> Path:
    """The pool's t-SNE coloured by accuracy, with the architectures one repeat sampled overlaid, one
    panel per chosen iteration (that iteration's batch in red, earlier ones in white), as in the paper's
    interpretation figure.

    Args:
        embedding: t-SNE coordinates, shape ``(n_pool, 2)``.
        accuracy: reported value per pool architecture, shape ``(n_pool,)``.
        rows: one repeat's query rows (``iteration``, ``arch_index``).
        path: where to save the PNG.
        title: figure title.

    Returns:
        ``path``.
    """
    iterations = np.unique(rows["iteration"].to_numpy())
    chosen = np.unique(iterations[np.linspace(0, iterations.size - 1, min(DYNAMICS_PANELS, iterations.size)).astype(int)])
    fig = _figure(figsize=(4 * chosen.size, 4.2))
    axes = fig.subplots(1, chosen.size, squeeze=False)
    order = np.argsort(accuracy)  # best architectures drawn last, on top
    for ax, z in zip(axes[0], chosen):
        points = ax.scatter(*embedding[order].T, c=accuracy[order], s=2, cmap="viridis", rasterized=True,
                            vmin=np.percentile(accuracy, COLOUR_FLOOR_PERCENTILE), vmax=accuracy.max())
        before = rows.loc[rows["iteration"] < z, "arch_index"].to_numpy()
        now = rows.loc[rows["iteration"] == z, "arch_index"].to_numpy()
        ax.scatter(*embedding[before].T, s=10, facecolors="white", edgecolors="black", linewidths=0.4,
                   label="queried in earlier iterations")
        ax.scatter(*embedding[now].T, s=22, c="red", edgecolors="black", linewidths=0.4, label="this iteration's batch")
        ax.set_title(f"iteration {z} ({(rows['iteration'] <= z).sum()} queries)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(points, ax=axes[0].tolist(), shrink=0.8, label="reported value")
    handles, labels = axes[0][-1].get_legend_handles_labels()
    fig.legend(handles[::-1], labels[::-1], loc="lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    return path
