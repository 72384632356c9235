"""The shared contracts: ArraySpace / TableOracle fakes, the Optimizer ask/tell bookkeeping, the CLI shell."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from weaknas_ray.engine import make_optimizer
from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError, WeakNASError
from weaknas_ray.spaces import ArraySpace, TableOracle


@pytest.fixture
def space():
    return ArraySpace(np.random.default_rng(0).random((50, 4)), name="tiny")


def test_array_space_checks_indices(space):
    assert space.features.dtype == np.float32 and space.features.flags.c_contiguous
    assert len(space) == 50 and space.index_of("7") == 7
    with pytest.raises(UnknownArchitectureError, match="index 50 is out of range; the pool has 50"):
        space.check_indices([3, 50])
    with pytest.raises(UnknownArchitectureError, match="expected an integer index, got 'x'"):
        space.index_of("x")


def test_table_oracle_values_and_optimum():
    oracle = TableOracle(search=[1.0, 3.0, 2.0], reported=[5.0, 4.0, 5.0], cost=[1.0, 2.0, 3.0])
    ev = oracle.evaluate(np.array([2, 0]))
    np.testing.assert_array_equal(ev.search, [2.0, 1.0])
    np.testing.assert_array_equal(ev.cost, [3.0, 1.0])
    assert oracle.optimum == (3.0, 5.0)
    np.testing.assert_array_equal(oracle.optimum_indices, [0, 2])
    with pytest.raises(UnknownArchitectureError, match="3 rows"):
        oracle.evaluate(np.array([3]))


def test_optimizer_bookkeeping(space):
    opt = make_optimizer("random", space, max_sample=12, seed=1, batch_size=5)
    first = opt.ask()
    assert first.size == 5 and opt.pending[first].all()
    # Asking again while a batch is out proposes other architectures, and never more than the budget.
    second = opt.ask()
    assert not set(first) & set(second) and first.size + second.size <= 12
    with pytest.raises(WeakNASError, match="were not asked"):
        opt.tell(np.setdiff1d(np.arange(50), np.r_[first, second])[:1], np.array([1.0]))
    with pytest.raises(WeakNASError, match="must be finite"):
        opt.tell(first, np.full(first.size, np.nan))
    opt.tell(first, np.arange(first.size, dtype=float))
    opt.tell(second, np.arange(second.size, dtype=float))
    while not opt.finished:
        batch = opt.ask()
        opt.tell(batch, np.zeros(batch.size))
    assert len(opt.history) == 12 and opt.ask().size == 0
    assert len(set(opt.history.indices)) == 12


def test_random_search_is_seeded(space):
    def run(seed):
        opt = make_optimizer("random", space, max_sample=20, seed=seed)
        while not opt.finished:
            batch = opt.ask()
            opt.tell(batch, np.zeros(batch.size))
        return opt.history.indices

    assert run(3) == run(3) and run(3) != run(4)


def test_unknown_method_lists_choices(space):
    with pytest.raises(ConfigError, match="unknown method 'weak'.*'random'"):
        make_optimizer("weak", space, max_sample=5, seed=0)
    with pytest.raises(WeakNASError, match="max_sample must lie in 1..50"):
        make_optimizer("random", space, max_sample=51, seed=0)


def test_cli_help_lists_commands_and_import_is_light():
    out = subprocess.run([sys.executable, "-m", "weaknas_ray.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "COMMAND" in out.stdout
    code = ("import sys, weaknas_ray, weaknas_ray.cli, weaknas_ray.config, weaknas_ray.engine, weaknas_ray.spaces, "
            "weaknas_ray.benchmarks.paths, weaknas_ray.benchmarks.manifest; "
            "print(sorted(m for m in ('torch', 'ray', 'ofa', 'matplotlib') if m in sys.modules))")
    light = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert light.stdout.strip() == "[]"


def test_random_search_skips_architectures_known_from_elsewhere(space):
    opt = make_optimizer("random", space, max_sample=10, seed=0, batch_size=10)
    order = np.random.default_rng(0).permutation(50)
    opt.pending[order[:3]] = True  # e.g. warm-start points handed out by the Tune searcher
    opt.tell(order[:3], np.ones(3))
    batch = opt.ask()
    assert batch.size == 7 and not set(batch) & set(order[:3].tolist())


def test_asks_before_any_tell_never_exceed_the_budget(space):
    opt = make_optimizer("random", space, max_sample=12, seed=1, batch_size=5)
    batches = [opt.ask() for _ in range(3)]  # nothing told yet: pending queries count against the budget
    assert [b.size for b in batches] == [5, 5, 2]
    assert opt.ask().size == 0 and int(opt.pending.sum()) == 12
    every = np.concatenate(batches)
    assert np.unique(every).size == 12
    for batch in batches:
        opt.tell(batch, np.zeros(batch.size))
    assert opt.finished and len(opt.history) == 12 and opt.ask().size == 0


def test_iteration_advances_only_when_nothing_is_pending(space):
    opt = make_optimizer("random", space, max_sample=20, seed=1, batch_size=4)
    first, second = opt.ask(), opt.ask()
    opt.tell(first[:2], np.zeros(2))  # part of a batch: the iteration goes on
    assert opt.iteration == 0
    opt.tell(first[2:], np.zeros(2))
    assert opt.iteration == 0  # the second batch is still out
    opt.tell(second, np.zeros(4))
    assert opt.iteration == 1 and opt.history.iterations == [0] * 8
    third = opt.ask()
    opt.tell(third, np.zeros(third.size))
    assert opt.iteration == 2 and opt.history.iterations == [0] * 8 + [1] * 4


def _scripted(n_pool: int, max_sample: int, proposals: list):
    """An optimizer whose ``_propose`` returns the scripted ``proposals`` in turn, to check ``ask``'s own guards."""
    from weaknas_ray.engine.base import Optimizer

    class Scripted(Optimizer):
        method = "scripted"

        def _propose(self, room):
            return np.asarray(proposals.pop(0), dtype=np.int64)

    return Scripted(n_pool, max_sample, seed=0)


