"""Baselines through the same ask/tell interface: random search and regularised evolution."""

from __future__ import annotations

import numpy as np

from weaknas_ray.engine.base import Optimizer


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
        self.batch_size = int(batch_size)
        self._order = np.random.default_rng(seed).permutation(self.n_pool)[: self.max_sample]
        self._next = 0

    def _propose(self, room: int) -> np.ndarray:
        take = min(room, self.batch_size)
        batch = self._order[self._next : self._next + take]
        self._next += batch.size
        return batch
