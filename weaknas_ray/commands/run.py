"""``weaknas-ray run`` / ``python run_search.py``: run or resume a search from a YAML config."""

from __future__ import annotations

import argparse
import sys

# flag dest -> dotted config key it overrides
OVERRIDES = {
    "output": "output",
    "repeats": "search.repeats",
    "max_sample": "search.max_sample",
    "seed": "search.seed",
    "num_cpus": "ray.num_cpus",
    "address": "ray.address",
    "methods": "search.methods",
    "data_dir": "benchmark.data_dir",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run a search (no arguments: the quick NAS-Bench-201 default)",
        description="Run or resume a search. Without --config: NAS-Bench-201 CIFAR-10, WeakNAS against "
        "random search, 4 repeats (a few minutes on 2 cores). Rerunning with the same --output resumes.",
    )
    parser.add_argument(
        "--config", help="a YAML file, or the name of a shipped config (`weaknas-ray configs`); default: nb201_quick"
    )
    parser.add_argument("--output", help="output folder (config key output)")
    parser.add_argument("--repeats", type=int, help="repeats per method (search.repeats)")
    parser.add_argument("--max-sample", type=int, help="query budget per repeat (search.max_sample)")
    parser.add_argument("--seed", type=int, help="seed of repeat 0; repeat r uses seed + r (search.seed)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray instance (ray.num_cpus)")
    parser.add_argument("--address", help="join an existing Ray cluster: 'auto' or HOST:PORT (ray.address)")
    parser.add_argument("--data-dir", help="benchmark data root, the only one used when given (benchmark.data_dir)")
    from weaknas_ray.engine import METHODS

    parser.add_argument("--methods", nargs="+", metavar="M", help=f"methods to run (search.methods): {', '.join(METHODS)}")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override any config key, VALUE parsed as YAML (e.g. --set methods.weaknas.n_members=3)",
    )
    add_allow_loader(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=main)


def add_allow_loader(parser: argparse.ArgumentParser) -> None:
    """The ``--allow-loader MODULE:FUNCTION`` flag (repeatable) of commands that may load a benchmark."""
    parser.add_argument(
        "--allow-loader", action="append", default=[], metavar="MODULE:FUNCTION",
        help="allow importing this benchmark.loader of a config (a config's own loader is never imported "
             "otherwise, unless an installed package registers it)",
    )


def parse_set(items: list[str]) -> dict:
    """``["a.b=1", ...]`` -> ``{"a.b": 1}`` with YAML-parsed values (safe YAML: no Python tags); ``a.b=null``
    gives :data:`~weaknas_ray.config.NULL`, which sets the key to null."""
    import yaml

    from weaknas_ray.config import NULL
    from weaknas_ray.exceptions import ConfigError

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            value = yaml.safe_load(text)
            out[key.strip()] = NULL if value is None else value
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"--set {key.strip()}: not a plain YAML value: {problem}") from None
    return out


def refuse_unlisted_methods(settings: dict, methods: list[str]) -> None:
    """Refuse a ``--set`` of a method the run does not list: it would be checked and then never used, so
    the flag was meant for a run of that method (a config file may hold settings of several methods, to
    be picked with ``--methods``; a flag names one on purpose).

    Raises:
        ConfigError: naming the flag and the methods the run lists.
    """
    from weaknas_ray.exceptions import ConfigError

    for key, value in settings.items():
        section, _, rest = key.partition(".")
        if section != "methods":
            continue
        names = [rest.partition(".")[0]] if rest else list(value) if isinstance(value, dict) else []
        for name in names:
            if name not in methods:
                raise ConfigError(
                    f"--set {key}: method {name!r} is not run (search.methods: {', '.join(methods)}); add it to "
                    "--methods, or drop the setting"
                )


def main(args: argparse.Namespace) -> int:
    from weaknas_ray.config import load_config
    from weaknas_ray.drivers.ray_runner import run_search
    from weaknas_ray.exceptions import interrupt_on_sigterm, terminated_by
    from weaknas_ray.results.report import start_embedding

    interrupt_on_sigterm()
    overrides = {key: getattr(args, dest) for dest, key in OVERRIDES.items()}
    settings = parse_set(args.set)
    config = load_config(args.config, {**overrides, **settings})
    refuse_unlisted_methods(settings, config["search"]["methods"])
    embedding = []  # the pool's t-SNE, computed while the search runs
    try:
        outcome = run_search(config, progress=not args.no_progress, allow_loaders=tuple(args.allow_loader),
                             on_start=lambda benchmark: embedding.append(start_embedding(benchmark)))
    except KeyboardInterrupt as exc:
        from weaknas_ray.results.records import RunStore

        store = RunStore(config["output"])
        kept = len(store.finished()) if store.repeats_dir.is_dir() else 0
        sigterm = terminated_by(exc)
        how = "terminated (SIGTERM)" if sigterm else "interrupted"
        print(f"\n{how}: {kept} finished repeat(s) kept in {store.root.resolve()}; "
              "rerun the same command to resume", file=sys.stderr)
        return 143 if sigterm else 130
    report(outcome, embedding[0] if embedding else None)
    if outcome.failures:
        print(f"{len(outcome.failures)} repeat(s) failed: see {outcome.output / 'failures.json'}; "
              "rerun the same command to retry them (fix the setting first if the error names one)")
        return 1
    return 0


def report(outcome, embedding=None, echo=print) -> dict | None:
    """The run's report step: ``summary.json`` and the figures, once any repeat has finished.

    Args:
        outcome: what :func:`~weaknas_ray.drivers.ray_runner.run_search` returned.
        embedding: the t-SNE thread started while the search ran, or ``None``.
        echo: where messages go.

    Returns:
        The summary, or ``None`` when no repeat has finished.
    """
    from weaknas_ray.results.aggregate import summary_table
    from weaknas_ray.results.records import RunStore
    from weaknas_ray.results.report import write_report

    if embedding is not None and embedding.is_alive():
        echo("computing the pool's t-SNE layout for search_dynamics.png (once per pool; cached) ...")
        embedding.join()
    if not (outcome.skipped or outcome.ran):
        return None
    store = RunStore(outcome.output)
    summary = write_report(store, outcome.benchmark, echo=echo)
    echo(summary_table(summary))
    echo(f"results written to {store.root.resolve()}")
    return summary
