"""Groups of repeats in one actor: batched group fits, the lockstep loop and the runner's ``repeats_per_actor``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.config import load_config
from weaknas_ray.drivers.group_loop import run_group
from weaknas_ray.drivers.loop import run_repeat
from weaknas_ray.engine import make_optimizer
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.predictors.mlp import MLPEnsemble
from test_runner import TINY_MLP, comparable, config_for, fake_benchmark

SMALL = {"hidden": [16, 16], "max_epochs": 30, "batch_size": 20, "tol": 1e-2, "n_iter_no_change": 2}


def test_fit_group_equals_separate_fits():
    """Ensemble g of a group fit is fit(X[g], y[g], seeds[g]), early stops included."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(3, 57, 6)), rng.normal(size=(3, 57))
    seeds = [5, 9, 100]
    parts = MLPEnsemble(n_members=2, **SMALL).fit_group(X, y, seeds)
    Xp = rng.normal(size=(300, 6)).astype(np.float32)
    epochs = []
    for g, part in enumerate(parts):
        alone = MLPEnsemble(n_members=2, **SMALL).fit(X[g], y[g], seed=seeds[g])
        np.testing.assert_array_equal(part.n_epochs_, alone.n_epochs_)
        np.testing.assert_allclose(part.loss_, alone.loss_, rtol=1e-4)
        np.testing.assert_allclose(part.predict(Xp), alone.predict(Xp), atol=1e-5)
        epochs.extend(alone.n_epochs_)
    assert len(set(epochs)) > 1, "test data should make members stop at different epochs"


def test_fit_group_rejects_bad_shapes():
    with pytest.raises(ConfigError, match="fit_group"):
        MLPEnsemble(**SMALL).fit_group(np.zeros((2, 5, 3)), np.zeros((2, 5)), [0])


def _separate_and_grouped(bench, method, seeds, settings, max_sample, stop_at_optimum=False):
    def fresh():
        return [make_optimizer(method, bench.space, max_sample, s, **settings) for s in seeds]

    oracles = [bench.oracle.for_repeat(s) for s in seeds]
    alone = [run_repeat(o, orc, stop_at_optimum=stop_at_optimum) for o, orc in zip(fresh(), oracles)]
    grouped = run_group(fresh(), oracles, stop_at_optimum=stop_at_optimum)
    return alone, grouped


@pytest.mark.parametrize("method, extra", [("weaknas", {}), ("weaknas-ei", {"n_members": 2}), ("random", {})])
def test_group_equals_separate_repeats(method, extra, monkeypatch):
    calls = []
    fit_group = MLPEnsemble.fit_group
    monkeypatch.setattr(MLPEnsemble, "fit_group", lambda self, *a: calls.append(len(a[2])) or fit_group(self, *a))
    bench = fake_benchmark()
    settings = {**(TINY_MLP if method != "random" else {}), **extra}
    alone, grouped = _separate_and_grouped(bench, method, [3, 4, 5], settings, max_sample=30)
    # iterations 1 and 2 (10 queries each) fit all three predictors in one call
    assert calls == ([] if method == "random" else [3, 3])
    for a, g in zip(alone, grouped):
        assert list(g.columns) == list(a.columns)
        pd.testing.assert_frame_equal(comparable(g), comparable(a))


def test_group_members_that_find_the_optimum_drop_out():
    bench = fake_benchmark(n=60)
    alone, grouped = _separate_and_grouped(bench, "weaknas", [0, 1, 2, 3], TINY_MLP, max_sample=50, stop_at_optimum=True)
    assert len({len(a) for a in alone}) > 1, "repeats should stop at different queries"
    for a, g in zip(alone, grouped):
        pd.testing.assert_frame_equal(comparable(g), comparable(a))


def test_group_selects_the_same_on_nasbench201(nb201_root):
    """The NAS-Bench-201 pool (the real table, else the synthetic one) with a small MLP: batched fits round
    like separate ones closely enough that every repeat selects the same architectures."""
    from weaknas_ray.benchmarks.registry import load_benchmark

    bench = load_benchmark("nasbench201", dataset="cifar10", data_dir=nb201_root)
    settings = {"predictor": "mlp", "predictor_params": {"hidden": [64, 64], "max_epochs": 20}}
    alone, grouped = _separate_and_grouped(bench, "weaknas", [0, 1, 2], settings, max_sample=30)
    for a, g in zip(alone, grouped):
        pd.testing.assert_frame_equal(comparable(g), comparable(a))


def test_runner_repeats_per_actor_gives_the_same_rows(ray_session, tmp_path):
    from weaknas_ray.drivers.ray_runner import run_search

    bench = fake_benchmark()
    frames = []
    for group in (1, 2):
        config = config_for(tmp_path / str(group), **{"search.repeats": 3, "ray.repeats_per_actor": group})
        outcome = run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
        assert (outcome.ran, outcome.failures) == (6, [])
        frames.append(pd.read_parquet(outcome.output / "results.parquet").sort_values(["method", "repeat", "query"]))
    pd.testing.assert_frame_equal(comparable(frames[1]), comparable(frames[0]))


def test_repeats_per_actor_must_be_positive():
    with pytest.raises(ConfigError, match="ray.repeats_per_actor"):
        load_config(overrides={"ray.repeats_per_actor": 0})


def test_group_tasks_keeps_consecutive_repeats_of_one_method():
    from weaknas_ray.drivers.repeats import RepeatTask, group_tasks

    tasks = [RepeatTask(m, r, r, 10) for r in (0, 1, 2, 4) for m in ("weaknas", "random")]
    groups = group_tasks(tasks, 2)
    assert [(g[0].method, [t.repeat for t in g]) for g in groups] == [
        ("weaknas", [0, 1]), ("random", [0, 1]), ("weaknas", [2]), ("random", [2]), ("weaknas", [4]), ("random", [4])
    ]
    assert group_tasks(tasks, 1) == [[t] for t in tasks]
