"""The Ray runner against the in-process loop, chunked scoring, failures and retries (real Ray, 2 CPUs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.config import load_config, method_settings
from weaknas_ray.drivers.loop import run_repeat
from weaknas_ray.drivers.ray_runner import run_search
from weaknas_ray.drivers.ray_scoring import RayPoolScorer, choose_chunk_size, put_pool_chunks
from weaknas_ray.engine import make_optimizer
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces import ArraySpace, TableOracle

# NOTE: a tiny MLP keeps a WeakNAS repeat well under a second on a loaded 2-core machine.
TINY_MLP = {"predictor": "mlp", "predictor_params": {"hidden": [16], "max_epochs": 15}}


def fake_benchmark(n: int = 300, d: int = 6, seed: int = 0, oracle_cls=TableOracle, **oracle_kw) -> Benchmark:
    """A smooth random pool: accuracy is a fixed linear function of the features plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    acc = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    return Benchmark("fake", ArraySpace(X, name="fake"), oracle_cls(acc, acc + 1.0, **oracle_kw))


def config_for(tmp_path: Path, **overrides) -> dict:
    base = {
        "benchmark": {"loader": "tests.unused:benchmark_is_passed_directly"},
        "search.methods": ["weaknas", "random"],
        "search.repeats": 2,
        "search.max_sample": 30,
        "methods.weaknas": dict(TINY_MLP),
        "output": str(tmp_path / "run"),
    }
    return load_config(overrides={**base, **overrides})


def in_process(bench: Benchmark, config: dict, method: str, seed: int) -> pd.DataFrame:
    search = config["search"]
    opt = make_optimizer(method, bench.space, search["max_sample"], seed, **method_settings(config, method))
    return run_repeat(opt, bench.oracle.for_repeat(seed), stop_at_optimum=search["stop_at_optimum"])


def comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["elapsed_s"]).reset_index(drop=True)


def test_runner_equals_in_process_loop(ray_session, tmp_path):
    bench = fake_benchmark()
    config = config_for(tmp_path, **{"search.seed": 5})
    outcome = run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
    assert (outcome.ran, outcome.skipped, outcome.failures) == (4, 0, [])
    results = pd.read_parquet(outcome.output / "results.parquet")
    for (method, repeat), got in results.groupby(["method", "repeat"]):
        seed = 5 + repeat
        assert (got["seed"] == seed).all()
        expected = in_process(bench, config, method, seed)
        pd.testing.assert_frame_equal(comparable(got[expected.columns]), comparable(expected))
        assert got["arch"].tolist() == [str(i) for i in got["arch_index"]]
    final = pd.read_parquet(outcome.output / "final_top1.parquet")
    assert final["method"].unique().tolist() == ["weaknas"] and final.shape[0] == 2
    assert (final["reported_value"] == bench.oracle.reported[final["arch_index"]]).all()
    for row in final.itertuples():  # the answer of a predictor fitted on all the repeat's queries
        opt = make_optimizer("weaknas", bench.space, 30, row.seed, **method_settings(config, "weaknas"))
        run_repeat(opt, bench.oracle, stop_at_optimum=config["search"]["stop_at_optimum"])
        assert row.arch_index == opt.final_prediction()[0] and row.queries == opt.n_told and row.iteration == opt.iteration
        assert row.already_queried == bool(opt.evaluated[row.arch_index])
    again = run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
    assert (again.ran, again.skipped) == (0, 4)


