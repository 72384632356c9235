"""Optuna's TPE sampler as a baseline, through Optuna's own ask/tell interface.

Each architecture is a point of the space's named categorical dimensions (``param_choices``). TPE may
propose an architecture again; a query counts distinct architectures, so a re-proposal already
evaluated is told its known value at once, and one still pending is told when its value arrives.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from weaknas_ray.engine.base import Optimizer
from weaknas_ray.engine.baselines import MAX_REVISITS
from weaknas_ray.exceptions import ConfigError


class OptunaTPE(Optimizer):
    """``optuna.samplers.TPESampler(seed=seed)`` in an in-memory study maximising the search value.

    Args:
        space: a search space with ``param_choices`` and ``index_of(params_dict)``.
        max_sample: budget of distinct queries.
        seed: repeat seed, passed to the sampler; the fallback draw (see ``MAX_REVISITS``) uses
            ``numpy.random.default_rng(seed)``.
        batch_size: distinct architectures per ``ask`` (default 1: TPE is sequential).
    """

    method = "tpe"

    def __init__(self, space, max_sample: int, seed: int, batch_size: int = 1):
        import optuna

        super().__init__(len(space), max_sample, seed)
        choices = space.param_choices()
        if not choices:
            raise ConfigError(
                f"tpe: space {space.name!r} has no named categorical dimensions (param_choices() is empty); "
                "use another method for it"
            )
        if batch_size < 1:
            raise ConfigError(f"tpe.batch_size must be >= 1, got {batch_size}")
        # NOTE: Optuna logs every told trial at INFO; a 1000-query repeat would print 1000+ lines.
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        self.batch_size = int(batch_size)
        self._distributions = {k: optuna.distributions.CategoricalDistribution(v) for k, v in choices.items()}
        self._study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._rng = np.random.default_rng(seed)
        self._known: dict[int, float] = {}
        self._waiting: dict[int, list[int]] = defaultdict(list)  # pool index -> open trial numbers

    def _propose(self, room: int) -> np.ndarray:
        batch: list[int] = []
        revisits = 0
        while len(batch) < min(room, self.batch_size):
            if revisits >= MAX_REVISITS:
                free = np.flatnonzero(~self.evaluated & ~self.pending)
                free = free[~np.isin(free, batch)]
                self._study.enqueue_trial(self.space.params(int(self._rng.choice(free))))
                revisits = 0
            trial = self._study.ask(self._distributions)
            index = self.space.index_of(trial.params)
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
            if not numbers:  # added by add_evaluated: TPE learns from it as from its own trials
                from optuna.trial import create_trial

                params = self.space.params(i)
                self._study.add_trial(create_trial(
                    params={k: params[k] for k in self._distributions}, distributions=self._distributions, value=v))
