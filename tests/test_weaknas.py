"""WeakNAS engine: schedule, seeding, z-scored targets, selection, determinism, and search quality."""

from __future__ import annotations

import functools
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from weaknas_ray.acquisition import ensemble_mean_sd, incumbent, log_expected_improvement, score_pool
from weaknas_ray.drivers.loop import run_repeat
from weaknas_ray.engine import make_optimizer
from weaknas_ray.engine import weaknas as weaknas_module
from weaknas_ray.engine.schedule import query_sizes, top_n_schedule
from weaknas_ray.engine.testing import FixedPredictor, GridSpace
from weaknas_ray.engine.weaknas import WeakNAS, WeakNASEI
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.spaces import ArraySpace, TableOracle

N = 300
VALUES = np.random.default_rng(11).normal(size=N)
# NOTE: a small, fast MLP; the published 4 x 1000 one is the predictor package's concern.
TINY_MLP = {"hidden": (32, 32), "max_epochs": 30, "threads": 1}


@pytest.fixture
def fixed(monkeypatch):
    """Every predictor the engine builds is a FixedPredictor predicting VALUES plus member noise; the
    list collects them in build order."""
    built = []

    def factory(name, n_members, **params):
        noise = np.random.default_rng(len(built)).normal(scale=0.3, size=(n_members, N))
        built.append(FixedPredictor(VALUES[None, :] + noise, n_members=n_members))
        return built[-1]

    monkeypatch.setattr(weaknas_module, "make_predictor", factory)
    return built


def space():
    return ArraySpace(np.eye(N), name="onehot")


def _trained_on(model) -> np.ndarray:
    """Pool indices a FixedPredictor was fitted on (the features are one-hot rows of the identity)."""
    return model.X_.argmax(axis=1)


def _ranking(model) -> np.ndarray:
    mu = model.predict(np.eye(N)).mean(axis=0)
    return np.lexsort((np.arange(N), -mu))


def test_batches_follow_the_schedules_and_seeds(fixed):
    opt = WeakNAS(space(), max_sample=95, seed=4, init_sample=25, sample_each_iter=10, n_members=3,
                  top_start=200, top_end=20, top_decay=0.9, stall_patience=None, target_scaling="train")
    top_n = top_n_schedule(8, 200, 20, 0.9)
    df = run_repeat(opt, TableOracle(VALUES))
    assert df.groupby("iteration").size().tolist() == query_sizes(25, 10, 95)
    assert df["arch_index"].nunique() == 95
    first = np.random.default_rng([4, 0]).choice(N, size=25, replace=False)
    np.testing.assert_array_equal(df["arch_index"][:25], first)
    assert [m.seed_ for m in fixed] == [4 + z * 3 for z in range(1, 8)]
    fallbacks = 0
    for z, model in enumerate(fixed, start=1):  # trained on all evaluated, z-scored on that set
        seen = df["arch_index"][df["iteration"] < z].to_numpy()
        np.testing.assert_array_equal(_trained_on(model), seen)
        assert abs(model.y_.mean()) < 1e-5 and abs(model.y_.std() - 1) < 1e-5
        top = _ranking(model)
        np.testing.assert_array_equal(opt.history.predicted_top[z], top)
        # batch z: drawn uniformly from the top-N[z - 1] minus evaluated, as the published loop does;
        # fewer than k left there: the first k unevaluated of the whole ranking
        free = top[: top_n[z - 1]][~np.isin(top[: top_n[z - 1]], seen)]
        if free.size >= 10:
            expected = np.random.default_rng([4, z]).choice(free, size=10, replace=False)
        else:
            expected, fallbacks = top[~np.isin(top, seen)][:10], fallbacks + 1
        np.testing.assert_array_equal(df["arch_index"][df["iteration"] == z], expected)
    assert 0 < fallbacks < 7


