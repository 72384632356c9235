"""``weaknas-ray tune --config FILE [--set KEY=VALUE ...]``: WeakNAS as the search algorithm of a Ray Tune
``Tuner`` over a tabular benchmark, with a trainable that looks each architecture up.

The lookup trainable stands in for real training: replace :func:`lookup_trainable` by a function that
builds and trains the network described by the config (``config["arch"]`` or its fields) and calls
``tune.report`` with the same metric name. The config is ``run``'s (``weaknas_ray.config``: the
same loading, schema, ``--set`` and ``--output``), with one method in ``search.methods`` and the ``tune``
section. Each of ``search.repeats`` repeats (seed ``search.seed + r``) is one Tune experiment,
``<output>/tune_r<rrrr>``; ``output`` also holds the run's records as ``weaknas-ray run`` writes them
(``results.parquet``, ``summary.json``, ``curves.png``; docs/output.md), so ``weaknas-ray report`` compares
the Tune path with Core runs (see ``configs/tune_nasbench201.yaml``, ``configs/tune_hpolib_protein.yaml``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any

from weaknas_ray.config import load_config, method_settings
from weaknas_ray.exceptions import ConfigError, RunStateError

# NOTE: the config `weaknas-ray tune` runs without --config (a shipped one).
DEFAULT_CONFIG = "tune_nasbench201"
# NOTE: what lookup_trainable reports (a metric it does not report would fail every trial): the
# benchmark's search and reported values, also under NAS-Bench-201's names.
METRICS = ("search_value", "reported_value", "val_acc", "test_acc")


def load_tune_config(path: str | None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated tune config: ``run``'s loading, schema and overrides (:func:`~weaknas_ray.config.load_config`;
    ``path`` default :data:`DEFAULT_CONFIG`), with exactly one method in ``search.methods``.

    Raises:
        ConfigError: unreadable file, unknown key, wrong type or bad value (naming the key).
    """
    config = load_config(path or DEFAULT_CONFIG, overrides)
    methods = config["search"]["methods"]
    if len(methods) != 1:
        raise ConfigError(f"search.methods: a Tune experiment runs one method, got {methods}")
    method_settings(config, methods[0])  # rejects settings the method does not take
    if config["tune"]["metric"] not in METRICS:
        raise ConfigError(f"tune.metric: expected one of {list(METRICS)}, got {config['tune']['metric']!r}")
    return config


def lookup_trainable(config: dict[str, Any], benchmark) -> None:
    """A Tune function trainable that "trains" by looking the architecture up in a tabular benchmark.

    Args:
        config: a suggestion of :class:`~weaknas_ray.drivers.tune_searcher.WeakNASSearcher`
            (``arch_index``), or the space's fields only (Tune's own searchers).
        benchmark: the :class:`~weaknas_ray.interfaces.Benchmark` (passed with
            ``tune.with_parameters``, so it is shipped to the workers once).

    Reports ``search_value`` (the search signal, also as ``val_acc``), ``reported_value`` (the reported
    metric, also as ``test_acc``) and ``arch_index``.
    """
    from ray import tune

    if "arch_index" in config:
        index = int(config["arch_index"])
    else:
        index = benchmark.space.index_of({key: config[key] for key in benchmark.space.param_choices()})
    values = benchmark.oracle.evaluate([index])
    search, reported = float(values.search[0]), float(values.reported[0])
    tune.report({"search_value": search, "reported_value": reported, "val_acc": search, "test_acc": reported,
                 "arch_index": index})  # fmt: skip


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


