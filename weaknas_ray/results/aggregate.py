"""Across-repeat statistics of a run: best-so-far curves, checkpoints, queries to the global optimum.

A repeat that stopped early (``stop_at_optimum``) holds its final best for the rest of the budget, so
every repeat of a method contributes to every checkpoint up to ``max_sample``. Standard deviations
are population std (ddof 0) over repeats.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# NOTE: the checkpoints of the summary (query counts); those above max_sample are left out.
CHECKPOINTS = (10, 20, 50, 100, 200, 300, 500, 1000)
# NOTE: the columns of the Markdown results table (query counts), those above a run's budget left out.
TABLE_CHECKPOINTS = (50, 100, 200, 300, 500, 1000)
# NOTE: the runner's own result columns; any other column is the space's description (flops_m, params_mb).
RUN_COLUMNS = {"method", "repeat", "seed", "iteration", "query", "arch_index", "arch", "search_value", "reported_value",
               "best_search_so_far", "best_reported_so_far", "elapsed_s", "cost"}
# NOTE: column titles of the final mean regret, by regret kind.
_REGRET_LABEL = {"difference": "regret (mean)", "log": "log-regret (mean)"}
# NOTE: the printed summary lists every repeat's best when no method has more repeats than this.
MAX_PRINTED_REPEATS = 10


def counted(n: int, noun: str) -> str:
    """``"1 repeat"``, ``"3 repeats"``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


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


def regret(values: np.ndarray, optimum: float, kind: str = "difference") -> np.ndarray:
    """Distance of reported values to the optimum (see :class:`~weaknas_ray.interfaces.Oracle`): ``optimum -
    values``, or for ``kind="log"`` (negated losses) ``log(-values) - log(-optimum)``, the regret in log(loss)."""
    values = np.asarray(values, dtype=np.float64)
    if kind == "log":
        return np.log(-values) - np.log(-optimum)
    return optimum - values


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
    search_optimum_indices: list[int] | None = None,
    regret_kind: str = "difference",
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """The ``summary.json`` content.

    Args:
        results: query rows of every method (``results.parquet``).
        final_top1: final top-1 rows (``final_top1.parquet``) or ``None``.
        max_sample: the run's budget (checkpoints above it are omitted).
        optimum_indices: pool indices reaching the best reported value, where known.
        optimum_reported: the best reported value of the pool, where known.
        search_optimum_indices: pool indices reaching the best search value, where known.
        regret_kind: how regret is measured (:func:`regret`).
        notes: the benchmark's notes, repeated in the summary.

    Returns:
        ``{"optimum_reported", "regret", "notes", "methods": {method: {"repeats", "seeds", "queries",
        "seconds_per_repeat", "best_reported_at", "final_best_reported", "regret_at", "final_regret",
        "queries_to_optimum", "queries_to_search_optimum", "final_top1"}}, "per_repeat": [...]}`` (see
        :func:`best_per_repeat`); the regret entries appear where the optimum is known, the two
        ``queries_to_*`` entries where those optima are.
    """
    methods: dict[str, Any] = {}
    for method, rows in results.groupby("method", sort=False):
        curves = best_curves(rows, max_sample)
        entry: dict[str, Any] = {
            "repeats": int(curves.shape[0]),
            "seeds": sorted(int(s) for s in rows["seed"].unique()),
            "queries": _stats(rows.groupby("repeat")["query"].max().to_numpy(dtype=np.float64)),
            "seconds_per_repeat": _stats(rows.groupby("repeat")["elapsed_s"].max().to_numpy(dtype=np.float64)),
            "best_reported_at": {
                str(q): _stats(curves[:, q - 1]) for q in CHECKPOINTS if q <= max_sample
            },
            "final_best_reported": _stats(curves[:, -1]),
        }
        if optimum_reported is not None:
            regrets = regret(curves, optimum_reported, regret_kind)
            entry["regret_at"] = {str(q): _stats(regrets[:, q - 1]) for q in CHECKPOINTS if q <= max_sample}
            entry["final_regret"] = _stats(regrets[:, -1])
        for key, targets in (("queries_to_optimum", optimum_indices), ("queries_to_search_optimum", search_optimum_indices)):
            if targets:
                entry[key] = _first_hits(queries_to_optimum(rows, targets))
        if final_top1 is not None and (mine := final_top1[final_top1["method"] == method]).shape[0]:
            entry["final_top1"] = {
                "reported": _stats(mine["reported_value"].to_numpy(dtype=np.float64)),
                "share_already_queried": float(mine["already_queried"].mean()),
            }
        methods[str(method)] = entry
    return {"optimum_reported": optimum_reported, "regret": regret_kind, "notes": list(notes or []), "methods": methods,
            "per_repeat": best_per_repeat(results, final_top1)}


