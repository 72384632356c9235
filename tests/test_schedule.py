"""The query and top-N schedules reproduce the published code's arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weaknas_ray.engine.schedule import n_iterations, query_sizes, top_n_schedule
from weaknas_ray.exceptions import ConfigError


def published_n_iterations(n0: int, k: int, b: int) -> int:
    """The published code's float formula, literally (weaknas-method.md, step 1)."""
    return 1 + math.ceil((b - n0 + k) / k - 1) if n0 > k else math.ceil((b - n0 + k) / k)


@pytest.mark.parametrize(("n0", "k", "b", "iters"), [(100, 10, 1000, 91), (10, 10, 1000, 100), (10, 10, 100, 10)])
def test_published_examples(n0, k, b, iters):
    sizes = query_sizes(n0, k, b)
    assert len(sizes) == n_iterations(n0, k, b) == iters
    assert sizes[0] == n0 and set(sizes[1:]) == {k} and sum(sizes) == b


@settings(derandomize=True)
@given(st.integers(1, 300), st.integers(1, 50), st.integers(0, 2000))
def test_matches_the_published_formula_and_sums_to_budget(n0, k, extra):
    b = n0 + extra
    sizes = query_sizes(n0, k, b)
    assert len(sizes) == published_n_iterations(n0, k, b)
    assert sum(sizes) == b and sizes[0] == n0
    assert all(1 <= s <= k for s in sizes[1:])


def test_bad_schedule_names_the_setting():
    with pytest.raises(ConfigError, match="init_sample"):
        query_sizes(200, 10, 100)
    with pytest.raises(ConfigError, match="sample_each_iter"):
        query_sizes(10, 0, 100)


def test_top_n_constant_when_start_equals_end():
    assert top_n_schedule(91, 100, 100, 0.96).tolist() == [100] * 91


def test_top_n_decays_from_start_to_end():
    top = top_n_schedule(100, 80000, 500, 0.96)
    x = np.linspace(0, 99, 100)
    y = 0.96**x
    expected = ((y - y.min()) / (y.max() - y.min()) * (80000 - 500) + 500).astype(int)
    np.testing.assert_array_equal(top, expected)
    assert top[0] == 80000 and top[-1] == 500 and (np.diff(top) <= 0).all()
    assert top_n_schedule(1, 80000, 500, 0.96).tolist() == [80000]
    with pytest.raises(ConfigError, match="top_decay"):
        top_n_schedule(10, 100, 100, 1.5)


def test_top_n_rejects_a_flat_decay_and_an_empty_top():
    """``top_decay = 1`` leaves nothing to normalise (0 / 0) and ``top_start < 1`` an empty top-N:
    both are configuration errors, not a garbage schedule."""
    with pytest.raises(ConfigError, match="top_decay"):
        top_n_schedule(10, 100, 100, 1.0)
    with pytest.raises(ConfigError, match="top_start"):
        top_n_schedule(10, 0, 100, 0.96)
