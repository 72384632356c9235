"""The in-process loop: one repeat of any optimizer against an oracle, no Ray.

Tests and debugging use it directly; the Ray runner's repeat actors call exactly :func:`run_repeat`,
so a seed gives the same rows in-process and on Ray.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from weaknas_ray.engine.base import Optimizer
from weaknas_ray.exceptions import WeakNASError

COLUMNS = [
    "iteration",
    "query",
    "arch_index",
    "search_value",
    "reported_value",
    "best_search_so_far",
    "best_reported_so_far",
    "elapsed_s",
]


def run_repeat(
    optimizer: Optimizer,
    oracle,
    *,
    stop_at_optimum: bool = False,
    on_batch: Callable | None = None,
):
    """Ask, evaluate, tell until the optimizer's budget is spent.

    Args:
        optimizer: a fresh optimizer (nothing asked or told yet).
        oracle: an :class:`~weaknas_ray.spaces.Oracle` of the optimizer's space.
        stop_at_optimum: stop after the batch that evaluates any of ``oracle.optimum_indices``
            (for "queries until the global optimum").
        on_batch: called with each batch's rows (a DataFrame) right after the batch is told.

    Returns:
        ``pandas.DataFrame``, one row per query in query order, columns :data:`COLUMNS` (``query`` is
        1-based, ``elapsed_s`` the wall time since the start of the repeat when the batch was told),
        plus ``cost`` when the oracle returns costs.
    """
    import pandas as pd

    targets = None
    if stop_at_optimum:
        targets = oracle.optimum_indices
        if targets is None:
            raise WeakNASError(f"stop_at_optimum: {type(oracle).__name__} does not know its optimum indices")
    start = time.perf_counter()
    batches = []
    best_search = best_reported = -np.inf
    while not optimizer.finished:
        idx = optimizer.ask()
        if idx.size == 0:
            raise WeakNASError(
                f"{optimizer.method}: ask() returned no architectures with {optimizer.n_told} of "
                f"{optimizer.max_sample} queries told and none pending"
            )
        iteration = optimizer.iteration
        ev = oracle.evaluate(idx)
        optimizer.tell(idx, ev.search)
        search = np.asarray(ev.search, dtype=np.float64)
        reported = np.asarray(ev.reported, dtype=np.float64)
        first = optimizer.n_told - idx.size + 1
        batch = pd.DataFrame(
            {
                "iteration": np.full(idx.size, iteration, dtype=np.int64),
                "query": np.arange(first, first + idx.size, dtype=np.int64),
                "arch_index": idx,
                "search_value": search,
                "reported_value": reported,
                "best_search_so_far": np.maximum.accumulate(np.maximum(search, best_search)),
                "best_reported_so_far": np.maximum.accumulate(np.maximum(reported, best_reported)),
                "elapsed_s": np.full(idx.size, time.perf_counter() - start),
            }
        )
        if ev.cost is not None:
            batch["cost"] = np.asarray(ev.cost, dtype=np.float64)
        best_search = float(batch["best_search_so_far"].iloc[-1])
        best_reported = float(batch["best_reported_so_far"].iloc[-1])
        batches.append(batch)
        if on_batch is not None:
            on_batch(batch)
        if targets is not None and np.isin(idx, targets).any():
            break
    if not batches:
        return pd.DataFrame({c: [] for c in COLUMNS})
    return pd.concat(batches, ignore_index=True)
