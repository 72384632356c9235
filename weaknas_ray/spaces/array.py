"""A search space given directly as a feature array: for tests and for users' own pools."""

from __future__ import annotations

from typing import Any

import numpy as np

from weaknas_ray.exceptions import UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace


class ArraySpace(SearchSpace):
    """A space given directly as a feature array: for tests and for users' own pools.

    Args:
        features: shape ``(n, d)``; converted to float32.
        name: shown in errors and results.
    """

    def __init__(self, features: np.ndarray, name: str = "array"):
        self._features = np.ascontiguousarray(features, dtype=np.float32)
        if self._features.ndim != 2:
            raise ValueError(f"features must be 2-D (n, d), got shape {self._features.shape}")
        self.name = name

    @property
    def features(self) -> np.ndarray:
        return self._features

    def decode(self, index: int) -> int:
        return int(self.check_indices(index)[0])

    def arch_str(self, index: int) -> str:
        return str(self.decode(index))

    def index_of(self, arch: Any) -> int:
        try:
            return int(self.check_indices(int(arch))[0])
        except (TypeError, ValueError) as exc:
            raise UnknownArchitectureError(f"{self.name}: expected an integer index, got {arch!r}") from exc
