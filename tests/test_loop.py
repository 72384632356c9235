"""The in-process loop: one row per query, running bests, costs, early stop at the optimum."""

from __future__ import annotations

import numpy as np
import pytest

from weaknas_ray.drivers.loop import COLUMNS, run_repeat
from weaknas_ray.engine.baselines import RandomSearch
from weaknas_ray.exceptions import WeakNASError
from weaknas_ray.spaces.base import ArraySpace, Oracle, TableOracle

N = 60


@pytest.fixture
def table():
    rng = np.random.default_rng(7)
    search = rng.normal(size=N)
    return ArraySpace(np.eye(N)), TableOracle(search, search + 1.0, cost=np.arange(N, dtype=float))


def test_rows_and_running_bests(table):
    space, oracle = table
    batches = []
    df = run_repeat(RandomSearch(space, max_sample=25, seed=1, batch_size=10), oracle, on_batch=batches.append)
    assert list(df.columns) == COLUMNS + ["cost"]
    assert df["query"].tolist() == list(range(1, 26))
    assert df["iteration"].tolist() == [0] * 10 + [1] * 10 + [2] * 5
    assert [len(b) for b in batches] == [10, 10, 5]
    idx = df["arch_index"].to_numpy()
    assert len(set(idx)) == 25
    np.testing.assert_array_equal(df["search_value"], oracle.search[idx])
    np.testing.assert_array_equal(df["reported_value"], oracle.reported[idx])
    np.testing.assert_array_equal(df["cost"], idx.astype(float))
    np.testing.assert_array_equal(df["best_search_so_far"], np.maximum.accumulate(oracle.search[idx]))
    np.testing.assert_array_equal(df["best_reported_so_far"], np.maximum.accumulate(oracle.reported[idx]))
    assert (np.diff(df["elapsed_s"]) >= 0).all()


def test_stop_at_optimum_stops_after_the_batch_that_finds_it(table):
    space, oracle = table
    full = run_repeat(RandomSearch(space, max_sample=N, seed=2, batch_size=7), oracle)
    hit = int(np.flatnonzero(full["arch_index"].isin(oracle.optimum_indices))[0])
    stopped = run_repeat(RandomSearch(space, max_sample=N, seed=2, batch_size=7), oracle, stop_at_optimum=True)
    assert len(stopped) == (hit // 7 + 1) * 7
    assert stopped.equals(full.iloc[: len(stopped)].assign(elapsed_s=stopped["elapsed_s"]))


def test_stop_at_optimum_needs_a_known_optimum(table):
    space, _ = table

    class Blind(Oracle):
        def evaluate(self, indices):
            return TableOracle(np.zeros(N)).evaluate(indices)

    with pytest.raises(WeakNASError, match="optimum indices"):
        run_repeat(RandomSearch(space, max_sample=5, seed=0), Blind(), stop_at_optimum=True)
    df = run_repeat(RandomSearch(space, max_sample=5, seed=0), Blind())
    assert "cost" not in df.columns and len(df) == 5
