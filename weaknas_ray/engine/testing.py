"""Deterministic fakes for engine tests, shipped with the package (like BoTorch's MockModel).

:class:`FixedPredictor` is a linear model whose weights are given, not learned: with one-hot pool
features (``numpy.eye(n)``) its predictions are exactly the given ``(E, n)`` matrix, so acquisition and
selection can be checked against hand-computed values without fitting anything.
:class:`GridSpace` is a tiny product of categorical choices with mutation, for evolution and TPE.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from weaknas_ray.exceptions import NotFittedError, UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace
from weaknas_ray.predictors.base import Predictor


class FixedPredictor(Predictor):
    """Predicts ``weights @ X.T`` whatever it was fitted on; records what ``fit`` received.

    Args:
        weights: shape ``(E, d)``; member ``i`` predicts ``X @ weights[i]``.
        n_members: must equal ``E`` when given (the engine passes it).
    """

    def __init__(self, weights: np.ndarray, n_members: int | None = None):
        self.weights = np.asarray(weights, dtype=np.float32)
        if self.weights.ndim != 2 or (n_members is not None and n_members != self.weights.shape[0]):
            raise ValueError(f"weights must have shape (n_members={n_members}, d), got {self.weights.shape}")
        self.n_members = self.weights.shape[0]

    def fit(self, X: np.ndarray, y: np.ndarray, seed: int) -> FixedPredictor:
        self.X_, self.y_, self.seed_ = np.array(X), np.array(y), int(seed)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not hasattr(self, "seed_"):
            raise NotFittedError("FixedPredictor.predict called before fit")
        return self.weights @ np.asarray(X, dtype=np.float32).T

    def get_state(self) -> dict:
        return {"weights": self.weights, "seed": self.seed_}

    @classmethod
    def from_state(cls, state: dict) -> FixedPredictor:
        model = cls(state["weights"])
        model.seed_ = state["seed"]
        return model


class GridSpace(SearchSpace):
    """Every combination of named categorical choices, one-hot encoded (like NAS-Bench-201's cells).

    Args:
        choices: ``{name: [option, ...]}``; architecture ``i`` is the ``i``-th combination in
            ``itertools.product`` order.
    """

    def __init__(self, choices: dict[str, list], name: str = "grid"):
        self.name = name
        self._choices = {k: list(v) for k, v in choices.items()}
        self._combos = list(itertools.product(*[range(len(v)) for v in self._choices.values()]))
        self._lookup = {c: i for i, c in enumerate(self._combos)}
        codes = np.array(self._combos, dtype=np.int64)
        blocks = [np.eye(len(v), dtype=np.float32)[codes[:, j]] for j, v in enumerate(self._choices.values())]
        self._features = np.ascontiguousarray(np.concatenate(blocks, axis=1))

    @property
    def features(self) -> np.ndarray:
        return self._features

    def decode(self, index: int) -> tuple[int, ...]:
        return self._combos[int(self.check_indices(index)[0])]

    def arch_str(self, index: int) -> str:
        return "|".join(str(v[c]) for v, c in zip(self._choices.values(), self.decode(index)))

    def index_of(self, arch: Any) -> int:
        if isinstance(arch, dict):
            try:
                arch = tuple(self._choices[k].index(arch[k]) for k in self._choices)
            except (KeyError, ValueError) as exc:
                raise UnknownArchitectureError(f"{self.name}: no architecture with params {arch!r}") from exc
        try:
            return self._lookup[tuple(arch)]
        except (KeyError, TypeError) as exc:
            raise UnknownArchitectureError(f"{self.name}: unknown architecture {arch!r}") from exc

    def param_choices(self) -> dict[str, list]:
        return {k: list(v) for k, v in self._choices.items()}

    def params(self, index: int) -> dict[str, Any]:
        return {k: v[c] for (k, v), c in zip(self._choices.items(), self.decode(index))}

    def mutate(self, index: int, rng: np.random.Generator) -> int:
        """Change one uniformly chosen dimension to a different option."""
        combo = list(self.decode(index))
        dim = int(rng.integers(len(combo)))
        n_opts = len(list(self._choices.values())[dim])
        combo[dim] = (combo[dim] + 1 + int(rng.integers(n_opts - 1))) % n_opts if n_opts > 1 else combo[dim]
        return self._lookup[tuple(combo)]
