"""The predictor interface: scikit-learn conventions, no Ray, no file I/O.

``__init__`` stores parameters only; ``fit`` returns ``self``; fitted attributes end in ``_``;
``predict`` before ``fit`` raises :class:`~weaknas_ray.exceptions.NotFittedError`.
Every predictor is an ensemble of ``n_members >= 1`` members (a single model is an ensemble of one),
so acquisition code has one shape to handle.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

# NOTE: predictors evaluate pool rows in blocks of this many rows starting at row 0, so scoring a pool
# split at multiples of it (the Ray runner's chunks) runs the very same matrix products as one
# whole-pool pass and gives bit-identical predictions, hence exactly the same selection.
PREDICT_BLOCK_ROWS = 4096


class Predictor(ABC):
    """A regressor from architecture features to (z-scored) accuracy.

    Attributes:
        n_members: ensemble size E (1 for a plain model).
    """

    n_members: int = 1

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, seed: int) -> Predictor:
        """Train from scratch on ``X`` (float32, ``(n, d)``) and ``y`` (``(n,)``).

        ``seed`` seeds member ``i`` with ``seed + i`` (the method's per-iteration seeding: the engine
        passes ``seed + iteration * E``). Returns ``self``.
        """

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for ``X`` (``(m, d)``), float32 array of shape ``(E, m)``."""

    def get_state(self) -> dict:
        """Fitted state as plain numpy arrays / Python values (picklable, no object refs), so chunk tasks
        can rebuild the predictor elsewhere with :meth:`from_state`."""
        raise NotImplementedError(f"{type(self).__name__} cannot be shipped to chunk tasks")

    @classmethod
    def from_state(cls, state: dict) -> Predictor:
        """Rebuild a fitted predictor from :meth:`get_state` output (on CPU)."""
        raise NotImplementedError(f"{cls.__name__} cannot be rebuilt from state")

    def members(self, start: int, stop: int) -> Predictor:
        """An unfitted predictor of members ``start .. stop - 1`` of this ensemble: the same parameters with
        ``n_members = stop - start``. Fitted with ``seed + start`` it holds exactly those members (member
        ``i`` draws from ``seed + i``), so slices fitted apart (the Ray runner's member tasks) and joined
        with :class:`JoinedEnsemble` predict what the whole ensemble fitted at once predicts."""
        if not 0 <= start < stop <= self.n_members:
            raise ValueError(f"members({start}, {stop}): expected 0 <= start < stop <= {self.n_members}")
        part = copy.copy(self)  # parameters only: __init__ stores them, fit() sets the fitted attributes
        part.n_members = stop - start
        return part


def member_slices(n_members: int, parts: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: ``n_members`` split into ``min(parts, n_members)`` contiguous slices whose
    sizes differ by at most one, larger first."""
    parts = max(1, min(int(parts), n_members))
    size, extra = divmod(n_members, parts)
    bounds, start = [], 0
    for p in range(parts):
        stop = start + size + (p < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


class JoinedEnsemble(Predictor):
    """Fitted member slices of one ensemble (:meth:`Predictor.members`) as one predictor: predictions are
    the slices' predictions stacked in member order.

    Args:
        parts: fitted predictors, slice order.
    """

    def __init__(self, parts: Sequence[Predictor]):
        if not parts:
            raise ValueError("JoinedEnsemble: got no member slices")
        self.parts = list(parts)
        self.n_members = sum(p.n_members for p in self.parts)

    def fit(self, X: np.ndarray, y: np.ndarray, seed: int) -> JoinedEnsemble:
        start = 0
        for part in self.parts:
            part.fit(X, y, seed + start)
            start += part.n_members
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(p.predict(X)) for p in self.parts])

    def get_state(self) -> dict:
        return {"parts": [(type(p), p.get_state()) for p in self.parts]}

    @classmethod
    def from_state(cls, state: dict) -> JoinedEnsemble:
        return cls([part_cls.from_state(part) for part_cls, part in state["parts"]])
