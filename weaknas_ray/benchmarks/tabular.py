"""Tabular oracles shared by the tabular benchmarks: mean labels by default, one training seed per repeat
on demand (the method's noisy-label option; each architecture is queried at most once per repeat, so this is
one seed's value per query, as in real HPO)."""

from __future__ import annotations

import numpy as np

from weaknas_ray.interfaces import TableOracle


class SeededTableOracle(TableOracle):
    """A table oracle whose search signal can be replaced, once per repeat, by one training seed's value.

    Args:
        search: mean search signal over training seeds, shape ``(n,)``.
        reported: reported metric, shape ``(n,)``.
        cost: optional evaluation cost in seconds, shape ``(n,)``.
        seed_search: per-seed search signal, shape ``(n, seeds)``, NaN where a cell lacks that seed;
            ``None`` makes :meth:`for_repeat` return ``self`` (deterministic labels).
        regret: see :class:`~weaknas_ray.interfaces.Oracle`.
    """

    def __init__(
        self,
        search: np.ndarray,
        reported: np.ndarray,
        cost: np.ndarray | None = None,
        seed_search: np.ndarray | None = None,
        regret: str = "difference",
    ):
        super().__init__(search, reported, cost, regret)
        self.seed_search = None if seed_search is None else np.asarray(seed_search, dtype=np.float64)
        if self.seed_search is not None and self.seed_search.shape[0] != self.search.shape[0]:
            raise ValueError(f"seed_search has {self.seed_search.shape[0]} rows, search has {self.search.shape[0]}")

    def for_repeat(self, seed: int) -> TableOracle:
        """One training seed per architecture, drawn uniformly among that cell's available seeds with
        ``numpy.random.default_rng(seed)``; reported values and costs unchanged."""
        if self.seed_search is None:
            return self
        available = ~np.isnan(self.seed_search)
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, available.sum(axis=1))  # rank among the available seeds, shape (n,)
        column = np.argmax(np.cumsum(available, axis=1) > pick[:, None], axis=1)
        drawn = self.seed_search[np.arange(len(column)), column]
        return SeededTableOracle(drawn, self.reported, self.cost, regret=self.regret)