def test_final_prediction_fits_on_every_query(fixed):
    opt = WeakNAS(space(), max_sample=40, seed=2)
    assert opt.final_prediction() is None  # nothing told yet
    df = run_repeat(opt, TableOracle(VALUES))
    top = opt.final_prediction()
    final = fixed[-1]
    assert len(fixed) == 4 and final.seed_ == 2 + 4
    np.testing.assert_array_equal(_trained_on(final), df["arch_index"])
    np.testing.assert_array_equal(top, _ranking(final)[:1000])
    np.testing.assert_array_equal(opt.history.predicted_top[4], top)
    assert opt.final_prediction() is top and len(fixed) == 4  # fitted once


@pytest.mark.parametrize("scaling", ["train", "pool", "initial"])
def test_ei_takes_the_k_best_unevaluated_by_ei(fixed, scaling):
    """Targets and incumbent are z-scored by the statistics ``target_scaling`` names: the training set's,
    the whole pool's (published) or iteration 0's random sample's."""
    oracle = TableOracle(VALUES)
    opt = WeakNASEI(space(), max_sample=40, seed=0, ei="faithful", target_scaling=scaling, pool_stats=oracle.search_stats)
    run_repeat(opt, oracle)
    hist = np.asarray(opt.history.indices)
    first = VALUES[hist[:10]]
    for z, model in enumerate(fixed, start=1):
        assert model.n_members == 5 and model.seed_ == z * 5
        seen = hist[: 10 * z]
        y = VALUES[seen]
        mean, std = {"train": (y.mean(), y.std()), "pool": (VALUES.mean(), VALUES.std()),
                     "initial": (first.mean(), first.std())}[scaling]
        np.testing.assert_allclose(model.y_, (y - mean) / std, rtol=1e-5)
        mu, sd = ensemble_mean_sd(model.predict(np.eye(N)))
        score = log_expected_improvement(mu, sd, incumbent((y - mean) / std, "faithful"))
        score[seen] = -np.inf
        expected = np.lexsort((np.arange(N), -score))[:10]
        np.testing.assert_array_equal(hist[10 * z : 10 * z + 10], expected)


def test_ei_ranks_by_the_calibrated_ensemble(fixed):
    """A non-default ``calibration`` divides the ensemble spread before EI: each batch is the best k by
    log EI at that calibration, which here differs from the published 5's choice."""
    calibration = 0.2
    opt = WeakNASEI(space(), max_sample=40, seed=0, ei="corrected", calibration=calibration, target_scaling="train")
    run_repeat(opt, TableOracle(VALUES))
    hist = np.asarray(opt.history.indices)
    differs = 0
    for z, model in enumerate(fixed, start=1):
        seen = hist[: 10 * z]
        y = VALUES[seen]
        best = incumbent((y - y.mean()) / y.std(), "corrected")
        preds = model.predict(np.eye(N))
        expected = {}
        for c in (calibration, 5.0):
            mu, sd = ensemble_mean_sd(preds, c)
            score = log_expected_improvement(mu, sd, best)
            score[seen] = -np.inf
            expected[c] = np.lexsort((np.arange(N), -score))[:10]
        np.testing.assert_array_equal(hist[10 * z : 10 * z + 10], expected[calibration])
        differs += not np.array_equal(expected[calibration], expected[5.0])
    assert differs, "the test needs a calibration whose ranking differs from the default's"


def test_keep_old_training_sets(fixed):
    """``none``: the last batch; ``top``: the last batch plus the previous training set's members inside
    the previous predictor's top-N (the published ``keep_index_train``)."""
    df = run_repeat(WeakNAS(space(), 40, 0, keep_old="none"), TableOracle(VALUES))
    for z, model in enumerate(fixed, start=1):
        np.testing.assert_array_equal(_trained_on(model), df["arch_index"][df["iteration"] == z - 1])
    fixed.clear()
    df = run_repeat(WeakNAS(space(), 60, 0, keep_old="top", top_start=40, top_end=15), TableOracle(VALUES))
    top_n = top_n_schedule(6, 40, 15, 0.96)
    for z in range(2, 6):
        before = _trained_on(fixed[z - 2])
        kept = before[np.isin(before, _ranking(fixed[z - 2])[: top_n[z - 2]])]
        last = df["arch_index"][df["iteration"] == z - 1].to_numpy()
        assert 0 < kept.size < before.size
        np.testing.assert_array_equal(np.sort(_trained_on(fixed[z - 1])), np.sort(np.concatenate([kept, last])))


