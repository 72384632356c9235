"""Ray runner speed: repeats/hour on 1 worker vs all CPUs, Ray overhead vs the in-process loop, and the
critical path of one EI iteration in the actor vs member and chunk tasks, with a model for C CPUs.

Measurements from one run:

1. the same repeats run in-process (one after the other, torch on 1 thread), then through the runner
   with one repeat actor, then with as many actors as local CPUs: repeats per hour and the scaling ratio
   (target >= 1.8x on 2 cores) and Ray's overhead per repeat against the in-process loop (target < 5 %);
   skipped with ``--ei-only``;
2. one EI iteration of the published ensemble (E = 5, 4 x 1000 MLP, 1,000 training rows) over a
   423,624-row pool (NAS-Bench-101's size, synthetic 45-feature rows): fit, predict and merge in one
   process (as a repeat actor does) vs fitted by member tasks and scored by chunk tasks over this
   machine's CPUs, checking both select the same architectures; then a model of the iteration, and of a
   91-iteration NAS-Bench-101 EI repeat, for C CPUs, calibrated from the measured per-member-epoch fit,
   per-row prediction and per-row merge costs and the measured task overhead. ``--quick`` fits 2 epochs
   and predicts a 16,384-row slice of the pool, and scales both (printed as such).

The repeats run on NAS-Bench-201 CIFAR-10 when its data are present, else on a synthetic pool.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time

import numpy as np

# NOTE: NAS-Bench-101's pool size and feature count (weaknas-method.md, "Encodings").
NB101_ROWS, NB101_FEATURES = 423_624, 45
# NOTE: the published NB101 EI repeat: 100 initial queries, 10 per iteration, 1,000 in all: 90 fitting
# iterations plus the final fit (weaknas-method.md, "The loop"); ensemble of 5.
NB101_INIT, NB101_STEP, NB101_BUDGET, EI_MEMBERS = 100, 10, 1000, 5
# NOTE: epochs a 4 x 1000 member ran on 1,000 NB101-like rows (43-64 measured, docs/speed.md); the model
# uses this mean where the bench does not fit to convergence (--quick).
ASSUMED_EPOCHS = 54
MODEL_CPUS = (1, 2, 8, 32, 128)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small budgets: finishes within two minutes")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 8, quick 4)")
    parser.add_argument("--max-sample", type=int, help="queries per repeat (default 100, quick 40)")
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of the local Ray instance")
    parser.add_argument("--ei-only", action="store_true", help="only the EI critical path and the C-CPU model")


def main(args: argparse.Namespace) -> int:
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    quick = args.quick
    repeats = args.repeats or (4 if quick else 8)
    max_sample = args.max_sample or (40 if quick else 100)
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        if not args.ei_only:
            _report_repeats(repeats, max_sample, quick, args.num_cpus)
        _report_ei(quick, args.num_cpus)
    finally:
        ray.shutdown()
    return 0


def _report_repeats(repeats: int, max_sample: int, quick: bool, cpus: int) -> None:
    bench, label = _benchmark()
    print(f"runner bench on {label}: {repeats} WeakNAS repeats of {max_sample} queries, {cpus} CPUs")
    times = _repeat_times(bench, repeats, max_sample, hidden=[64] if quick else [256, 256], cpus=cpus)
    per_hour = {k: 3600 * repeats / v for k, v in times.items()}
    for key, label in (("in-process", "in-process loop"), ("1 worker", "Ray, 1 worker"), ("all", f"Ray, {cpus} workers")):
        start = f"  (actor start {times[key + ' start']:.1f} s)" if key != "in-process" else ""
        print(f"  {label:<22} {times[key]:7.1f} s   {per_hour[key]:8.0f} repeats/h{start}")
    print(f"  scaling (1 -> {cpus} workers)  {times['1 worker'] / times['all']:.2f}x   (target >= 1.8x on 2 cores)")
    for label, spent in (("with", times["1 worker"]), ("after", times["1 worker"] - times["1 worker start"])):
        overhead = (spent - times["in-process"]) / repeats
        print(f"  Ray overhead per repeat, {label} actor start: {overhead:+.2f} s = "
              f"{overhead * repeats / times['in-process']:+.1%} of an in-process repeat   (target < 5 %)")


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


def _report_ei(quick: bool, cpus: int) -> None:
    m = _ei_critical_path(quick, cpus)
    scale = "scaled from a 2-epoch fit and a 16,384-row pool slice, " if quick else ""
    print(f"EI iteration, E = {EI_MEMBERS} x (4 x 1000) MLP, 1,000 training rows, {NB101_ROWS:,}-row pool "
          f"({scale}{m['epochs']:.0f} epochs per member):")
    print(f"  {'critical path on this machine':<34} {'fit':>8} {'predict':>8} {'merge':>7} {'total':>8}")
    for key, label in (("actor", "in one process (repeat actor)"), ("tasks", f"member + chunk tasks, {cpus} CPUs")):
        fit, pred, merge = m[key]
        merged = f"{merge:7.1f}" if key == "actor" else f"{'(in it)':>7}"
        print(f"  {label:<34} {fit:8.1f} {pred:8.1f} {merged} {fit + pred + merge:8.1f} s")
    print(f"  speed-up {sum(m['actor']) / sum(m['tasks']):.2f}x; selections identical: {m['same']}")
    print(f"  calibration: {m['f_epoch'] * 1e3:.2f} ms per member-epoch per 1,000 rows, {m['p'] * 1e6:.2f} us "
          f"per member-row predicted, {m['s'] * 1e6:.3f} us per row merged, {m['o']:.2f} s overhead per task wave")
    print("model, one repeat on C CPUs (the actor holds 1; tasks as ray.* defaults plan them):")
    print(f"  {'C':>4} {'member':>6} {'chunk':>7} {'iteration (1,000 rows)':>23} {'NB101 EI repeat (91 fits)':>26}")
    for c in MODEL_CPUS:
        members, chunk, it = _model_iteration(m, c, NB101_BUDGET)
        repeat = sum(_model_iteration(m, c, rows)[2] for rows in _nb101_fit_rows())
        print(f"  {c:>4} {members:>6} {chunk:>7} {it:>21.1f} s {repeat / 3600:>24.2f} h")
    print("  published code: 5-10 h per NB101 EI repeat (weaknas-method.md)")


def _nb101_fit_rows() -> list[int]:
    """Training rows of every fit of a NAS-Bench-101 EI repeat: iterations 1..90, then the final fit."""
    return list(range(NB101_INIT, NB101_BUDGET, NB101_STEP)) + [NB101_BUDGET]


def _model_iteration(m: dict, cpus: int, rows: int) -> tuple[int, int, float]:
    """``(member tasks, chunk rows, seconds)`` of one EI iteration fitting on ``rows`` rows on ``cpus`` CPUs:
    the plan of :func:`~weaknas_ray.drivers.resources.plan_resources` for one EI repeat, tasks in waves of
    the free CPUs, each wave costing its longest task plus the measured overhead."""
    from weaknas_ray.config import load_config
    from weaknas_ray.drivers.repeats import RepeatTask
    from weaknas_ray.drivers.resources import plan_resources

    cfg = load_config()["ray"]
    _, chunk, members = plan_resources(cfg, {"CPU": cpus}, NB101_ROWS, [RepeatTask("weaknas-ei", 0, 0, NB101_BUDGET)], 1)
    free, E = cpus - cfg["cpus_per_repeat"], EI_MEMBERS
    member_fit = m["f_epoch"] * m["epochs"] * rows / 1000
    if members:
        fit = math.ceil(E / members) * member_fit + m["o"]
    else:
        fit = E * member_fit
    if chunk:
        slices = members or 1
        n_tasks = math.ceil(NB101_ROWS / chunk) * slices
        waves = math.ceil(n_tasks / free)
        predict = waves * (math.ceil(E / slices) * chunk * m["p"] + m["o"])
    else:
        predict = E * NB101_ROWS * m["p"]
    return members, chunk, fit + predict + NB101_ROWS * m["s"]


def _ei_critical_path(quick: bool, cpus: int) -> dict:
    """One EI iteration in this process vs member and chunk tasks over ``cpus`` CPUs (after a warm-up that
    starts the task workers), timed by part, plus the calibration of :func:`_model_iteration`."""
    import ray
    import torch

    from weaknas_ray.acquisition import ScoreRequest, merge_chunks, select_chunk
    from weaknas_ray.drivers.ray_scoring import RayMemberFitter, RayPoolScorer, choose_chunk_size, put_pool_chunks
    from weaknas_ray.exceptions import WeakNASError
    from weaknas_ray.predictors import make_predictor
    from weaknas_ray.predictors.base import PREDICT_BLOCK_ROWS

    rng = np.random.default_rng(0)
    pool = 4 * PREDICT_BLOCK_ROWS if quick else NB101_ROWS
    X = rng.integers(0, 2, size=(pool, NB101_FEATURES)).astype(np.float32)
    train = rng.choice(pool, size=1000, replace=False)
    y = X[train] @ rng.normal(size=NB101_FEATURES)
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    params = {"n_members": EI_MEMBERS, "hidden": [1000] * 4}
    if quick:  # exactly 2 epochs: no early stop
        params.update(max_epochs=2, n_iter_no_change=10**6)
    request = ScoreRequest("ei", n_top=1000, k=10, excluded=train, best=float(y.max()))
    chunk = PREDICT_BLOCK_ROWS if quick else choose_chunk_size(pool, EI_MEMBERS, cpus, None)
    chunks = put_pool_chunks(X, chunk)
    fitter, scorer = RayMemberFitter(EI_MEMBERS), RayPoolScorer(chunks)
    tiny = make_predictor("mlp", n_members=EI_MEMBERS, hidden=[8], max_epochs=1)
    scorer(fitter(tiny, X[train], y, 0), request)  # warm-up: task workers start and import torch once

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a 1-CPU repeat actor
    try:
        start = time.perf_counter()
        model = make_predictor("mlp", **params).fit(X[train], y, seed=0)
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        preds = [(offset, model.predict(X[offset : offset + chunk])) for offset in range(0, pool, chunk)]
        predict_s = time.perf_counter() - start
        start = time.perf_counter()
        local = merge_chunks([select_chunk(p, p.shape[1], off, request) for off, p in preds], request)
        merge_s = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    epochs = float(np.mean(model.n_epochs_))

    start = time.perf_counter()
    remote = fitter(make_predictor("mlp", **params), X[train], y, 0)
    ray.wait(remote.states, num_returns=len(remote.states))
    fitted_s = time.perf_counter() - start  # the last member's fit: scoring below starts per slice before it
    got = scorer(remote, request)
    tasks_s = time.perf_counter() - start
    if not (np.array_equal(got.candidates, local.candidates) and np.array_equal(got.top_indices, local.top_indices)):
        raise WeakNASError(f"member and chunk tasks selected {got.candidates.tolist()}, one process {local.candidates.tolist()}")

    f_member = fit_s / EI_MEMBERS
    p = predict_s / (EI_MEMBERS * pool)
    s = merge_s / pool
    # task overhead: what the task path took beyond its compute in waves over these CPUs
    n_pred = len(chunks) * EI_MEMBERS
    waves_fit, waves_pred = math.ceil(EI_MEMBERS / cpus), math.ceil(n_pred / cpus)
    compute = waves_fit * f_member + waves_pred * chunk * p + pool * s
    overhead = max(0.0, (tasks_s - compute) / (waves_fit + waves_pred))
    factor_fit = ASSUMED_EPOCHS / epochs if quick else 1.0
    factor_rows = NB101_ROWS / pool
    m = {
        "epochs": ASSUMED_EPOCHS if quick else epochs,
        "f_epoch": f_member / epochs,
        "p": p, "s": s, "o": overhead,
        "actor": (fit_s * factor_fit, predict_s * factor_rows, merge_s * factor_rows),
        "same": True,
    }
    # the task path at full size: its measured fit and scoring parts (prediction tasks and the per-chunk
    # merge in this process overlap: both in "predict"), scaled like the in-process ones
    m["tasks"] = (fitted_s * factor_fit, (tasks_s - fitted_s) * factor_rows, 0.0)
    return m