def test_chunked_scoring_equals_unchunked(ray_session, tmp_path):
    from weaknas_ray.acquisition import ScoreRequest, score_pool
    from weaknas_ray.predictors import make_predictor

    bench = fake_benchmark(n=500)
    X = bench.space.features
    model = make_predictor("mlp", n_members=3, hidden=[8], max_epochs=5).fit(X[:40], bench.oracle.search[:40].astype(np.float32), seed=1)
    scorer = RayPoolScorer(put_pool_chunks(X, 70))
    for request in (
        ScoreRequest("mean", n_top=120, k=10, excluded=np.arange(0, 500, 7)),
        ScoreRequest("ei", n_top=50, k=25, excluded=np.arange(40), best=0.5),
    ):
        got, same_chunks = scorer(model, request), score_pool(model, X, request, chunk_size=70)
        for field in ("top_indices", "top_means", "candidates", "candidate_scores"):
            np.testing.assert_array_equal(getattr(got, field), getattr(same_chunks, field))
        # one whole-pool pass: same selection; float32 GEMM rounding depends on the batch rows
        whole = score_pool(model, X, request)
        np.testing.assert_array_equal(got.top_indices, whole.top_indices)
        np.testing.assert_array_equal(got.candidates, whole.candidates)
        np.testing.assert_allclose(got.candidate_scores, whole.candidate_scores, rtol=1e-5)
    # a whole run with forced chunks selects exactly what the local run selects
    config = config_for(tmp_path, **{"search.methods": ["weaknas"], "search.repeats": 1, "ray.chunk_size": 128})
    run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
    got = pd.read_parquet(Path(config["output"]) / "results.parquet")
    pd.testing.assert_frame_equal(comparable(got[in_process(bench, config, "weaknas", 0).columns]),
                                  comparable(in_process(bench, config, "weaknas", 0)))


def test_choose_chunk_size():
    assert choose_chunk_size(15_625, 5, 2, None) == 0  # small pool: local
    assert choose_chunk_size(423_624, 1, 2, None) == 106_496  # two chunks per CPU, 26 aligned blocks
    assert choose_chunk_size(423_624, 1, 64, None) == 12_288  # floor on chunk rows, aligned
    assert choose_chunk_size(100, 1, 2, 0) == 0 and choose_chunk_size(100, 1, 2, 30) == 30


def test_plan_resources_chunks_only_on_cpus_no_actor_holds():
    from weaknas_ray.config import load_config
    from weaknas_ray.drivers.repeats import RepeatTask
    from weaknas_ray.drivers.resources import plan_resources

    base = load_config()["ray"]

    def plan(cpus, methods, repeats, gpus=0.0, **ray):
        tasks = [RepeatTask(m, r, r, 100) for m in methods for r in range(repeats)]
        cfg = {**base, **ray}
        return plan_resources(cfg, {"CPU": cpus, "GPU": gpus}, 423_624, tasks, len(tasks))

    assert plan(64, ["weaknas-ei"], 100) == (64, 0, 0)  # every CPU runs a repeat: no chunk could run
    actors, chunk, members = plan(64, ["weaknas-ei"], 2)  # 62 idle CPUs fit members and score the pools
    assert actors == 2 and chunk == choose_chunk_size(423_624, 5, 62, None) > 0 and members == 5
    assert plan(5, ["weaknas-ei"], 1).member_tasks == 4  # at most one member task per free CPU
    assert plan(2, ["weaknas-ei"], 1) == (1, 0, 0)  # one spare CPU: no parallel gain, score in the actor
    assert plan(64, ["random", "evolution"], 2) == (4, 0, 0)  # nobody scores the pool
    assert plan(64, ["weaknas-ei"], 2, gpus=1, num_gpus_per_repeat=0.5) == (2, 0, 0)  # GPU repeats score on it
    assert plan(2, ["weaknas"], 4, chunk_size=4096) == (1, 4096, 0)  # forced: a CPU stays free for chunk tasks
    assert plan(64, ["weaknas"], 2).member_tasks == 0  # an ensemble of one has nothing to split
    # members fitted apart equal the actor's fit only on one thread each; a group fits in one batch
    assert plan(64, ["weaknas-ei"], 2, cpus_per_repeat=2).member_tasks == 0
    assert plan(64, ["weaknas-ei"], 2, repeats_per_actor=2).member_tasks == 0
    assert plan(64, ["weaknas-ei"], 2, member_tasks=0).member_tasks == 0
    assert plan(2, ["weaknas-ei"], 4, member_tasks=3) == (1, 0, 3)  # forced: a CPU stays free for them
    with pytest.raises(ConfigError, match="ray.member_tasks: 2 forced, but repeats run on GPUs"):
        plan(64, ["weaknas-ei"], 2, gpus=1, num_gpus_per_repeat=0.5, member_tasks=2)
    with pytest.raises(ConfigError, match="too few for one repeat actor"):
        plan(1, ["weaknas"], 1, chunk_size=4096)