def test_one_batch_at_a_time_and_bad_settings(fixed):
    opt = WeakNAS(space(), 30, 0)
    assert opt.ask().size == 10 and opt.ask().size == 0
    with pytest.raises(ConfigError, match="keep_old"):
        WeakNAS(space(), 30, 0, keep_old="some")
    with pytest.raises(ConfigError, match="EI variant"):
        WeakNASEI(space(), 30, 0, ei="greedy")
    with pytest.raises(ConfigError, match="seed"):
        WeakNAS(space(), 30, -1)


def test_chunked_pool_scorer_selects_the_same(fixed):
    oracle = TableOracle(VALUES)
    plain = run_repeat(WeakNAS(space(), 60, 3), oracle)
    fixed.clear()  # the second run gets the same predictors again
    scorer = functools.partial(lambda X, model, request: score_pool(model, X, request, chunk_size=37), np.eye(N))
    chunked = run_repeat(WeakNAS(space(), 60, 3, pool_scorer=scorer), oracle)
    np.testing.assert_array_equal(plain["arch_index"], chunked["arch_index"])


def _tiny_run(method: str, seed: int, pickle_midway: bool = False) -> list[int]:
    feats = np.random.default_rng(0).integers(0, 2, size=(400, 12)).astype(np.float32)
    oracle = TableOracle(feats @ np.linspace(-1, 1, 12) + np.sin(feats.sum(1)))
    opt = make_optimizer(method, ArraySpace(feats), 40, seed, predictor_params=TINY_MLP)
    while not opt.finished:
        if pickle_midway and opt.n_told == 20:
            opt = pickle.loads(pickle.dumps(opt))
        idx = opt.ask()
        opt.tell(idx, oracle.evaluate(idx).search)
    return opt.history.indices


@pytest.mark.parametrize("method", ["weaknas", "weaknas-ei"])
def test_fixed_seed_reproduces_the_run(method):
    first = _tiny_run(method, 5)
    assert _tiny_run(method, 5, pickle_midway=True) == first
    assert _tiny_run(method, 6) != first
    code = f"from tests.test_weaknas import _tiny_run; print(_tiny_run({method!r}, 5))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120, cwd=Path(__file__).parents[1]
    )
    assert out.stdout.strip() == str(first)


def test_weaknas_beats_random_on_nasbench201(shared_data):
    from weaknas_ray.benchmarks.nasbench201 import load_benchmark

    bench = load_benchmark(dataset="cifar10", data_dir=str(shared_data))
    seeds = range(10)

    def mean_best(method, **settings):
        runs = [run_repeat(make_optimizer(method, bench.space, 100, s, **settings), bench.oracle) for s in seeds]
        return float(np.mean([df["best_reported_so_far"].iloc[-1] for df in runs]))

    weak = mean_best("weaknas", predictor_params={"hidden": (64, 64), "max_epochs": 50, "threads": 1})
    rand = mean_best("random")
    assert weak > rand + 0.1, (weak, rand)


def test_ei_logs_the_predicted_top_by_mean_accuracy(fixed):
    """Every iteration logs the last model's predicted top-1000 by predicted accuracy (member mean),
    evaluated architectures included, under EI too (its batch is chosen by EI, its log is not)."""
    opt = WeakNASEI(space(), max_sample=40, seed=0)
    run_repeat(opt, TableOracle(VALUES))
    assert sorted(opt.history.predicted_top) == [1, 2, 3]
    for z, model in enumerate(fixed, start=1):
        np.testing.assert_array_equal(opt.history.predicted_top[z], _ranking(model))


