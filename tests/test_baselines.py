"""Regularised evolution and Optuna TPE: distinct queries, known values for revisits, reproducible."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from weaknas_ray.drivers.loop import run_repeat
from weaknas_ray.engine import make_optimizer
from weaknas_ray.engine.testing import GridSpace
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.spaces import ArraySpace, TableOracle


def grid(n_dims: int = 3, n_opts: int = 4):
    space = GridSpace({f"e{d}": [f"op{o}" for o in range(n_opts)] for d in range(n_dims)})
    codes = np.array([space.decode(i) for i in range(len(space))])
    oracle = TableOracle(-((codes - 2.2) ** 2).sum(axis=1) + 0.01 * np.arange(len(space)))
    return space, oracle


def _history(opt, oracle, pickle_at: int | None = None):
    while not opt.finished:
        if opt.n_told == pickle_at:
            opt = pickle.loads(pickle.dumps(opt))
        idx = opt.ask()
        opt.tell(idx, oracle.evaluate(idx).search)
    return opt


@pytest.mark.parametrize(("method", "settings"), [("evolution", {"population": 10, "sample": 3}), ("tpe", {}), ("tpe", {"batch_size": 4})])
def test_spends_the_whole_pool_on_distinct_queries(method, settings):
    space, oracle = grid(3, 3)  # 27 architectures: the last queries need many re-proposals
    df = run_repeat(make_optimizer(method, space, len(space), 0, **settings), oracle)
    assert sorted(df["arch_index"]) == list(range(len(space)))


@pytest.mark.parametrize(("method", "settings"), [("evolution", {"population": 10, "sample": 3}), ("tpe", {"batch_size": 3})])
def test_reproducible_and_picklable(method, settings):
    space, oracle = grid()
    runs = [_history(make_optimizer(method, space, 40, seed, **settings), oracle, pickle_at) for seed, pickle_at in [(1, None), (1, 21), (2, None)]]
    assert runs[0].history.indices == runs[1].history.indices != runs[2].history.indices


def _aging_evolution(space, oracle, budget: int, seed: int, population: int, sample: int) -> list[int]:
    """Real et al.'s regularised evolution written out plainly: the queries it makes, in order."""
    rng = np.random.default_rng(seed)
    queries = rng.choice(len(space), size=population, replace=False).tolist()
    members = [(i, oracle.search[i]) for i in queries]
    while len(queries) < budget:
        picks = rng.choice(len(members), size=sample, replace=False)
        parent = max((members[p] for p in picks), key=lambda m: m[1])[0]  # the first drawn wins a tie
        child = space.mutate(parent, rng)
        if child not in queries:
            queries.append(child)
        members = members[1:] + [(child, oracle.search[child])]  # the oldest leaves
    return queries


def test_evolution_is_tournament_selection_with_aging():
    space, oracle = grid()
    opt = make_optimizer("evolution", space, 50, 3, population=10, sample=3)
    df = run_repeat(opt, oracle)
    assert df.groupby("iteration").size().iloc[0] == 10 and (df.groupby("iteration").size().iloc[1:] == 1).all()
    assert df["arch_index"].tolist() == _aging_evolution(space, oracle, 50, 3, population=10, sample=3)
    codes = np.array([space.decode(i) for i in df["arch_index"]])
    for q in range(10, 50):  # every child is one mutation away from an earlier query
        assert ((codes[:q] != codes[q]).sum(axis=1) == 1).any()


def test_tpe_tells_every_trial_its_architectures_value():
    space, oracle = grid()
    opt = _history(make_optimizer("tpe", space, 30, 0, batch_size=2), oracle)
    trials = opt._study.trials
    assert len(trials) >= 30 and all(t.value is not None for t in trials)
    for t in trials:
        assert t.value == oracle.search[space.index_of(t.params)]


def test_tpe_needs_named_choices_and_every_baseline_valid_sizes():
    with pytest.raises(ConfigError, match="tpe: space 'plain' has neither typed parameters.*param_choices"):
        make_optimizer("tpe", ArraySpace(np.eye(5), name="plain"), 3, 0)
    with pytest.raises(ConfigError, match="sample <= population"):
        make_optimizer("evolution", grid()[0], 3, 0, population=5, sample=6)
    for method in ("random", "tpe"):  # at construction, not as an empty batch mid-run
        with pytest.raises(ConfigError, match=f"{method}.batch_size must be >= 1, got 0"):
            make_optimizer(method, grid()[0], 3, 0, batch_size=0)


