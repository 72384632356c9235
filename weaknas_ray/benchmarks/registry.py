"""Benchmark names -> loaders, resolved lazily so that naming a benchmark imports only its module.

A loader has the signature ``load_benchmark(dataset=None, data_dir=None, **options) -> Benchmark`` and
raises :class:`~weaknas_ray.exceptions.BenchmarkDataError` naming the file when data are missing or bad,
and :class:`~weaknas_ray.exceptions.ConfigError` for an unknown dataset or option.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from weaknas_ray.arguments import check_arguments
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.spaces.base import Oracle, SearchSpace


@dataclass
class Benchmark:
    """A search space with its oracle, as one config section loads them."""

    name: str  # e.g. "nasbench201/cifar10"
    space: SearchSpace
    oracle: Oracle


# NOTE: "module:function" strings keep `import weaknas_ray.benchmarks.registry` free of torch and OFA.
BENCHMARKS: dict[str, str] = {
    "nasbench201": "weaknas_ray.spaces.nasbench201:load_benchmark",
    "nasbench101": "weaknas_ray.spaces.nasbench101:load_benchmark",
    "ofa_mbv3": "weaknas_ray.spaces.ofa_mbv3:load_benchmark",
}


def load_benchmark(name: str, **options: Any) -> Benchmark:
    """Load benchmark ``name`` (a key of :data:`BENCHMARKS`) with the loader's keyword ``options``.

    Raises:
        ConfigError: unknown name, or an option the loader does not take or of the wrong type
            (named as ``benchmark.<option>``).
    """
    try:
        target = BENCHMARKS[name]
    except KeyError:
        raise ConfigError(f"benchmark.name: unknown benchmark {name!r}; choose one of {sorted(BENCHMARKS)}") from None
    module, func = target.split(":")
    loader = getattr(importlib.import_module(module), func)
    check_arguments(loader, options, "benchmark", f"benchmark {name!r}")
    return loader(**options)
