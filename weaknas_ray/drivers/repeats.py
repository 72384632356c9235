"""Repeats without Ray: what one repeat is (:class:`RepeatTask`), which repeats a config still needs
(:func:`plan_tasks`, :func:`group_tasks`), a check of every method's settings before anything starts
(:func:`check_methods`), and running repeats in this process (:func:`run_repeats`), labelled as result rows.

Seeds: repeat ``r`` uses seed ``search.seed + r`` for every method, so methods start from the same
conditions where their randomness allows. Every repeat calls exactly
:func:`weaknas_ray.drivers.loop.run_repeat`, so a seed gives the same rows in a Ray actor and
in-process; a group of repeats of one method runs in lockstep
(:func:`weaknas_ray.drivers.group_loop.run_group`, predictors fitted as one batched model) with the same
rows up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from weaknas_ray.config import method_settings
from weaknas_ray.exceptions import ConfigError, WeakNASError


@dataclass(frozen=True)
class RepeatTask:
    """One repeat to run: picklable, sent to a worker."""

    method: str
    repeat: int
    seed: int
    max_sample: int
    settings: dict[str, Any] = field(default_factory=dict)
    stop_at_optimum: bool = False


def run_one_repeat(benchmark, task: RepeatTask, pool_scorer=None, on_batch: Callable | None = None):
    """Run one repeat in this process (see :func:`run_repeats`); returns its ``(rows, final_top1)``."""
    return run_repeats(benchmark, [task], pool_scorer, on_batch)[0]


def driver_settings(method: str, settings: dict[str, Any], oracle, pool_scorer=None, fitter=None) -> dict[str, Any]:
    """``settings`` plus what a driver hands a method that scores the pool: the oracle's pool statistics
    (``None`` where it does not know the pool) and, where given, the Ray pool scorer and member fitter."""
    from weaknas_ray.engine import method_class

    if not method_class(method).scores_pool:
        return dict(settings)
    extra = {"pool_scorer": pool_scorer, "fitter": fitter}
    return {**settings, "pool_stats": oracle.search_stats, **{k: v for k, v in extra.items() if v is not None}}


def run_repeats(benchmark, tasks: list[RepeatTask], pool_scorer=None, on_batch: Callable | None = None, fitter=None):
    """Run repeats in this process: the body of a worker's ``run``.

    One task runs through :func:`~weaknas_ray.drivers.loop.run_repeat`; several (a group of
    ``ray.repeats_per_actor`` repeats of one method) run in lockstep through
    :func:`~weaknas_ray.drivers.group_loop.run_group`, which fits their predictors as one batched model.

    Args:
        benchmark: a :class:`~weaknas_ray.interfaces.Benchmark`.
        tasks: what to run; a group shares method and ``stop_at_optimum``.
        pool_scorer: passed to methods whose constructor takes one (chunked Ray scoring).
        on_batch: called with each batch's rows of any repeat.
        fitter: passed to the same methods (ensemble members fitted in Ray member tasks).

    Returns:
        Per task, ``(rows, final_top1)``: the query rows (``method``, ``repeat``, ``seed``, the loop's
        columns, ``arch`` and the space's ``describe`` columns) and, for methods with a predictor, a
        one-row frame with the predicted top-1 of a predictor fitted on all its queries, evaluated (not a
        query), else ``None``.
    """
    from weaknas_ray.drivers.group_loop import run_group
    from weaknas_ray.drivers.loop import run_repeat
    from weaknas_ray.engine import make_optimizer

    space = benchmark.space
    oracles = [benchmark.oracle.for_repeat(task.seed) for task in tasks]
    optimizers = []
    for task, oracle in zip(tasks, oracles):
        settings = driver_settings(task.method, task.settings, oracle, pool_scorer, fitter)
        optimizers.append(make_optimizer(task.method, space, task.max_sample, task.seed, **settings))
    stop = tasks[0].stop_at_optimum
    if len(tasks) == 1:
        rows = [run_repeat(optimizers[0], oracles[0], stop_at_optimum=stop, on_batch=on_batch)]
    else:
        rows = run_group(optimizers, oracles, stop_at_optimum=stop, on_batch=on_batch)
    return [_outcome(*args, space) for args in zip(tasks, optimizers, oracles, rows)]


def _outcome(task: RepeatTask, optimizer, oracle, rows, space):
    """``(rows, final_top1)`` of a finished repeat, labelled (see :func:`run_repeats`)."""
    import pandas as pd

    rows = label_rows(rows, task, space)
    final = None
    top = optimizer.final_prediction()
    if top is not None:
        top1 = np.asarray(top[:1], dtype=np.int64)
        ev = oracle.evaluate(top1)
        final = pd.DataFrame(
            {
                "iteration": [optimizer.iteration],
                "arch_index": top1,
                "search_value": np.asarray(ev.search, dtype=np.float64),
                "reported_value": np.asarray(ev.reported, dtype=np.float64),
                "already_queried": [bool(optimizer.evaluated[top1[0]])],
                "queries": [optimizer.n_told],
            }
        )
        for name, values in ev.extra.items():
            final[name] = np.asarray(values, dtype=np.float64)
        final = label_rows(final, task, space)
    return rows, final


def label_rows(frame, task: RepeatTask, space):
    """``frame`` with ``method, repeat, seed`` in front and ``arch`` plus ``space.describe`` columns."""
    idx = frame["arch_index"].to_numpy(dtype=np.int64)
    frame.insert(0, "seed", task.seed)
    frame.insert(0, "repeat", task.repeat)
    frame.insert(0, "method", task.method)
    frame["arch"] = [space.arch_str(int(i)) for i in idx]
    for column, values in space.describe(idx).items():
        frame[column] = values
    return frame


def check_methods(config: dict[str, Any], benchmark) -> dict[str, Any]:
    """Build every method's optimizer and predictor once, so that a bad setting stops the run before its
    output folder is written or Ray starts (a worker would only fail with it, repeat after repeat).

    Returns:
        ``{method: unfitted predictor}`` of the run's methods (``search.methods``) that fit one.

    Raises:
        ConfigError: naming the key (``search.max_sample``, ``methods.<m>...``).
    """
    from weaknas_ray.engine import make_optimizer
    from weaknas_ray.engine.base import PredictorOptimizer

    search, n_pool = config["search"], len(benchmark.space)
    if search["max_sample"] > n_pool:
        raise ConfigError(f"search.max_sample: {search['max_sample']} exceeds the pool of {n_pool} architectures")
    predictors = {}
    for method in dict.fromkeys([*search["methods"], *config["methods"]]):  # unused sections too: no typo hides
        settings = driver_settings(method, method_settings(config, method), benchmark.oracle)
        try:
            optimizer = make_optimizer(method, benchmark.space, search["max_sample"], search["seed"], **settings)
            if isinstance(optimizer, PredictorOptimizer):
                predictor = optimizer.new_predictor()
                _check_device(config, method, predictor)
                if method in search["methods"]:
                    predictors[method] = predictor
        except WeakNASError as exc:
            raise ConfigError(_key_path(method, str(exc))) from exc
    return predictors


def predictor_dtypes(predictors: dict[str, Any]) -> dict[str, dict[str, str]]:
    """``{method: {"dtype", "reason"}}`` for each of ``predictors`` (:func:`check_methods`) that picks a
    compute dtype (the MLP's ``dtype``), as this process decides it; repeat actors on machines of this kind
    decide alike. A GPU this process cannot see is left to the repeat (``"auto"``, said so)."""
    out = {}
    for method, predictor in predictors.items():
        if not hasattr(predictor, "dtype_choice"):
            continue
        try:
            out[method] = predictor.dtype_choice()._asdict()
        except ConfigError:
            out[method] = {"dtype": predictor.dtype, "reason": f"decided by each repeat on {predictor.device}, "
                           "which this process does not see"}
    return out


def _check_device(config: dict[str, Any], method: str, predictor) -> None:
    """A CUDA predictor needs GPUs: from ``ray.num_gpus_per_repeat``, else on this machine (local runs),
    checked here rather than in every worker."""
    device = str(getattr(predictor, "device", "cpu"))
    if device.startswith("cuda") and not config["ray"]["num_gpus_per_repeat"]:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"methods.{method}.predictor_params.device: {device!r}, but ray.num_gpus_per_repeat is 0 and "
                "this machine has no CUDA GPU; use device: cpu, or give repeats GPUs"
            )


def _key_path(method: str, text: str) -> str:
    """An optimizer's or predictor's error under the config key it came from: ``predictor: unknown ...``
    -> ``methods.weaknas.predictor: unknown ...``; errors already naming a path stay as they are."""
    from weaknas_ray.arguments import parameters
    from weaknas_ray.engine import method_class

    head, sep, rest = text.partition(": ")
    if text.startswith("methods."):
        return text
    if text.startswith(f"{method}."):
        return f"methods.{text}"
    if sep and " " not in head and head.split(".")[0] in parameters(method_class(method))[0]:
        return f"methods.{method}.{head}: {rest}"
    return f"methods.{method}: {text}"


def plan_tasks(config: dict[str, Any], done: set[tuple[str, int]]) -> list[RepeatTask]:
    """The repeats still to run, repeat-major (every method's repeat 0, then repeat 1, ...) so a
    partial run compares methods on the same seeds."""
    search = config["search"]
    settings = {m: method_settings(config, m) for m in search["methods"]}
    return [
        RepeatTask(m, r, search["seed"] + r, search["max_sample"], settings[m], search["stop_at_optimum"])
        for r in range(search["repeats"])
        for m in search["methods"]
        if (m, r) not in done
    ]


def group_tasks(tasks: list[RepeatTask], size: int) -> list[list[RepeatTask]]:
    """Split ``tasks`` into groups of at most ``size`` repeats of one method with consecutive repeat
    indices (``ray.repeats_per_actor``), ordered by their first task, so repeat-major stays repeat-major."""
    groups: list[list[RepeatTask]] = []
    current: dict[str, list[RepeatTask]] = {}
    for task in tasks:
        group = current.get(task.method)
        if group is None or len(group) == size or group[-1].repeat != task.repeat - 1:
            group = current[task.method] = []
            groups.append(group)
        group.append(task)
    return groups
