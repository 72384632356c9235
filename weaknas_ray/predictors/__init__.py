"""Predictors by name. ``make_predictor(name, **params)`` is the one way configs build them.

Names: ``mlp`` (default, torch, batched ensemble), ``sklearn-mlp`` (scikit-learn's MLPRegressor with
the published settings, the faithful reference), ``gbt`` (gradient-boosted trees).
"""

from __future__ import annotations

import importlib
from typing import Any

from weaknas_ray.arguments import check_arguments
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.predictors.base import Predictor

# NOTE: lazy "module:class" targets keep torch and scikit-learn out of `import weaknas_ray.predictors`.
PREDICTORS: dict[str, str] = {
    "mlp": "weaknas_ray.predictors.mlp:MLPEnsemble",
    "sklearn-mlp": "weaknas_ray.predictors.sklearn_mlp:SklearnMLP",
    "gbt": "weaknas_ray.predictors.gbt:GradientBoostedTrees",
}


def predictor_class(name: str) -> type[Predictor]:
    """The class registered as ``name``; raises ConfigError listing the valid names."""
    try:
        target = PREDICTORS[name]
    except KeyError:
        raise ConfigError(f"predictor: unknown predictor {name!r}; choose one of {sorted(PREDICTORS)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def make_predictor(name: str, **params: Any) -> Predictor:
    """A new, unfitted predictor ``name`` built with constructor ``params`` (e.g. ``n_members=5``).

    Raises:
        ConfigError: unknown name, or a parameter its constructor does not take (listing those it takes),
            of the wrong type or out of range.
    """
    check_predictor_params(name, params)
    return predictor_class(name)(**params)


def check_predictor_params(name: str, params: dict[str, Any]) -> None:
    """Raise ConfigError for constructor ``params`` that predictor ``name`` does not take (listing those it
    takes), or of the wrong type or out of range, without building it."""
    check_arguments(predictor_class(name), params, "predictor_params", f"predictor {name!r}", counts=True)


__all__ = ["PREDICTORS", "Predictor", "check_predictor_params", "make_predictor", "predictor_class"]
