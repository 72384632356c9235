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

The candidate pool over a list of parameters is :class:`weaknas_ray.spaces.param_space.ParamSpace`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError

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
