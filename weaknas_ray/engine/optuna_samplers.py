"""Optuna's samplers as peers (TPE, and the Gaussian process of ``GPSampler``), through Optuna's own ask/tell.

Each architecture is a point of the space's typed parameters (:class:`~weaknas_ray.spaces.param_space.ParamView`),
given to Optuna as a careful user would: categories as ``CategoricalDistribution``, ordinal parameters as
ints over their positions (the grid's own spacing), integer ones as ints and floats as floats, log-scaled
where the space says so. A suggestion off a sampled pool's grid is the closest candidate. A sampler may
propose an architecture again; a query counts distinct architectures, so a re-proposal already evaluated is
told its known value at once, and one still pending is told when its value arrives.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from typing import Any

import numpy as np

from weaknas_ray.engine.base import Optimizer
from weaknas_ray.engine.baselines import MAX_REVISITS
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.spaces.param_space import ParamView
from weaknas_ray.spaces.params import Param

# NOTE: a float with a normal prior has no bounds; Optuna searches it within this many sds of the mean.
NORMAL_SPAN_SD = 4.0


def distribution(param: Param):
    """The Optuna distribution of one parameter (see the module docstring)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if param.kind == "categorical":
        return CategoricalDistribution(list(param.choices))
    if param.kind == "ordinal":
        return IntDistribution(0, len(param.choices) - 1)
    if param.kind == "integer":  # NOTE: Optuna takes log or a step, not both; off-grid picks land on the closest
        return IntDistribution(int(param.low), int(param.high), log=param.log, step=1 if param.log else int(param.step))
    if param.normal is not None:
        mean, sd = param.normal
        return FloatDistribution(mean - NORMAL_SPAN_SD * sd, mean + NORMAL_SPAN_SD * sd)
    return FloatDistribution(param.low, param.high, log=param.log, step=None if param.log else param.step)


class OptunaSampler(Optimizer):
    """An Optuna sampler in an in-memory study maximising the search value; subclasses name the sampler.

    Args:
        space: a space with typed parameters or named categorical fields (see :class:`ParamView`).
        max_sample: budget of distinct queries.
        seed: repeat seed, passed to the sampler; the fallback draw (see ``MAX_REVISITS``) uses
            ``numpy.random.default_rng(seed)``.
        batch_size: distinct architectures per ``ask`` (default 1: the samplers are sequential).
        sampler_params: further keyword arguments of the Optuna sampler (e.g. ``multivariate: true`` for
            TPE, ``deterministic_objective: true`` for GP); default none.
    """

    sampler_name = ""

    def __init__(self, space, max_sample: int, seed: int, batch_size: int = 1, sampler_params: dict | None = None):
        import optuna

        super().__init__(len(space), max_sample, seed)
        try:
            self.view = ParamView(space)
        except ConfigError as exc:
            raise ConfigError(f"{self.method}: {exc}; use another method for it") from None
        if batch_size < 1:
            raise ConfigError(f"{self.method}.batch_size must be >= 1, got {batch_size}")
        sampler_cls = getattr(optuna.samplers, self.sampler_name)
        params = dict(sampler_params or {})
        allowed = set(inspect.signature(sampler_cls).parameters) - {"seed"}
        if set(params) - allowed:
            raise ConfigError(
                f"{self.method}.sampler_params: unknown key(s) {sorted(set(params) - allowed)}; "
                f"optuna.samplers.{self.sampler_name} takes {sorted(allowed)}"
            )
        # NOTE: Optuna logs every told trial at INFO; a 1000-query repeat would print 1000+ lines.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.batch_size = int(batch_size)
        self._distributions = {p.name: distribution(p) for p in self.view.parameters}
        self._params = {p.name: p for p in self.view.parameters}
        self._study = optuna.create_study(direction="maximize", sampler=sampler_cls(seed=seed, **params))
        self._rng = np.random.default_rng(seed)
        self._known: dict[int, float] = {}
        self._waiting: dict[int, list[int]] = defaultdict(list)  # pool index -> open trial numbers

    def _to_optuna(self, index: int) -> dict[str, Any]:
        """Optuna's values of pool architecture ``index`` (ordinal values as their positions)."""
        values = self.view.values(index)
        return {k: int(self._params[k].raw(v)) if self._params[k].kind == "ordinal" else v for k, v in values.items()}

    def _index(self, trial_params: dict[str, Any]) -> int:
        values = {k: self._params[k].value(v) if self._params[k].kind == "ordinal" else v for k, v in trial_params.items()}
        return self.view.index(values)

    def _propose(self, room: int) -> np.ndarray:
        batch: list[int] = []
        revisits = 0
        while len(batch) < min(room, self.batch_size):
            if revisits >= MAX_REVISITS:
                free = np.flatnonzero(~self.evaluated & ~self.pending)
                free = free[~np.isin(free, batch)]
                self._study.enqueue_trial(self._to_optuna(int(self._rng.choice(free))))
                revisits = 0
            trial = self._study.ask(self._distributions)
            index = self._index(trial.params)
            if index in self._known:
                self._study.tell(trial, self._known[index])
                revisits += 1
                continue
            if self.pending[index] or index in batch:  # told when that architecture's value arrives
                revisits += 1
            else:
                batch.append(index)
            self._waiting[index].append(trial.number)
        return np.asarray(batch, dtype=np.int64)

    def _observe(self, indices: np.ndarray, values: np.ndarray) -> None:
        for i, v in zip(indices.tolist(), values.tolist()):
            self._known[i] = v
            numbers = self._waiting.pop(i, [])
            for number in numbers:
                self._study.tell(number, v)
            if not numbers:  # added by add_evaluated: the sampler learns from it as from its own trials
                from optuna.trial import create_trial

                self._study.add_trial(create_trial(params=self._to_optuna(i), distributions=self._distributions, value=v))


class OptunaTPE(OptunaSampler):
    """``optuna.samplers.TPESampler`` (see :class:`OptunaSampler`)."""

    method = "tpe"
    sampler_name = "TPESampler"


class OptunaGP(OptunaSampler):
    """``optuna.samplers.GPSampler``: a Gaussian process with log-EI, Optuna's Bayesian optimisation (see
    :class:`OptunaSampler`)."""

    method = "gp"
    sampler_name = "GPSampler"
