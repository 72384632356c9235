"""``weaknas-ray tune --config FILE [--set KEY=VALUE ...]``: WeakNAS as the search algorithm of a Ray Tune
``Tuner`` over a tabular benchmark, with a trainable that looks each architecture up.

The lookup trainable stands in for real training: replace :func:`lookup_trainable` by a function that
builds and trains the network described by the config (``config["arch"]`` or its fields) and calls
``tune.report`` with the same metric name. Config sections (see ``configs/tune_nasbench201.yaml``):
``benchmark``, ``search`` and ``methods`` as for ``weaknas-ray run`` (one method), plus ``tune`` and ``ray``.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from weaknas_ray.config import SCHEMA as RUN_SCHEMA
from weaknas_ray.config import Field, at_least, check_fields, check_finite, method_settings, read_yaml, set_key
from weaknas_ray.exceptions import ConfigError, RunStateError

# NOTE: a quick default: 60 trials, a 2 x 64 MLP predictor; the published schedule otherwise.
DEFAULTS: dict[str, Any] = {
    "name": "tune-nasbench201",
    "benchmark": {"name": "nasbench201", "dataset": "cifar10"},
    "search": {
        "method": "weaknas",
        "seed": 0,
        "max_sample": 60,
        "init_sample": 10,
        "sample_each_iter": 10,
        "top_start": 100,
        "top_end": 100,
        "top_decay": 0.96,
    },
    "methods": {"weaknas": {"predictor": "mlp", "predictor_params": {"hidden": [64, 64]}}},
    "tune": {
        "metric": "val_acc",
        "mode": "max",
        "max_concurrent_trials": 2,
        "cpus_per_trial": 1,
        "storage_path": None,
        "resume": False,
    },
    "ray": {"address": None, "num_cpus": None},
}

_POSITIVE = at_least(1)
# NOTE: what lookup_trainable reports (a metric it does not report would fail every trial).
METRICS = ("val_acc", "test_acc")
SCHEMA: dict[str, Any] = {
    "name": Field((str,)),
    "search": {
        "method": Field((str,)),
        "seed": Field((int,), check=at_least(0)),
        "max_sample": Field((int,), check=_POSITIVE),
    },
    "tune": {
        "metric": Field((str,), check=lambda v: None if v in METRICS else f"one of {list(METRICS)}"),
        "mode": Field((str,), check=lambda v: None if v in ("max", "min") else "'max' or 'min'"),
        "max_concurrent_trials": Field((int,), nullable=True, check=_POSITIVE),
        "cpus_per_trial": Field((int, float), check=lambda v: None if v > 0 else "> 0"),
        "storage_path": Field((str,), nullable=True),
        "resume": Field((bool,)),
    },
    "ray": {"address": RUN_SCHEMA["ray"]["address"], "num_cpus": Field((int,), nullable=True, check=_POSITIVE)},
}


def load_tune_config(path: str | None, overrides: list[str] = ()) -> dict[str, Any]:
    """The validated tune config: :data:`DEFAULTS`, then the YAML file, then ``KEY=VALUE`` overrides
    (values parsed as YAML).

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or bad value (naming the key).
    """
    from weaknas_ray.commands.run import parse_set

    config = copy.deepcopy(DEFAULTS)
    settings = read_yaml(path) if path else {}
    if "benchmark" in settings:  # a benchmark section replaces the default one whole, as in `run`
        config["benchmark"] = {}
    if "methods" in settings:
        config["methods"] = {}
    for key, value in _flatten(settings):
        set_key(config, key, value)
    for key, value in parse_set(overrides).items():
        set_key(config, key, value)
    check_finite(config, "")
    check_fields(config, SCHEMA, "")
    if not isinstance(config["benchmark"].get("name"), str):
        raise ConfigError(f"benchmark.name: expected a benchmark name, got {config['benchmark'].get('name')!r}")
    method_settings(config, config["search"]["method"])  # rejects settings the method does not take
    return config


def _flatten(node: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, leaf)`` pairs; dicts under ``methods.<name>`` (e.g. ``predictor_params``) stay whole."""
    pairs = []
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and dotted.count(".") < (2 if dotted.startswith("methods") else 1):
            pairs += _flatten(value, f"{dotted}.")
        else:
            pairs.append((dotted, value))
    return pairs


