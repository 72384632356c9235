"""Ray Tune's ``Searcher`` contract for WeakNASSearcher on a user's own param_space (no benchmark data):
metric/mode through TuneConfig, constants beside searched keys, every supported domain, mode=min,
ConcurrencyLimiter (plain and batch), Repeater, points_to_evaluate with and without rewards, warm starts
(add_evaluated_point / add_evaluated_trials), save/restore, failing trials, ASHA, with_resources, and the
predictor fit in a Ray task."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import ray.cloudpickle
from ray import tune
from ray.tune.search import ConcurrencyLimiter, Repeater, Searcher

from weaknas_ray.drivers.tune_searcher import WeakNASSearcher
from weaknas_ray.drivers.tune_space import TuneSpace
from weaknas_ray.exceptions import ConfigError

# NOTE: Ray workers cannot import this test module; ship its trainables by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SMALL = {"init_sample": 3, "sample_each_iter": 3, "top_start": 10, "top_end": 10,
         "predictor": "mlp", "predictor_params": {"hidden": [16], "max_epochs": 10}}  # fmt: skip


def _space() -> dict:
    """Every supported domain, nested dicts and constants."""
    return {
        "act": tune.choice(["relu", "tanh"]),
        "depth": tune.randint(1, 4),
        "width": tune.qrandint(8, 32, 8),
        "lr": tune.loguniform(1e-4, 1e-1),
        "opt": {"momentum": tune.uniform(0.0, 0.9), "step": tune.quniform(0.0, 1.0, 0.25),
                "decay": tune.qloguniform(1e-4, 1e-2, 1e-4), "noise": tune.randn(0.0, 1.0)},
        "epochs": 3,
        "train": {"lr0": 0.1, "tag": "fixed"},
    }  # fmt: skip


def _score(config: dict) -> float:
    return -abs(math.log10(config["lr"]) + 2) - config["opt"]["momentum"] + (config["act"] == "relu")


def _trainable(config: dict) -> None:
    assert config["epochs"] == 3 and config["train"] == {"lr0": 0.1, "tag": "fixed"}
    assert "arch_index" not in config and "arch" not in config
    tune.report({"score": _score(config), "loss": -_score(config)})


def _searcher(**kwargs) -> WeakNASSearcher:
    return WeakNASSearcher(**{"max_sample": 9, "seed": 0, "pool_size": 200, "fit_in_task": False, **SMALL, **kwargs})


def _tuner(tmp_path, search_alg, trainable=_trainable, param_space=None, name="exp", **tune_config):
    tune_config = {"metric": "score", "mode": "max", "num_samples": -1, "reuse_actors": True, **tune_config}
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": 0.5}),
        param_space=_space() if param_space is None else param_space,
        tune_config=tune.TuneConfig(search_alg=search_alg, **tune_config),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0),
    )


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")


# ----- the space --------------------------------------------------------------------------------


def test_tune_space_encodes_every_domain_in_unit_range():
    space = TuneSpace(_space(), pool_size=50, seed=1)
    assert not space.enumerated and len(space) == 50 and space.features.dtype == np.float32
    assert space.features.shape[1] == 2 + 7 and 0 <= space.features.min() and space.features.max() <= 1
    config = space.params(0)
    assert config["epochs"] == 3 and config["train"]["tag"] == "fixed" and config["width"] % 8 == 0
    assert 1 <= config["depth"] <= 3 and 1e-4 <= config["lr"] <= 1e-1 and config["opt"]["step"] in (0, 0.25, 0.5, 0.75, 1)
    assert space.index_of(config) == 0 and space.index_of(space.arch_str(3)) == 3
    assert TuneSpace(_space(), pool_size=50, seed=1).features.tobytes() == space.features.tobytes()  # seeded
    assert space.extend(10) == 10 and len(space) == 60
    new = {**config, "lr": 0.0123}
    assert space.add(new) == 60 and space.add(new) == 60


def test_small_discrete_space_is_enumerated_exactly():
    space = TuneSpace({"a": tune.choice(["x", "y"]), "n": tune.randint(0, 3), "q": tune.qrandint(2, 6, 2), "k": 1})
    assert space.enumerated and len(space) == 2 * 3 * 3
    assert space.param_choices() == {"a": ["x", "y"], "n": [0, 1, 2], "q": [2, 4, 6]}


def test_numeric_choices_are_ordinal_unless_asked_otherwise():
    """A choice of more than two numbers is one ordered column (log-scaled past a decade): a learning rate
    of 1e-3 lies between 5e-4 and 1e-2; ``numeric_choices="categorical"`` keeps the one-hot."""
    domains = {"lr": tune.choice([1e-2, 5e-4, 1e-3]), "bs": tune.choice([16, 32]), "act": tune.choice(["a", "b", "c"])}
    space = TuneSpace(domains)
    lr, bs, act = space.parameters
    assert (lr.kind, lr.log, lr.choices) == ("ordinal", True, (5e-4, 1e-3, 1e-2))
    assert (bs.kind, act.kind) == ("categorical", "categorical") and space.features.shape == (9 * 2, 1 + 2 + 3)
    column = lr.encode(np.arange(3))[:, 0]
    assert column[0] == 0 and column[2] == 1 and 0 < column[1] < 0.5  # log scale: 1e-3 nearer 5e-4
    one_hot = TuneSpace(domains, numeric_choices="categorical")
    assert one_hot.parameters[0].kind == "categorical" and one_hot.features.shape[1] == 3 + 2 + 3
    with pytest.raises(ConfigError, match="numeric_choices must be one of"):
        TuneSpace(domains, numeric_choices="numbers")


@pytest.mark.parametrize("space, message", [
    ({"a": tune.grid_search([1, 2])}, "a is a grid_search"),
    ({"b": {"c": tune.sample_from(lambda spec: 1)}}, "b.c is a sample_from"),
    ({"a": 1}, "no searched parameter"),
])  # fmt: skip
def test_unsupported_spaces_are_refused_with_a_reason(space, message):
    with pytest.raises(ConfigError, match=message):
        _searcher().set_search_properties("score", "max", space)


# ----- metric and mode ------------------------------------------------------------------------------


def test_tune_config_metric_and_mode_are_used():
    searcher = _searcher()
    assert searcher.set_search_properties("loss", "min", _space()) is True
    assert (searcher.metric, searcher.mode) == ("loss", "min")


def test_conflicting_metric_or_mode_is_refused():
    with pytest.raises(ConfigError, match="metric 'score' given to the searcher but 'loss' to TuneConfig"):
        _searcher(metric="score", mode="max").set_search_properties("loss", "max", _space())
    with pytest.raises(ConfigError, match="mode 'max' given to the searcher but 'min'"):
        _searcher(metric="score", mode="max").set_search_properties("score", "min", _space())
    searcher = _searcher(space=_space(), metric="score", mode="max")
    assert searcher.set_search_properties("score", "max", {"epochs": 3}) is False  # own space, agreeing


# ----- direct contract: failures, warm starts, save/restore, fit in a task --------------------------


def _drive(searcher: WeakNASSearcher, results=lambda config: {"score": _score(config)}) -> list[dict]:
    configs = []
    while (config := searcher.suggest(f"t{len(configs)}")) != Searcher.FINISHED:
        assert config is not None
        configs.append(config)
        searcher.on_trial_complete(f"t{len(configs) - 1}", results(config))
    return configs


@pytest.mark.parametrize("result", [{"score": math.nan}, {"score": math.inf}, {}, None])
def test_bad_results_count_as_failures(result):
    searcher = _searcher(space=_space(), metric="score", mode="max")
    configs = _drive(searcher, lambda config: result if config["act"] == "tanh" else {"score": _score(config)})
    assert len(configs) == 9 and len(searcher.failed) == sum(c["act"] == "tanh" for c in configs)


@pytest.mark.parametrize("method", ["weaknas", "weaknas-ei", "weaknas-published", "random", "evolution", "tpe"])
def test_add_evaluated_point_warm_starts_every_method(method):
    settings = {"weaknas": SMALL, "weaknas-ei": {**SMALL, "n_members": 2}, "random": {"batch_size": 3},
                "weaknas-published": {**SMALL, "target_scaling": "initial"},
                "evolution": {"population": 4, "sample": 2}, "tpe": {}}[method]  # fmt: skip
    space = {"a": tune.choice(["x", "y", "z"]), "n": tune.randint(0, 4), "epochs": 3}
    searcher = WeakNASSearcher(space, metric="score", mode="min", max_sample=6, method=method, seed=0,
                               fit_in_task=False, **settings)
    known = [{"a": "x", "n": 0, "epochs": 3}, {"a": "y", "n": 1, "epochs": 3}]
    for point in known:
        searcher.add_evaluated_point(point, 1.0)
    searcher.add_evaluated_point({"a": "z", "n": 2}, math.nan)  # skipped
    configs = _drive(searcher, lambda config: {"score": float(config["n"])})
    assert len(configs) == 6 and all(c not in known for c in configs)
    assert len({(c["a"], c["n"]) for c in configs}) == 6 and searcher.optimizer.n_told == 8


def test_points_to_evaluate_with_and_without_rewards():
    points = [{"act": "relu", "depth": 2, "width": 16, "lr": 0.01, "opt": {"momentum": 0.1, "step": 0.5,
              "decay": 0.001, "noise": 0.0}}, {"act": "tanh", "depth": 1, "width": 8, "lr": 0.001,
              "opt": {"momentum": 0.5, "step": 0.0, "decay": 0.002, "noise": 1.0}}]  # fmt: skip
    run = _drive(_searcher(space=_space(), metric="score", mode="max", points_to_evaluate=points))
    assert len(run) == 9 and [c["lr"] for c in run[:2]] == [0.01, 0.001] and run[0]["epochs"] == 3
    searcher = _searcher(space=_space(), metric="score", mode="max", points_to_evaluate=points, evaluated_rewards=[1.0, 0.5])
    told = _drive(searcher)
    assert len(told) == 9 and all(c["lr"] not in (0.01, 0.001) for c in told) and searcher.optimizer.n_told == 11


def test_save_restore_continues_exactly(tmp_path):
    first = _searcher(space=_space(), metric="score", mode="max")
    configs = [first.suggest(f"t{i}") for i in range(3)]
    first.on_trial_complete("t0", {"score": _score(configs[0])})
    first.save(str(tmp_path / "s.pkl"))
    rest_a = _finish(first, configs)
    second = _searcher()
    second.restore(str(tmp_path / "s.pkl"))
    assert _finish(second, configs) == rest_a


def _finish(searcher, configs):
    for i in (1, 2):
        searcher.on_trial_complete(f"t{i}", {"score": _score(configs[i])})
    out = []
    while (config := searcher.suggest(f"u{len(out)}")) != Searcher.FINISHED:
        out.append(config)
        searcher.on_trial_complete(f"u{len(out) - 1}", {"score": _score(config)})
    return out


def test_fit_in_a_ray_task_returns_none_until_fitted(ray_session):
    searcher = _searcher(space=_space(), metric="score", mode="max", fit_in_task=True)
    inline = _drive(_searcher(space=_space(), metric="score", mode="max"))
    configs, nones = [], 0
    while (config := searcher.suggest(f"t{len(configs)}")) != Searcher.FINISHED:
        if config is None:
            nones += 1
            continue
        configs.append(config)
        searcher.on_trial_complete(f"t{len(configs) - 1}", {"score": _score(config)})
    assert nones > 0 and configs == inline  # the same run, fitted elsewhere


def test_pool_extend_grows_a_sampled_pool():
    searcher = _searcher(space=_space(), metric="score", mode="max", pool_extend=20)
    assert len(_drive(searcher)) == 9
    assert len(searcher.space) == 200 + 3 * 20 and searcher.optimizer.n_pool == len(searcher.space)


# ----- through Tuner (shared Ray: 2 CPUs) ---------------------------------------------------------


def _check(results, n: int, metric: str = "score"):
    assert not results.errors and len(results) == n
    configs = [r.config for r in results]
    assert len({str(sorted(c.items())) for c in configs}) == n
    return [r.metrics[metric] for r in results]


def test_tuner_param_space_with_constants_and_tune_config_metric(ray_session, tmp_path):
    _check(_tuner(tmp_path, _searcher(fit_in_task=None)).fit(), 9)


def test_tuner_mode_min_with_asha_and_limiter(ray_session, tmp_path):
    def trainable(config):
        for step in range(3):
            tune.report({"loss": -_score(config) + (2 - step)})

    searcher = ConcurrencyLimiter(_searcher(), max_concurrent=2, batch=True)
    scheduler = tune.schedulers.ASHAScheduler(max_t=3, grace_period=1)
    _check(_tuner(tmp_path, searcher, trainable, metric="loss", mode="min", scheduler=scheduler).fit(), 9, "loss")


def test_tuner_repeater_and_plain_limiter(ray_session, tmp_path):
    # NOTE: Repeater reads the metric from the searcher it wraps, which a ConcurrencyLimiter fixes at its
    # construction: give it to the searcher too (agreeing with TuneConfig's).
    searcher = _searcher(max_sample=4, metric="score", mode="max")
    searcher = Repeater(ConcurrencyLimiter(searcher, max_concurrent=2), repeat=2, set_index=False)
    results = _tuner(tmp_path, searcher).fit()
    assert not results.errors and len(results) == 8


def test_tuner_erroring_trials_do_not_stop_the_search(ray_session, tmp_path):
    def trainable(config):
        if config["act"] == "tanh":
            raise RuntimeError("boom")
        _trainable(config)

    searcher = _searcher()
    results = _tuner(tmp_path, searcher, trainable).fit()
    assert len(results) == 9 and len(results.errors) == len(searcher.failed) > 0


def test_tuner_warm_start_from_an_earlier_experiment(ray_session, tmp_path):
    from ray.tune import ExperimentAnalysis

    _tuner(tmp_path, None, name="earlier", num_samples=4).fit()
    searcher = _searcher(max_sample=6, metric="score", mode="max")
    searcher.set_search_properties(None, None, _space())
    searcher.add_evaluated_trials(ExperimentAnalysis(str(tmp_path / "earlier")), "score")
    assert searcher.optimizer is not None
    constants = {"epochs": 3, "train": {"lr0": 0.1, "tag": "fixed"}}  # the searcher has its space already
    values = _check(_tuner(tmp_path, searcher, name="later", param_space=constants).fit(), 6)
    assert searcher.optimizer.n_told == 10 and len(values) == 6


# ----- the tune command's configuration and the digits example ----------------------------------------


def test_tune_config_is_runs_config_with_one_method(tmp_path):
    from pathlib import Path

    from weaknas_ray.commands import tune as command

    # NOTE: this checkout's file (an editable install elsewhere may map the shipped configs to its own copy)
    path = str(Path(__file__).resolve().parents[1] / "configs" / f"{command.DEFAULT_CONFIG}.yaml")

    def load_tune_config(_, overrides):
        return command.load_tune_config(path, overrides)

    config = load_tune_config(None, {"output": str(tmp_path / "exp"), "tune.mode": "min", "tune.fit_in_task": False})
    assert config["search"]["methods"] == ["weaknas"] and config["output"] == str(tmp_path / "exp")
    assert config["tune"]["mode"] == "min" and config["tune"]["fit_in_task"] is False
    with pytest.raises(ConfigError, match="runs one method"):
        load_tune_config(None, {"search.methods": ["weaknas", "random"]})
    with pytest.raises(ConfigError, match="tune.mode"):
        load_tune_config(None, {"tune.mode": "up"})
    with pytest.raises(ConfigError, match="tune.bogus: unknown key"):
        load_tune_config(None, {"tune.bogus": 1})


def test_digits_example_runs_every_method(ray_session, tmp_path):
    from weaknas_ray.examples.digits import METHODS, best_so_far, run_one

    tiny = {"trials": 4, "seed": 0, "epochs": 1, "storage": str(tmp_path), "cpus_per_trial": 0.5}
    settings = {"weaknas": {"pool_size": 100, "init_sample": 2, "sample_each_iter": 2}}
    for method in METHODS:
        rows = run_one(method, **tiny, searcher_settings=settings.get(method))
        assert len(rows) == 4 and 0 < best_so_far(rows)[-1] <= 100


def test_digits_main_runs_the_chosen_methods_with_searcher_settings(ray_session, tmp_path, capsys):
    from weaknas_ray.examples.digits import main

    args = ["--trials", "4", "--seeds", "0", "--epochs", "1", "--cpus-per-trial", "0.5", "--storage", str(tmp_path),
            "--methods", "weaknas", "--searcher-settings", "{pool_size: 100, init_sample: 2, sample_each_iter: 2}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "seed 0 weaknas: best val_acc" in out and "| weaknas |" in out and "optuna" not in out
    with pytest.raises(SystemExit):
        main([*args[:-1], "[sample_each_iter]"])  # not a mapping
    assert "expected a mapping" in capsys.readouterr().err