def test_uniform_draw_from_a_top_n_beyond_the_logged_1000(monkeypatch):
    """N may exceed the 1000 logged: the batch is still drawn uniformly from the full predicted top-N."""
    n, n_top = 1500, 1200
    monkeypatch.setattr(weaknas_module, "make_predictor", lambda name, n_members, **p: FixedPredictor(np.ones((n_members, 1))))
    pool = ArraySpace(np.arange(n, dtype=np.float32)[:, None])  # predicted accuracy = pool index
    opt = WeakNAS(pool, max_sample=20, seed=1, top_start=n_top, top_end=n_top)
    df = run_repeat(opt, TableOracle(np.arange(n, dtype=float)))
    seen = df["arch_index"][:10].to_numpy()
    top = np.arange(n - 1, n - 1 - n_top, -1)
    free = top[~np.isin(top, seen)]
    expected = np.random.default_rng([1, 1]).choice(free, size=10, replace=False)
    np.testing.assert_array_equal(df["arch_index"][10:], expected)
    assert (df["arch_index"][10:] < n - 1000).any()  # the draw reached below the top-1000


def test_equal_search_values_give_finite_centred_targets(fixed):
    """All training values equal: the targets are centred only (std 1), never NaN."""
    opt = WeakNAS(space(), max_sample=30, seed=0)
    batch = opt.ask()
    opt.tell(batch, np.full(batch.size, 73.5))
    data = opt.next_fit()
    assert data.std == 1.0 and data.mean == 73.5
    np.testing.assert_array_equal(data.y, np.zeros(batch.size, dtype=np.float32))
    opt.ask()
    assert np.isfinite(fixed[0].y_).all()


def test_no_fit_or_answer_while_a_batch_is_pending(fixed):
    """``next_fit`` and ``final_prediction`` are ``None`` while a batch is out (its values would be missing)."""
    opt = WeakNAS(space(), max_sample=30, seed=0)
    first = opt.ask()
    assert opt.next_fit() is None
    opt.tell(first, VALUES[first])
    assert opt.next_fit() is not None and opt.final_prediction() is not None
    opt = WeakNAS(space(), max_sample=30, seed=0)
    first = opt.ask()
    opt.tell(first, VALUES[first])
    second = opt.ask()
    assert second.size == 10
    assert opt.next_fit() is None and opt.final_prediction() is None


def test_ei_with_keep_old_top_keeps_every_query(fixed):
    """Under EI ``keep_old="top"`` keeps the whole training set (its ranking spans the pool): each
    predictor trains on everything evaluated before it."""
    df = run_repeat(WeakNASEI(space(), 50, 0, keep_old="top", top_start=20, top_end=20), TableOracle(VALUES))
    assert len(fixed) == 4
    for z, model in enumerate(fixed, start=1):
        np.testing.assert_array_equal(np.sort(_trained_on(model)), np.sort(df["arch_index"][df["iteration"] < z]))


def test_pool_scaling_needs_the_pool_statistics():
    """``target_scaling: pool`` on an oracle that does not know its pool is refused at construction,
    pointing at ``initial``; an unknown scaling names the choices."""
    with pytest.raises(ConfigError, match="target_scaling: 'pool' needs the pool's mean and std.*'initial'"):
        WeakNAS(space(), 30, 0, target_scaling="pool")
    with pytest.raises(ConfigError, match=r"target_scaling: unknown 'whole'; choose one of \['pool', 'initial', 'train'\]"):
        WeakNAS(space(), 30, 0, target_scaling="whole", pool_stats=(0.0, 1.0))


