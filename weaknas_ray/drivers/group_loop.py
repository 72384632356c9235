"""Lockstep loop: G repeats in one process whose WeakNAS predictors train as ONE batched model.

Why: on a GPU one training step of the 4 x 1000 MLP at batch 200 is launch-bound (about 2 ms), and 25
models batched into one step cost about the same. Repeats of one method and schedule ask for
the same training-set size at every iteration, so their fits can share a batch: every iteration this
loop collects each repeat's :meth:`~weaknas_ray.engine.weaknas.WeakNAS.next_fit`, fits those with the
same predictor settings and size through the predictor's ``fit_group``, and lets each repeat score and
select with its own slice. Everything else (iteration 0, baselines, a lone repeat) asks as usual.

A repeat's rows equal :func:`~weaknas_ray.drivers.loop.run_repeat`'s for the same seed (``elapsed_s``
aside) up to the float rounding of batched products (see
:meth:`~weaknas_ray.predictors.mlp.MLPEnsemble.fit_group`), which can only matter where two pool
scores tie to within about 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from weaknas_ray.drivers.loop import RepeatLog
from weaknas_ray.engine.base import Optimizer, PredictorOptimizer


def run_group(
    optimizers: list[Optimizer],
    oracles: list,
    *,
    stop_at_optimum: bool | str = False,
    on_batch: Callable | None = None,
) -> list:
    """Run the repeats in lockstep until every one has spent its budget (or found the optimum).

    Args:
        optimizers: fresh optimizers, one per repeat.
        oracles: the matching oracles (``for_repeat(seed)`` of each repeat).
        stop_at_optimum: as in :func:`~weaknas_ray.drivers.loop.run_repeat`; a repeat that stops leaves
            the group, the others go on.
        on_batch: called with each batch's rows of any repeat.

    Returns:
        One ``pandas.DataFrame`` per repeat, in order, with exactly ``run_repeat``'s columns.
    """
    logs = [RepeatLog(oracle, stop_at_optimum=stop_at_optimum, on_batch=on_batch) for oracle in oracles]
    active = [i for i, opt in enumerate(optimizers) if not opt.finished]
    while active:
        batches = _ask_group([optimizers[i] for i in active])
        active = [
            i for i, idx in zip(active, batches) if not logs[i].evaluate(optimizers[i], idx) and not optimizers[i].finished
        ]
    return [log.frame() for log in logs]


def _ask_group(optimizers: list[Optimizer]) -> list[np.ndarray]:
    """Every optimizer's next batch, fitting the predictors that can share a batch in one call each.

    Returns:
        The asked batches, int64 ``(k_i,)`` each, in the order of ``optimizers``.
    """
    shared: dict[tuple, list[int]] = {}
    fits = {}
    for i, opt in enumerate(optimizers):
        data = opt.next_fit() if isinstance(opt, PredictorOptimizer) else None
        if data is not None:
            fits[i] = data
            key = (opt.predictor, opt.n_members, repr(sorted(opt.predictor_params.items())), data.X.shape)
            shared.setdefault(key, []).append(i)
    models = {}
    for members in shared.values():
        predictor = optimizers[members[0]].new_predictor()
        if len(members) < 2 or not hasattr(predictor, "fit_group"):
            continue
        fitted = predictor.fit_group(
            np.stack([fits[i].X for i in members]), np.stack([fits[i].y for i in members]), [fits[i].seed for i in members]
        )
        models.update(zip(members, fitted))
    return [opt.ask_fitted(models[i]) if i in models else opt.ask() for i, opt in enumerate(optimizers)]
