"""Run configuration: schema, YAML loading, overrides and validation.

A config is a nested dict with five sections (see the shipped configs: ``weaknas-ray configs``)::

    name: nb201-cifar10-quick          # shown in summaries and plots
    benchmark: {name: nasbench201, dataset: cifar10}   # every key but name/loader goes to the loader
    search: {methods: [weaknas, random], repeats: 4, seed: 0, max_sample: 100, ...}
    methods: {weaknas: {predictor: mlp, predictor_params: {...}}}   # per-method constructor settings
    ray: {address: null, num_cpus: null, cpus_per_repeat: 1, ...}
    output: outputs/default
    tune: {metric: val_acc, mode: max, ...}   # `weaknas-ray tune` only

A file is merged over :data:`BASE` (neutral settings, the published WeakNAS schedule); running with no
file uses :data:`QUICK_DEFAULT` over :data:`BASE`. A config is named by a path or by the name of a
shipped config (package data ``weaknas_ray.configs``, the checkout's ``configs/``). Every error names the key path, what was received and
what was expected. Repeat ``r`` of a run uses seed ``search.seed + r`` for every method.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weaknas_ray.exceptions import ConfigError

# NOTE: neutral defaults: batches of 10, each method's own top-N schedule (null: weaknas 20, weaknas-published the
# published constant 100); budgets are small.
BASE: dict[str, Any] = {
    "name": "weaknas-run",
    "benchmark": {"name": "nasbench201", "dataset": "cifar10"},
    "search": {
        "methods": ["weaknas", "random"],
        "repeats": 3,
        "seed": 0,
        "max_sample": 100,
        "stop_at_optimum": False,
        "init_sample": 10,
        "sample_each_iter": None,
        "top_start": None,
        "top_end": None,
        "top_decay": None,
    },
    "methods": {},
    "ray": {
        "address": None,
        "num_cpus": None,
        "cpus_per_repeat": 1,
        "max_workers": None,
        "repeats_per_actor": 1,
        "num_gpus_per_repeat": 0.0,
        "chunk_size": None,
        "cpus_per_chunk": 1,
        "member_tasks": None,
        "max_retries": 1,
        "object_store_memory": None,
        "connect_timeout_s": 30.0,
        "placement_timeout_s": 120.0,
        "task_timeout_s": 120.0,
    },
    "output": "outputs/run",
    # NOTE: read by `weaknas-ray tune` only (docs/tune.md); `run` ignores the section.
    "tune": {
        "metric": "val_acc",
        "mode": "max",
        "max_concurrent_trials": 2,
        "cpus_per_trial": 1,
        "resume": False,
        "fit_in_task": None,
    },
}

# NOTE: the no-argument job must finish in a few minutes on 2 cores: a 2 x 256 MLP instead of the
# published 4 x 1000, 100 queries, stop once the global optimum is found.
QUICK_DEFAULT: dict[str, Any] = {
    "name": "nb201-cifar10-quick",
    "benchmark": {"name": "nasbench201", "dataset": "cifar10"},
    "search": {"methods": ["weaknas", "random"], "repeats": 4, "max_sample": 100, "stop_at_optimum": True},
    "methods": {"weaknas": {"predictor": "mlp", "predictor_params": {"hidden": [256, 256]}}},
    "output": "outputs/default",
}

# Keys that do not change results: they may differ when a run is resumed.
RESUMABLE_KEYS = ("ray.", "output", "search.repeats", "tune.")


@dataclass(frozen=True)
class Field:
    """One scalar setting: accepted types, whether null is allowed, and a range/choice check."""

    types: tuple[type, ...]
    nullable: bool = False
    check: Callable[[Any], str | None] | None = None  # returns the expectation when the value is bad


def at_least(low: float) -> Callable[[Any], str | None]:
    return lambda v: None if v >= low else f">= {low}"


def _in_unit_interval(v: float) -> str | None:
    return None if 0 < v <= 1 else "in (0, 1]"


def _fraction_or_whole(v: float) -> str | None:
    return None if v >= 0 and (v <= 1 or float(v).is_integer()) else "0..1 or a whole number of GPUs"


def _stop_choice(v: bool | str) -> str | None:
    return None if isinstance(v, bool) or v in ("reported", "search") else "true, false, reported or search"


def _seed(v: int) -> str | None:
    return None if 0 <= v <= MAX_SEED else f"0..{MAX_SEED} (a 32-bit seed, as numpy and scikit-learn take)"


def _non_empty(v: str) -> str | None:
    return None if v.strip() else "a non-empty path"


# NOTE: "auto", "ray://HOST:PORT" (Ray Client) or "HOST:PORT"; HOST a name, IPv4 or [IPv6].
_ADDRESS = re.compile(r"^(auto|(ray://)?([A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]):([0-9]{1,5}))$")


def _address(v: str) -> str | None:
    match = _ADDRESS.match(v)
    if match and (v == "auto" or 0 < int(match.group(4)) < 65536):
        return None
    return "'auto', HOST:PORT or ray://HOST:PORT with a port in 1..65535"


MAX_SEED = 2**32 - 1
_INT, _NUM, _STR = (int,), (int, float), (str,)

SCHEMA: dict[str, Any] = {
    "name": Field(_STR),
    "output": Field(_STR, check=_non_empty),
    "search": {
        "methods": Field((list,)),
        "repeats": Field(_INT, check=at_least(1)),
        "seed": Field(_INT, check=_seed),
        "max_sample": Field(_INT, check=at_least(1)),
        "stop_at_optimum": Field((bool, str), check=_stop_choice),
        "init_sample": Field(_INT, check=at_least(1)),
        "sample_each_iter": Field(_INT, nullable=True, check=at_least(1)),
        "top_start": Field(_INT, nullable=True, check=at_least(1)),
        "top_end": Field(_INT, nullable=True, check=at_least(1)),
        "top_decay": Field(_NUM, nullable=True, check=_in_unit_interval),
    },
    "ray": {
        "address": Field(_STR, nullable=True, check=_address),
        "num_cpus": Field(_INT, nullable=True, check=at_least(1)),
        "cpus_per_repeat": Field(_NUM, check=lambda v: None if v > 0 else "> 0"),
        "max_workers": Field(_INT, nullable=True, check=at_least(1)),
        "repeats_per_actor": Field(_INT, check=at_least(1)),
        "num_gpus_per_repeat": Field(_NUM, check=_fraction_or_whole),
        "chunk_size": Field(_INT, nullable=True, check=at_least(0)),
        "cpus_per_chunk": Field(_NUM, check=lambda v: None if v > 0 else "> 0"),
        "member_tasks": Field(_INT, nullable=True, check=at_least(0)),
        "max_retries": Field(_INT, check=at_least(0)),
        "object_store_memory": Field(_INT, nullable=True, check=at_least(78 * 1024 * 1024)),
        "connect_timeout_s": Field(_NUM, check=lambda v: None if v > 0 else "> 0"),
        "placement_timeout_s": Field(_NUM, check=lambda v: None if v > 0 else "> 0"),
        "task_timeout_s": Field(_NUM, check=lambda v: None if v > 0 else "> 0"),
    },
    "tune": {
        "metric": Field(_STR),
        "mode": Field(_STR, check=lambda v: None if v in ("max", "min") else "'max' or 'min'"),
        "max_concurrent_trials": Field(_INT, nullable=True, check=at_least(1)),
        "cpus_per_trial": Field(_NUM, check=lambda v: None if v > 0 else "> 0"),
        "resume": Field((bool,)),
        "fit_in_task": Field((bool,), nullable=True),
    },
}


class _Null:
    """An override that sets a key to null, told apart from ``None``, an unset command-line flag."""

    def __repr__(self) -> str:
        return "NULL"


NULL = _Null()


def load_config(path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The resolved, validated config.

    Args:
        path: a YAML file merged over :data:`BASE`; ``None`` uses the embedded :data:`QUICK_DEFAULT`.
        overrides: dotted key -> value (e.g. ``{"search.repeats": 2}``), applied last; ``None`` values
            are skipped (an unset command-line flag), :data:`NULL` sets null (``--set KEY=null``).

    Returns:
        The full config dict (every key of :data:`BASE`).

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or impossible value; the message names the key.
    """
    config = copy.deepcopy(BASE)
    if path is None:
        _merge(config, QUICK_DEFAULT, "")
    else:
        _merge(config, read_yaml(path), "", source=str(path))
    for key, value in (overrides or {}).items():
        if value is not None:
            set_key(config, key, None if value is NULL else value)
    validate(config)
    return config