def test_ei_incumbent_is_the_best_of_every_query_whatever_the_training_set(fixed):
    """EI's incumbent is the best accuracy observed so far (z-scored like the targets), also when
    ``keep_old="none"`` trains only on the last batch."""
    opt = WeakNASEI(space(), max_sample=40, seed=0, ei="corrected", keep_old="none", target_scaling="train")
    run_repeat(opt, TableOracle(VALUES))
    hist = np.asarray(opt.history.indices)
    differs = 0
    for z, model in enumerate(fixed, start=1):
        seen = hist[: 10 * z]
        last = VALUES[hist[10 * (z - 1) : 10 * z]]
        mean, std = last.mean(), last.std()
        np.testing.assert_allclose(model.y_, (last - mean) / std, rtol=1e-5)
        mu, sd = ensemble_mean_sd(model.predict(np.eye(N)))
        expected = {}
        for name, observed in (("all", VALUES[seen]), ("last", last)):
            score = log_expected_improvement(mu, sd, incumbent((observed - mean) / std, "corrected"))
            score[seen] = -np.inf
            expected[name] = np.lexsort((np.arange(N), -score))[:10]
        np.testing.assert_array_equal(hist[10 * z : 10 * z + 10], expected["all"])
        differs += not np.array_equal(expected["all"], expected["last"])
    assert differs, "the test needs an iteration where the last batch's best is not the best so far"


def test_long_runs_train_on_every_query(fixed):
    """keep_old="all" means every architecture evaluated so far, however many (here 225 of a 300 pool)."""
    df = run_repeat(WeakNAS(space(), 250, 1, init_sample=200, sample_each_iter=25), TableOracle(VALUES))
    assert [len(model.y_) for model in fixed] == [200, 225]
    np.testing.assert_array_equal(_trained_on(fixed[-1]), df["arch_index"][:225])


@pytest.mark.parametrize("keep_old", ["all", "none"])
def test_the_answer_is_fitted_as_the_next_iteration_would_be(fixed, keep_old):
    """The published code's final fit is one more pass of its loop, so it keeps old data by the same rule:
    every query under ``keep_old="all"``, the last batch under ``"none"``."""
    opt = WeakNAS(space(), max_sample=40, seed=0, keep_old=keep_old)
    df = run_repeat(opt, TableOracle(VALUES))
    built = len(fixed)
    top = opt.final_prediction()
    assert len(fixed) == built + 1 and top[0] == _ranking(fixed[-1])[0]
    last = df["iteration"] == df["iteration"].max()
    expected = df["arch_index"] if keep_old == "all" else df["arch_index"][last]
    np.testing.assert_array_equal(np.sort(_trained_on(fixed[-1])), np.sort(expected))


def test_a_stalled_search_widens_the_top_n_until_it_finds_a_new_best(fixed):
    """``stall_escape="widen"``, ``stall_patience=2``: from the second iteration in a row without a new best
    search value on, the top-N the batch is drawn from doubles with every stalled iteration (capped at the
    pool), and is the schedule's again once a batch improves; the draw is uniform from that top."""
    opt = WeakNAS(space(), max_sample=80, seed=0, stall_patience=2, stall_escape="widen", top_start=20, top_end=20)
    told = [np.arange(10.0), np.ones(10), np.ones(10), np.ones(10), np.ones(10), np.full(10, 100.0), np.ones(10)]
    seen = []
    for values in told:
        idx = opt.ask()
        z = opt.iteration
        seen.append((opt.stalled_iterations(), opt._n_top(z) if z else None))
        if z:  # drawn from the predicted top-N minus evaluated (or, with too few left, the first unevaluated)
            top = _ranking(fixed[-1])[: seen[-1][1] + opt.n_told]
            assert np.isin(idx, top).all()
        opt.tell(idx, values)
    assert seen == [(0, None), (0, 20), (1, 20), (2, 40), (3, 80), (4, 160), (0, 20)]
    assert WeakNAS(space(), 80, 0, top_start=200, top_end=200)._n_top(1) == 200
    capped = WeakNAS(space(), 80, 0, stall_patience=1, stall_escape="widen", top_start=200, top_end=200)
    capped.tell(capped.ask(), np.zeros(10))
    capped.tell(capped.ask(), np.zeros(10))
    assert capped.stalled_iterations() == 1 and capped._n_top(2) == N  # 400 capped at the pool of 300


