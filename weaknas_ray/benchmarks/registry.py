"""Benchmark names -> loaders, resolved lazily so that naming a benchmark imports only its module.

A loader has the signature ``load_benchmark(dataset=None, data_dir=None, **options) -> Benchmark`` and
raises :class:`~weaknas_ray.exceptions.BenchmarkDataError` naming the file when data are missing or bad,
and :class:`~weaknas_ray.exceptions.ConfigError` for an unknown dataset or option.
"""

from __future__ import annotations

import importlib
from typing import Any

from weaknas_ray.arguments import check_arguments
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.interfaces import Benchmark

# NOTE: "module:function" strings keep `import weaknas_ray.benchmarks.registry` free of torch and OFA.
BENCHMARKS: dict[str, str] = {
    "nasbench201": "weaknas_ray.benchmarks.nasbench201:load_benchmark",
    "nasbench101": "weaknas_ray.benchmarks.nasbench101:load_benchmark",
    "ofa_mbv3": "weaknas_ray.benchmarks.ofa_mbv3:load_benchmark",
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


def load_configured_benchmark(config: dict[str, Any]):
    """The benchmark a config names: ``benchmark.name`` through the registry, or ``benchmark.loader``
    (``"module:function"``, for users' own pools), every other key passed as a keyword option."""
    options = dict(config["benchmark"])
    if "loader" in options:
        module, func = options.pop("loader").split(":")
        try:
            loader = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"benchmark.loader: cannot import {module}:{func} ({exc})") from None
        check_arguments(loader, options, "benchmark", f"loader {module}:{func}")
        return loader(**options)
    return load_benchmark(options.pop("name"), **options)