def make_searcher(config: dict[str, Any], space, seed: int | None = None):
    """The ``WeakNASSearcher`` a tune config describes, over ``space`` (seeded by ``seed``, default
    ``search.seed``)."""
    from weaknas_ray.drivers.tune_searcher import WeakNASSearcher

    search, tune_settings, method = config["search"], config["tune"], config["search"]["methods"][0]
    return WeakNASSearcher(
        space, metric=tune_settings["metric"], mode=tune_settings["mode"], max_sample=search["max_sample"],
        method=method, seed=search["seed"] if seed is None else seed, fit_in_task=tune_settings["fit_in_task"], **method_settings(config, method),
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
    """Refuse an experiment that did not end with ``max_sample`` distinct architectures (Tune ends one early
    on Ctrl-C, and restarts one whose run state it cannot restore, whose searcher may end early), naming what
    is missing instead of recording a partial result as the repeat."""
    indices = [r.metrics.get("arch_index") for r in results if r.metrics and "arch_index" in r.metrics]
    distinct = len(set(indices))
    if len(indices) != max_sample or distinct != max_sample or results.errors:
        raise RunStateError(
            f"the Tune experiment in {folder} ended with {len(indices)} trial result(s) over {distinct} distinct "
            f"architecture(s) and {len(results.errors)} error(s), not search.max_sample = {max_sample}: it was "
            "interrupted, or Tune restarted it from incomplete saved state (a run killed before Tune saved it). "
            "Continue with --set tune.resume=true (finished repeats are kept); if it ends short again, delete "
            f"{folder} and run again."
        )


def main(args: argparse.Namespace) -> int:
    """Run (or resume) one Tune experiment per repeat, record each as a run's repeat, and print the summary."""
    import ray

    from weaknas_ray.benchmarks.registry import load_benchmark
    from weaknas_ray.commands.run import parse_set, refuse_unlisted_methods
    from weaknas_ray.drivers.ray_runner import run_meta
    from weaknas_ray.drivers.repeats import check_methods, predictor_dtypes
    from weaknas_ray.results.aggregate import counted, summary_table
    from weaknas_ray.results.records import RunStore, check_output_path
    from weaknas_ray.results.report import write_report

    overrides = parse_set(args.set)
    config = load_tune_config(args.config, {"output": args.output, **overrides})
    refuse_unlisted_methods(overrides, config["search"]["methods"])
    output = Path(config["output"]).expanduser().resolve()
    check_output_path(output)
    store = RunStore(output)
    if not config["tune"]["resume"]:
        check_fresh(str(output))
    elif not (output / "config.yaml").is_file():
        raise RunStateError(
            f"tune.resume: {output} holds no Tune experiment to resume; check --output (or name), or drop "
            "tune.resume=true to start a new experiment there"
        )
    options = dict(config["benchmark"])
    benchmark = load_benchmark(options.pop("name"), **options)
    dtypes = predictor_dtypes(check_methods(config, benchmark))
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=config["ray"]["address"] or "local", num_cpus=config["ray"]["num_cpus"], include_dashboard=False)
    method = config["search"]["methods"][0]
    with store.lock():
        store.prepare(config, run_meta(benchmark, dtypes))
        done = store.finished()
        todo = [r for r in range(config["search"]["repeats"]) if (method, r) not in done]
        print(f"results: {output} ({counted(len(done), 'repeat')} already done, {len(todo)} to run)")
        for repeat in todo:
            rows = run_tune_repeat(config, benchmark, repeat, output / f"tune_r{repeat:04d}")
            store.write_repeat(method, repeat, rows, None)
        store.merge()
    summary = write_report(store, benchmark, dynamics=False)
    print(summary_table(summary))
    if benchmark.oracle.optimum is not None:
        print(f"benchmark optimum: search {benchmark.oracle.optimum[0]:.4f}, reported {benchmark.oracle.optimum[1]:.4f}")
    print(f"results written to {output}")
    return 0


def run_tune_repeat(config: dict[str, Any], benchmark, repeat: int, folder: Path):
    """Repeat ``repeat`` (seed ``search.seed + repeat``) as the Tune experiment ``folder``, resumed there
    with ``tune.resume``; returns its query rows as the Core runner writes them (same columns, query order,
    iterations), read from the searcher state Tune saved at the end.

    The searcher state is a pickle: it is read from a folder this command has just written, or from the
    one the user asked to resume (which ``Tuner.restore`` unpickles anyway).
    """
    import numpy as np
    from ray import tune

    from weaknas_ray.drivers.loop import RepeatLog
    from weaknas_ray.drivers.repeats import RepeatTask, label_rows

    search, settings = config["search"], dict(config["tune"])
    seed = search["seed"] + repeat
    oracle = benchmark.oracle.for_repeat(seed)
    bench = dataclasses.replace(benchmark, oracle=oracle)
    settings["storage_path"], name = str(folder.parent), folder.name
    log = RepeatLog(oracle)
    if settings["resume"] and tune.Tuner.can_restore(str(folder)):
        check_restorable(str(folder))
        tuner = tune.Tuner.restore(str(folder), trainable=make_trainable(bench, settings["cpus_per_trial"]))
    else:
        check_fresh(str(folder))
        tuner = make_tuner(bench, make_searcher(config, bench.space, seed), settings, name)
    results = tuner.fit()
    check_complete(results, search["max_sample"], str(folder))
    searcher = make_searcher(config, bench.space, seed)
    searcher.restore_from_dir(str(folder))
    history = searcher.optimizer.history
    indices, iterations = np.asarray(history.indices, dtype=np.int64), np.asarray(history.iterations)
    for iteration in dict.fromkeys(iterations.tolist()):
        idx = indices[iterations == iteration]
        log.record(iteration, idx, oracle.evaluate(idx))
    rows = label_rows(log.frame(), RepeatTask(search["methods"][0], repeat, seed, search["max_sample"]), bench.space)
    best = rows["best_search_so_far"].iloc[-1]
    print(f"repeat {repeat} (seed {seed}): {len(results)} trials in {folder}, best search value {best:.4f}")
    return rows


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("tune", help="WeakNAS as a Ray Tune searcher over a tabular benchmark")
    parser.add_argument("--config", help=f"a YAML file or a shipped config's name (default: {DEFAULT_CONFIG})")
    parser.add_argument("--output", help="the experiment folder (config key output)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set search.max_sample=40 --set tune.resume=true",
    )  # fmt: skip
    parser.set_defaults(func=main)
