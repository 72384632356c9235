"""The ask/tell interface every search method implements, and the history it keeps.

An optimizer knows nothing of Ray or of where values come from (design.md, layer 4). A driver loops::

    opt = make_optimizer("weaknas", space, max_sample=300, seed=0)
    while not opt.finished:
        idx = opt.ask()                       # distinct, never evaluated, never pending
        ev = oracle.evaluate(idx)
        opt.tell(idx, ev.search)              # search signal, higher is better

``ask`` returns the next batch (WeakNAS: one iteration's k architectures; baselines their natural
batch). A query is a distinct architecture: baselines that revisit an architecture reuse its known
value internally and never return it from ``ask``. Optimizers are picklable between ``tell`` and the
next ``ask`` (the Tune searcher and resumable runs rely on it).

What a driver may hand an optimizer goes through its constructor (e.g. ``pool_scorer``) or a public
method declared here (:meth:`Optimizer.enqueue`, :meth:`Optimizer.withdraw`, :meth:`Optimizer.add_evaluated`,
:meth:`Optimizer.extend_pool`); methods with a predictor
derive from :class:`PredictorOptimizer`, whose ``next_fit`` / ``new_predictor`` / ``ask_fitted`` let a
driver fit several repeats' predictors as one batched model. Drivers never set an optimizer's attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from weaknas_ray.exceptions import WeakNASError

if TYPE_CHECKING:
    from weaknas_ray.predictors import Predictor


@dataclass
class History:
    """Everything evaluated so far, in query order.

    Attributes:
        indices: pool index per query.
        values: search value per query.
        iterations: iteration (batch number, 0-based) per query.
        predicted_top: per iteration, the last predictor's predicted top pool indices (best first,
            at most 1000), for methods with a predictor.
    """

    indices: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)
    predicted_top: dict[int, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.indices)

    def best_so_far(self) -> np.ndarray:
        """Running maximum of ``values``, shape ``(n_queries,)``."""
        return np.maximum.accumulate(np.asarray(self.values, dtype=np.float64)) if self.values else np.empty(0)


class Optimizer(ABC):
    """Base of every search method. Subclasses implement ``_propose`` and may override ``_observe``.

    Args:
        n_pool: number of architectures in the pool.
        max_sample: budget of distinct queries.
        seed: seed of this repeat; all randomness derives from it.
    """

    method: str = "base"
    # NOTE: True where the constructor takes ``pool_scorer`` (methods that score the whole pool with a
    # predictor); drivers read this flag instead of guessing from signatures.
    scores_pool: bool = False

    def __init__(self, n_pool: int, max_sample: int, seed: int):
        if max_sample < 1 or max_sample > n_pool:
            raise WeakNASError(f"max_sample must lie in 1..{n_pool} (the pool size), got {max_sample}")
        self.n_pool = int(n_pool)
        self.max_sample = int(max_sample)
        self.seed = int(seed)
        self.history = History()
        self.evaluated = np.zeros(self.n_pool, dtype=bool)
        self.pending = np.zeros(self.n_pool, dtype=bool)
        self.iteration = 0

    @property
    def n_told(self) -> int:
        return len(self.history)

    @property
    def finished(self) -> bool:
        return self.n_told >= self.max_sample

    def ask(self) -> np.ndarray:
        """The next batch of pool indices (int64), never evaluated or pending; empty when finished."""
        room = self.max_sample - self.n_told - int(self.pending.sum())
        if room <= 0:
            return np.empty(0, dtype=np.int64)
        batch = np.asarray(self._propose(room), dtype=np.int64)[:room]
        if batch.size and (self.evaluated[batch].any() or self.pending[batch].any() or np.unique(batch).size != batch.size):
            raise WeakNASError(f"{self.method}: proposed a repeated, evaluated or pending index: {batch.tolist()}")
        self.pending[batch] = True
        return batch

    def tell(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Record search ``values`` (higher is better) for ``indices`` returned by ``ask``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        vals = np.asarray(values, dtype=np.float64).reshape(-1)
        if idx.shape != vals.shape:
            raise WeakNASError(f"tell: got {idx.size} indices but {vals.size} values")
        if not np.isfinite(vals).all():
            raise WeakNASError(f"tell: values must be finite, got {vals.tolist()}")
        if np.unique(idx).size != idx.size:
            raise WeakNASError(f"tell: indices {idx.tolist()} repeat an architecture (each is told once)")
        not_pending = idx[~self.pending[idx]]
        if not_pending.size:
            raise WeakNASError(f"tell: indices {not_pending.tolist()} were not asked (or were already told)")
        self.pending[idx] = False
        self.evaluated[idx] = True
        self.history.indices.extend(idx.tolist())
        self.history.values.extend(vals.tolist())
        self.history.iterations.extend([self.iteration] * idx.size)
        self._observe(idx, vals)
        if not self.pending.any():
            self.iteration += 1

    def enqueue(self, indices: np.ndarray) -> None:
        """Mark ``indices`` as asked without proposing them: points a driver evaluates on its own (the Tune
        searcher's ``points_to_evaluate``), told later like any asked index. Already pending ones stay so.

        Raises:
            WeakNASError: an index out of range or already evaluated.
        """
        idx = self._check_range(indices, "enqueue")
        told = idx[self.evaluated[idx]]
        if told.size:
            raise WeakNASError(f"enqueue: indices {told.tolist()} were already evaluated")
        self.pending[idx] = True

    def withdraw(self, indices: np.ndarray) -> None:
        """Hand back asked (or enqueued) ``indices`` that will not be told, e.g. beyond the budget: they are
        no longer pending and may be proposed again. Indices not pending are ignored.

        Raises:
            WeakNASError: an index out of range.
        """
        self.pending[self._check_range(indices, "withdraw")] = False

    def add_evaluated(self, indices: np.ndarray, values: np.ndarray, extend_budget: bool = False) -> None:
        """Record search ``values`` of ``indices`` evaluated elsewhere (a warm start, Tune's
        ``points_to_evaluate`` with rewards, ``add_evaluated_point``): as :meth:`tell`, but the indices
        need not have been asked. Every method learns from them as from its own queries and never
        proposes them. Indices of a pending batch are told as part of it.

        Args:
            extend_budget: raise ``max_sample`` by the number of new indices, so the points do not use up
                the budget of the method's own queries (they still count in ``n_told``).

        Raises:
            WeakNASError: an index out of range or already evaluated, a repeated index, a value not finite,
                or a budget beyond the pool.
        """
        idx = self._check_range(indices, "add_evaluated")
        told = idx[self.evaluated[idx]]
        if told.size:
            raise WeakNASError(f"add_evaluated: indices {told.tolist()} were already evaluated")
        if extend_budget:
            if self.max_sample + idx.size > self.n_pool:
                raise WeakNASError(
                    f"add_evaluated: a budget of {self.max_sample} + {idx.size} exceeds the pool of {self.n_pool}"
                )
            self.max_sample += int(idx.size)
        self.pending[idx] = True
        self.tell(idx, values)

    def extend_pool(self, n_pool: int) -> None:
        """The space grew to ``n_pool`` architectures, the new ones appended after the old (a sampled
        pool extended between batches); old indices keep their meaning."""
        if n_pool < self.n_pool:
            raise WeakNASError(f"extend_pool: the pool cannot shrink from {self.n_pool} to {n_pool}")
        grow = n_pool - self.n_pool
        self.evaluated = np.concatenate([self.evaluated, np.zeros(grow, dtype=bool)])
        self.pending = np.concatenate([self.pending, np.zeros(grow, dtype=bool)])
        old, self.n_pool = self.n_pool, int(n_pool)
        if grow:
            self._pool_extended(old)

    def _pool_extended(self, old_n_pool: int) -> None:
        """Hook after :meth:`extend_pool` added indices ``old_n_pool..n_pool-1`` (default: nothing)."""

    def _check_range(self, indices: np.ndarray, verb: str) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_pool):
            raise WeakNASError(f"{verb}: indices must lie in 0..{self.n_pool - 1}, got {idx.tolist()}")
        return idx

    def final_prediction(self) -> np.ndarray | None:
        """The predicted top pool indices (best first) of the method's final predictor, for methods with
        one; the first is the method's answer. ``None`` here: no predictor."""
        return None

    @abstractmethod
    def _propose(self, room: int) -> np.ndarray:
        """Up to ``room`` new indices, none evaluated or pending."""

    def _observe(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Hook called after each ``tell`` with the new values (default: nothing)."""


class FitData(NamedTuple):
    """The data of one iteration's predictor fit.

    Attributes:
        indices: pool indices of the training set, int64 ``(n,)``.
        X: features of the training set, ``(n, d)``.
        y: its search values z-scored, float32 ``(n,)``.
        seed: the fit's seed (``seed + z * E``).
        mean: mean the targets were centred by.
        std: std they were scaled by (1 when all values are equal).
    """

    indices: np.ndarray
    X: np.ndarray
    y: np.ndarray
    seed: int
    mean: float
    std: float


class PredictorOptimizer(Optimizer):
    """Base of methods that fit a predictor on the history and score the pool with it each iteration.

    Besides ``ask``/``tell`` they declare how a driver may fit their predictor for them (several repeats
    in one batched model, :func:`~weaknas_ray.drivers.group_loop.run_group`): :meth:`next_fit` gives the
    data, :meth:`new_predictor` an unfitted predictor of the method's settings, :meth:`ask_fitted` takes
    the fitted one back. Subclasses also expose ``predictor`` (name), ``n_members`` and
    ``predictor_params``: repeats whose three agree (and whose data shapes agree) can share one fit.
    """

    predictor: str
    n_members: int
    predictor_params: dict
    # NOTE: predictor name -> settings this method sets unless predictor_params name them (config
    # resolution saves them too); e.g. weaknas-published keeps the MLP in float32.
    predictor_defaults: dict[str, dict] = {}

    @abstractmethod
    def next_fit(self) -> FitData | None:
        """The data the next ``ask`` fits its predictor on; ``None`` when it fits none."""

    @abstractmethod
    def new_predictor(self) -> Predictor:
        """An unfitted predictor of this optimizer's settings."""

    @abstractmethod
    def ask_fitted(self, model: Predictor) -> np.ndarray:
        """``ask()``, scoring with ``model``: this iteration's predictor already fitted on :meth:`next_fit`'s data."""
