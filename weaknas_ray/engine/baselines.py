"""Baselines through the same ask/tell interface: random search and regularised evolution."""

from __future__ import annotations

from collections import deque

import numpy as np

from weaknas_ray.engine.base import Optimizer
from weaknas_ray.exceptions import ConfigError


class RandomSearch(Optimizer):
    """Uniform random search without replacement, in batches of ``batch_size``.

    Args:
        space: the search space (only its size is used).
        max_sample: budget of distinct queries.
        seed: repeat seed; the whole order is drawn from ``numpy.random.default_rng(seed)``.
        batch_size: architectures per ``ask`` (default 10, WeakNAS's ``sample_each_iter``).
    """

    method = "random"

    def __init__(self, space, max_sample: int, seed: int, batch_size: int = 10):
        super().__init__(len(space), max_sample, seed)
        if batch_size < 1:
            raise ConfigError(f"random.batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self._order = np.random.default_rng(seed).permutation(self.n_pool)
        self._next = 0

    def _pool_extended(self, old_n_pool: int) -> None:
        """New indices join the unseen rest of the order, shuffled with it (seeded by the pool size)."""
        rest = np.concatenate([self._order[self._next:], np.arange(old_n_pool, self.n_pool)])
        self._order = np.concatenate([self._order[: self._next], np.random.default_rng([self.seed, self.n_pool]).permutation(rest)])

    def _propose(self, room: int) -> np.ndarray:
        """The next unseen indices of the seeded permutation; indices told or pending from elsewhere
        (warm starts through the Tune searcher) are skipped, so the budget still buys new queries."""
        take = min(room, self.batch_size)
        batch: list[int] = []
        while len(batch) < take and self._next < self.n_pool:
            index = int(self._order[self._next])
            self._next += 1
            if not (self.evaluated[index] or self.pending[index]):
                batch.append(index)
        return np.asarray(batch, dtype=np.int64)


# NOTE: a converged population can keep producing known children; after this many in a row the next
# child is a random unevaluated architecture, so the budget is always spent.
MAX_REVISITS = 10_000


class RegularizedEvolution(Optimizer):
    """Regularised (aging) evolution, Real et al. 2019: tournament selection, one mutation per child,
    the oldest member leaves the population.

    The first ``population`` queries are distinct random architectures (one batch); then each ``ask``
    returns one child. A child that was evaluated before joins the population with its known value
    (and ages out the oldest) without a new query.

    Args:
        space: a search space implementing ``mutate``.
        max_sample: budget of distinct queries.
        seed: repeat seed; all draws come from ``numpy.random.default_rng(seed)``.
        population: population size (default 100).
        sample: tournament size (default 25).
    """

    method = "evolution"

    def __init__(self, space, max_sample: int, seed: int, population: int = 100, sample: int = 25):
        super().__init__(len(space), max_sample, seed)
        if population < 1 or not 1 <= sample <= population:
            raise ConfigError(f"evolution: need population >= 1 and 1 <= sample <= population, got {population}, {sample}")
        self.space = space
        self.population = int(population)
        self.sample = int(sample)
        self._rng = np.random.default_rng(seed)
        self._members: deque[tuple[int, float]] = deque()
        self._known: dict[int, float] = {}

    def _propose(self, room: int) -> np.ndarray:
        if self.pending.any():
            return np.empty(0, dtype=np.int64)
        if self.n_told < self.population:
            free = np.flatnonzero(~self.evaluated)
            return self._rng.choice(free, size=min(self.population - self.n_told, room, free.size), replace=False)
        for _ in range(MAX_REVISITS):
            child = self.space.mutate(self._tournament(), self._rng)
            if child not in self._known:
                return np.array([child], dtype=np.int64)
            self._join(child, self._known[child])
        return self._rng.choice(np.flatnonzero(~self.evaluated), size=1)

    def _tournament(self) -> int:
        """The best of ``sample`` members drawn without replacement (the earliest drawn on a tie)."""
        picks = self._rng.choice(len(self._members), size=min(self.sample, len(self._members)), replace=False)
        return max((self._members[p] for p in picks), key=lambda member: member[1])[0]

    def _join(self, index: int, value: float) -> None:
        self._members.append((index, value))
        if len(self._members) > self.population:
            self._members.popleft()

    def _observe(self, indices: np.ndarray, values: np.ndarray) -> None:
        for i, v in zip(indices.tolist(), values.tolist()):
            self._known[i] = v
            self._join(i, v)