def best_per_repeat(results: pd.DataFrame, final_top1: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Each repeat's best evaluated architecture: ``method``, ``repeat``, ``seed``, ``best_reported``, the
    ``query`` that first reached it, ``arch``, the space's own columns (e.g. ``flops_m``), and
    ``final_top1_reported`` where the method has a final answer."""
    extra = [c for c in results.columns if c not in RUN_COLUMNS]
    finals = {} if final_top1 is None else {
        (row.method, row.repeat): float(row.reported_value) for row in final_top1.itertuples()
    }
    out = []
    for (method, repeat), rows in results.groupby(["method", "repeat"], sort=False):
        best = rows.loc[rows["reported_value"].idxmax()]  # rows are in query order: the first to reach it
        entry = {"method": str(method), "repeat": int(repeat), "seed": int(best["seed"]),
                 "best_reported": float(best["reported_value"]), "query": int(best["query"]), "arch": str(best.get("arch", best["arch_index"]))}
        entry.update({c: float(best[c]) for c in extra})
        if (method, repeat) in finals:
            entry["final_top1_reported"] = finals[(method, repeat)]
        out.append(entry)
    return out


def _value(x: float) -> str:
    """A reported value for a table: three decimals, or three significant digits where those would show
    nothing (HPOLib's naval losses are about 1e-6)."""
    return f"{x:.3f}" if x == 0 or abs(x) >= 0.01 else f"{x:.3g}"


def summary_table(summary: dict[str, Any]) -> str:
    """A short plain-text table of a summary: one line per method."""
    width = max([12, *map(len, summary["methods"])])
    header = (f"{'method':<{width}} {'repeats':>7} {'queries':>8} {'best reported (mean +/- std)':>30} "
              f"{_REGRET_LABEL[summary.get('regret', 'difference')]:>16} "
              f"{'reported optimum: found, q mean/med':>36} {'search optimum: found, q mean/med':>34}")
    lines = [f"note: {note}" for note in summary.get("notes", [])]
    lines += [f"note: {method} predictor in {choice['dtype']} ({choice['reason']})"
              for method, choice in summary.get("predictor_dtype", {}).items()]
    lines += [header, "-" * len(header)]
    for method, s in summary["methods"].items():
        best, final_regret = s["final_best_reported"], s.get("final_regret")
        lines.append(
            f"{method:<{width}} {s['repeats']:>7} {s['queries']['mean']:>8.1f} "
            f"{_value(best['mean']):>21} +/- {_value(best['std']):<5} "
            f"{'-' if final_regret is None else format(final_regret['mean'], '.4g'):>16} "
            f"{_hits_cell(s.get('queries_to_optimum')):>36} {_hits_cell(s.get('queries_to_search_optimum')):>34}"
        )
    per_repeat = summary.get("per_repeat") or []
    if per_repeat and max(s["repeats"] for s in summary["methods"].values()) <= MAX_PRINTED_REPEATS:
        lines += ["", _repeat_table(per_repeat)]
    return "\n".join(lines)


def markdown_table(summaries: list[dict[str, Any]], max_samples: list[int]) -> str:
    """One Markdown table of every method of several runs (e.g. a comparison and its EI run): repeats,
    mean +/- std of the best reported value at the checkpoints within the budget (of the log-regret
    instead, where the runs measure regret in log(loss)), queries to the search and to the reported optimum
    (share found, mean / median over the repeats that found it) and mean seconds per repeat; the best mean
    of each checkpoint column in bold."""
    budget = max(max_samples)
    points = [q for q in TABLE_CHECKPOINTS if q <= budget]
    rows = [(m, s) for summary in summaries for m, s in summary["methods"].items()]
    log = all(summary.get("regret") == "log" for summary in summaries)
    key, pick = ("regret_at", min) if log else ("best_reported_at", max)
    best = {q: pick(s[key][str(q)]["mean"] for _, s in rows if str(q) in s[key]) for q in points}
    header = ["method", "repeats", *(f"@{q}" for q in points), "search optimum: found, queries mean / median",
              "reported optimum: found, queries mean / median", "s / repeat"]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for method, s in rows:
        cells = [f"`{method}`", str(s["repeats"])]
        for q in points:
            at = s[key].get(str(q))
            text = "-" if at is None else (f"{at['mean']:.3g} +/- {at['std']:.2g}" if log else f"{at['mean']:.2f} +/- {at['std']:.2f}")
            cells.append(f"**{text}**" if at is not None and math.isclose(at["mean"], best[q]) else text)
        cells += [_hits_cell(s.get("queries_to_search_optimum")), _hits_cell(s.get("queries_to_optimum")),
                  f"{s['seconds_per_repeat']['mean']:.1f}" if "seconds_per_repeat" in s else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _hits_cell(hits: dict[str, Any] | None) -> str:
    """``"100%, 76.3 / 78"``: share of repeats that found an optimum, mean / median queries to it."""
    if not hits:
        return "n/a"
    if hits["mean"] is None:
        return f"{hits['share_found']:.0%}, - / -"
    return f"{hits['share_found']:.0%}, {hits['mean']:.1f} / {hits['median']:g}"


def _repeat_table(per_repeat: list[dict[str, Any]]) -> str:
    """Every repeat's best (and final top-1 where there is one), with the space's own columns."""
    fixed = {"method", "repeat", "seed", "best_reported", "query", "arch", "final_top1_reported"}
    extra = [k for k in per_repeat[0] if k not in fixed]
    header = f"{'method':<12} {'seed':>6} {'best reported':>14} {'at query':>9}" + "".join(f" {c:>10}" for c in extra)
    header += f" {'final top-1':>12}"
    lines = ["best per repeat", header, "-" * len(header)]
    for r in per_repeat:
        final = r.get("final_top1_reported")
        lines.append(
            f"{r['method']:<12} {r['seed']:>6} {_value(r['best_reported']):>14} {r['query']:>9}"
            + "".join(f" {r[c]:>10.1f}" for c in extra)
            + f" {'-' if final is None else _value(final):>12}"
        )
    return "\n".join(lines)


def _first_hits(found: np.ndarray) -> dict[str, float | None]:
    """Mean and median over the repeats that found the target (NaN: never found), and the share found."""
    hits = found[~np.isnan(found)]
    return {
        "mean": float(hits.mean()) if hits.size else None,
        "median": float(np.median(hits)) if hits.size else None,
        "share_found": float(hits.size / found.size),
    }


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "std": float(np.std(values))}
