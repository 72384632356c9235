"""The bottom layer: the interfaces every other layer speaks, importing nothing of the project but its
exceptions (docs/architecture.md).

:class:`SearchSpace` (a pool of architectures), :class:`Oracle` with its :class:`Evaluation` (what an
architecture scores), :class:`TableOracle` (an oracle over in-memory arrays) and :class:`Benchmark` (a
space with its oracle, what a benchmark loader returns).

A search space is a finite candidate pool: architecture ``i`` is row ``i`` of ``features``. The
architecture index is the identity everywhere; strings, tuples and adjacency matrices appear only at
the edges (``decode``, ``arch_str``, ``index_of``).

An :class:`Oracle` answers "what is the search signal / reported metric of architecture i". For a
tabular benchmark it is a table lookup; for OFA it may be a supernet evaluated on a GPU. The search
signal is maximised (validation accuracy); the reported metric is what results tables show (test
accuracy). An oracle with per-seed labels can be made noisy once per repeat with :meth:`Oracle.for_repeat`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weaknas_ray.exceptions import UnknownArchitectureError

# NOTE: how a reported value's distance to the optimum is measured (Oracle.regret).
REGRETS = ("difference", "log")


class SearchSpace(ABC):
    """A finite pool of architectures with one float32 feature row each.

    Subclasses set ``name`` and implement ``features``, ``decode`` and ``arch_str``.
    """

    name: str = "space"

    @property
    @abstractmethod
    def features(self) -> np.ndarray:
        """The pool encoding, float32, C-contiguous, shape ``(n_architectures, n_features)``."""

    @abstractmethod
    def decode(self, index: int) -> Any:
        """The architecture at ``index`` in the space's natural form (tuple of op ids, cell, config dict)."""

    @abstractmethod
    def arch_str(self, index: int) -> str:
        """A human-readable, parseable string for the architecture at ``index``."""

    def index_of(self, arch: Any) -> int:
        """The pool index of ``arch`` (any form ``decode`` returns, or an ``arch_str``).

        Raises:
            UnknownArchitectureError: ``arch`` is not in the space.
        """
        raise UnknownArchitectureError(f"{self.name}: looking up architectures is not supported (got {arch!r})")

    def param_choices(self) -> dict[str, list] | None:
        """Named categorical dimensions (e.g. NAS-Bench-201's six edges -> five ops each), for TPE and
        Tune spaces. ``None`` where the space is not a product of categorical choices."""
        return None

    def parameter_table(self) -> tuple[list, np.ndarray] | None:
        """The space as typed parameters, for peers that search parameters (TPE, GP): a list of
        :class:`weaknas_ray.spaces.params.Param` and every architecture's raw values, shape
        ``(len(self), len(params))``. ``None`` (the default) where the space has none; a space of
        ``param_choices`` is searched as categories then."""
        return None

    def params(self, index: int) -> dict[str, Any]:
        """The architecture at ``index`` as named fields a trainable can use (keys of
        ``param_choices`` where defined)."""
        return {"arch": self.arch_str(index)}

    def mutate(self, index: int, rng: np.random.Generator) -> int:
        """One random single-step mutation of architecture ``index`` (regularised evolution).
        Default: :meth:`nearest`, for spaces without a mutation of their own."""
        return self.nearest(index, rng)

    def nearest(self, index: int, rng: np.random.Generator) -> int:
        """One of :meth:`neighbours` drawn uniformly: the stand-in for a mutation whose result is not in
        the pool (a partial table, a sampled pool, a Tune domain that excludes it); ``index`` itself in a
        pool of one."""
        near = self.neighbours(index)
        return int(rng.choice(near)) if near.size else int(index)

    def neighbours(self, index: int) -> np.ndarray:
        """The pool architectures other than ``index`` at the smallest :meth:`distances` from it, as sorted
        int64 indices (empty for a pool of one); WeakNAS's local stall escape searches them."""
        i = int(self.check_indices(index)[0])
        distance = self.distances(i).astype(np.float64)
        distance[i] = np.inf
        return np.flatnonzero(distance == distance.min()) if distance.size > 1 else np.empty(0, dtype=np.int64)

    def distances(self, index: int) -> np.ndarray:
        """How far every pool architecture is from architecture ``index``, shape ``(len(self),)``. Default:
        the L1 feature distance; for one-hot encodings twice the number of changed choices (NAS-Bench-201:
        one-edge edits are at 2)."""
        return np.abs(self.features - self.features[index]).sum(axis=1, dtype=np.float64)

    def describe(self, indices: np.ndarray) -> dict[str, list]:
        """Extra per-architecture result columns (e.g. OFA's ``flops_m``), one list entry per index.
        Default: none."""
        return {}

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def check_indices(self, indices: Any) -> np.ndarray:
        """``indices`` as an int64 array, every value checked to lie in ``[0, len(self))``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        bad = idx[(idx < 0) | (idx >= len(self))]
        if bad.size:
            raise UnknownArchitectureError(
                f"{self.name}: index {int(bad[0])} is out of range; the pool has {len(self)} architectures "
                f"(valid indices 0..{len(self) - 1})"
            )
        return idx


@dataclass(frozen=True)
class Evaluation:
    """What an oracle returns for a batch of indices: arrays of shape ``(batch,)``, float64.

    ``search`` is the signal the search maximises (validation accuracy, in percent for the NAS benches);
    ``reported`` the metric results show (test accuracy); ``cost`` a simulated evaluation cost in seconds
    where the benchmark has one, else ``None``; ``extra`` more measurements by name (e.g. ``top5``), each
    a result column.
    """

    search: np.ndarray
    reported: np.ndarray
    cost: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


class Oracle(ABC):
    """Evaluates architectures of one space by index. Higher values are better.

    ``regret`` says how results measure the distance of a reported value ``v`` to the optimum ``v*``:
    ``"difference"`` (``v* - v``, e.g. accuracy points) or ``"log"`` (``log(-v) - log(-v*)``, for a
    negated loss: the regret in log(loss) of HPO benchmarks).
    """

    regret: str = "difference"

    @abstractmethod
    def evaluate(self, indices: np.ndarray) -> Evaluation:
        """Values for ``indices`` (int64, shape ``(batch,)``)."""

    @property
    def optimum(self) -> tuple[float, float] | None:
        """``(best search value, best reported value)`` over the whole pool, where known (tabular only)."""
        return None

    @property
    def optimum_indices(self) -> np.ndarray | None:
        """Indices of the architectures reaching the best reported value, where known (the target of
        "queries until the global optimum")."""
        return None

    @property
    def search_optimum_indices(self) -> np.ndarray | None:
        """Indices of the architectures reaching the best search value, where known. It can differ from
        :attr:`optimum_indices` (NAS-Bench-201 ImageNet16-120: the best-validation cell is not a test optimum)."""
        return None

    @property
    def search_stats(self) -> tuple[float, float] | None:
        """``(mean, population std)`` of the search signal over the whole pool, where known (tabular
        only): what the published code z-scored its targets by."""
        return None

    def for_repeat(self, seed: int) -> Oracle:
        """The oracle one repeat sees. Noisy-label oracles draw their per-architecture seed here;
        deterministic oracles return ``self``."""
        return self


class TableOracle(Oracle):
    """An oracle over in-memory arrays: the base of tabular benchmarks and the fake of unit tests.

    Args:
        search: search signal per architecture, shape ``(n,)``.
        reported: reported metric per architecture, shape ``(n,)``; defaults to ``search``.
        cost: optional evaluation cost per architecture, shape ``(n,)``.
        regret: ``"difference"`` or ``"log"`` (see :class:`Oracle`).
    """

    def __init__(
        self, search: np.ndarray, reported: np.ndarray | None = None, cost: np.ndarray | None = None,
        regret: str = "difference",
    ):  # fmt: skip
        if regret not in REGRETS:
            raise ValueError(f"regret must be one of {REGRETS}, got {regret!r}")
        self.regret = regret
        self.search = np.asarray(search, dtype=np.float64)
        self.reported = self.search if reported is None else np.asarray(reported, dtype=np.float64)
        self.cost = None if cost is None else np.asarray(cost, dtype=np.float64)
        if self.reported.shape != self.search.shape:
            raise ValueError(f"search has shape {self.search.shape} but reported has {self.reported.shape}")

    def evaluate(self, indices: np.ndarray) -> Evaluation:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.search.shape[0]):
            raise UnknownArchitectureError(
                f"index out of range: got {idx.min()}..{idx.max()}, the table has {self.search.shape[0]} rows"
            )
        return Evaluation(
            self.search[idx], self.reported[idx], None if self.cost is None else self.cost[idx]
        )

    @property
    def optimum(self) -> tuple[float, float]:
        return float(self.search.max()), float(self.reported.max())

    @property
    def optimum_indices(self) -> np.ndarray:
        return np.flatnonzero(self.reported == self.reported.max())

    @property
    def search_optimum_indices(self) -> np.ndarray:
        return np.flatnonzero(self.search == self.search.max())

    @property
    def search_stats(self) -> tuple[float, float]:
        return float(self.search.mean()), float(self.search.std())


@dataclass
class Benchmark:
    """A search space with its oracle, as one config section loads them; ``notes`` are facts a run's
    summary states (e.g. that the reported metric is the validation accuracy)."""

    name: str  # e.g. "nasbench201/cifar10"
    space: SearchSpace
    oracle: Oracle
    notes: tuple[str, ...] = ()