def _grid_neighbours(codes: np.ndarray, i: int) -> np.ndarray:
    """Cells of a product space that differ from cell ``i`` in exactly one dimension."""
    return np.flatnonzero((codes != codes[i]).sum(axis=1) == 1)


@pytest.mark.parametrize(("escape", "anchors"), [("local+widen", 3), ("local", 3), ("local", 1)])
def test_a_stalled_search_escapes_to_the_best_predicted_neighbours(monkeypatch, escape, anchors):
    """Once ``stall_patience`` iterations in a row found no new best, the local escape takes the unevaluated
    one-edit neighbours of the ``stall_anchors`` best evaluated cells that the predictor ranks best (more
    anchors when those neighbours hold fewer than k unevaluated cells): the whole batch under ``"local"``,
    its first half under ``"local+widen"`` (the default), whose other half is drawn from the doubled top-N.
    The top-N draw resumes after a batch finds a new best."""
    grid = GridSpace({f"e{j}": list("abcd") for j in range(4)})  # 256 cells, 12 neighbours each
    codes = np.array([grid.decode(i) for i in range(len(grid))])
    weights = np.random.default_rng(3).normal(size=(1, grid.features.shape[1]))
    monkeypatch.setattr(weaknas_module, "make_predictor", lambda name, n_members, **p: FixedPredictor(weights, n_members))
    mean = (grid.features @ weights[0]).astype(np.float32)
    opt = WeakNAS(grid, max_sample=100, seed=1, top_start=20, top_end=20, stall_patience=2, stall_escape=escape,
                  stall_anchors=anchors)
    n_local = 10 if escape == "local" else 5
    ranking = np.lexsort((np.arange(len(grid)), -mean))
    told = [np.arange(10.0), np.zeros(10), np.zeros(10), np.zeros(10), np.zeros(10), np.full(10, 50.0), np.zeros(10)]
    escaped = []
    for z, values in enumerate(told):
        idx = opt.ask()
        stalled = opt.stalled_iterations() >= 2 and z > 0
        free = ~(opt.evaluated | opt.pending)
        free[idx] = True
        if stalled:
            order = np.asarray(opt.history.indices)[np.argsort(-np.asarray(opt.history.values), kind="stable")]
            moves = np.zeros(len(grid), dtype=bool)
            for count, anchor in enumerate(order, start=1):
                moves[_grid_neighbours(codes, anchor)] = True
                if count >= anchors and (moves & free).sum() >= 10:
                    break
            allowed = np.flatnonzero(moves & free)
            expected = allowed[np.lexsort((allowed, -mean[allowed]))][:n_local]
            np.testing.assert_array_equal(idx[:n_local], expected)
            widened = 20 * 2 ** (opt.stalled_iterations() - 1)
            assert np.isin(idx[n_local:], ranking[: widened + opt.n_told]).all() and np.unique(idx).size == 10
        elif z:
            assert np.isin(idx, ranking[: 20 + opt.n_told]).all()
        escaped.append(stalled)
        opt.tell(idx, values)
    assert escaped == [False, False, False, True, True, True, False]
    with pytest.raises(ConfigError, match=r"weaknas.stall_escape: unknown 'jump'; choose one of \['local\+widen', 'local', 'widen'\]"):
        WeakNAS(grid, 30, 0, stall_escape="jump")


def test_neighbours_are_the_nearest_cells_by_features():
    """One-hot product spaces: the one-edit cells (NAS-Bench-201's 24); a pool of one has none."""
    grid = GridSpace({f"e{j}": list("abcde") for j in range(6)})
    codes = np.array([grid.decode(i) for i in range(len(grid))])
    for i in (0, 777):
        np.testing.assert_array_equal(grid.neighbours(i), _grid_neighbours(codes, i))
        assert grid.neighbours(i).size == 24
    assert ArraySpace(np.ones((1, 3))).neighbours(0).size == 0


