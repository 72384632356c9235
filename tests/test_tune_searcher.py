"""WeakNASSearcher: batch semantics, failures, mode, warm starts and save/restore called directly, then
real Tuner runs on NAS-Bench-201 (against Tune's random search, and killed and restored)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ray import tune
from ray.tune.search import Searcher

from weaknas_ray.drivers.tune_searcher import WeakNASSearcher
from weaknas_ray.drivers.tune_space import SubsetSpace, space_from_domains
from weaknas_ray.engine.testing import GridSpace
from weaknas_ray.exceptions import ConfigError

CHOICES = {"a": ["x", "y", "z"], "b": ["x", "y", "z"], "c": ["p", "q", "r", "s"]}  # 36 architectures
# NOTE: a small MLP keeps each predictor fit well under a second on a busy CPU.
SMALL = {"init_sample": 4, "sample_each_iter": 4, "predictor_params": {"hidden": [16, 16], "max_epochs": 20}}


def _values(space: GridSpace) -> np.ndarray:
    """A deterministic metric per architecture (highest: the last one)."""
    return np.linspace(50.0, 90.0, len(space))


def _searcher(max_sample: int = 10, **kwargs) -> WeakNASSearcher:
    kwargs = {"metric": "acc", "mode": "max", "seed": 3, **SMALL, **kwargs}
    return WeakNASSearcher(GridSpace(CHOICES), max_sample=max_sample, **kwargs)


def _drive(searcher: WeakNASSearcher, values: np.ndarray, n_trials: int | None = None, start: int = 0) -> list[dict]:
    """Suggest and complete trials one at a time until FINISHED (or ``n_trials`` configs handed out)."""
    configs = []
    while n_trials is None or len(configs) < n_trials:
        config = searcher.suggest(f"t{start + len(configs)}")
        if config == Searcher.FINISHED:
            break
        assert config is not None, "a searcher with nothing out must not return None"
        configs.append(config)
        searcher.on_trial_complete(f"t{start + len(configs) - 1}", {"acc": values[config["arch_index"]]})
    return configs


def test_batch_semantics_none_until_batch_done_then_finished():
    searcher, values = _searcher(), _values(GridSpace(CHOICES))
    first = [searcher.suggest(f"t{i}") for i in range(4)]
    assert all(isinstance(c, dict) for c in first)
    assert searcher.suggest("t4") is None  # batch of 4 out, no result in
    for i, config in enumerate(first[:3]):
        searcher.on_trial_complete(f"t{i}", {"acc": values[config["arch_index"]]})
    assert searcher.suggest("t4") is None  # one result still missing
    searcher.on_trial_complete("t3", {"acc": values[first[3]["arch_index"]]})
    rest = _drive(searcher, values, start=4)
    indices = [c["arch_index"] for c in first + rest]
    assert len(indices) == 10 and len(set(indices)) == 10
    assert searcher.suggest("late") == Searcher.FINISHED
    assert searcher.optimizer.history.values == pytest.approx(values[indices].tolist())


def test_config_carries_fields_index_and_string():
    searcher = _searcher()
    config = searcher.suggest("t0")
    space = searcher.space
    assert config == {**space.params(config["arch_index"]), "arch_index": config["arch_index"], "arch": space.arch_str(config["arch_index"])}


def test_max_concurrency_limits_a_batch():
    searcher, values = _searcher(), _values(GridSpace(CHOICES))
    assert searcher.set_max_concurrency(2) is True
    a, b = searcher.suggest("t0"), searcher.suggest("t1")
    assert searcher.suggest("t2") is None
    searcher.on_trial_complete("t0", {"acc": values[a["arch_index"]]})
    assert isinstance(searcher.suggest("t2"), dict)
    assert b is not None


@pytest.mark.parametrize(
    "outcome",
    [{"error": True}, {"result": None}, {"result": {"other": 1.0}}, {"result": {"acc": math.nan}}],
    ids=["errored", "stopped-without-result", "missing-metric", "nan-metric"],
)
def test_failed_trial_counts_with_worst_value(outcome):
    searcher, values = _searcher(max_sample=8), _values(GridSpace(CHOICES))
    configs = [searcher.suggest(f"t{i}") for i in range(4)]
    for i, config in enumerate(configs[1:], start=1):
        searcher.on_trial_complete(f"t{i}", {"acc": values[config["arch_index"]]})
    searcher.on_trial_complete("t0", **outcome)
    history = searcher.optimizer.history
    assert history.values[history.indices.index(configs[0]["arch_index"])] == min(values[c["arch_index"]] for c in configs[1:])
    assert searcher.failed == [configs[0]["arch_index"]]
    rest = _drive(searcher, values, start=4)
    assert len(rest) == 4 and configs[0]["arch_index"] not in [c["arch_index"] for c in rest]


def test_mode_min_negates_for_the_engine():
    searcher, values = _searcher(mode="min"), _values(GridSpace(CHOICES))
    configs = _drive(searcher, values)
    assert searcher.optimizer.history.values == pytest.approx([-values[c["arch_index"]] for c in configs])


def test_points_to_evaluate_run_first_and_count_in_budget():
    space = GridSpace(CHOICES)
    points = [{"arch": space.decode(35)}, {"a": "x", "b": "y", "c": "q"}, {"arch_index": 0}]
    searcher = _searcher(max_sample=10, points_to_evaluate=points)
    configs = _drive(searcher, _values(space))
    indices = [c["arch_index"] for c in configs]
    assert indices[:3] == [35, space.index_of({"a": "x", "b": "y", "c": "q"}), 0]
    assert len(indices) == 10 and len(set(indices)) == 10


def test_evaluated_rewards_are_told_not_run():
    space = GridSpace(CHOICES)
    searcher = _searcher(max_sample=6, points_to_evaluate=[{"arch_index": 35}, {"arch_index": 1}], evaluated_rewards=[99.0, 1.0])
    configs = _drive(searcher, _values(space))
    indices = [c["arch_index"] for c in configs]
    assert len(indices) == 6 and not {35, 1} & set(indices)
    history = searcher.optimizer.history
    assert dict(zip(history.indices, history.values))[35] == 99.0 and len(history) == 8


def test_save_restore_continues_exactly(tmp_path):
    values = _values(GridSpace(CHOICES))
    reference = [c["arch_index"] for c in _drive(_searcher(max_sample=14), values)]
    searcher = _searcher(max_sample=14)
    done = _drive(searcher, values, n_trials=5)
    out = searcher.suggest("t5")  # handed out, then the "driver dies" before it completes
    searcher.save(str(tmp_path / "state.pkl"))
    restored = _searcher(max_sample=14)
    restored.restore(str(tmp_path / "state.pkl"))
    restored.on_trial_complete("t5", {"acc": values[out["arch_index"]]})  # Tune reruns the pending trial
    rest = _drive(restored, values, start=6)
    assert [c["arch_index"] for c in done + [out] + rest] == reference


def test_domain_dict_restricts_the_pool_and_maps_indices():
    base = GridSpace(CHOICES)
    searcher = WeakNASSearcher(
        {"a": tune.choice(["y", "z"]), "c": "s"}, metric="acc", mode="max", max_sample=6, base_space=base, seed=0, **SMALL
    )
    assert isinstance(searcher.space, SubsetSpace) and len(searcher.space) == 2 * 3 * 1
    configs = _drive(searcher, _values(base))
    assert {c["arch_index"] for c in configs} == set(searcher.space.members.tolist())
    assert all(c["a"] in ("y", "z") and c["c"] == "s" and base.params(c["arch_index"])["b"] == c["b"] for c in configs)
    assert space_from_domains({"a": tune.choice(CHOICES["a"])}, base) is base


@pytest.mark.parametrize(
    "domains, message",
    [({"a": tune.uniform(0, 1)}, "'a' has a Float domain"), ({"zz": tune.choice(["x"])}, "unknown key"),
     ({"b": tune.choice(["x", "nope"])}, "key 'b' allows")],
)
def test_bad_domains_name_the_key(domains, message):
    with pytest.raises(ConfigError, match=message):
        space_from_domains(domains, GridSpace(CHOICES))


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="mode"):
        _searcher(mode="up")
    with pytest.raises(ConfigError, match="one reward per point"):
        _searcher(points_to_evaluate=[{"arch_index": 1}], evaluated_rewards=[1.0, 2.0])
    with pytest.raises(ConfigError, match="names no architecture"):
        _searcher(points_to_evaluate=[{"a": "x"}])
    with pytest.raises(ConfigError, match="metric and mode"):
        WeakNASSearcher(GridSpace(CHOICES), max_sample=8, **SMALL).suggest("t0")
