"""Across-repeat statistics of a run: best-so-far curves, checkpoints, queries to the global optimum.

A repeat that stopped early (``stop_at_optimum``) holds its final best for the rest of the budget, so
every repeat of a method contributes to every checkpoint up to ``max_sample``. Standard deviations
are population std (ddof 0) over repeats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# NOTE: the checkpoints of the summary (query counts); those above max_sample are left out.
CHECKPOINTS = (10, 20, 50, 100, 200, 500, 1000)


def best_curves(rows: pd.DataFrame, max_sample: int) -> np.ndarray:
    """Best reported value after each query, one row per repeat, carried forward past an early stop.

    Args:
        rows: one method's query rows (columns ``repeat``, ``query``, ``best_reported_so_far``).
        max_sample: curve length.

    Returns:
        float64 array of shape ``(n_repeats, max_sample)``, repeats in ascending order.
    """
    repeats = sorted(rows["repeat"].unique())
    out = np.full((len(repeats), max_sample), np.nan)
    for r, (_, group) in enumerate(rows.groupby("repeat", sort=True)):
        q = group["query"].to_numpy() - 1
        keep = q < max_sample
        out[r, q[keep]] = group["best_reported_so_far"].to_numpy()[keep]
    return pd.DataFrame(out.T).ffill().to_numpy().T


def queries_to_optimum(rows: pd.DataFrame, optimum_indices: list[int]) -> np.ndarray:
    """Per repeat (ascending), the 1-based query at which any optimum architecture was evaluated,
    NaN where it never was; shape ``(n_repeats,)``."""
    hit = rows[rows["arch_index"].isin(optimum_indices)]
    first = hit.groupby("repeat")["query"].min()
    return first.reindex(sorted(rows["repeat"].unique())).to_numpy(dtype=np.float64)


def summarize(
    results: pd.DataFrame,
    final_top1: pd.DataFrame | None,
    max_sample: int,
    optimum_indices: list[int] | None = None,
    optimum_reported: float | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` content.

    Args:
        results: query rows of every method (``results.parquet``).
        final_top1: final top-1 rows (``final_top1.parquet``) or ``None``.
        max_sample: the run's budget (checkpoints above it are omitted).
        optimum_indices: pool indices reaching the best reported value, where known.
        optimum_reported: the best reported value of the pool, where known.

    Returns:
        ``{"optimum": ..., "methods": {method: {"repeats", "seeds", "queries", "best_reported_at",
        "final_best_reported", "queries_to_optimum", "final_top1"}}}``.
    """
    methods: dict[str, Any] = {}
    for method, rows in results.groupby("method", sort=False):
        curves = best_curves(rows, max_sample)
        entry: dict[str, Any] = {
            "repeats": int(curves.shape[0]),
            "seeds": sorted(int(s) for s in rows["seed"].unique()),
            "queries": _stats(rows.groupby("repeat")["query"].max().to_numpy(dtype=np.float64)),
            "best_reported_at": {
                str(q): _stats(curves[:, q - 1]) for q in CHECKPOINTS if q <= max_sample
            },
            "final_best_reported": _stats(curves[:, -1]),
        }
        if optimum_indices:
            found = queries_to_optimum(rows, optimum_indices)
            hits = found[~np.isnan(found)]
            entry["queries_to_optimum"] = {
                "mean": float(hits.mean()) if hits.size else None,
                "median": float(np.median(hits)) if hits.size else None,
                "share_found": float(hits.size / found.size),
            }
        if final_top1 is not None and (mine := final_top1[final_top1["method"] == method]).shape[0]:
            entry["final_top1"] = {
                "reported": _stats(mine["reported_value"].to_numpy(dtype=np.float64)),
                "share_already_queried": float(mine["already_queried"].mean()),
            }
        methods[str(method)] = entry
    return {"optimum_reported": optimum_reported, "methods": methods}


def summary_table(summary: dict[str, Any]) -> str:
    """A short plain-text table of a summary: one line per method."""
    header = f"{'method':<12} {'repeats':>7} {'queries':>8} {'best reported (mean +/- std)':>30} {'found optimum':>14} {'q to opt (med)':>15}"
    lines = [header, "-" * len(header)]
    for method, s in summary["methods"].items():
        best = s["final_best_reported"]
        opt = s.get("queries_to_optimum") or {}
        share = f"{opt['share_found']:.0%}" if opt else "n/a"
        median = f"{opt['median']:.0f}" if opt.get("median") is not None else "-"
        lines.append(
            f"{method:<12} {s['repeats']:>7} {s['queries']['mean']:>8.1f} "
            f"{best['mean']:>21.3f} +/- {best['std']:<5.3f} {share:>14} {median:>15}"
        )
    return "\n".join(lines)


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}
