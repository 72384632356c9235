"""The in-process loop: one repeat of any optimizer against an oracle, no Ray.

Tests and debugging use it directly; the Ray runner's repeat actors call exactly :func:`run_repeat`,
so a seed gives the same rows in-process and on Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
    stop_at_optimum: bool | str = False,
    on_batch: Callable | None = None,
):
    """Ask, evaluate, tell until the optimizer's budget is spent.

    Args:
        optimizer: a fresh optimizer (nothing asked or told yet).
        oracle: an :class:`~weaknas_ray.spaces.Oracle` of the optimizer's space.
        stop_at_optimum: stop after the batch that evaluates a global optimum (for "queries until the
            global optimum"): ``"reported"`` (or ``True``) any of ``oracle.optimum_indices``, ``"search"``
            any of ``oracle.search_optimum_indices``; ``False`` never.
        on_batch: called with each batch's rows (a DataFrame) right after the batch is told.

    Returns:
        ``pandas.DataFrame``, one row per query in query order, columns :data:`COLUMNS` (``query`` is
        1-based, ``elapsed_s`` the wall time since the start of the repeat when the batch was told),
        plus ``cost`` when the oracle returns costs.
    """
    log = RepeatLog(oracle, stop_at_optimum=stop_at_optimum, on_batch=on_batch)
    while not optimizer.finished:
        if log.evaluate(optimizer, optimizer.ask()):
            break
    return log.frame()


STOP_AT_OPTIMUM = ("reported", "search")


def optimum_targets(oracle, stop_at_optimum: bool | str) -> np.ndarray | None:
    """The indices whose evaluation ends a repeat under ``stop_at_optimum`` (see :func:`run_repeat`);
    ``None`` when it never stops early.

    Raises:
        WeakNASError: an unknown value, or an oracle that does not know that optimum.
    """
    if stop_at_optimum is False or stop_at_optimum is None:
        return None
    which = "reported" if stop_at_optimum is True else stop_at_optimum
    if which not in STOP_AT_OPTIMUM:
        raise WeakNASError(f"stop_at_optimum: expected one of reported, search, false; got {stop_at_optimum!r}")
    targets = oracle.optimum_indices if which == "reported" else oracle.search_optimum_indices
    if targets is None:
        raise WeakNASError(f"stop_at_optimum: {type(oracle).__name__} does not know its {which} optimum indices")
    return targets


class RepeatLog:
    """The rows of one repeat: evaluates each asked batch, tells it, and records its rows.

    :func:`run_repeat` and the lockstep group loop (:mod:`weaknas_ray.drivers.group_loop`) share it, so
    a repeat's rows do not depend on the driver.

    Args:
        oracle: the repeat's :class:`~weaknas_ray.spaces.Oracle`.
        stop_at_optimum: as in :func:`run_repeat`.
        on_batch: as in :func:`run_repeat`.
    """

    def __init__(self, oracle, *, stop_at_optimum: bool | str = False, on_batch: Callable | None = None):
        self.oracle = oracle
        self.on_batch = on_batch
        self.targets = optimum_targets(oracle, stop_at_optimum)
        self.start = time.perf_counter()
        self.batches = []
        self.best_search = self.best_reported = -np.inf
        self.n_queries = 0

    def evaluate(self, optimizer: Optimizer, idx: np.ndarray) -> bool:
        """Evaluate and tell ``optimizer`` the batch ``idx`` it just asked (int64 ``(k,)``), recording its rows.

        Returns:
            True when the repeat should stop early (the batch holds a global optimum and
            ``stop_at_optimum`` is set).

        Raises:
            WeakNASError: ``idx`` is empty although the budget is not spent.
        """
        if idx.size == 0:
            raise WeakNASError(
                f"{optimizer.method}: ask() returned no architectures with {optimizer.n_told} of "
                f"{optimizer.max_sample} queries told and none pending"
            )
        iteration = optimizer.iteration
        ev = self.oracle.evaluate(idx)
        optimizer.tell(idx, ev.search)
        return self.record(iteration, idx, ev)

    def record(self, iteration: int, idx: np.ndarray, ev) -> bool:
        """Record the rows of batch ``idx`` of ``iteration``, its evaluation ``ev`` already told (drivers
        that ask and tell elsewhere, as Tune does, record their batches here); returns as :meth:`evaluate`."""
        import pandas as pd

        search = np.asarray(ev.search, dtype=np.float64)
        reported = np.asarray(ev.reported, dtype=np.float64)
        first = self.n_queries + 1
        batch = pd.DataFrame(
            {
                "iteration": np.full(idx.size, iteration, dtype=np.int64),
                "query": np.arange(first, first + idx.size, dtype=np.int64),
                "arch_index": idx,
                "search_value": search,
                "reported_value": reported,
                "best_search_so_far": np.maximum.accumulate(np.maximum(search, self.best_search)),
                "best_reported_so_far": np.maximum.accumulate(np.maximum(reported, self.best_reported)),
                "elapsed_s": np.full(idx.size, time.perf_counter() - self.start),
            }
        )
        if ev.cost is not None:
            batch["cost"] = np.asarray(ev.cost, dtype=np.float64)
        for name, values in ev.extra.items():
            batch[name] = np.asarray(values, dtype=np.float64)
        self.best_search = float(batch["best_search_so_far"].iloc[-1])
        self.best_reported = float(batch["best_reported_so_far"].iloc[-1])
        self.n_queries += idx.size
        self.batches.append(batch)
        if self.on_batch is not None:
            self.on_batch(batch)
        return self.targets is not None and bool(np.isin(idx, self.targets).any())

    def frame(self):
        """All rows so far as one ``pandas.DataFrame`` (see :func:`run_repeat`)."""
        import pandas as pd

        if not self.batches:
            return pd.DataFrame({c: [] for c in COLUMNS})
        return pd.concat(self.batches, ignore_index=True)