def shipped_configs() -> dict[str, tuple[Any, str]]:
    """The configs shipped with the package, by name (file name without ``.yaml``), sorted.

    Returns:
        ``{name: (file, description)}``: ``file`` an ``importlib.resources`` Traversable (readable with
        ``read_text``), ``description`` the file's first comment line.
    """
    from importlib import resources

    try:
        folder = resources.files("weaknas_ray.configs")
    except ModuleNotFoundError:
        # NOTE: a source tree on PYTHONPATH without an install: setup.py's mapping of the package onto
        # configs/ does not exist then, so read the folder beside the package directly.
        folder = Path(__file__).resolve().parents[1] / "configs"
    found = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            first = next((line for line in entry.read_text().splitlines() if line.startswith("#")), "#")
            found[entry.name.removesuffix(".yaml")] = (entry, first.lstrip("#").strip())
    return found


def resolve_config(name_or_path: str | os.PathLike) -> Any:
    """The config file a ``--config`` value names: an existing path, else a shipped config's name
    (``nb201_quick`` or ``nb201_quick.yaml``).

    Raises:
        ConfigError: neither; the message lists the shipped names.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():  # a file, or a directory that read_yaml refuses by name
        return path
    text = str(name_or_path)
    shipped = shipped_configs() if os.sep not in text else {}
    if text.removesuffix(".yaml") in shipped:
        return shipped[text.removesuffix(".yaml")][0]
    raise ConfigError(
        f"config file {text!r} does not exist, and no shipped config has that name "
        f"(shipped: {', '.join(shipped_configs())}; `weaknas-ray configs` describes them)"
    )


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from ``path`` (a file, or a shipped config's name, see :func:`resolve_config`);
    raises ConfigError naming the file when missing or malformed."""
    import yaml

    try:
        data = yaml.safe_load(resolve_config(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory, not a YAML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r} is not a text (YAML) file") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}")
    return data


