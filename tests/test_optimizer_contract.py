"""The contract every search method obeys, parametrised over all of them: ask/tell bookkeeping, the budget,
no duplicates, pending indices, determinism per seed (in this process and in a fresh one) and pickling
between ``tell`` and ``ask``. Tiny budgets and a 16-unit MLP keep it fast; the space is NAS-Bench-201's
cell arithmetic (no data file needed) so that the Optuna peers' categorical dimensions exist too."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weaknas_ray.engine import METHODS, make_optimizer, method_class
from weaknas_ray.engine.base import PredictorOptimizer
from weaknas_ray.exceptions import WeakNASError
from weaknas_ray.interfaces import TableOracle
from weaknas_ray.spaces.nasbench201 import EDGES, OPS, NASBench201Space

ROOT = Path(__file__).resolve().parents[1]
MLP = {"predictor": "mlp", "predictor_params": {"hidden": [16], "max_epochs": 5}}
SETTINGS = {
    "weaknas": {"init_sample": 6, "sample_each_iter": 6, "top_start": 40, "top_end": 40, **MLP},
    "weaknas-published": {"init_sample": 6, "sample_each_iter": 6, "top_start": 40, "top_end": 40, **MLP},
    "weaknas-ei": {"init_sample": 6, "sample_each_iter": 6, "n_members": 2, **MLP},
    "random": {"batch_size": 5},
    "evolution": {"population": 8, "sample": 3},
    "tpe": {"batch_size": 3},
    "gp": {"batch_size": 2},
}
BUDGET = 24


def test_every_method_is_covered():
    assert sorted(SETTINGS) == sorted(METHODS)


def build() -> tuple[NASBench201Space, TableOracle]:
    """Every NAS-Bench-201 cell with a synthetic accuracy: a fixed linear score of its one-hot ops."""
    space = NASBench201Space(np.array(list(itertools.product(range(len(OPS)), repeat=len(EDGES)))))
    score = space.features.astype(np.float64) @ np.random.default_rng(0).normal(size=space.features.shape[1])
    return space, TableOracle(score, score + 1.0)


def make(method: str, space, seed: int, oracle):
    """``method`` with its contract settings; predictor methods get the pool statistics, as from the runner."""
    extra = {"pool_stats": oracle.search_stats} if issubclass(method_class(method), PredictorOptimizer) else {}
    return make_optimizer(method, space, BUDGET, seed, **SETTINGS[method], **extra)


def run(method: str, seed: int, opt=None) -> list[int]:
    space, oracle = build()
    opt = opt or make(method, space, seed, oracle)
    while not opt.finished:
        batch = opt.ask()
        opt.tell(batch, oracle.evaluate(batch).search)
    return [int(i) for i in opt.history.indices]


@pytest.fixture(scope="module")
def pool():
    return build()


@pytest.fixture(params=sorted(SETTINGS))
def method(request):
    return request.param


def test_ask_tell_bookkeeping_budget_and_no_duplicates(pool, method):
    space, oracle = pool
    opt = make(method, space, 0, oracle)
    while not opt.finished:
        batch = opt.ask()
        assert batch.dtype == np.int64 and batch.size > 0
        assert np.unique(batch).size == batch.size
        assert not opt.evaluated[batch].any() and opt.pending[batch].all()
        opt.tell(batch, oracle.evaluate(batch).search)
        assert not opt.pending[batch].any() and opt.evaluated[batch].all()
    assert opt.n_told == BUDGET == len(set(opt.history.indices)) == int(opt.evaluated.sum())
    assert not opt.pending.any() and opt.ask().size == 0
    assert len(opt.history.values) == len(opt.history.iterations) == BUDGET


def test_asks_without_tells_stay_within_the_budget_and_never_repeat(pool, method):
    space, oracle = pool
    opt = make(method, space, 1, oracle)
    asked: list[int] = []
    for _ in range(BUDGET + 2):
        batch = opt.ask()
        if not batch.size:
            break
        asked += batch.tolist()
    assert len(asked) == len(set(asked)) <= BUDGET
    assert int(opt.pending.sum()) == len(asked)


def test_pending_indices_are_told_once_and_enqueued_ones_never_proposed(pool, method):
    space, oracle = pool
    opt = make(method, space, 2, oracle)
    batch = opt.ask()
    outside = np.setdiff1d(np.arange(3), batch)
    opt.enqueue(outside)  # after ask, as the Tune searcher does with points_to_evaluate
    more = opt.ask()  # (empty for methods that hand out one batch at a time)
    assert not set(more.tolist()) & set(outside.tolist())
    batch = np.r_[batch, more]
    with pytest.raises(WeakNASError, match="were not asked"):
        opt.tell(np.array([int(np.flatnonzero(~opt.pending & ~opt.evaluated)[0])]), np.array([1.0]))
    both = np.r_[outside, batch]
    opt.tell(both, oracle.evaluate(both).search)
    with pytest.raises(WeakNASError, match="already evaluated"):
        opt.enqueue(outside[:1])
    with pytest.raises(WeakNASError, match="were not asked"):
        opt.tell(outside[:1], np.array([1.0]))  # told twice
    run(method, 2, opt)  # and the run still completes within its budget, without repeats
    assert opt.n_told == BUDGET and len(set(opt.history.indices)) == BUDGET


def test_withdrawn_indices_are_free_again(pool, method):
    space, oracle = pool
    opt = make(method, space, 5, oracle)
    batch = opt.ask()
    opt.withdraw(batch)
    assert not opt.pending.any() and opt.n_told == 0
    assert opt.ask().size > 0  # the budget they held is free again
    with pytest.raises(WeakNASError, match="must lie in"):
        opt.withdraw([len(space)])


def test_same_seed_same_run_and_pickling_between_tell_and_ask(pool, method):
    space, oracle = pool
    first = run(method, 3)
    assert run(method, 3) == first
    opt = make(method, space, 3, oracle)
    while opt.n_told < BUDGET // 2:
        batch = opt.ask()
        opt.tell(batch, oracle.evaluate(batch).search)
    restored = pickle.loads(pickle.dumps(opt))
    assert run(method, 3, restored) == first == run(method, 3, opt)


def test_same_seed_same_run_in_a_fresh_process(method):
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from test_optimizer_contract import run; "
        "print(json.dumps(run(sys.argv[2], 4)))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "tests"), method], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=240, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == run(method, 4)


def test_predictor_methods_declare_their_fit_hooks(pool, method):
    space, oracle = pool
    opt = make(method, space, 0, oracle)
    assert isinstance(opt, PredictorOptimizer) == method.startswith("weaknas")
    if isinstance(opt, PredictorOptimizer):
        assert opt.next_fit() is None  # iteration 0 fits nothing
        assert opt.new_predictor() is not None
