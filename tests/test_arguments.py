"""Config settings checked against signatures: what passes, what stops the run, and the message it gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from weaknas_ray.arguments import check_arguments
from weaknas_ray.config import load_config, method_settings
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.predictors import make_predictor


def loader(root, csv: Path | None = None, cache: os.PathLike = "x", rows: int = 1, scale: float = 1.0,
           exact: bool = True, names: list[str] | None = None, *, seed: int = 0):
    """A loader as a user might write one: an unannotated path, optional and PathLike paths."""


def check(values, **kwargs):
    check_arguments(loader, values, "benchmark", "loader test", **kwargs)


def test_strings_pass_for_every_kind_of_path_and_unchecked_hints_pass_anything():
    check({"root": "data/", "csv": "a.csv", "cache": "c/", "names": ["a"], "seed": 1})
    check({"csv": 3})  # a bare class hint (Path) is left to the loader, which gets the chance to convert
    check({"csv": None, "names": None, "scale": 2})  # an int is a float


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rows": True}, "benchmark.rows: expected int, got bool True"),
        ({"scale": "2"}, "benchmark.scale: expected float, got str '2'"),
        ({"exact": 1}, "benchmark.exact: expected bool, got int 1"),
        ({"cache": 3}, "benchmark.cache: expected a path, got int 3"),
        ({"names": ["a", 8]}, "benchmark.names: expected a list of str or null, got list ['a', 8]"),
        ({"names": "a"}, "benchmark.names: expected a list of str or null"),
        ({"bogus": 1}, "benchmark.bogus: not a setting of loader test; its settings: ['cache', 'csv', 'exact'"),
    ],
)
def test_wrong_values_name_their_key_and_type(values, message):
    with pytest.raises(ConfigError) as err:
        check(values)
    assert message in str(err.value)


def test_counts_floor_integers_at_one_and_numbers_at_zero_but_leave_booleans():
    check({"rows": 1, "scale": 0.0, "exact": False}, counts=True)
    for values, message in (({"rows": 0}, "expected an integer >= 1, got 0"),
                            ({"scale": -0.1}, "expected a number >= 0, got -0.1")):
        with pytest.raises(ConfigError, match=message):
            check(values, counts=True)
    check({"rows": 0, "scale": -1.0})  # without counts, ranges are the target's business


def test_hidden_parameters_are_neither_settable_nor_listed():
    with pytest.raises(ConfigError) as err:
        check({"seed": 1}, hidden=("seed",))
    assert "benchmark.seed: not a setting" in str(err.value) and "'seed'" not in str(err.value).split("settings:")[1]


def test_a_method_seed_comes_from_the_repeat_and_predictor_params_are_checked():
    config = load_config()
    for settings, error in (
        ({"seed": 3}, r"methods\.weaknas\.seed: not a setting of method 'weaknas'"),
        ({"predictor_params": "big"}, r"methods\.weaknas\.predictor_params: expected a mapping or null, got str 'big'"),
    ):
        config["methods"]["weaknas"] = settings
        with pytest.raises(ConfigError, match=error):
            method_settings(config, "weaknas")
    make_predictor("mlp", alpha=0, hidden=[8, 8])  # no L2 is a valid choice
    with pytest.raises(ConfigError, match=r"predictor_params\.hidden: expected a list of int, got list \['a', 8\]"):
        make_predictor("mlp", hidden=["a", 8])
