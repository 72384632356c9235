"""The search methods as ask/tell optimizers, by name.

Method names used everywhere (configs, CLI, results): ``weaknas`` (uniform from the predicted top-N,
and a local search when it stalls), ``weaknas-published`` (the published loop exactly),
``weaknas-ei`` (expected improvement over an ensemble), ``random``, ``evolution``, ``tpe`` and ``gp`` (Optuna's
TPE and Gaussian-process samplers).
"""

from __future__ import annotations

import importlib
from typing import Any

from weaknas_ray.engine.base import History, Optimizer
from weaknas_ray.exceptions import ConfigError

# NOTE: lazy targets: building a random-search baseline must not import torch.
METHODS: dict[str, str] = {
    "weaknas": "weaknas_ray.engine.weaknas:WeakNAS",
    "weaknas-published": "weaknas_ray.engine.weaknas:PublishedWeakNAS",
    "weaknas-ei": "weaknas_ray.engine.weaknas:WeakNASEI",
    "random": "weaknas_ray.engine.baselines:RandomSearch",
    "evolution": "weaknas_ray.engine.baselines:RegularizedEvolution",
    "tpe": "weaknas_ray.engine.optuna_samplers:OptunaTPE",
    "gp": "weaknas_ray.engine.optuna_samplers:OptunaGP",
}


def method_class(method: str) -> type[Optimizer]:
    try:
        module, cls = METHODS[method].split(":")
    except KeyError:
        raise ConfigError(f"methods: unknown method {method!r}; choose from {sorted(METHODS)}") from None
    return getattr(importlib.import_module(module), cls)


def make_optimizer(method: str, space, max_sample: int, seed: int, **settings: Any) -> Optimizer:
    """A new optimizer ``method`` over ``space`` (a :class:`~weaknas_ray.spaces.SearchSpace`) with a
    budget of ``max_sample`` distinct queries, seeded by ``seed``; ``settings`` are the method's own
    keyword arguments (e.g. ``init_sample``, ``predictor``)."""
    return method_class(method)(space=space, max_sample=max_sample, seed=seed, **settings)


__all__ = ["History", "METHODS", "Optimizer", "make_optimizer", "method_class"]
