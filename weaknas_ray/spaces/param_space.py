"""The candidate pool over typed parameters (:mod:`weaknas_ray.spaces.params`), and any space seen as typed
parameters for the peers that search parameters (TPE, GP).

:class:`ParamSpace` holds every combination when the product is finite and small enough (row order: the
first parameter varies slowest, like nested loops), else a seeded sample that :meth:`ParamSpace.extend`
can grow. Its architectures are plain dicts ``{name: value}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace
from weaknas_ray.spaces.params import Param, categorical


class ParamSpace(SearchSpace):
    """The candidate pool over typed parameters (see the module docstring).

    Args:
        params: the parameters, names distinct.
        pool_size: the most candidates enumerated; a larger or infinite product is sampled, this many
            seeded draws (duplicates dropped). ``None``: enumerate every combination (the product must be
            finite).
        seed: seed of the draws.
        name: shown in errors and results; by default ``params[<n>, all|sampled <size>]``.
        rows: instead of enumerating or sampling, exactly these candidates: raw values, shape
            ``(n, len(params))``, distinct (another space's :meth:`~weaknas_ray.interfaces.SearchSpace.parameter_table`).

    Raises:
        ConfigError: no parameter, names repeated, a ``pool_size`` below 1, or ``None`` with an infinite product.
    """

    def __init__(
        self, params: Sequence[Param], pool_size: int | None = None, seed: int = 0, name: str | None = None,
        rows: np.ndarray | None = None,
    ):  # fmt: skip
        self.parameters = list(params)
        if not self.parameters:
            raise ConfigError("parameter space: no parameter")
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ConfigError(f"parameter space: names repeat in {names}")
        if pool_size is not None and int(pool_size) < 1:
            raise ConfigError(f"parameter space: pool_size must be at least 1, got {pool_size}")
        grids = [p.grid() for p in self.parameters]
        finite = all(g is not None for g in grids)
        size = float(np.prod([len(g) for g in grids], dtype=np.float64)) if finite else math.inf
        if pool_size is None and not finite:
            raise ConfigError("parameter space: a float range without a step has no finite pool; give pool_size")
        self.pool_size, self.seed = (int(size) if pool_size is None else int(pool_size)), int(seed)
        self.enumerated = size <= self.pool_size
        self._raw = np.empty((0, len(self.parameters)))
        self._rows: dict[tuple, int] = {}
        self._features = np.empty((0, sum(p.width for p in self.parameters)), dtype=np.float32)
        if rows is not None:
            self.enumerated = False
            if self._append(np.asarray(rows, dtype=np.float64)) != len(rows):
                raise ConfigError("parameter space: the given rows repeat a candidate")
        elif self.enumerated:
            mesh = np.meshgrid(*grids, indexing="ij")
            self._append(np.stack([m.reshape(-1) for m in mesh], axis=1))
        else:
            self.extend(self.pool_size)
        self.name = name or f"params[{len(self.parameters)}, {'all' if self.enumerated else 'sampled'} {len(self)}]"

    @property
    def features(self) -> np.ndarray:
        return self._features

    def parameter_table(self) -> tuple[list[Param], np.ndarray]:
        return self.parameters, self.raw

    @property
    def raw(self) -> np.ndarray:
        """The pool's raw values, float64 ``(n, n_parameters)`` (see :class:`Param`); read-only view."""
        view = self._raw.view()
        view.setflags(write=False)
        return view

    def extend(self, n: int) -> int:
        """Draw ``n`` more candidates (seeded by the pool's size), keeping the new distinct ones; returns
        how many were added (none for an enumerated pool, which holds every candidate)."""
        if self.enumerated or n <= 0:
            return 0
        rng = np.random.default_rng([self.seed, len(self._raw)])
        return self._append(np.stack([p.sample(int(n), rng) for p in self.parameters], axis=1))

    def _append(self, raw: np.ndarray, check: bool = False) -> int:
        keep = []
        for row in raw:
            key = tuple(row.tolist())
            if key not in self._rows:
                if check and self.enumerated:
                    raise UnknownArchitectureError(f"{self.name}: {self._values(row)} is outside the search space")
                self._rows[key] = len(self._raw) + len(keep)
                keep.append(row)
        if keep:
            new = np.asarray(keep)
            self._raw = np.concatenate([self._raw, new])
            columns = [p.encode(new[:, j]) for j, p in enumerate(self.parameters)]
            self._features = np.ascontiguousarray(np.concatenate([self._features, np.concatenate(columns, axis=1)]))
        return len(keep)

    def _values(self, row: np.ndarray) -> dict[str, Any]:
        return {p.name: p.value(raw) for p, raw in zip(self.parameters, row)}

    def raw_row(self, values: dict[str, Any]) -> np.ndarray:
        """The raw row of ``{name: value}`` (every parameter named).

        Raises:
            UnknownArchitectureError: a parameter missing, or a value outside its parameter.
        """
        missing = [p.name for p in self.parameters if p.name not in values]
        if missing:
            raise UnknownArchitectureError(f"{self.name}: {values!r} has no value for {missing}")
        return np.asarray([p.raw(values[p.name]) for p in self.parameters], dtype=np.float64)

    def add(self, values: dict[str, Any]) -> int:
        """The index of ``values`` (e.g. a user's starting point), appended to a sampled pool when new.

        Raises:
            UnknownArchitectureError: outside the parameters, or (enumerated pool) not in the pool.
        """
        row = self.raw_row(values)
        self._append(row[None, :], check=True)
        return self._rows[tuple(row.tolist())]

    def decode(self, index: int) -> dict[str, Any]:
        """The candidate at ``index`` as ``{name: value}``."""
        return self._values(self._raw[self.check_indices(index)[0]])

    def arch_str(self, index: int) -> str:
        return ",".join(f"{key}={value!r}" for key, value in self.decode(index).items())

    def params(self, index: int) -> dict[str, Any]:
        return self.decode(index)

    def index_of(self, arch: Any) -> int:
        """The index of ``{name: value}`` or of an :meth:`arch_str`.

        Raises:
            UnknownArchitectureError: not in the pool.
        """
        if isinstance(arch, str):
            for index in range(len(self)):
                if self.arch_str(index) == arch:
                    return index
            raise UnknownArchitectureError(f"{self.name}: no candidate {arch!r}")
        if not isinstance(arch, dict):
            raise UnknownArchitectureError(f"{self.name}: expected a dict of parameter values, got {arch!r}")
        key = tuple(self.raw_row(arch).tolist())
        if key not in self._rows:
            raise UnknownArchitectureError(f"{self.name}: {arch!r} is not in the candidate pool")
        return self._rows[key]

    def closest(self, values: dict[str, Any]) -> int:
        """The index of ``values`` where it is in the pool, else of the candidate nearest to it (fewest
        grid steps, see :meth:`distances`): where a peer's suggestion of a float lands in a sampled pool."""
        row = self.raw_row(values)
        found = self._rows.get(tuple(row.tolist()))
        return found if found is not None else int(np.argmin(self._distance_to(row)))

    def param_choices(self) -> dict[str, list] | None:
        """Every value per parameter, for an enumerated pool (``None`` for a sampled one)."""
        if not self.enumerated:
            return None
        return {p.name: [p.value(raw) for raw in p.grid()] for p in self.parameters}

    def distances(self, index: int) -> np.ndarray:
        """Per pool candidate, the sum over parameters of :meth:`Param.steps` from candidate ``index``:
        changed categories, ordinal or integer grid steps, the share of a float's range. The nearest
        other candidates of an enumerated pool are then the one-step edits."""
        return self._distance_to(self._raw[self.check_indices(index)[0]])

    def _distance_to(self, row: np.ndarray) -> np.ndarray:
        return sum(p.steps(self._raw[:, j], row[j]) for j, p in enumerate(self.parameters))

    def mutate(self, index: int, rng: np.random.Generator) -> int:
        """One parameter (chosen uniformly among those with more than one value) moved to a neighbouring
        value (:meth:`Param.mutate`); a mutant not in the pool is replaced by the candidate closest to it."""
        row = self._raw[self.check_indices(index)[0]].copy()
        movable = [j for j, p in enumerate(self.parameters) if p.grid() is None or len(p.grid()) > 1]
        if not movable:
            return self.nearest(index, rng)
        j = movable[int(rng.integers(len(movable)))]
        row[j] = self.parameters[j].mutate(row[j], rng)
        found = self._rows.get(tuple(row.tolist()))
        if found is not None and found != index:
            return found
        distance = self._distance_to(row)
        distance[index] = np.inf
        return int(np.argmin(distance))


class ParamView:
    """Any space seen as typed parameters, what TPE and GP search: its
    :meth:`~weaknas_ray.interfaces.SearchSpace.parameter_table` (a :class:`ParamSpace`, OFA's genes,
    NAS-Bench-101's edges and ops), else its named categorical fields (``param_choices``, e.g.
    NAS-Bench-201's edges) as categorical parameters.

    Args:
        space: the space.

    Raises:
        ConfigError: the space has neither (e.g. a plain feature array).
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self.table: ParamSpace | None = None
        table = space.parameter_table()
        if isinstance(space, ParamSpace):
            self.table = space
        elif table is not None:
            self.table = ParamSpace(table[0], rows=table[1], name=f"{space.name} parameters")
        if self.table is not None:
            self.parameters = self.table.parameters
            return
        choices = space.param_choices()
        if not choices:
            raise ConfigError(
                f"space {space.name!r} has neither typed parameters nor named categorical dimensions "
                "(param_choices() is empty)"
            )
        self.parameters = [categorical(key, values) for key, values in choices.items()]

    def values(self, index: int) -> dict[str, Any]:
        """``{name: value}`` of pool architecture ``index``."""
        if self.table is not None:
            return self.table.decode(index)
        params = self.space.params(index)
        return {p.name: params[p.name] for p in self.parameters}

    def index(self, values: dict[str, Any]) -> int:
        """The pool index of ``values``: the closest candidate where the values name none (a sampled pool,
        a combination of genes or edges that is not a pool architecture)."""
        if self.table is not None:
            return self.table.closest(values)
        return self.space.index_of(values)