def dump_yaml(config: dict[str, Any]) -> str:
    """``config`` as YAML text in key order (the form saved as ``config.yaml``)."""
    import yaml

    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``config[a][b]`` for ``dotted = "a.b"``, creating open sections (``methods.weaknas``) on the way.

    Raises:
        ConfigError: a path component is unknown or not a section.
    """
    *parents, leaf = dotted.split(".")
    node = config
    for depth, part in enumerate(parents):
        here = ".".join(parents[: depth + 1])
        if part not in node:
            if not _is_open(parents[:depth]):
                raise ConfigError(f"{here}: unknown key; known keys at this level: {sorted(node)}")
            node[part] = {}
        if not isinstance(node[part], dict):
            raise ConfigError(f"{here}: is a value, not a section, so {dotted!r} cannot be set")
        node = node[part]
    if leaf not in node and not _is_open(parents):
        raise ConfigError(f"{dotted}: unknown key; known keys at this level: {sorted(node)}")
    node[leaf] = value


def validate(config: dict[str, Any]) -> None:
    """Check types, ranges and cross-key constraints of a full config.

    Raises:
        ConfigError: naming the first bad key, the value received and what is expected.
    """
    from weaknas_ray.benchmarks.registry import BENCHMARKS
    from weaknas_ray.engine import METHODS

    for key in config:
        if key not in BASE:
            raise ConfigError(f"{key}: unknown section; known sections: {sorted(BASE)}")
    check_finite(config, "")
    check_fields(config, SCHEMA, "")
    bench = config["benchmark"]
    if not isinstance(bench, dict):
        raise ConfigError(f"benchmark: expected a mapping, got {bench!r}")
    if ("name" in bench) == ("loader" in bench):
        raise ConfigError("benchmark: give exactly one of 'name' (a registered benchmark) or 'loader' ('module:function')")
    if "name" in bench and bench["name"] not in BENCHMARKS:
        raise ConfigError(f"benchmark.name: unknown benchmark {bench['name']!r}; choose one of {sorted(BENCHMARKS)}")
    if "loader" in bench and (not isinstance(bench["loader"], str) or bench["loader"].count(":") != 1):
        raise ConfigError(f"benchmark.loader: expected 'module:function', got {bench['loader']!r}")
    search = config["search"]
    methods = search["methods"]
    if not all(isinstance(m, str) for m in methods) or not methods or len(set(methods)) != len(methods):
        raise ConfigError(f"search.methods: expected a non-empty list of distinct method names, got {methods!r}")
    for name in [*methods, *config["methods"]]:
        if name not in METHODS:
            where = "search.methods" if name in methods else f"methods.{name}"
            raise ConfigError(f"{where}: unknown method {name!r}; choose from {sorted(METHODS)}")
    for name, settings in config["methods"].items():
        if not isinstance(settings, dict):
            raise ConfigError(f"methods.{name}: expected a mapping of constructor settings, got {settings!r}")
    if search["init_sample"] > search["max_sample"]:
        raise ConfigError(
            f"search.init_sample: {search['init_sample']} exceeds search.max_sample ({search['max_sample']})"
        )
    if (search["sample_each_iter"] or 0) > search["max_sample"]:
        raise ConfigError(
            f"search.sample_each_iter: {search['sample_each_iter']} exceeds search.max_sample ({search['max_sample']})"
        )
    if search["seed"] + search["repeats"] - 1 > MAX_SEED:
        raise ConfigError(
            f"search.seed: repeat r uses seed {search['seed']} + r, beyond the largest seed {MAX_SEED} "
            f"with search.repeats {search['repeats']}"
        )
    if None not in (search["top_start"], search["top_end"]) and search["top_end"] > search["top_start"]:
        raise ConfigError(f"search.top_end: {search['top_end']} exceeds search.top_start ({search['top_start']})")


def diff(old: dict[str, Any], new: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """Lines ``key: old -> new`` for every dotted key whose value differs (missing keys show ``<unset>``).

    Args:
        ignore: dotted prefixes to skip (e.g. ``"ray."``).
    """
    a, b = _flatten(old), _flatten(new)
    lines = []
    for key in sorted(set(a) | set(b)):
        if any(key == p or (p.endswith(".") and key.startswith(p)) for p in ignore):
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            lines.append(f"{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
    return lines


def _flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _is_open(path: list[str]) -> bool:
    """Sections whose keys are free: benchmark options and everything under ``methods``."""
    return bool(path) and path[0] in ("benchmark", "methods")


def _merge(into: dict[str, Any], update: dict[str, Any], prefix: str, source: str = "") -> None:
    """Deep-merge ``update`` into ``into``; unknown keys of closed sections raise ConfigError."""
    where = f" (in {source})" if source else ""
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in into and not _is_open(dotted.split(".")[:-1]):
            raise ConfigError(f"{dotted}: unknown key{where}; known keys at this level: {sorted(into)}")
        if key == "benchmark" and isinstance(value, dict):
            into[key] = copy.deepcopy(value)  # a benchmark section replaces the default one whole
        elif isinstance(into.get(key), dict) and isinstance(value, dict):
            _merge(into[key], value, f"{dotted}.", source)
        else:
            into[key] = copy.deepcopy(value)


def check_finite(node: Any, prefix: str) -> None:
    """Refuse a NaN or infinite number anywhere in ``node`` (open sections included), naming its key:
    no setting means anything with one (a NaN calibration would silently rank the pool in index order)."""
    if isinstance(node, dict):
        for key, value in node.items():
            check_finite(value, f"{prefix}{key}.")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            check_finite(value, f"{prefix.rstrip('.')}[{i}].")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a finite number, got {node!r}")


def check_fields(node: Any, schema: dict[str, Any], prefix: str) -> None:
    if not isinstance(node, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a mapping, got {node!r}")
    for key, spec in schema.items():
        dotted = f"{prefix}{key}"
        if key not in node:
            raise ConfigError(f"{dotted}: missing")
        if isinstance(spec, dict):
            check_fields(node[key], spec, f"{dotted}.")
            continue
        value = node[key]
        if value is None:
            if not spec.nullable:
                raise ConfigError(f"{dotted}: must be set, got null")
            continue
        is_bool = isinstance(value, bool)
        if not isinstance(value, spec.types) or (is_bool and bool not in spec.types):
            expected = " or ".join(t.__name__ for t in spec.types)
            raise ConfigError(f"{dotted}: expected {expected}, got {type(value).__name__} {value!r}")
        if spec.check is not None and (expectation := spec.check(value)) is not None:
            raise ConfigError(f"{dotted}: expected {expectation}, got {value!r}")


# search-section keys handed to every method whose constructor takes them (null: the method's own default)
SHARED_SETTINGS = ("init_sample", "sample_each_iter", "top_start", "top_end", "top_decay")
# constructor arguments a config does not set: the runner passes them
METHOD_HIDDEN = ("self", "space", "max_sample", "seed", "pool_scorer", "pool_stats", "fitter")


def method_settings(config: dict[str, Any], method: str) -> dict[str, Any]:
    """The keyword settings ``make_optimizer(method, ...)`` gets: the shared search settings the method's
    constructor accepts, then ``methods.<method>`` (which wins).

    Raises:
        ConfigError: a ``methods.<method>`` key is not a constructor argument (names the key and lists
            the valid ones), has the wrong type or is out of range.
    """
    from weaknas_ray.arguments import check_arguments, parameters
    from weaknas_ray.engine import method_class

    cls = method_class(method)
    own = config["methods"].get(method, {})
    check_arguments(cls, own, f"methods.{method}", f"method {method!r}", counts=True, hidden=METHOD_HIDDEN)
    params, _ = parameters(cls)  # with the base's: weaknas-ei passes the schedule on to weaknas
    shared = {k: config["search"][k] for k in SHARED_SETTINGS if k in params and config["search"][k] is not None}
    return {**shared, **own}


def resolve_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every default made explicit: the constructor defaults of each method of
    ``search.methods`` and of its predictor, and the loader defaults of a registered benchmark (a user's
    own ``benchmark.loader`` is left as given: resolving it would import it). Saved as ``config.yaml``, so
    a resume after an upgrade that changed a default is refused naming that key instead of mixing two
    behaviours in one run.
    """
    import importlib

    from weaknas_ray.benchmarks.registry import BENCHMARKS
    from weaknas_ray.engine import method_class
    from weaknas_ray.predictors import predictor_class

    resolved = copy.deepcopy(config)
    bench = resolved["benchmark"]
    if "name" in bench:
        module, func = BENCHMARKS[bench["name"]].split(":")
        bench.update({**_defaults(getattr(importlib.import_module(module), func), ()), **bench})
    for method in resolved["search"]["methods"]:
        own = resolved["methods"].setdefault(method, {})
        cls = method_class(method)
        shared = tuple(k for k in SHARED_SETTINGS if resolved["search"][k] is not None)  # null: the method's own
        own.update({**_defaults(cls, (*METHOD_HIDDEN, *shared)), **own})
        if own.get("predictor", "auto") != "auto":  # "auto" picks a predictor for the space, when the run loads it
            params = own.get("predictor_params") or {}
            own["predictor_params"] = {**_defaults(predictor_class(own["predictor"]), ("self", "n_members")),
                                       **cls.predictor_defaults.get(own["predictor"], {}), **params}
    return resolved


def _defaults(target: Callable | type, skip: tuple[str, ...]) -> dict[str, Any]:
    """Keyword defaults of ``target`` (a class: its ``__init__`` chain) that YAML can hold, as YAML holds them."""
    import inspect

    functions = [vars(c)["__init__"] for c in target.__mro__ if "__init__" in vars(c)] if isinstance(target, type) else [target]
    out: dict[str, Any] = {}
    for function in functions:
        for name, param in inspect.signature(function).parameters.items():
            value = param.default
            if name in skip or name in out or value is inspect.Parameter.empty:
                continue
            value = list(value) if isinstance(value, tuple) else value
            if value is None or isinstance(value, (bool, int, float, str, list, dict)):
                out[name] = value
    return out
