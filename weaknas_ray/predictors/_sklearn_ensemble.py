"""E independent scikit-learn regressors behind the Predictor interface (member ``i`` seeded ``seed + i``)."""

from __future__ import annotations

import importlib
import pickle
import warnings
from abc import abstractmethod
from typing import Any

import numpy as np

from weaknas_ray.exceptions import ConfigError
from weaknas_ray.predictors._checks import check_fit_data, check_fitted, check_members, check_predict_data
from weaknas_ray.predictors.base import Predictor


def import_sklearn(module: str, where: str) -> Any:
    """``sklearn.<module>``, or a ConfigError that says how to install the optional extra."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"predictor {where!r} needs scikit-learn, which is not installed; "
            "install it with `pip install scikit-learn` (a dependency of this package)"
        ) from exc


class SklearnEnsemble(Predictor):
    """Base of the scikit-learn backed predictors: fit E estimators, stack their predictions.

    Subclasses set ``name`` and implement :meth:`_make_estimator`; ``dtype`` is what the estimators see.
    """

    name = "sklearn"
    dtype: type = np.float32

    def __init__(self, n_members: int = 1) -> None:
        self.n_members = check_members(n_members, self.name)

    @abstractmethod
    def _make_estimator(self, seed: int) -> Any:
        """A new unfitted scikit-learn regressor whose randomness is ``random_state=seed``."""

    def fit(self, X: np.ndarray, y: np.ndarray, seed: int) -> SklearnEnsemble:
        """Fit member ``i`` on ``(X (n, d), y (n,))`` with ``random_state = seed + i``; returns self."""
        X, y = check_fit_data(X, y, self.name)
        X, y = X.astype(self.dtype), y.astype(self.dtype)
        convergence = import_sklearn("exceptions", self.name).ConvergenceWarning
        with warnings.catch_warnings():
            # NOTE: stopping at the epoch budget is the method, not a failure worth a warning per fit.
            warnings.simplefilter("ignore", convergence)
            self.estimators_ = [self._make_estimator(seed + i).fit(X, y) for i in range(self.n_members)]
        self.n_features_in_ = X.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of every member for ``X (m, d)``, float32 ``(E, m)``."""
        X = check_predict_data(X, getattr(self, "n_features_in_", None), self.name).astype(self.dtype)
        return np.stack([est.predict(X) for est in self.estimators_]).astype(np.float32)

    def get_state(self) -> dict:
        """The fitted estimators as pickle bytes plus constructor parameters (plain Python values)."""
        check_fitted(getattr(self, "n_features_in_", None), f"{self.name}.get_state")
        return {"params": self.get_params(), "estimators": pickle.dumps(self.estimators_), "n_features_in": self.n_features_in_}

    @classmethod
    def from_state(cls, state: dict) -> SklearnEnsemble:
        """Rebuild from :meth:`get_state` output (only unpickle states this project produced)."""
        model = cls(**state["params"])
        model.estimators_ = pickle.loads(state["estimators"])
        model.n_features_in_ = state["n_features_in"]
        return model

    @abstractmethod
    def get_params(self) -> dict:
        """Constructor arguments, so :meth:`from_state` can rebuild the predictor."""