def test_published_weaknas_is_the_published_loop():
    """``weaknas-published`` z-scores by the pool and never switches; it needs the pool's statistics."""
    opt = make_optimizer("weaknas-published", space(), 30, 0, pool_stats=(0.0, 1.0))
    assert (opt.method, opt.target_scaling, opt.stall_patience) == ("weaknas-published", "pool", None)
    with pytest.raises(ConfigError, match="weaknas-published.target_scaling: 'pool' needs"):
        make_optimizer("weaknas-published", space(), 30, 0)
    with pytest.raises(ConfigError, match=r"weaknas.stall_patience must be >= 1 or null \(no stall rule\), got 0"):
        WeakNAS(space(), 30, 0, stall_patience=0)


def test_rank_scores_are_mid_rank_normal_scores():
    scores = weaknas_module.rank_scores(np.array([-1e-5, -1e-3, -1e-1, -10.0, -1e-3]), np.array([-1e-5, -1e-3, -1e-1, -10.0, -1e-3]))
    from scipy.special import ndtri

    assert scores == pytest.approx(ndtri(np.array([0.9, 0.6, 0.3, 0.1, 0.6])))  # the tie shares ranks 3 and 4
    assert weaknas_module.rank_scores(np.array([5.0, -50.0]), np.array([0.0, 1.0])) == pytest.approx(ndtri([0.75, 0.25]))


@pytest.mark.parametrize("method", ["weaknas", "weaknas-ei"])
def test_rank_targets_make_the_search_blind_to_the_objectives_scale(method):
    """With ``target_transform: rank`` the predictor sees only the order of the values: a strictly increasing
    change of the objective (here a loss spanning decades, then its logarithm) leaves every batch unchanged,
    which z-scored targets do not."""
    space = ArraySpace(np.random.default_rng(0).normal(size=(N, 6)))
    loss = np.exp(3 * VALUES)  # positive, spanning about eight decades

    def batches(values, transform):
        opt = make_optimizer(method, space, 40, 0, init_sample=10, sample_each_iter=10, target_transform=transform,
                             predictor_params=TINY_MLP, **({"n_members": 2} if method == "weaknas-ei" else {}))
        run_repeat(opt, TableOracle(values))
        return opt.history.indices

    assert batches(-loss, "rank") == batches(-np.log(loss), "rank")
    assert batches(-loss, "none") != batches(-np.log(loss), "none")


def test_unknown_target_transform_is_named():
    with pytest.raises(ConfigError, match="weaknas.target_transform: unknown 'log10'; choose one of"):
        make_optimizer("weaknas", ArraySpace(np.eye(4)), 3, 0, init_sample=1, sample_each_iter=1, target_transform="log10")


def test_auto_fits_trees_where_parameters_are_numbers():
    """``predictor: auto`` (the default) picks boosted trees on a space with numeric parameters and the MLP
    on one of categories; the published loop and EI keep the MLP."""
    from weaknas_ray.spaces.param_space import ParamSpace
    from weaknas_ray.spaces.params import categorical, integer, ordinal

    numbers = ParamSpace([integer("width", 8, 64, log=True), ordinal("lr", [1e-4, 1e-3, 1e-2]), categorical("act", ["relu", "tanh"])])
    cells = ParamSpace([categorical("edge0", ["a", "b", "c"]), categorical("edge1", ["a", "b", "c"])])
    assert weaknas_module.default_predictor(numbers) == "gbt"
    assert weaknas_module.default_predictor(cells) == "mlp"
    assert weaknas_module.default_predictor(ArraySpace(np.eye(4))) == "mlp"  # no parameters at all
    opt = make_optimizer("weaknas", numbers, 20, 0)
    assert (opt.predictor, type(opt.new_predictor()).__name__) == ("gbt", "GradientBoostedTrees")
    assert make_optimizer("weaknas", cells, 6, 0, init_sample=2, sample_each_iter=2).predictor == "mlp"
    for method in ("weaknas-published", "weaknas-ei"):
        other = make_optimizer(method, numbers, 20, 0, **({"pool_stats": (0.0, 1.0)} if method == "weaknas-published" else {}))
        assert other.predictor == "mlp"
    assert make_optimizer("weaknas", numbers, 20, 0, predictor="mlp").predictor == "mlp"  # a named one is kept
    with pytest.raises(ConfigError, match="hidden"):  # settings go to the chosen predictor, which names a wrong one
        make_optimizer("weaknas", numbers, 20, 0, predictor_params={"hidden": [8]}).new_predictor()


