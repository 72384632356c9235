"""Summary and figures of a saved run, from its output folder alone (plus the benchmark for t-SNE)."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable
from typing import Any

from weaknas_ray.results.aggregate import summarize
from weaknas_ray.results.records import RunStore, write_text


def write_report(
    store: RunStore, benchmark=None, log_x: bool = False, dynamics: bool = True, echo: Callable[[str], Any] = print,
    allow_loaders: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Write ``summary.json``, ``curves.png`` and (for pools small enough) ``search_dynamics.png``.

    Args:
        store: the run's folder.
        benchmark: the loaded :class:`~weaknas_ray.interfaces.Benchmark`; ``None`` loads it from
            the saved config only when the dynamics figure needs it.
        log_x: logarithmic query axis of ``curves.png``.
        dynamics: draw ``search_dynamics.png``.
        echo: where notes (e.g. a skipped figure) go.
        allow_loaders: ``benchmark.loader`` values the user allows to be imported for the dynamics figure;
            a saved config's loader is never imported otherwise.

    Returns:
        The summary dict.
    """
    from weaknas_ray.results.plots import plot_curves

    config, meta = store.load_config(), store.load_meta()
    with store.reporting():
        store.merge()
        results = store.results()
        max_sample = config["search"]["max_sample"]
        optimum = (meta.get("optimum") or {}).get("reported")
        regret_kind = meta.get("regret", "difference")
        summary = summarize(results, store.final_top1(), max_sample, meta.get("optimum_indices"), optimum,
                            meta.get("search_optimum_indices"), regret_kind, meta.get("notes"))
        summary = {"name": config["name"], "benchmark": meta.get("benchmark"), **summary,
                   "predictor_dtype": meta.get("predictor_dtype", {})}
        write_text(store.root / "summary.json", json.dumps(summary, indent=2))
        plot_curves({"": (results, max_sample)}, store.root / "curves.png", optimum, log_x, regret_kind)
        if dynamics:
            _dynamics(store, config, results, benchmark, echo, allow_loaders)
    return summary


def start_embedding(benchmark) -> threading.Thread | None:
    """Compute the pool's t-SNE in a background thread while the search runs (the figure at the end
    then reads it from the cache). ``None`` when the pool is too large or scikit-learn is missing."""
    from weaknas_ray.benchmarks.paths import cache_dir
    from weaknas_ray.results.plots import MAX_TSNE_POOL, tsne_embedding

    if len(benchmark.space) > MAX_TSNE_POOL or importlib.util.find_spec("sklearn") is None:
        return None

    def work() -> None:
        try:
            tsne_embedding(benchmark.space.features, cache_dir())
        except Exception:  # noqa: BLE001 (the report computes it again and reports the error)
            pass

    thread = threading.Thread(target=work, name="tsne", daemon=True)
    thread.start()
    return thread


def _dynamics(store: RunStore, config: dict, results, benchmark, echo, allow_loaders) -> None:
    import numpy as np

    from weaknas_ray.benchmarks.paths import cache_dir
    from weaknas_ray.exceptions import WeakNASError
    from weaknas_ray.results.plots import MAX_TSNE_POOL, plot_search_dynamics, tsne_embedding

    if benchmark is None:
        from weaknas_ray.benchmarks.registry import load_configured_benchmark

        try:
            benchmark = load_configured_benchmark(config, allow_loaders)
        except WeakNASError as exc:
            echo(f"search_dynamics.png skipped: could not load the benchmark: {exc}")
            return
    n = len(benchmark.space)
    if n > MAX_TSNE_POOL:
        echo(f"search_dynamics.png skipped: the pool has {n} architectures (t-SNE limit {MAX_TSNE_POOL})")
        return
    if importlib.util.find_spec("sklearn") is None:
        echo("search_dynamics.png skipped: t-SNE needs scikit-learn (pip install scikit-learn)")
        return
    methods = list(results["method"].unique())
    method = next((m for m in methods if m.startswith("weaknas")), methods[0])
    rows = results[results["method"] == method]
    rows = rows[rows["repeat"] == rows["repeat"].min()]
    accuracy = benchmark.oracle.evaluate(np.arange(n)).reported
    embedding = tsne_embedding(benchmark.space.features, cache_dir())
    title = f"{benchmark.name}: {method}, repeat {int(rows['repeat'].iloc[0])} (seed {int(rows['seed'].iloc[0])})"
    plot_search_dynamics(embedding, accuracy, rows, store.root / "search_dynamics.png", title)
