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
    code = "import sys, weaknas_ray.cli, weaknas_ray.engine, weaknas_ray.spaces; print(sorted(m for m in ('torch', 'ray', 'ofa') if m in sys.modules))"
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
