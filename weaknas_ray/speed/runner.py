"""Ray runner speed: repeats/hour on 1 worker vs all CPUs, Ray overhead vs the in-process loop, chunked EI.

Three measurements from one run:

1. the same repeats run in-process (one after the other, torch on 1 thread), then through the runner
   with one repeat actor, then with as many actors as local CPUs: repeats per hour and the scaling ratio
   (target >= 1.8x on 2 cores) and Ray's overhead per repeat against the in-process loop (target < 5 %);
2. one EI scoring pass of an ensemble over a 423,624-row pool (NAS-Bench-101's size, synthetic 45-feature
   rows) as one Ray task versus chunk tasks over all CPUs, checking both select the same architectures.

The repeats run on NAS-Bench-201 CIFAR-10 when its data are present, else on a synthetic pool.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

# NOTE: NAS-Bench-101's pool size and feature count (weaknas-method.md, "Encodings").
NB101_ROWS, NB101_FEATURES = 423_624, 45


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small budgets: finishes within two minutes")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 8, quick 4)")
    parser.add_argument("--max-sample", type=int, help="queries per repeat (default 100, quick 40)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance")


def main(args: argparse.Namespace) -> int:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    quick = args.quick
    repeats = args.repeats or (4 if quick else 8)
    max_sample = args.max_sample or (40 if quick else 100)
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        bench, label = _benchmark()
        print(f"runner bench on {label}: {repeats} WeakNAS repeats of {max_sample} queries, {args.num_cpus} CPUs")
        times = _repeat_times(bench, repeats, max_sample, hidden=[64] if quick else [256, 256], cpus=args.num_cpus)
        per_hour = {k: 3600 * repeats / v for k, v in times.items()}
        for key, label in (("in-process", "in-process loop"), ("1 worker", "Ray, 1 worker"), ("all", f"Ray, {args.num_cpus} workers")):
            start = f"  (actor start {times[key + ' start']:.1f} s)" if key != "in-process" else ""
            print(f"  {label:<22} {times[key]:7.1f} s   {per_hour[key]:8.0f} repeats/h{start}")
        print(f"  scaling (1 -> {args.num_cpus} workers)  {times['1 worker'] / times['all']:.2f}x   (target >= 1.8x on 2 cores)")
        for label, spent in (("with", times["1 worker"]), ("after", times["1 worker"] - times["1 worker start"])):
            overhead = (spent - times["in-process"]) / repeats
            print(f"  Ray overhead per repeat, {label} actor start: {overhead:+.2f} s = "
                  f"{overhead * repeats / times['in-process']:+.1%} of an in-process repeat   (target < 5 %)")
        single, chunked, n_chunks = _scoring_times(quick, args.num_cpus)
        print(f"EI scoring of a {NB101_ROWS}-row pool, ensemble of 5 MLPs ({'2 x 128' if quick else '4 x 1000'}):")
        print(f"  one task {single:.2f} s, {n_chunks} chunk tasks {chunked:.2f} s: {single / chunked:.2f}x, same selection")
    finally:
        ray.shutdown()
    return 0


def _benchmark():
    from weaknas_ray.benchmarks.registry import load_benchmark
    from weaknas_ray.exceptions import BenchmarkDataError
    from weaknas_ray.interfaces import Benchmark, TableOracle
    from weaknas_ray.spaces import ArraySpace

    try:
        return load_benchmark("nasbench201", dataset="cifar10"), "NAS-Bench-201 cifar10"
    except BenchmarkDataError:
        rng = np.random.default_rng(0)
        X = rng.integers(0, 2, size=(15_625, 30)).astype(np.float32)
        acc = X @ rng.normal(size=30)
        return Benchmark("synthetic", ArraySpace(X, "synthetic"), TableOracle(acc)), "a synthetic 15,625-row pool"


def _repeat_times(bench, repeats: int, max_sample: int, hidden: list[int], cpus: int) -> dict[str, float]:
    """Wall seconds of the same repeats in-process, on 1 repeat actor and on ``cpus`` actors, and of
    starting the actors (a run of one 11-query repeat per actor: process start, imports, one fit)."""
    import torch

    from weaknas_ray.config import load_config
    from weaknas_ray.drivers.ray_runner import run_search
    from weaknas_ray.drivers.repeats import plan_tasks, run_one_repeat

    overrides = {
        "benchmark": {"name": "nasbench201"},  # saved in the temporary config only: bench is passed in
        "search.methods": ["weaknas"], "search.repeats": repeats, "search.max_sample": max_sample,
        "methods.weaknas": {"predictor": "mlp", "predictor_params": {"hidden": hidden}},
    }
    times = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a 1-CPU repeat actor
    start = time.perf_counter()
    for task in plan_tasks(load_config(overrides={**overrides, "output": "unused"}), set()):
        run_one_repeat(bench, task)
    times["in-process"] = time.perf_counter() - start
    torch.set_num_threads(threads)
    for key, workers in (("1 worker", 1), ("all", cpus)):
        for label, extra in ((f"{key} start", {"search.repeats": workers, "search.max_sample": 11, "search.sample_each_iter": 1}), (key, {})):
            with tempfile.TemporaryDirectory() as out:
                config = load_config(overrides={**overrides, **extra, "output": out, "ray.max_workers": workers})
                start = time.perf_counter()
                run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
                times[label] = time.perf_counter() - start
    return times


def _scoring_times(quick: bool, cpus: int) -> tuple[float, float, int]:
    """Seconds of one EI pass as a single task and as chunk tasks (after a warm-up pass each)."""
    from weaknas_ray.acquisition import ScoreRequest
    from weaknas_ray.drivers.ray_scoring import RayPoolScorer, choose_chunk_size, put_pool_chunks
    from weaknas_ray.exceptions import WeakNASError
    from weaknas_ray.predictors import make_predictor

    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, size=(NB101_ROWS, NB101_FEATURES)).astype(np.float32)
    hidden = [128, 128] if quick else [1000] * 4
    train = rng.choice(NB101_ROWS, size=200, replace=False)
    y = (X[train] @ rng.normal(size=NB101_FEATURES)).astype(np.float32)
    model = make_predictor("mlp", n_members=5, hidden=hidden, max_epochs=5 if quick else 100).fit(X[train], (y - y.mean()) / y.std(), seed=0)
    request = ScoreRequest("ei", n_top=1000, k=10, excluded=train, best=float(((y - y.mean()) / y.std()).max()))
    chunk = choose_chunk_size(NB101_ROWS, 5, cpus, None)
    scorers = [RayPoolScorer(put_pool_chunks(X, NB101_ROWS)), RayPoolScorer(put_pool_chunks(X, chunk))]
    seconds, picks = [], []
    for scorer in scorers:
        scorer(model, request)  # warm-up: worker processes import torch once
        start = time.perf_counter()
        picks.append(scorer(model, request).candidates)
        seconds.append(time.perf_counter() - start)
    if not np.array_equal(*picks):
        raise WeakNASError(f"chunked EI scoring selected {picks[1].tolist()}, one task {picks[0].tolist()}")
    return seconds[0], seconds[1], len(scorers[1].chunks)