def lookup_trainable(config: dict[str, Any], benchmark) -> None:
    """A Tune function trainable that "trains" by looking the architecture up in a tabular benchmark.

    Args:
        config: a suggestion of :class:`~weaknas_ray.drivers.tune_searcher.WeakNASSearcher`
            (``arch_index``), or the space's fields only (Tune's own searchers).
        benchmark: the :class:`~weaknas_ray.interfaces.Benchmark` (passed with
            ``tune.with_parameters``, so it is shipped to the workers once).

    Reports ``val_acc`` (the search signal), ``test_acc`` (the reported metric) and ``arch_index``.
    """
    from ray import tune

    if "arch_index" in config:
        index = int(config["arch_index"])
    else:
        index = benchmark.space.index_of({key: config[key] for key in benchmark.space.param_choices()})
    values = benchmark.oracle.evaluate([index])
    tune.report({"val_acc": float(values.search[0]), "test_acc": float(values.reported[0]), "arch_index": index})


def make_tuner(
    benchmark, search_alg, tune_settings: dict[str, Any], name: str, param_space: dict | None = None,
    num_samples: int = -1, callbacks: list | None = None,
):  # fmt: skip
    """A ``Tuner`` running :func:`lookup_trainable` with ``search_alg`` (``reuse_actors=True``, quiet).

    Args:
        benchmark: the benchmark the trainable looks architectures up in.
        search_alg: a Tune searcher (e.g. ``WeakNASSearcher``; it ends the run with ``FINISHED``).
        tune_settings: the ``tune`` config section (``max_concurrent_trials``, ``cpus_per_trial``,
            ``storage_path``).
        name: the experiment name (its folder under ``storage_path``).
        param_space: Tune's ``param_space`` (for Tune's own searchers); default empty.
        num_samples: ``-1`` (until the searcher finishes) or a trial count.
        callbacks: Tune callbacks of the run.
    """
    from ray import tune

    return tune.Tuner(
        make_trainable(benchmark, tune_settings["cpus_per_trial"]),
        param_space=param_space or {},
        tune_config=tune.TuneConfig(
            search_alg=search_alg,
            num_samples=num_samples,
            max_concurrent_trials=tune_settings["max_concurrent_trials"],
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(name=name, storage_path=tune_settings["storage_path"], verbose=0, callbacks=callbacks),
    )


def make_trainable(benchmark, cpus_per_trial: float):
    """:func:`lookup_trainable` bound to ``benchmark``, each trial holding ``cpus_per_trial`` CPUs."""
    from ray import tune

    return tune.with_resources(tune.with_parameters(lookup_trainable, benchmark=benchmark), {"cpu": cpus_per_trial})


def make_searcher(config: dict[str, Any], space):
    """The ``WeakNASSearcher`` a tune config describes, over ``space``."""
    from weaknas_ray.drivers.tune_searcher import WeakNASSearcher

    search, tune_settings = config["search"], config["tune"]
    return WeakNASSearcher(
        space, metric=tune_settings["metric"], mode=tune_settings["mode"], max_sample=search["max_sample"],
        method=search["method"], seed=search["seed"], **method_settings(config, search["method"]),
    )  # fmt: skip


def check_restorable(folder: str) -> None:
    """Refuse an experiment folder whose Tune state files are empty.

    Tune copies its state from a staging folder to storage in a background thread, file by file and not
    atomically; a run killed (SIGKILL, power loss) in mid-copy leaves an empty file, and ``Tuner.restore``
    then silently restarts a broken experiment. Say so instead, naming the file.
    """
    import glob
    import os

    for path in sorted(glob.glob(os.path.join(folder, "*.pkl")) + glob.glob(os.path.join(folder, "*.json"))):
        if os.path.getsize(path) == 0:
            raise RunStateError(
                f"cannot resume the Tune experiment in {folder}: {os.path.basename(path)} is empty (the run was "
                "killed while Tune copied its state to storage). Start afresh with tune.resume=false and a new "
                "name, or delete the folder."
            )


def check_fresh(folder: str) -> None:
    """Refuse to start a new experiment in a folder holding one: Tune would add a second run's trials to it
    (every architecture twice)."""
    import os

    if os.path.isdir(folder) and os.listdir(folder):
        raise RunStateError(
            f"the Tune experiment folder {folder} already holds an experiment; resume it with "
            "--set tune.resume=true, or start over under another name (--set name=NEW) or after deleting the folder"
        )


def check_complete(results, max_sample: int, folder: str) -> None:
    """Refuse an experiment that did not end with ``max_sample`` distinct architectures (Tune restarts an
    experiment whose run state it cannot restore, and a restarted searcher may end early), naming what is
    missing instead of reporting a partial result as the answer."""
    indices = [r.metrics.get("arch_index") for r in results if r.metrics and "arch_index" in r.metrics]
    distinct = len(set(indices))
    if len(indices) != max_sample or distinct != max_sample or results.errors:
        raise RunStateError(
            f"the Tune experiment in {folder} ended with {len(indices)} trial result(s) over {distinct} distinct "
            f"architecture(s) and {len(results.errors)} error(s), not search.max_sample = {max_sample}: its saved "
            "state was incomplete (a run killed before Tune saved it). Delete the folder, or use another name "
            "(--set name=NEW), and run it again."
        )


def main(args: argparse.Namespace) -> int:
    """Run (or resume) the Tuner the config describes and print the best architecture found."""
    import os
    from pathlib import Path

    import ray
    from ray import tune

    from weaknas_ray.benchmarks.registry import load_benchmark

    config = load_tune_config(args.config, args.set)
    options = dict(config["benchmark"])
    benchmark = load_benchmark(options.pop("name"), **options)
    settings = config["tune"]
    settings["storage_path"] = str(Path(settings["storage_path"] or "~/ray_results").expanduser().resolve())
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=config["ray"]["address"] or "local", num_cpus=config["ray"]["num_cpus"], include_dashboard=False)
    folder = os.path.join(settings["storage_path"], config["name"])
    if settings["resume"] and tune.Tuner.can_restore(folder):
        check_restorable(folder)
        tuner = tune.Tuner.restore(folder, trainable=make_trainable(benchmark, settings["cpus_per_trial"]))
    else:
        check_fresh(folder)
        tuner = make_tuner(benchmark, make_searcher(config, benchmark.space), settings, config["name"])
    results = tuner.fit()
    check_complete(results, config["search"]["max_sample"], folder)
    best = results.get_best_result(metric=settings["metric"], mode=settings["mode"])
    print(
        f"{len(results)} trials in {folder}\n"
        f"best {settings['metric']} {best.metrics[settings['metric']]:.4f}: test_acc {best.metrics['test_acc']:.4f}, "
        f"arch_index {best.metrics['arch_index']} {benchmark.space.arch_str(best.metrics['arch_index'])}"
    )
    if benchmark.oracle.optimum is not None:
        print(f"benchmark optimum: search {benchmark.oracle.optimum[0]:.4f}, reported {benchmark.oracle.optimum[1]:.4f}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tune", help="WeakNAS as a Ray Tune searcher over a tabular benchmark")
    parser.add_argument("--config", help="YAML tune config (default: the built-in quick NAS-Bench-201 run)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set search.max_sample=40 --set tune.resume=true",
    )  # fmt: skip
    parser.set_defaults(func=main)