def _searched(values: np.ndarray, transform: str):
    """A 30-query weaknas repeat (tiny MLP) on ``values`` over a fixed random space, with ``transform``."""
    space = ArraySpace(np.random.default_rng(0).normal(size=(N, 6)))
    opt = make_optimizer("weaknas", space, 30, 0, target_transform=transform, predictor="mlp", predictor_params=TINY_MLP)
    run_repeat(opt, TableOracle(values))
    return opt


@pytest.mark.parametrize(("offset", "expected"), [(-10.0, "rank"), (10.0, "none"), (0.0, "none")])
def test_auto_targets_are_ranks_of_losses(offset, expected):
    """``target_transform: auto`` fits rank scores where every value is negative (a negated loss) and the
    values elsewhere (an accuracy, a mixed objective), giving the batches of the transform it names."""
    auto = _searched(VALUES + offset, "auto")
    assert auto.resolved_transform() == expected
    assert auto.history.indices == _searched(VALUES + offset, expected).history.indices


def test_log_targets_are_the_log_of_the_loss():
    """``target_transform: log`` searches as plain targets on ``-log(loss)`` would; it refuses values at or
    above 0 and the pool's statistics (which are not those of the log)."""
    loss = 1e-6 * 1e3 ** ((VALUES - VALUES.min()) / np.ptp(VALUES))

    assert _searched(-loss, "log").history.indices == _searched(np.log(1 / loss), "none").history.indices
    with pytest.raises(ConfigError, match="'log' takes negated losses"):
        _searched(np.abs(VALUES) + 1.0, "log")
    with pytest.raises(ConfigError, match="'log' cannot be z-scored by the pool"):
        make_optimizer("weaknas", ArraySpace(np.eye(4)), 3, 0, target_transform="log", target_scaling="pool", pool_stats=(0.0, 1.0))


def test_auto_targets_fall_back_when_a_value_is_not_a_negated_loss():
    """An objective that looks like a loss at first (all values negative) and then returns a value at or
    above 0 is searched on its values from then on, without an error."""
    space = ArraySpace(np.random.default_rng(0).normal(size=(N, 6)))
    opt = make_optimizer("weaknas", space, 30, 0, init_sample=10, sample_each_iter=10, predictor="mlp",
                         predictor_params=TINY_MLP)  # fmt: skip
    first = opt.ask()
    opt.tell(first, -np.logspace(-4, 0, first.size))
    assert opt.resolved_transform() == "rank"
    second = opt.ask()
    opt.tell(second, np.linspace(-0.5, 0.5, second.size))
    assert opt.resolved_transform() == "none"
    assert len(set(opt.ask()) - set(first) - set(second)) == 10


def test_the_default_batch_follows_the_predictor():
    from weaknas_ray.engine.weaknas import PublishedWeakNAS

    space = ArraySpace(np.eye(40, dtype=np.float32))
    assert WeakNAS(space, 30, 0, predictor="gbt").sizes == [10, 5, 5, 5, 5]  # trees refit in a blink
    assert WeakNAS(space, 30, 0, predictor="mlp").sizes == [10, 10, 10]  # the published batch
    assert WeakNAS(space, 30, 0, predictor="gbt", sample_each_iter=10).sizes == [10, 10, 10]
    published = PublishedWeakNAS(space, 30, 0, predictor="gbt", pool_stats=(0.0, 1.0))
    assert published.sizes == [10, 10, 10]  # the published loop exactly
