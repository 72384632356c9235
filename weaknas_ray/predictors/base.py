"""The predictor interface: scikit-learn conventions, no Ray, no file I/O.

``__init__`` stores parameters only; ``fit`` returns ``self``; fitted attributes end in ``_``;
``predict`` before ``fit`` raises :class:`~weaknas_ray.exceptions.NotFittedError`.
Every predictor is an ensemble of ``n_members >= 1`` members (a single model is an ensemble of one),
so acquisition code has one shape to handle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

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