def test_ask_rejects_repeated_evaluated_or_pending_proposals():
    opt = _scripted(10, 8, [[0, 1], [2, 2], [1, 3], [0, 4], [5, 6]])
    first = opt.ask()
    with pytest.raises(WeakNASError, match="repeated, evaluated or pending"):
        opt.ask()  # the same index twice in one batch
    with pytest.raises(WeakNASError, match="repeated, evaluated or pending"):
        opt.ask()  # 1 is pending
    opt.tell(first, np.zeros(2))
    with pytest.raises(WeakNASError, match="repeated, evaluated or pending"):
        opt.ask()  # 0 was evaluated
    assert opt.ask().tolist() == [5, 6] and opt.pending.sum() == 2


def test_ask_never_hands_out_more_than_the_budget():
    opt = _scripted(10, 5, [[0, 1, 2], [3, 4, 5, 6]])
    assert opt.ask().tolist() == [0, 1, 2]
    assert opt.ask().tolist() == [3, 4]  # room 2: the rest of the proposal is dropped
    assert not opt.pending[[5, 6]].any() and opt.ask().size == 0


def test_tell_needs_one_value_per_distinct_index(space):
    opt = make_optimizer("random", space, max_sample=10, seed=0, batch_size=4)
    batch = opt.ask()
    with pytest.raises(WeakNASError, match="4 indices but 3 values"):
        opt.tell(batch, np.zeros(3))
    with pytest.raises(WeakNASError, match="repeat an architecture"):
        opt.tell(batch[[0, 0]], np.array([1.0, 2.0]))  # one query told twice would spend the budget twice
    assert opt.n_told == 0 and opt.pending[batch].all()
    opt.tell(batch, np.zeros(4))
    assert opt.n_told == 4


def test_history_best_so_far_is_the_running_maximum():
    from weaknas_ray.engine.base import History

    history = History(indices=[4, 1, 7, 2], values=[0.5, 0.2, 0.9, 0.7], iterations=[0, 0, 1, 1])
    np.testing.assert_array_equal(history.best_so_far(), [0.5, 0.5, 0.9, 0.9])
    assert History().best_so_far().size == 0


def test_random_search_order_is_the_seeded_permutation(space):
    """The documented order: ``numpy.random.default_rng(seed).permutation(n_pool)``, in batches."""
    opt = make_optimizer("random", space, max_sample=23, seed=3, batch_size=7)
    while not opt.finished:
        batch = opt.ask()
        opt.tell(batch, np.zeros(batch.size))
    assert opt.history.indices == np.random.default_rng(3).permutation(50)[:23].tolist()


def test_table_oracle_rejects_negative_indices_and_gives_population_stats():
    oracle = TableOracle(search=[1.0, 3.0, 2.0, 6.0])
    with pytest.raises(UnknownArchitectureError, match="out of range"):
        oracle.evaluate(np.array([0, -1]))
    assert oracle.search_stats == (3.0, float(np.std([1.0, 3.0, 2.0, 6.0])))  # population std (ddof 0)
    np.testing.assert_array_equal(oracle.evaluate(np.array([3])).reported, [6.0])  # reported defaults to search


def test_space_rejects_negative_indices(space):
    with pytest.raises(UnknownArchitectureError, match="index -1 is out of range"):
        space.check_indices([0, -1])


def test_nearest_is_an_l1_neighbour_drawn_uniformly_among_ties():
    # From row 0: rows 1 and 2 at L1 distance 3 (tied), row 3 at L1 4 but the smallest L2 distance.
    feats = np.array([[0, 0, 0], [3, 0, 0], [0, 0, 3], [1, 1, 2], [9, 9, 9]], dtype=np.float32)
    space = ArraySpace(feats)
    rng = np.random.default_rng(0)
    assert {space.nearest(0, rng) for _ in range(40)} == {1, 2}
    assert {space.mutate(0, rng) for _ in range(40)} == {1, 2}  # the default mutation
