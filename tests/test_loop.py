"""The in-process loop: one row per query, running bests, costs, early stop at the optimum."""

from __future__ import annotations

import numpy as np
import pytest

from weaknas_ray.drivers.loop import COLUMNS, run_repeat
from weaknas_ray.engine.baselines import RandomSearch
from weaknas_ray.exceptions import WeakNASError
from weaknas_ray.spaces import ArraySpace, Oracle, TableOracle

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


def test_stop_at_the_search_optimum_when_it_is_not_the_reported_one():
    """``stop_at_optimum="search"`` ends a repeat at the best search value's architecture, here a cell
    whose reported value is not the best (as on NAS-Bench-201 ImageNet16-120); ``"reported"`` (and
    ``True``) at the best reported one; anything else is refused."""
    search = np.arange(N, dtype=float)
    reported = search.copy()
    reported[[N - 1, 0]] = reported[[0, N - 1]]  # the best search cell reports the worst value
    space, oracle = ArraySpace(np.eye(N)), TableOracle(search, reported)
    assert oracle.search_optimum_indices.tolist() == [N - 1] and oracle.optimum_indices.tolist() == [0]
    full = run_repeat(RandomSearch(space, max_sample=N, seed=3, batch_size=5), oracle)
    order = full["arch_index"].tolist()
    for stop, target in (("search", N - 1), ("reported", 0), (True, 0)):
        rows = run_repeat(RandomSearch(space, max_sample=N, seed=3, batch_size=5), oracle, stop_at_optimum=stop)
        assert len(rows) == (order.index(target) // 5 + 1) * 5, stop
    with pytest.raises(WeakNASError, match="expected one of reported, search, false; got 'test'"):
        run_repeat(RandomSearch(space, max_sample=5, seed=0), oracle, stop_at_optimum="test")


def test_stop_at_optimum_needs_a_known_optimum(table):
    space, _ = table

    class Blind(Oracle):
        def evaluate(self, indices):
            return TableOracle(np.zeros(N)).evaluate(indices)

    with pytest.raises(WeakNASError, match="reported optimum indices"):
        run_repeat(RandomSearch(space, max_sample=5, seed=0), Blind(), stop_at_optimum=True)
    with pytest.raises(WeakNASError, match="search optimum indices"):
        run_repeat(RandomSearch(space, max_sample=5, seed=0), Blind(), stop_at_optimum="search")
    df = run_repeat(RandomSearch(space, max_sample=5, seed=0), Blind())
    assert "cost" not in df.columns and len(df) == 5


def test_batches_of_one_spend_the_whole_budget(table):
    space, oracle = table
    opt = RandomSearch(space, max_sample=7, seed=3, batch_size=1)
    df = run_repeat(opt, oracle)
    assert opt.finished and len(df) == 7 and df["iteration"].tolist() == list(range(7))


def test_extra_measurements_become_columns_and_elapsed_counts_from_the_start(table):
    """Every ``Evaluation.extra`` entry is a result column; ``elapsed_s`` is the time since the repeat began."""
    import time

    from weaknas_ray.spaces import Evaluation

    space, base = table

    class WithTop5(Oracle):
        def evaluate(self, indices):
            ev = base.evaluate(indices)
            return Evaluation(ev.search, ev.reported, extra={"top5": ev.reported + 5.0})

    start = time.perf_counter()
    df = run_repeat(RandomSearch(space, max_sample=12, seed=0, batch_size=5), WithTop5())
    wall = time.perf_counter() - start
    assert list(df.columns) == COLUMNS + ["top5"]
    np.testing.assert_array_equal(df["top5"], base.reported[df["arch_index"]] + 5.0)
    assert ((df["elapsed_s"] >= 0) & (df["elapsed_s"] <= wall)).all()


def test_running_bests_of_negative_values(table):
    """Values below zero (e.g. negated losses): the running bests are the best values seen, not 0."""
    space, _ = table
    oracle = TableOracle(-1.0 - np.arange(N, dtype=float), -2.0 - np.arange(N, dtype=float))
    df = run_repeat(RandomSearch(space, max_sample=15, seed=0, batch_size=4), oracle)
    np.testing.assert_array_equal(df["best_search_so_far"], np.maximum.accumulate(df["search_value"]))
    np.testing.assert_array_equal(df["best_reported_so_far"], np.maximum.accumulate(df["reported_value"]))
    assert (df["best_reported_so_far"] < 0).all()
