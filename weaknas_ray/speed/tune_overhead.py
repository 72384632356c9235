"""Per-suggest overhead of Tune searchers on one 40-trial experiment: WeakNASSearcher (predictor fitted
inline and in a Ray task), Optuna's TPE (``OptunaSearch``) and Tune's random search
(``BasicVariantGenerator``), over the digits example's param_space (width linear: Optuna takes no
log-scaled stepped integers) with an instant trainable (a fixed
synthetic score), so the time measured is the search algorithm's.

Every call Tune makes to the search algorithm's ``next_trial`` (which calls the searcher's ``suggest``
and builds the trial) is timed, including calls answered with ``None`` while a batch is out. Run::

    python -m weaknas_ray.speed.tune_overhead --trials 40
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

CALLS: list[float] = []


def _timed(cls):
    """A subclass of search algorithm ``cls`` whose ``next_trial`` calls are timed into :data:`CALLS`."""

    class Timed(cls):
        def next_trial(self):
            start = time.perf_counter()
            try:
                return super().next_trial()
            finally:
                CALLS.append(time.perf_counter() - start)

    return Timed


def instant(config: dict) -> None:
    """A trainable that reports at once: a smooth score of the digits config."""
    from ray import tune

    score = -abs(math.log10(config["lr"]) + 2) - config["dropout"] + 0.1 * config["depth"] + (config["activation"] == "relu")
    tune.report({"val_acc": score + math.log2(config["width"]) / 8})


def measure(name: str, trials: int, seed: int, storage: str) -> dict[str, float]:
    from ray import tune
    from ray.tune.search import BasicVariantGenerator, SearchGenerator
    from ray.tune.search.optuna import OptunaSearch

    from weaknas_ray.drivers.tune_searcher import WeakNASSearcher
    from weaknas_ray.examples.digits import DEFAULTS, param_space

    from ray import tune as _tune

    space = {**param_space(1, seed), "width": _tune.qrandint(8, 256, 8)}  # NOTE: Optuna takes no log scale with a step
    CALLS.clear()
    num_samples = trials
    if name == "random":
        search_alg = _timed(BasicVariantGenerator)(random_state=seed)
    elif name == "optuna":
        search_alg = _timed(SearchGenerator)(OptunaSearch(seed=seed))
    else:
        searcher = WeakNASSearcher(max_sample=trials, seed=seed, init_sample=10, sample_each_iter=5,
                                   fit_in_task=name == "weaknas-task", predictor_params=DEFAULTS["predictor_params"])
        search_alg, num_samples = _timed(SearchGenerator)(searcher), -1
    start = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_resources(instant, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", search_alg=search_alg, num_samples=num_samples,
                                    max_concurrent_trials=2, reuse_actors=True),  # fmt: skip
        run_config=tune.RunConfig(name=f"overhead-{name}", storage_path=storage, verbose=0),
    )
    results = tuner.fit()
    wall = time.perf_counter() - start
    calls = np.asarray(CALLS)
    return {"trials": len(results), "calls": calls.size, "mean_ms": 1e3 * calls.mean(), "p50_ms": 1e3 * np.median(calls),
            "max_ms": 1e3 * calls.max(), "total_s": calls.sum(), "wall_s": wall}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import os
    import tempfile

    import ray

    parser = argparse.ArgumentParser(description="per-suggest overhead of Tune searchers")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    # NOTE: 2 trial slots (1 CPU each) plus one CPU the predictor-fit task can take.
    parser.add_argument("--num-cpus", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["random", "optuna", "weaknas-inline", "weaknas-task"])
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="tune-overhead-")
    print(f"{'searcher':<16}{'trials':>7}{'calls':>7}{'mean ms':>10}{'p50 ms':>9}{'max ms':>9}{'in search s':>13}{'wall s':>8}")
    for name in args.methods:
        r = measure(name, args.trials, args.seed, storage)
        print(f"{name:<16}{r['trials']:>7}{r['calls']:>7}{r['mean_ms']:>10.1f}{r['p50_ms']:>9.1f}{r['max_ms']:>9.0f}"
              f"{r['total_s']:>13.2f}{r['wall_s']:>8.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