def test_member_tasks_fit_the_ensemble_bit_for_bit(ray_session):
    """Members fitted in Ray tasks (slices 2 + 1 of E = 3) predict and select exactly what the in-actor fit
    does, scored in-process or by chunk tasks that start per member slice."""
    from weaknas_ray.acquisition import ScoreRequest, score_pool
    from weaknas_ray.drivers.ray_scoring import RayMemberFitter, RemoteMembers
    from weaknas_ray.predictors import make_predictor

    bench = fake_benchmark(n=500)
    X, y = bench.space.features.astype(np.float32), bench.oracle.search.astype(np.float32)
    local = make_predictor("mlp", n_members=3, hidden=[16], max_epochs=30).fit(X[:40], y[:40], seed=11)
    remote = RayMemberFitter(2)(make_predictor("mlp", n_members=3, hidden=[16], max_epochs=30), X[:40], y[:40], 11)
    assert isinstance(remote, RemoteMembers) and len(remote.states) == 2
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))
    request = ScoreRequest("ei", n_top=50, k=10, excluded=np.arange(40), best=0.5)
    got, want = RayPoolScorer(put_pool_chunks(X, 128))(remote, request), score_pool(local, X, request, chunk_size=128)
    for field in ("top_indices", "top_means", "candidates", "candidate_scores"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    single = RayMemberFitter(1)(make_predictor("mlp", hidden=[16], max_epochs=30), X[:40], y[:40], 11)
    assert not isinstance(single, RemoteMembers)  # one slice: fitted in this process


@pytest.mark.parametrize("chunk_size", [None, 128])
def test_ei_run_with_member_tasks_gives_identical_rows(ray_session, tmp_path, chunk_size):
    """A fixed-seed EI run with its ensemble fitted by member tasks (with and without chunk tasks) writes
    exactly the rows of the in-process run, whose members are fitted together in one batch."""
    bench = fake_benchmark(n=400)
    config = config_for(tmp_path, **{
        "search.methods": ["weaknas-ei"], "search.repeats": 1, "search.seed": 3,
        "methods.weaknas-ei": {**TINY_MLP, "n_members": 3}, "ray.member_tasks": 3, "ray.chunk_size": chunk_size,
    })
    run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
    got = pd.read_parquet(Path(config["output"]) / "results.parquet")
    want = in_process(bench, config, "weaknas-ei", 3)
    pd.testing.assert_frame_equal(comparable(got[want.columns]), comparable(want))
    final = pd.read_parquet(Path(config["output"]) / "final_top1.parquet")
    opt = make_optimizer("weaknas-ei", bench.space, 30, 3, **method_settings(config, "weaknas-ei"))
    run_repeat(opt, bench.oracle)
    assert final["arch_index"].tolist() == [opt.final_prediction()[0]]


@pytest.mark.parametrize("member_tasks", [3, 0])
def test_tasks_that_find_no_cpu_fall_back_to_the_actor_with_identical_rows(ray_session, tmp_path, capsys, member_tasks):
    """The repeat actor holds one CPU and the other is taken (as after losing the node the tasks ran on):
    its member and chunk tasks can never start, so after ray.task_timeout_s the repeat fits and scores in
    its actor, with one warning, and writes exactly the rows of the in-process run."""
    from ray.util.placement_group import placement_group, remove_placement_group

    bench = fake_benchmark(n=400)
    config = config_for(tmp_path, **{
        "search.methods": ["weaknas-ei"], "search.repeats": 1, "search.seed": 3,
        "methods.weaknas-ei": {**TINY_MLP, "n_members": 3}, "ray.member_tasks": member_tasks, "ray.chunk_size": 128,
        "ray.task_timeout_s": 1.0,
    })
    taken = placement_group([{"CPU": 1}])
    ray_session.get(taken.ready())
    try:
        run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
    finally:
        remove_placement_group(taken)
    got = pd.read_parquet(Path(config["output"]) / "results.parquet")
    want = in_process(bench, config, "weaknas-ei", 3)
    pd.testing.assert_frame_equal(comparable(got[want.columns]), comparable(want))
    what = "member" if member_tasks else "pool-scoring"
    assert capsys.readouterr().err.splitlines() == [
        f"warning: repeat 0 of weaknas-ei: its {what} tasks made no progress for 1 s (ray.task_timeout_s: a lost "
        "node, or no free CPU); fitted and scored in its own actor instead"
    ]


def _task(action: str):
    import os
    import time

    if action == "crash":
        os._exit(1)
    if action == "raise":
        raise ValueError("the task's own error")
    time.sleep(60)


def test_a_task_watch_gives_up_on_lost_and_stuck_tasks_but_not_on_their_errors(ray_session, by_value):
    from weaknas_ray.drivers.ray_scoring import TaskWatch

    task = ray_session.remote(max_retries=0)(_task)
    watch = TaskWatch(60)  # returns once the task is lost: a new worker process may take seconds to start
    assert watch.gather([task.remote("crash")], "pool-scoring tasks") is None  # its node died, retries spent
    assert watch.note == "one of its pool-scoring tasks was lost (WorkerCrashedError)" and watch.local
    watch = TaskWatch(0.5)
    stuck = task.remote("sleep")
    assert watch.gather([stuck], "member tasks") is None
    assert watch.note.startswith("its member tasks made no progress for 0.5 s")
    with pytest.raises(ray_session.exceptions.TaskCancelledError):
        ray_session.get(stuck, timeout=30)  # given up and cancelled: it holds no CPU any more
    with pytest.raises(ValueError, match="the task's own error"):
        TaskWatch(60).gather([task.remote("raise")], "member tasks")


class DyingOracle(TableOracle):
    """Kills its repeat's worker process at its first evaluation, at the moment ``at`` (both repeats of
    the test die together), on the first attempt only (``marker`` files record it across processes)."""

    def __init__(self, search, reported, marker: str, at: float):
        super().__init__(search, reported)
        self.marker, self.at, self.seed = marker, at, None

    def for_repeat(self, seed):
        clone = DyingOracle(self.search, self.reported, self.marker, self.at)
        clone.seed = seed
        return clone

    def evaluate(self, indices):
        import os
        import time

        mark = Path(f"{self.marker}.{self.seed}")
        if not mark.exists():
            mark.touch()
            time.sleep(max(0.0, self.at - time.time()))
            os._exit(1)
        return super().evaluate(indices)


def test_two_actors_dying_together_are_replaced_and_retried(ray_session, by_value, tmp_path, capsys):
    import time

    bench = fake_benchmark(oracle_cls=DyingOracle, marker=str(tmp_path / "died"), at=time.time() + 8)
    config = config_for(tmp_path, **{"search.methods": ["random"], "search.repeats": 2})
    outcome = run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
    assert outcome.failures == [] and outcome.ran == 2
    assert sorted(pd.read_parquet(outcome.output / "results.parquet")["repeat"].unique()) == [0, 1]
    err = capsys.readouterr().err
    assert all(f"repeat {r} of random (seed {r}) failed, attempt 1 of 2" in err for r in (0, 1))


class FailingOracle(TableOracle):
    """Fails every evaluation of the repeat seeded ``fail_seed``, and of the repeat seeded ``flaky_seed``
    on its first attempt only (the ``marker`` file records that attempt, across processes)."""

    def __init__(self, search, reported, fail_seed: int, flaky_seed: int, marker: str):
        super().__init__(search, reported)
        self.fail_seed, self.flaky_seed, self.marker, self.failing = fail_seed, flaky_seed, marker, False

    def for_repeat(self, seed):
        clone = FailingOracle(self.search, self.reported, self.fail_seed, self.flaky_seed, self.marker)
        clone.failing = seed == self.fail_seed or (seed == self.flaky_seed and not Path(self.marker).exists())
        if seed == self.flaky_seed:
            Path(self.marker).touch()
        return clone

    def evaluate(self, indices):
        if self.failing:
            raise RuntimeError("injected failure")
        return super().evaluate(indices)


@pytest.fixture
def by_value():
    """Ray workers cannot import this test module: ship its classes by value."""
    import ray.cloudpickle

    module = sys.modules[__name__]
    ray.cloudpickle.register_pickle_by_value(module)
    yield
    ray.cloudpickle.unregister_pickle_by_value(module)


def test_failing_repeat_is_retried_reported_and_the_rest_continue(ray_session, by_value, tmp_path, capsys):
    bench = fake_benchmark(oracle_cls=FailingOracle, fail_seed=1, flaky_seed=2, marker=str(tmp_path / "tried"))
    config = config_for(tmp_path, **{"search.methods": ["random"], "search.repeats": 3})
    outcome = run_search(config, benchmark=bench, progress=False, echo=lambda *_: None)
    assert [(f["repeat"], f["seed"], f["attempts"]) for f in outcome.failures] == [(1, 1, 2)]
    assert outcome.failures[0]["error"] == "RuntimeError: injected failure"
    err = capsys.readouterr().err
    assert "repeat 1 of random (seed 1) failed, attempt 2 of 2: RuntimeError: injected failure; giving up" in err
    assert "repeat 2 of random (seed 2) failed, attempt 1 of 2: RuntimeError: injected failure; retrying" in err
    results = pd.read_parquet(outcome.output / "results.parquet")
    assert sorted(results["repeat"].unique()) == [0, 2]  # the flaky repeat succeeded on its retry
    assert (outcome.output / "failures.json").is_file()


def test_too_few_cpus_is_a_config_error(ray_session, tmp_path):
    config = config_for(tmp_path, **{"ray.cpus_per_repeat": 64})
    with pytest.raises(ConfigError, match="ray.cpus_per_repeat: the cluster has 2 CPUs"):
        run_search(config, benchmark=fake_benchmark(), progress=False, echo=lambda *_: None)


def test_fractional_gpus_share_logical_gpus(ray_session, tmp_path):
    gpus = ray_session.cluster_resources().get("GPU", 0)
    if gpus < 1:
        pytest.skip("the Ray fixture declares no (logical) GPU")
    config = config_for(tmp_path, **{"search.methods": ["random"], "ray.num_gpus_per_repeat": 0.5})
    outcome = run_search(config, benchmark=fake_benchmark(), progress=False, echo=lambda *_: None)
    assert outcome.ran == 2 and outcome.failures == []
    config = config_for(tmp_path / "more", **{"ray.num_gpus_per_repeat": gpus + 1})
    with pytest.raises(ConfigError, match="ray.num_gpus_per_repeat"):
        run_search(config, benchmark=fake_benchmark(), progress=False, echo=lambda *_: None)


@pytest.mark.parametrize("scaling", ["pool", "train"])
def test_the_runner_hands_predictor_methods_the_pool_statistics(scaling):
    """The runner passes the oracle's pool mean and std to methods that score the pool, so
    ``target_scaling: pool`` z-scores by them, as the published code did; ``train`` ignores them."""
    from weaknas_ray.drivers.repeats import RepeatTask, run_repeats
    from weaknas_ray.engine import weaknas as weaknas_module

    bench = fake_benchmark()
    fits = []
    original = weaknas_module.WeakNAS._fit_data

    def spy(self, z):
        fits.append(original(self, z))
        return fits[-1]

    settings = {**TINY_MLP, "ei": "faithful", "n_members": 2, "target_scaling": scaling}
    task = RepeatTask("weaknas-ei", 0, 3, 20, settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weaknas_module.WeakNAS, "_fit_data", spy)
        run_repeats(bench, [task])
    search = bench.oracle.search
    assert fits
    for data in fits:
        seen = search[data.indices]
        expected = (search.mean(), search.std()) if scaling == "pool" else (seen.mean(), seen.std())
        np.testing.assert_allclose((data.mean, data.std), expected)


@pytest.mark.parametrize(("n", "max_sample", "queried"), [(20, 20, True), (300, 20, False)])
def test_final_top1_says_whether_the_answer_was_queried(n, max_sample, queried):
    """``already_queried`` is whether the final predictor's top-1 is among the repeat's queries: always
    when the budget spends the whole pool; not here with 20 of 300."""
    from weaknas_ray.drivers.repeats import RepeatTask, run_one_repeat

    bench = fake_benchmark(n=n)
    rows, final = run_one_repeat(bench, RepeatTask("weaknas", 0, 1, max_sample, dict(TINY_MLP)))
    assert final.shape[0] == 1 and final["queries"].item() == max_sample
    top1 = int(final["arch_index"].item())
    assert bool(final["already_queried"].item()) is (top1 in set(rows["arch_index"].tolist())) is queried
