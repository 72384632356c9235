"""scikit-learn's MLPRegressor with the published WeakNAS settings: the faithful reference predictor.

The published code fits ``MLPRegressor(hidden_layer_sizes=(1000,) * 4, max_iter=100)`` on float64 data;
so does this, one estimator per ensemble member with ``random_state = seed + i``. It is slow (numpy,
one member at a time) and exists to check :class:`~weaknas_ray.predictors.mlp.MLPEnsemble` against.
scikit-learn is an optional extra, imported on first fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from weaknas_ray.predictors._sklearn_ensemble import SklearnEnsemble, import_sklearn


class SklearnMLP(SklearnEnsemble):
    """E scikit-learn MLPRegressors (ReLU, Adam, L2 ``alpha``, batch ``min(200, n)``, early stop on
    training loss), trained in float64 as in the published code.

    Args:
        n_members: ensemble size E.
        hidden: hidden layer widths (published: four of 1000).
        max_epochs: sklearn's ``max_iter`` (published ``mlp_iter`` = 100).
        lr: ``learning_rate_init``.
        alpha: L2 penalty.
    """

    name = "sklearn-mlp"
    dtype = np.float64

    def __init__(
        self,
        n_members: int = 1,
        hidden: Sequence[int] = (1000, 1000, 1000, 1000),
        max_epochs: int = 100,
        lr: float = 1e-3,
        alpha: float = 1e-4,
    ) -> None:
        super().__init__(n_members)
        self.hidden = tuple(int(h) for h in hidden)
        self.max_epochs = int(max_epochs)
        self.lr = float(lr)
        self.alpha = float(alpha)

    def get_params(self) -> dict:
        return {"n_members": self.n_members, "hidden": self.hidden, "max_epochs": self.max_epochs, "lr": self.lr, "alpha": self.alpha}

    def _make_estimator(self, seed: int) -> Any:
        neural_network = import_sklearn("neural_network", self.name)
        return neural_network.MLPRegressor(
            hidden_layer_sizes=self.hidden, max_iter=self.max_epochs, learning_rate_init=self.lr,
            alpha=self.alpha, random_state=seed,
        )

