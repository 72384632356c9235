"""Typed parameters and the search space they span: hyperparameter spaces, code-defined or from Ray Tune.

Each parameter is one of four kinds, and its kind decides both how a predictor sees it (its feature
columns) and how a peer searches it (TPE and GP model numbers on their scale, only categories as
categories):

- ``categorical``: unordered choices, one-hot (one column per choice);
- ``ordinal``: a finite ordered list of values (e.g. batch sizes 8, 16, 32, 64), one column;
- ``integer``: whole numbers ``low..high`` (both included) in steps of ``step``, one column;
- ``float``: a real interval (optionally on a grid of ``step``, or with a normal prior), one column.

A one-column parameter is encoded into [0, 1] on a log scale where ``log`` is set: given, or for ordinal
and integer parameters decided from the values (all positive and spanning more than a decade, the rule of
Syne Tune's domain conversion). Ordinal values that are not numbers are encoded by their position.

:class:`ParamSpace` is the candidate pool over a list of parameters: every combination when the product is
finite and small enough (row order: the first parameter varies slowest, like nested loops), else a seeded
sample that :meth:`ParamSpace.extend` can grow. Its architectures are plain dicts ``{name: value}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace

KINDS = ("categorical", "ordinal", "integer", "float")
# NOTE: ordinal / integer values spanning more than this ratio (all positive) are encoded on a log scale.
LOG_SPAN = 10.0
# NOTE: the largest grid of one integer / stepped float parameter that is enumerated.
MAX_GRID = 100_000
# NOTE: a float mutation moves by a normal step of this share of the parameter's encoded range.
FLOAT_MUTATION_SD = 0.1


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class Param:
    """One named parameter. Build it with :func:`categorical`, :func:`ordinal`, :func:`integer` or
    :func:`floating`, which check their arguments.

    Raw values (the pool's internal coordinates): the position of the choice for categorical and ordinal
    parameters, the number itself for integer and float ones.
    """

    name: str
    kind: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    normal: tuple[float, float] | None = None  # (mean, sd): a float parameter with a normal prior

    @property
    def width(self) -> int:
        """Feature columns: one per choice for a categorical parameter, else one."""
        return len(self.choices) if self.kind == "categorical" else 1

    @property
    def numeric(self) -> bool:
        """Whether the values are numbers on one scale (every kind but categorical and non-numeric ordinal)."""
        return self.kind in ("integer", "float") or (self.kind == "ordinal" and all(map(_is_number, self.choices)))

    @property
    def scale(self) -> tuple[float, float]:
        """The (log) value range that the encoding maps onto [0, 1] (positions for non-numeric ordinals)."""
        if self.kind == "ordinal" and not self.numeric:
            return 0.0, float(max(len(self.choices) - 1, 1))
        values = np.asarray(self.choices if self.kind == "ordinal" else (self.low, self.high), dtype=np.float64)
        values = np.log(values) if self.log else values
        low, high = float(values.min()), float(values.max())
        return low, (high if high > low else low + 1.0)

    def grid(self) -> np.ndarray | None:
        """Every raw value where finitely many (at most :data:`MAX_GRID`), ascending; else ``None``."""
        if self.kind in ("categorical", "ordinal"):
            return np.arange(len(self.choices), dtype=np.float64)
        if self.normal is not None or self.step is None:
            return None
        first, last = math.ceil(self.low / self.step - 1e-9), math.floor(self.high / self.step + 1e-9)
        return np.arange(first, last + 1) * self.step if last - first < MAX_GRID else None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` raw values drawn from the parameter's prior: uniform over choices, uniform or log-uniform
        over a range (rounded to ``step``), normal where given."""
        if self.kind in ("categorical", "ordinal"):
            return rng.integers(len(self.choices), size=n).astype(np.float64)
        if self.normal is not None:
            x = rng.normal(self.normal[0], self.normal[1], size=n)
        elif self.log:
            x = np.exp(rng.uniform(np.log(self.low), np.log(self.high + (1 if self.kind == "integer" else 0)), size=n))
        else:
            x = rng.uniform(self.low, self.high + (1 if self.kind == "integer" else 0), size=n)
        if self.kind == "integer":
            x = np.floor(x)
        if self.step is not None:
            x = np.round(x / self.step) * self.step
        return np.clip(x, self.low, self.high) if self.normal is None else x

    def raw(self, value: Any) -> float:
        """The raw value of a user's value.

        Raises:
            UnknownArchitectureError: not one of the choices, or outside the range.
        """
        if self.kind in ("categorical", "ordinal"):
            for position, choice in enumerate(self.choices):
                if choice == value or (_is_number(value) and _is_number(choice) and math.isclose(value, choice)):
                    return float(position)
            raise UnknownArchitectureError(f"{self.name}: {value!r} is not one of {list(self.choices)}")
        if not _is_number(value):
            raise UnknownArchitectureError(f"{self.name}: expected a number, got {value!r}")
        if self.normal is None and not self.low <= value <= self.high:
            raise UnknownArchitectureError(f"{self.name}: {value!r} is outside {self.low}..{self.high}")
        return float(value)

    def value(self, raw: float) -> Any:
        """The user's value of a raw value (a choice, an int or a float)."""
        if self.kind in ("categorical", "ordinal"):
            return self.choices[int(raw)]
        return int(round(raw)) if self.kind == "integer" else float(raw)

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """Feature columns ``(n, width)`` float32 of raw values ``(n,)``."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.kind == "categorical":
            return np.eye(len(self.choices), dtype=np.float32)[raw.astype(np.int64)]
        if self.normal is not None:
            from scipy.special import ndtr

            return ndtr((raw - self.normal[0]) / self.normal[1])[:, None].astype(np.float32)
        x = raw
        if self.kind == "ordinal":
            x = np.asarray(self.choices, dtype=np.float64)[raw.astype(np.int64)] if self.numeric else raw
        if self.log:
            x = np.log(x)
        low, high = self.scale
        return np.clip((x - low) / (high - low), 0.0, 1.0)[:, None].astype(np.float32)

    def steps(self, a: np.ndarray, b: float) -> np.ndarray:
        """How far raw values ``a`` are from raw value ``b``: 0/1 for a category, grid steps for an ordinal or
        integer parameter, the share of the encoded range for a float."""
        if self.kind == "categorical":
            return (a != b).astype(np.float64)
        if self.kind == "ordinal":
            return np.abs(a - b)
        if self.kind == "integer":
            return np.abs(a - b) / (self.step or 1)
        return np.abs(self.encode(a)[:, 0].astype(np.float64) - float(self.encode(np.array([b]))[0, 0]))

    def mutate(self, raw: float, rng: np.random.Generator) -> float:
        """A neighbouring raw value: another category (uniformly), the next ordinal value or integer step
        up or down, or a float moved by a normal step of :data:`FLOAT_MUTATION_SD` of its range."""
        if self.kind == "categorical":
            return float((int(raw) + int(rng.integers(1, len(self.choices)))) % len(self.choices))
        if self.kind in ("ordinal", "integer"):
            step = 1.0 if self.kind == "ordinal" else float(self.step or 1)
            top = len(self.choices) - 1 if self.kind == "ordinal" else self.high
            low = 0.0 if self.kind == "ordinal" else self.low
            moves = [m for m in (raw - step, raw + step) if low <= m <= top]
            return float(moves[int(rng.integers(len(moves)))]) if moves else raw
        low, high = self.scale
        x = (np.log(raw) if self.log else raw) + rng.normal(0.0, FLOAT_MUTATION_SD) * (high - low)
        x = float(np.clip(x, low, high))
        x = math.exp(x) if self.log else x
        return float(np.round(x / self.step) * self.step) if self.step else x


def _auto_log(values: Sequence[float], log: bool | None) -> bool:
    """The log rule: all positive and spanning more than :data:`LOG_SPAN`, unless ``log`` is given."""
    if log is not None:
        return bool(log)
    return bool(min(values) > 0 and max(values) / min(values) > LOG_SPAN)


def categorical(name: str, choices: Sequence[Any]) -> Param:
    """Unordered choices, one-hot encoded.

    Raises:
        ConfigError: no choice, or a choice repeated.
    """
    choices = tuple(choices)
    if not choices:
        raise ConfigError(f"parameter {name!r}: a categorical parameter needs at least one choice")
    if len(set(map(repr, choices))) != len(choices):
        raise ConfigError(f"parameter {name!r}: choices {list(choices)} repeat a value")
    return Param(name, "categorical", choices)


def ordinal(name: str, values: Sequence[Any], log: bool | None = None) -> Param:
    """An ordered list of values, one column. Numbers are sorted and encoded by value (log-scaled by the
    log rule unless ``log`` is given); other values keep their order and are encoded by position.

    Raises:
        ConfigError: no value, a value repeated, or ``log`` for values that are not all positive numbers.
    """
    values = tuple(values)
    param = categorical(name, values)  # the same checks
    numeric = all(map(_is_number, values))
    if numeric:
        values = tuple(sorted(values))
    if log and not (numeric and min(values) > 0):
        raise ConfigError(f"parameter {name!r}: log scale needs positive numbers, got {list(values)}")
    use_log = _auto_log(values, log) if numeric and len(values) > 1 else False
    return Param(param.name, "ordinal", values, log=use_log)


def integer(name: str, low: int, high: int, log: bool | None = None, step: int = 1) -> Param:
    """Whole numbers ``low..high`` (both included) in steps of ``step``, one column (log-scaled by the log
    rule unless ``log`` is given).

    Raises:
        ConfigError: ``high < low``, ``step < 1``, or ``log`` with ``low <= 0``.
    """
    if not (_is_number(low) and _is_number(high)) or high < low:
        raise ConfigError(f"parameter {name!r}: need integers low <= high, got {low!r}, {high!r}")
    if step < 1:
        raise ConfigError(f"parameter {name!r}: step must be >= 1, got {step!r}")
    if log and low <= 0:
        raise ConfigError(f"parameter {name!r}: log scale needs low > 0, got {low}")
    return Param(name, "integer", low=int(low), high=int(high), log=_auto_log((low, high), log), step=step)


def floating(
    name: str, low: float | None = None, high: float | None = None, log: bool = False, step: float | None = None,
    normal: tuple[float, float] | None = None,
) -> Param:  # fmt: skip
    """A real interval ``[low, high]`` (log-scaled when ``log``), optionally on a grid of ``step``; or, with
    ``normal=(mean, sd)`` instead of bounds, the real line with a normal prior (encoded by its CDF).

    Raises:
        ConfigError: missing or inverted bounds, ``log`` with ``low <= 0``, a non-positive ``step`` or sd.
    """
    if normal is not None:
        if normal[1] <= 0:
            raise ConfigError(f"parameter {name!r}: a normal prior needs sd > 0, got {normal[1]}")
        return Param(name, "float", normal=(float(normal[0]), float(normal[1])), step=step)
    if low is None or high is None or not high >= low:
        raise ConfigError(f"parameter {name!r}: need low <= high, got {low!r}, {high!r}")
    if log and low <= 0:
        raise ConfigError(f"parameter {name!r}: log scale needs low > 0, got {low}")
    if step is not None and step <= 0:
        raise ConfigError(f"parameter {name!r}: step must be > 0, got {step!r}")
    return Param(name, "float", low=float(low), high=float(high), log=bool(log), step=step)


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