def test_tpe_falls_back_to_a_distinct_free_draw_after_max_revisits(monkeypatch):
    """A sampler that proposes one architecture forever: every MAX_REVISITS re-proposals (in the batch,
    pending, or already known) the fallback enqueues a uniform draw from the free architectures not in
    the batch, from ``default_rng(seed)``; batches stay distinct and every architecture is queried once."""
    import optuna

    from weaknas_ray.engine import optuna_samplers as tpe

    class StuckSampler(optuna.samplers.BaseSampler):
        """The same parameters for every trial (an enqueued trial still gets its own)."""

        def __init__(self, params):
            self.params = params

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.params[param_name]

    monkeypatch.setattr(tpe, "MAX_REVISITS", 3)
    space, oracle = grid(2, 3)  # 9 architectures
    stuck = 0  # TPE keeps proposing this one
    opt = make_optimizer("tpe", space, len(space), 5, batch_size=4)
    opt._study.sampler = StuckSampler(space.params(stuck))
    asks = []
    real_ask = opt._study.ask

    def ask(*args, **kwargs):
        asks.append(1)
        if len(asks) > 200:
            raise AssertionError("TPE keeps re-proposing: the fallback never fired")
        return real_ask(*args, **kwargs)

    monkeypatch.setattr(opt._study, "ask", ask)

    rng = np.random.default_rng(5)
    evaluated, pending = np.zeros(9, bool), np.zeros(9, bool)

    def expected_batch(size):
        """The batch the rule gives: the stuck architecture when new, then fallback draws."""
        batch = [] if evaluated[stuck] or pending[stuck] else [stuck]
        while len(batch) < size:
            free = np.flatnonzero(~evaluated & ~pending)
            batch.append(int(rng.choice(free[~np.isin(free, batch)])))
        return batch

    first = expected_batch(4)
    assert opt.ask().tolist() == first and len(asks) == 1 + 3 * 4  # 3 in-batch revisits before each draw
    pending[first] = True
    second = expected_batch(4)  # asked before any tell: the stuck one is pending
    assert opt.ask().tolist() == second and len(asks) == 13 + 4 * 4
    pending[second] = True
    for batch in (first, second):
        opt.tell(np.array(batch), oracle.evaluate(np.array(batch)).search)
    evaluated[first + second], pending[:] = True, False
    last = expected_batch(1)  # room 1; the stuck one is known now
    assert opt.ask().tolist() == last and len(asks) == 29 + 4
    opt.tell(np.array(last), oracle.evaluate(np.array(last)).search)
    assert opt.finished and sorted(opt.history.indices) == list(range(9))
    assert all(t.value == oracle.search[space.index_of(t.params)] for t in opt._study.trials)


@pytest.mark.parametrize("seed", range(3))
def test_tpe_maximises_the_search_value(seed):
    """TPE moves towards higher search values: its later queries beat the pool's average clearly."""
    space, oracle = grid(3, 6)  # 216 architectures, a smooth separable objective
    values = run_repeat(make_optimizer("tpe", space, 40, seed), oracle)["search_value"].to_numpy()
    assert values[-20:].mean() > oracle.search.mean() + 2.0, (values[-20:].mean(), oracle.search.mean())


def test_evolution_tournament_ties_go_to_the_earliest_drawn():
    """With many tied values the parent of a tied tournament is the first member drawn (Real et al.'s
    reference written out above breaks ties the same way)."""
    space = GridSpace({f"e{d}": [f"op{o}" for o in range(4)] for d in range(3)})
    codes = np.array([space.decode(i) for i in range(len(space))])
    oracle = TableOracle(-np.abs(codes - 2).sum(axis=1).astype(float))  # integers: ties everywhere
    df = run_repeat(make_optimizer("evolution", space, 40, 7, population=8, sample=4), oracle)
    assert df["arch_index"].tolist() == _aging_evolution(space, oracle, 40, 7, population=8, sample=4)


def test_evolution_population_counts_warm_started_queries():
    """Queries told from elsewhere (warm starts) count towards the initial population: the random
    batch only fills it up to ``population``, then one child per ask."""
    space, oracle = grid()  # 64 architectures
    opt = make_optimizer("evolution", space, 60, 0, population=50, sample=3)
    warm = np.random.default_rng(1).permutation(len(space))[:40]
    opt.pending[warm] = True
    opt.tell(warm, oracle.evaluate(warm).search)
    first = opt.ask()
    assert first.size == 10 and not np.isin(first, warm).any()
    opt.tell(first, oracle.evaluate(first).search)
    assert opt.ask().size == 1


def test_evolution_falls_back_to_a_free_architecture_when_mutation_only_revisits(monkeypatch):
    """A mutation that only ever yields known architectures: after MAX_REVISITS revisits the child is
    a random unevaluated architecture, so the whole budget is still spent on distinct queries."""
    from weaknas_ray.engine import baselines

    class Stuck(GridSpace):
        def mutate(self, index, rng):
            return index  # the parent: always known

    monkeypatch.setattr(baselines, "MAX_REVISITS", 5)
    space = Stuck({f"e{d}": [f"op{o}" for o in range(3)] for d in range(2)})  # 9 architectures
    oracle = TableOracle(np.arange(len(space), dtype=float))
    df = run_repeat(make_optimizer("evolution", space, len(space), 2, population=3, sample=2), oracle)
    assert sorted(df["arch_index"]) == list(range(len(space)))
