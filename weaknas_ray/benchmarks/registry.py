"""Benchmark names -> loaders, resolved lazily so that naming a benchmark imports only its module.

A loader has the signature ``load_benchmark(dataset=None, data_dir=None, **options) -> Benchmark`` and
raises :class:`~weaknas_ray.exceptions.BenchmarkDataError` naming the file when data are missing or bad,
and :class:`~weaknas_ray.exceptions.ConfigError` for an unknown dataset or option.

A config may name a user's own loader (``benchmark.loader: "module:function"``). Importing a module runs
its code, and a config can come from anyone (a results folder someone sent), so such a loader is imported
only when the user allowed it: listed with ``--allow-loader`` (``allow_loaders``), or registered by an
installed package in the entry-point group :data:`LOADER_GROUP`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable, Iterable
from typing import Any

from weaknas_ray.arguments import check_arguments
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.interfaces import Benchmark

# NOTE: "module:function" strings keep `import weaknas_ray.benchmarks.registry` free of torch and OFA.
BENCHMARKS: dict[str, str] = {
    "nasbench201": "weaknas_ray.benchmarks.nasbench201:load_benchmark",
    "nasbench101": "weaknas_ray.benchmarks.nasbench101:load_benchmark",
    "ofa_mbv3": "weaknas_ray.benchmarks.ofa_mbv3:load_benchmark",
    "hpolib": "weaknas_ray.benchmarks.hpolib:load_benchmark",
}


# NOTE: installed packages register their loaders here (pyproject: [project.entry-points."weaknas_ray.benchmarks"]).
LOADER_GROUP = "weaknas_ray.benchmarks"


def load_configured_benchmark(config: dict[str, Any], allow_loaders: Iterable[str] = ()) -> Benchmark:
    """The benchmark a config names: ``benchmark.name`` through the registry, or ``benchmark.loader``
    (``"module:function"``, for users' own pools) when allowed (see the module's docstring); every other
    key of the section is passed as a keyword option.

    Raises:
        ConfigError: a loader not allowed (before anything is imported), not importable, not a function,
            given options it does not take, or returning something other than a :class:`Benchmark`.
    """
    options = dict(config["benchmark"])
    if "loader" in options:
        spec = options.pop("loader")
        return _call(resolve_loader(spec, allow_loaders), options, f"loader {spec}")
    return load_benchmark(options.pop("name"), **options)


def resolve_loader(spec: str, allow_loaders: Iterable[str] = ()) -> Callable[..., Benchmark]:
    """The function ``spec`` (``"module:function"``) names, imported only when it is in ``allow_loaders``
    or registered in the entry-point group :data:`LOADER_GROUP`.

    Raises:
        ConfigError: ``spec`` is not allowed, cannot be imported, or is not a function.
    """
    registered = {entry.value.replace(" ", "") for entry in importlib.metadata.entry_points(group=LOADER_GROUP)}
    if spec not in {*allow_loaders, *registered}:
        raise ConfigError(
            f"benchmark.loader: {spec!r} is not an allowed loader (importing it would run its code); if you "
            f"trust it, pass --allow-loader {spec}, or register it in the entry-point group {LOADER_GROUP!r}"
        )
    module, _, func = spec.partition(":")
    try:
        loader = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"benchmark.loader: cannot import {spec} ({exc})") from None
    if not inspect.isfunction(loader):
        raise ConfigError(f"benchmark.loader: {spec} is a {type(loader).__name__}, not a Python function")
    return loader


def _call(loader: Callable[..., Any], options: dict[str, Any], what: str) -> Benchmark:
    """``loader(**options)`` after checking the options against its signature, checked to be a Benchmark."""
    check_arguments(loader, options, "benchmark", what)
    benchmark = loader(**options)
    if not isinstance(benchmark, Benchmark):
        raise ConfigError(f"benchmark: {what} returned a {type(benchmark).__name__}, not a Benchmark")
    return benchmark


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
    return _call(getattr(importlib.import_module(module), func), options, f"benchmark {name!r}")
