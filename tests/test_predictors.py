"""Predictor contract, run against every predictor, plus the torch MLP's exactness checks.

Contract suites are subclassed per predictor (Optuna's pytest_samplers style) with tiny models so the
whole file stays fast; the real-data comparison uses the method's full 4 x 1000 MLP on 100 rows.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from weaknas_ray.exceptions import ConfigError, NotFittedError
from weaknas_ray.predictors import make_predictor, predictor_class

pytest.importorskip("sklearn")


@pytest.fixture(autouse=True)
def _auto_dtype_is_float32(monkeypatch):
    """``dtype: auto`` resolves to float32 here whatever this machine's bfloat16 speed, so the exactness
    checks (against sklearn, float64, separate fits) hold on machines with bfloat16 units too; the tests
    of ``auto`` itself patch the probe their own way."""
    from weaknas_ray.predictors import mlp

    monkeypatch.setattr(mlp, "_DTYPE_CHOICES", {})
    monkeypatch.setattr(mlp, "probe_bf16_speedup", lambda torch, width: 0.0)


def _toy(n: int = 120, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A learnable toy regression: 0/1 features, a linear target plus an interaction, z-scored."""
    rng = np.random.default_rng(seed)
    X = (rng.random((n, d)) < 0.3).astype(np.float32)
    y = X @ rng.normal(size=d) + X[:, 0] * X[:, 1]
    return X, ((y - y.mean()) / y.std()).astype(np.float32)


class PredictorContract:
    """Rules every predictor obeys. Subclasses set ``name`` and ``params`` (a small, fast model)."""

    name: str
    params: dict = {}

    def make(self, n_members: int = 1):
        return make_predictor(self.name, n_members=n_members, **self.params)

    def test_registered_under_its_name(self):
        assert isinstance(self.make(), predictor_class(self.name))

    def test_fit_returns_self_and_predict_shape(self):
        X, y = _toy()
        model = self.make(n_members=2)
        assert model.fit(X, y, seed=0) is model
        pred = model.predict(X[:7])
        assert pred.shape == (2, 7) and pred.dtype == np.float32 and np.isfinite(pred).all()

    def test_learns_the_training_data(self):
        X, y = _toy()
        pred = self.make().fit(X, y, seed=0).predict(X)[0]
        assert np.corrcoef(pred, y)[0, 1] > 0.8

    def test_predict_before_fit_raises(self):
        with pytest.raises(NotFittedError, match="fit"):
            self.make().predict(np.zeros((3, 12), np.float32))
        with pytest.raises(NotFittedError, match="fit"):
            self.make().get_state()

    def test_bad_shapes_raise(self):
        X, y = _toy()
        with pytest.raises(ConfigError, match="y of shape"):
            self.make().fit(X, y[:-1], seed=0)
        with pytest.raises(ConfigError, match="finite"):
            self.make().fit(X, np.full_like(y, np.nan), seed=0)
        model = self.make().fit(X, y, seed=0)
        with pytest.raises(ConfigError, match=r"\(m, 12\)"):
            model.predict(X[:, :5])

    @pytest.mark.parametrize("bad", [0, -1, 1.5, True])
    def test_bad_member_count_raises(self, bad):
        with pytest.raises(ConfigError, match="n_members"):
            self.make(n_members=bad)

    def test_same_seed_same_predictions(self):
        X, y = _toy()
        first = self.make(n_members=2).fit(X, y, seed=3).predict(X)
        second = self.make(n_members=2).fit(X, y, seed=3).predict(X)
        np.testing.assert_array_equal(first, second)

    def test_state_round_trip(self):
        X, y = _toy()
        model = self.make(n_members=2).fit(X, y, seed=1)
        state = pickle.loads(pickle.dumps(model.get_state()))
        rebuilt = type(model).from_state(state)
        np.testing.assert_array_equal(rebuilt.predict(X), model.predict(X))

    def test_single_training_row(self):
        X, y = _toy()
        assert self.make().fit(X[:1], y[:1], seed=0).predict(X).shape == (1, len(X))

    def test_member_i_is_the_single_fit_with_seed_plus_i(self):
        """The base contract: ``seed`` seeds member ``i`` with ``seed + i``."""
        X, y = _toy()
        pred = self.make(n_members=2).fit(X, y, seed=5).predict(X)
        singles = np.concatenate([self.make().fit(X, y, seed=5 + i).predict(X) for i in range(2)])
        np.testing.assert_allclose(pred, singles, atol=1e-4)

    def test_member_slices_fitted_apart_equal_the_ensemble(self):
        """``members(start, stop)`` fitted with ``seed + start`` and joined is the whole ensemble bit for bit
        (what the Ray runner's member tasks rely on), also rebuilt from state as a task returns it."""
        from weaknas_ray.predictors.base import JoinedEnsemble, member_slices

        X, y = _toy()
        whole = self.make(n_members=3)
        parts = [whole.members(a, b).fit(X, y, seed=4 + a) for a, b in member_slices(3, 2)]
        assert [p.n_members for p in parts] == [2, 1] and whole.n_members == 3
        joined = JoinedEnsemble.from_state(pickle.loads(pickle.dumps(JoinedEnsemble(parts).get_state())))
        np.testing.assert_array_equal(joined.predict(X), whole.fit(X, y, seed=4).predict(X))

    def test_column_targets_and_float64_inputs_are_converted(self):
        """y of shape (n, 1) and float64 X / y are accepted and give the model of float32 (n, d) / (n,)."""
        X, y = _toy()
        want = self.make().fit(X, y, seed=0).predict(X)
        model = self.make().fit(X.astype(np.float64), y.astype(np.float64)[:, None], seed=0)
        np.testing.assert_array_equal(model.predict(X.astype(np.float64)), want)

    def test_empty_or_non_finite_training_data_raises(self):
        X, y = _toy()
        with pytest.raises(ConfigError, match="n >= 1"):
            self.make().fit(X[:0], y[:0], seed=0)
        bad = X.copy()
        bad[3, 2] = np.inf
        with pytest.raises(ConfigError, match="finite"):
            self.make().fit(bad, y, seed=0)

    @pytest.mark.parametrize("bad", [0, True])
    def test_class_constructor_checks_member_count(self, bad):
        """Built directly (not through make_predictor's argument checks) the class still rejects it."""
        with pytest.raises(ConfigError, match="n_members"):
            predictor_class(self.name)(n_members=bad, **self.params)


# NOTE: one torch thread: on 2 shared cores, OpenMP threads on tiny matrices are 10x slower.
SMALL = {"hidden": (32, 32), "max_epochs": 40, "lr": 1e-2, "threads": 1}


class TestMLPContract(PredictorContract):
    name = "mlp"
    params = SMALL


class TestSklearnMLPContract(PredictorContract):
    name = "sklearn-mlp"
    params = {"hidden": (32, 32), "max_epochs": 40, "lr": 1e-2}


class TestGBTContract(PredictorContract):
    name = "gbt"
    params = {"max_depth": 4, "n_rounds": 30}


# --- the torch MLP: exactly sklearn's training, batched -------------------------------------------

@pytest.mark.parametrize("seed", [7, 3])  # members stop last-first (7: 36, 35, 32 epochs) and first-first (3: 16, 17, 29)
def test_mlp_ensemble_equals_separate_fits(seed):
    """Member i of a batched E=3 fit is the E=1 fit with seed + i (epochs, last loss, predictions bit for bit
    on one thread), even when members stop at different epochs."""
    from weaknas_ray.predictors.mlp import MLPEnsemble

    X, y = _toy(n=250)
    params = {**SMALL, "tol": 1e-3, "n_iter_no_change": 3}
    batched = MLPEnsemble(n_members=3, **params).fit(X, y, seed=seed)
    singles = [MLPEnsemble(**params).fit(X, y, seed=seed + i) for i in range(3)]
    assert len(set(batched.n_epochs_)) > 1, "test data should make members stop at different epochs"
    np.testing.assert_array_equal(batched.n_epochs_, [s.n_epochs_[0] for s in singles])
    np.testing.assert_array_equal(batched.predict(X), np.concatenate([s.predict(X) for s in singles]))
    np.testing.assert_array_equal(batched.loss_, [s.loss_[0] for s in singles])


def test_mlp_different_seeds_differ():
    from weaknas_ray.predictors.mlp import MLPEnsemble

    X, y = _toy()
    pred = MLPEnsemble(n_members=2, **SMALL).fit(X, y, seed=0).predict(X)
    assert not np.allclose(pred[0], pred[1])


@pytest.mark.parametrize("patience", [1, 3])
def test_mlp_stops_on_the_same_epoch_as_sklearn(patience):
    """With a huge tol no epoch counts as progress: both stop after exactly patience + 2 epochs."""
    from sklearn.neural_network import MLPRegressor

    from weaknas_ray.predictors.mlp import MLPEnsemble

    X, y = _toy()
    ours = MLPEnsemble(hidden=(8,), threads=1, tol=100.0, n_iter_no_change=patience).fit(X, y, seed=0)
    ref = MLPRegressor(hidden_layer_sizes=(8,), tol=100.0, n_iter_no_change=patience, random_state=0).fit(X, y)
    assert ours.n_epochs_[0] == ref.n_iter_ == patience + 2


def _sklearn_stop_epoch(losses, tol, patience, max_epochs):
    """Epochs sklearn's MLP runs on these per-epoch training losses (``_update_no_improvement_count``
    without validation): the counter grows while ``loss > best - tol`` and resets otherwise, ``best`` is
    the lowest loss so far, and training stops once the counter exceeds ``patience``."""
    best, count = float("inf"), 0
    for epoch, loss in enumerate(losses[:max_epochs]):
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > patience:
            return epoch + 1
    return max_epochs


_SCRIPTED_LOSSES = {
    # the counter resets on an improvement: 3 flat, a gain of exactly tol, then flat again
    "reset": [1.0, 1.0, 1.0, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75],
    # a rise then a fall that stays above the best: no progress against the best, only against the last epoch
    "best-not-last": [1.0, 2.0, 1.5, 1.5, 1.25, 1.0, 0.5, 0.5],
    # small gains under tol count as no progress; a big one resets
    "under-tol": [4.0, 3.875, 3.75, 3.0, 2.875, 2.75, 2.75, 2.625, 2.5, 2.5],
}


@pytest.mark.parametrize("name", sorted(_SCRIPTED_LOSSES))
def test_mlp_early_stopping_follows_sklearns_rule_on_scripted_losses(name, monkeypatch):
    """Per-epoch losses scripted through ``_loss_and_grads`` (one batch per epoch, zero gradients): the
    epoch each member stops at is sklearn's rule applied to those losses (best so far, patience reset)."""
    import torch

    from weaknas_ray.predictors import mlp

    losses = _SCRIPTED_LOSSES[name]
    calls = []

    def scripted(params, xb, yb, alpha, compute):
        calls.append(xb.shape[0])
        value = losses[min(len(calls) - 1, len(losses) - 1)]
        return torch.full((xb.shape[0],), value, dtype=torch.float32), [torch.zeros_like(p) for p in params]

    monkeypatch.setattr(mlp, "_loss_and_grads", scripted)
    X, y = _toy(n=8)
    patience, tol, max_epochs = 2, 0.25, 50
    want = _sklearn_stop_epoch(losses, tol, patience, max_epochs)
    assert want < len(losses), "the script should end with a stop"
    model = mlp.MLPEnsemble(hidden=(4,), batch_size=8, tol=tol, n_iter_no_change=patience, max_epochs=max_epochs, threads=1)
    model.fit(X, y, seed=0)
    assert len(calls) == want and model.n_epochs_.tolist() == [want]
    assert model.loss_.tolist() == [losses[want - 1]]


def _sklearn_randomness(seed, n_members, sizes, n, max_epochs):
    """The draws of ``MLPRegressor(random_state=seed)``, shaped like ``_draw_member_randomness``: per layer
    ``uniform(-bound, bound)`` weights then biases from one RandomState, then each epoch's
    ``sklearn.utils.shuffle`` of the previous epoch's order (sklearn shuffles cumulatively)."""
    from sklearn.utils import shuffle

    assert n_members == 1
    rs = np.random.RandomState(seed)
    init = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        W = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32)
        b = rs.uniform(-bound, bound, fan_out).astype(np.float32)
        init.append((W[None], b[None, None]))
    order, perms = np.arange(n), []
    for _ in range(max_epochs):
        order = shuffle(order, random_state=rs)
        perms.append(order[None])
    return init, np.stack(perms)


def test_mlp_trains_to_sklearns_weights_given_sklearns_random_draws(monkeypatch):
    """Handed sklearn's own init and shuffles, the torch MLP ends where MLPRegressor ends, weight for
    weight, after several epochs with a short last batch (n = 90, batch 32: the L2 term of the last step
    is alpha/26). The training arithmetic is then sklearn's; only the random number generator differs."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    from weaknas_ray.predictors import mlp

    monkeypatch.setattr(mlp, "_draw_member_randomness", _sklearn_randomness)
    X, y = _toy(n=90)
    settings = {"alpha": 0.05, "batch_size": 32, "tol": 1e-12, "n_iter_no_change": 1000}
    ours = mlp.MLPEnsemble(hidden=(16, 16), lr=1e-2, max_epochs=6, threads=1, **settings).fit(X, y, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = MLPRegressor(hidden_layer_sizes=(16, 16), learning_rate_init=1e-2, max_iter=6, random_state=3, **settings).fit(X, y)
    assert ours.n_epochs_.tolist() == [ref.n_iter_] == [6]
    for got, want in zip(ours.weights_, ref.coefs_):
        np.testing.assert_allclose(got[0].numpy(), want, rtol=1e-3, atol=1e-5)
    for got, want in zip(ours.biases_, ref.intercepts_):
        np.testing.assert_allclose(got[0, 0].numpy(), want, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(ours.loss_[0], ref.loss_, rtol=1e-4)
    np.testing.assert_allclose(ours.predict(X)[0], ref.predict(X), rtol=1e-3, atol=1e-4)


def test_mlp_random_draws_have_sklearns_distribution():
    """Our own draws (numpy's Generator, not sklearn's RandomState) follow sklearn's law: weights and biases
    uniform on +/- sqrt(6 / (fan_in + fan_out)) for every layer, each epoch a fresh permutation of the rows,
    and member i drawn from seed + i alone."""
    from scipy.stats import kstest

    from weaknas_ray.predictors.mlp import _draw_member_randomness

    sizes, n, epochs = [300, 200, 1], 50, 4
    init, perms = _draw_member_randomness(5, 2, sizes, n, epochs)
    for (W, b), fan_in, fan_out in zip(init, sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        assert W.shape == (2, fan_in, fan_out) and b.shape == (2, 1, fan_out) and W.dtype == np.float32
        values = np.concatenate([W.ravel(), b.ravel()])
        assert kstest(values, "uniform", args=(-bound, 2 * bound)).pvalue > 1e-3
    assert perms.shape == (epochs, 2, n)
    assert all(sorted(p) == list(range(n)) for p in perms.reshape(-1, n))
    assert len({p.tobytes() for p in perms.reshape(-1, n)}) == 2 * epochs
    single_init, single_perms = _draw_member_randomness(6, 1, sizes, n, epochs)
    np.testing.assert_array_equal(single_init[1][0][0], init[1][0][1])
    np.testing.assert_array_equal(single_perms[:, 0], perms[:, 1])


def test_mlp_loss_and_gradients_match_the_method_formula():
    """Hand-written backprop + the L2 weight decay (alpha/b * W) == autograd of
    0.5*mean((f-y)^2) + alpha/(2b) * sum ||W||^2, in float64."""
    import torch

    from weaknas_ray.predictors.mlp import _draw_member_randomness, _loss_and_grads

    X, y = _toy(n=9)
    init, _ = _draw_member_randomness(0, 2, [12, 16, 16, 1], len(X), 1)
    params = [torch.tensor(w, dtype=torch.float64) for w, _ in init] + [torch.tensor(b, dtype=torch.float64) for _, b in init]
    xb = torch.tensor(X, dtype=torch.float64).expand(2, -1, -1)
    yb = torch.tensor(y, dtype=torch.float64).view(1, -1, 1).expand(2, -1, -1)
    loss, grads = _loss_and_grads(params, xb, yb, alpha=0.1)

    leaves = [p.clone().requires_grad_() for p in params]
    h = xb
    for W, b in zip(leaves[:3], leaves[3:]):
        h = torch.baddbmm(b, h, W)
        h = h.relu() if W is not leaves[2] else h
    ref = 0.5 * ((h - yb) ** 2).mean(dim=(1, 2)) + 0.1 / (2 * 9) * sum((W**2).sum(dim=(1, 2)) for W in leaves[:3])
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach())
    decay = [0.1 / 9 * p for p in params[:3]] + [0.0] * 3
    for got, l2, leaf in zip(grads, decay, leaves):
        torch.testing.assert_close(got + l2, leaf.grad)


@pytest.fixture(params=["FAST", "PUBLIC"])
def mlp_kernels(request, monkeypatch):
    """Each test using it runs with torch's private kernels, then with the public fallback."""
    from weaknas_ray.predictors import mlp

    monkeypatch.setattr(mlp, "_KERNELS", getattr(mlp, request.param))
    return getattr(mlp, request.param)


def test_adam_step_is_sklearns_formula(mlp_kernels):
    """p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps) with g + l2*W for weights (sklearn's
    AdamOptimizer on sklearn's L2 gradient), not torch.optim.Adam's eps placement."""
    import torch

    from weaknas_ray.predictors.mlp import _adam_step

    rng = np.random.default_rng(0)
    shapes = [(2, 3, 4), (2, 1, 4)]  # one weight, one bias
    params = [rng.normal(size=s) for s in shapes]
    state = {key: [torch.tensor(p) if key == "params" else torch.zeros(s, dtype=torch.float64) for p, s in zip(params, shapes)]
             for key in ("params", "m", "v")}
    m = [0.0, 0.0]
    v = [0.0, 0.0]
    for t in (1, 2):
        grads = [rng.normal(size=s) for s in shapes]
        _adam_step(torch, state, [torch.tensor(g) for g in grads], 1e-3, t, l2=0.5)
        for i, (g, l2) in enumerate(zip(grads, (0.5, 0.0))):
            g = g + l2 * params[i]
            m[i], v[i] = 0.9 * m[i] + 0.1 * g, 0.999 * v[i] + 0.001 * g**2
            params[i] = params[i] - 1e-3 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m[i] / (np.sqrt(v[i]) + 1e-8)
    for got, want in zip(state["params"], params):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_public_fallback_fits_like_the_private_kernels(monkeypatch):
    """The fallback (public torch operations) trains the same ensemble as the fast path: same epochs,
    predictions equal to float32 rounding."""
    from weaknas_ray.predictors import mlp

    X, y = _toy(n=250)
    params = {**SMALL, "tol": 1e-3, "n_iter_no_change": 3}
    fits = {}
    for name in ("FAST", "PUBLIC"):
        monkeypatch.setattr(mlp, "_KERNELS", getattr(mlp, name))
        fits[name] = mlp.MLPEnsemble(n_members=3, **params).fit(X, y, seed=7)
    np.testing.assert_array_equal(fits["FAST"].n_epochs_, fits["PUBLIC"].n_epochs_)
    np.testing.assert_allclose(fits["FAST"].predict(X), fits["PUBLIC"].predict(X), rtol=1e-4, atol=1e-4)


def test_kernels_fall_back_when_a_private_api_is_missing_or_changed(monkeypatch):
    import torch

    from weaknas_ray.predictors import mlp

    monkeypatch.setattr(mlp, "_KERNELS", None)
    assert mlp.kernels(torch) is mlp.FAST  # this torch has them, and they agree with the public path
    monkeypatch.setattr(mlp, "_KERNELS", None)
    monkeypatch.delattr(torch, "_fused_adam_")
    assert mlp.kernels(torch) is mlp.PUBLIC
    monkeypatch.undo()
    monkeypatch.setattr(mlp, "_KERNELS", None)
    monkeypatch.setattr(torch, "_fused_adam_", lambda *a, **k: None)  # runs, but does nothing: rejected
    assert mlp.kernels(torch) is mlp.PUBLIC


def test_mlp_state_rebuilds_on_cpu_whatever_device_it_was_fitted_on():
    """from_state rebuilds on CPU (chunk tasks have no GPU) even from a state fitted on a CUDA device."""
    from weaknas_ray.predictors.mlp import MLPEnsemble

    X, y = _toy()
    model = MLPEnsemble(n_members=2, **SMALL).fit(X, y, seed=1)
    state = model.get_state()
    state["params"] = {**state["params"], "device": "cuda"}  # as a GPU actor would ship it
    rebuilt = MLPEnsemble.from_state(state)
    assert rebuilt.device == "cpu"
    np.testing.assert_array_equal(rebuilt.predict(X), model.predict(X))


def test_mlp_fit_restores_the_torch_thread_count():
    """``threads`` applies during fit/predict only; the process setting is restored afterwards."""
    import torch

    from weaknas_ray.predictors.mlp import MLPEnsemble

    X, y = _toy(n=20)
    before = torch.get_num_threads()
    model = MLPEnsemble(hidden=(4,), max_epochs=2, threads=before + 1).fit(X, y, seed=0)
    assert torch.get_num_threads() == before
    model.predict(X)
    assert torch.get_num_threads() == before


def test_mlp_constructor_rejects_zero_threads_and_epochs():
    """The class's own checks name the parameter (not only make_predictor's)."""
    from weaknas_ray.predictors.mlp import MLPEnsemble

    for name in ("threads", "max_epochs"):
        with pytest.raises(ConfigError, match=name):
            MLPEnsemble(hidden=(4,), **{name: 0})


# --- the scikit-learn backed predictors --------------------------------------------------------------

def test_sklearn_mlp_is_mlpregressor_in_float64_with_member_seeds():
    """Member i is ``MLPRegressor(hidden, max_iter, learning_rate_init, alpha, random_state=seed + i)`` fitted
    on float64 data, prediction for prediction; stopping at the epoch budget warns nothing."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    X, y = _toy()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = make_predictor("sklearn-mlp", n_members=2, hidden=(16,), max_epochs=7, lr=0.02, alpha=0.3).fit(X, y, seed=4)
    X64 = X.astype(np.float64)
    for i in range(2):
        ref = MLPRegressor(hidden_layer_sizes=(16,), max_iter=7, learning_rate_init=0.02, alpha=0.3, random_state=4 + i)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref.fit(X64, y.astype(np.float64))
        np.testing.assert_array_equal(model.predict(X)[i], ref.predict(X64).astype(np.float32))


def test_gbt_settings_reach_the_trees():
    """n_rounds=1 and learning_rate=1: one tree added in full. At depth 1 it is a stump (two values); at
    the published depth 20 with one-sample leaves it reproduces every training target."""
    X, y = _toy()
    stump = make_predictor("gbt", max_depth=1, n_rounds=1, learning_rate=1.0).fit(X, y, seed=0).predict(X)[0]
    assert len(np.unique(stump)) == 2
    deep = make_predictor("gbt", max_depth=20, n_rounds=1, learning_rate=1.0).fit(X, y, seed=0).predict(X)[0]
    np.testing.assert_allclose(deep, y, atol=1e-5)


def test_gbt_feature_subsampling_makes_members_differ():
    """With max_features < 1 each member's seed picks the features its splits consider, so members differ
    (what EI needs for spread); one feature per split makes the stumps of 4 members not all alike."""
    X, y = _toy()
    model = make_predictor("gbt", n_members=4, max_depth=1, n_rounds=1, learning_rate=1.0, max_features=1 / 12)
    pred = model.fit(X, y, seed=0).predict(X)
    assert len({p.tobytes() for p in pred}) > 1


def test_mlp_bfloat16_keeps_the_ranking():
    from scipy.stats import kendalltau

    from weaknas_ray.predictors.mlp import MLPEnsemble

    X, y = _toy(n=200)
    f32 = MLPEnsemble(**SMALL).fit(X, y, seed=0).predict(X)[0]
    bf16 = MLPEnsemble(**SMALL, dtype="bfloat16").fit(X, y, seed=0).predict(X)[0]
    assert kendalltau(f32, bf16)[0] > 0.8


def test_mlp_bfloat16_fits_and_predicts_the_same_for_a_seed():
    from weaknas_ray.predictors.mlp import MLPEnsemble

    X, y = _toy(n=60)
    fits = [MLPEnsemble(n_members=2, **{**SMALL, "max_epochs": 5}, dtype="bfloat16").fit(X, y, seed=3) for _ in range(2)]
    preds = [fit.predict(X) for fit in fits]
    assert fits[0].compute_dtype_ == "bfloat16" and fits[0].dtype_choice().reason == "set explicitly"
    assert preds[0].dtype == np.float32 and np.isfinite(preds[0]).all()
    np.testing.assert_array_equal(preds[0], preds[1])
    np.testing.assert_array_equal(fits[0].loss_, fits[1].loss_)


def test_mlp_bfloat16_step_equals_bfloat16_autocast_bit_for_bit():
    """One bfloat16 training step (loss and gradients) and a prediction give exactly what bfloat16 autocast
    of the float32 arithmetic gives, with the weights cast once per step instead of once per product."""
    import torch

    from weaknas_ray.predictors import mlp

    X, y = _toy(n=30)
    model = mlp.MLPEnsemble(n_members=2, **{**SMALL, "max_epochs": 2}, dtype="bfloat16").fit(X, y, seed=0)
    params = [*model.weights_, *model.biases_]
    xb, yb = torch.as_tensor(X).expand(2, -1, -1), torch.as_tensor(y).view(1, -1, 1).expand(2, -1, -1)
    ours = mlp._loss_and_grads(params, xb, yb, 1e-4, torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = mlp._loss_and_grads(params, xb, yb, 1e-4)
        model.compute_dtype_ = "float32"
        autocast_pred = model.predict(X)
    for a, b in zip([ours[0], *ours[1]], [autocast[0], *autocast[1]]):
        assert a.dtype == b.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    model.compute_dtype_ = "bfloat16"
    np.testing.assert_array_equal(model.predict(X), autocast_pred)


@pytest.mark.parametrize(("speedup", "expected"), [(0.02, "float32"), (1.9, "float32"), (8.3, "bfloat16")])
def test_mlp_auto_dtype_follows_the_probe_measured_once_per_process(monkeypatch, speedup, expected):
    """``auto`` takes bfloat16 only where the probe finds it at least twice as fast; the probe runs once (on
    one thread) for every fit and prediction of the process, and a fitted state keeps the dtype it trained in."""
    from weaknas_ray.predictors import mlp

    calls = []
    monkeypatch.setattr(mlp, "probe_bf16_speedup", lambda torch, width: calls.append((width, torch.get_num_threads())) or speedup)
    X, y = _toy(n=40)
    models = [mlp.MLPEnsemble(**{**SMALL, "max_epochs": 3, "threads": 2}).fit(X, y, seed=s) for s in range(2)]
    choice = models[0].dtype_choice()
    assert calls == [(32, 1)] and models[0].dtype == "auto"  # once, on one thread whatever the fit's threads
    assert [m.compute_dtype_ for m in models] == [expected, expected] and choice.dtype == expected
    assert choice.reason.startswith(f"auto: bfloat16 matmul {speedup:.2g}x float32's on this CPU (1 thread; probe ")
    assert " ms CPU; bfloat16 from 2x)" in choice.reason
    rebuilt = mlp.MLPEnsemble.from_state(models[0].get_state())
    assert rebuilt.compute_dtype_ == expected
    np.testing.assert_array_equal(rebuilt.predict(X), models[0].predict(X))


def test_mlp_bf16_probe_is_quick_and_positive(monkeypatch):
    """The real probe: a float32/bfloat16 time ratio within tens of milliseconds of CPU time (0.1 s is the
    budget where bfloat16 is slow; doubled here, and CPU time, not wall, for a loaded test machine)."""
    import time

    import torch

    from weaknas_ray.predictors import mlp

    monkeypatch.undo()  # the real probe, not this module's stand-in
    start = time.process_time()
    with mlp._torch_threads(torch, 1):
        speedup = mlp.probe_bf16_speedup(torch, 1000)
    assert time.process_time() - start < 0.2 and speedup > 0


def test_mlp_rejects_bad_settings():
    from weaknas_ray.predictors.mlp import MLPEnsemble

    with pytest.raises(ConfigError, match=r"mlp: dtype must be one of \('auto', 'float32', 'bfloat16'\), got 'float16'"):
        MLPEnsemble(dtype="float16")
    with pytest.raises(ConfigError, match="hidden"):
        MLPEnsemble(hidden=())
    with pytest.raises(ConfigError, match="batch_size"):
        MLPEnsemble(batch_size=0)
    with pytest.raises(ConfigError, match="device must be one of"):
        MLPEnsemble(device="tpu")
    for params, message in [
        ({"widht": 3}, r"predictor_params.widht: not a setting of predictor 'mlp'; its settings: \['alpha', "),
        ({"hidden": "big"}, r"predictor_params.hidden: expected a list of int, got str 'big'"),
        ({"lr": "fast"}, r"predictor_params.lr: expected float, got str 'fast'"),
        ({"tol": -1.0}, r"predictor_params.tol: expected a number >= 0, got -1.0"),
        ({"threads": 0}, r"predictor_params.threads: expected an integer >= 1, got 0"),
    ]:
        with pytest.raises(ConfigError, match=message):
            make_predictor("mlp", **params)
    with pytest.raises(ConfigError, match=r"predictor_params.max_features: expected float, got bool True"):
        make_predictor("gbt", max_features=True)
    assert make_predictor("mlp", hidden=[8], threads=None, lr=1).lr == 1.0  # an int is a number
    import torch

    if not torch.cuda.is_available():  # a CUDA device where there is none: named at fit, not deep in torch
        with pytest.raises(ConfigError, match="device 'cuda:0', but this process sees 0 CUDA GPU"):
            MLPEnsemble(hidden=(4,), device="cuda:0").fit(np.zeros((3, 2), np.float32), np.zeros(3, np.float32), seed=0)


def test_mlp_matches_sklearn_on_nasbench201(nb201_root):
    """The method's 4-layer MLP (narrowed to 4 x 200 to keep the test fast on 2 shared cores) vs
    scikit-learn on 100 NAS-Bench-201 cells (the real table, else the synthetic one): similar training loss,
    and similar Kendall tau of the predicted ranking of 3,000 other cells."""
    from scipy.stats import kendalltau

    from weaknas_ray.benchmarks.nasbench201 import load_benchmark

    bench = load_benchmark("cifar10", data_dir=str(nb201_root))
    X = bench.space.features
    acc = bench.oracle.evaluate(np.arange(len(X))).search
    y = ((acc - acc.mean()) / acc.std()).astype(np.float32)
    cells = np.random.default_rng(0).permutation(len(X))
    train, test = cells[:100], cells[100:3100]
    hidden = (200,) * 4
    ours = make_predictor("mlp", hidden=hidden, threads=1).fit(X[train], y[train], seed=0)
    ref = make_predictor("sklearn-mlp", hidden=hidden).fit(X[train], y[train], seed=0)
    tau_ours = kendalltau(ours.predict(X[test])[0], y[test])[0]
    tau_ref = kendalltau(ref.predict(X[test])[0], y[test])[0]
    ref_loss = ref.estimators_[0].loss_
    assert tau_ours > 0.4 and abs(tau_ours - tau_ref) < 0.1, (tau_ours, tau_ref)
    assert ours.loss_[0] < 3 * ref_loss + 1e-3 and ref_loss < 3 * ours.loss_[0] + 1e-3, (ours.loss_, ref_loss)


def test_bench_flop_count():
    """Forward 2*in*out per layer; a training step adds the weight gradient and all but layer 0's delta."""
    from weaknas_ray.speed.predictor import _flops_per_row

    assert _flops_per_row([2, 3, 1]) == (2 * (6 + 3), 2 * (6 + 3) + 2 * (6 + 3) + 2 * 3)


def test_mlp_same_predictions_in_a_fresh_process():
    """Ray chunk tasks are fresh processes: a fixed seed must give bit-identical predictions there."""
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from weaknas_ray.predictors.mlp import MLPEnsemble\n"
        "rng = np.random.default_rng(0)\n"
        "X = (rng.random((50, 12)) < 0.3).astype(np.float32); y = rng.standard_normal(50).astype(np.float32)\n"
        "p = MLPEnsemble(n_members=2, hidden=(32, 32), max_epochs=20, threads=1, dtype='float32').fit(X, y, seed=4).predict(X)\n"
        "out = p.tobytes().hex()\n"
    )
    fresh = subprocess.run(
        [sys.executable, "-c", script + "print(out, end='')"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    here: dict = {}
    exec(script, here)
    assert fresh == here["out"]


def test_mlp_predictions_of_block_aligned_chunks_equal_the_whole_pass():
    """The Ray runner's chunks start at multiples of PREDICT_BLOCK_ROWS: their predictions must equal a
    whole-pool pass bit for bit, so chunked and in-process scoring select exactly the same architectures."""
    from weaknas_ray.predictors.base import PREDICT_BLOCK_ROWS

    rng = np.random.default_rng(0)
    X = rng.random((2 * PREDICT_BLOCK_ROWS + 123, 12)).astype(np.float32)
    model = make_predictor("mlp", n_members=3, hidden=[64, 64], max_epochs=3).fit(X[:50], rng.random(50).astype(np.float32), seed=0)
    whole = model.predict(X)
    parts = [model.predict(X[s : s + PREDICT_BLOCK_ROWS]) for s in range(0, len(X), PREDICT_BLOCK_ROWS)]
    np.testing.assert_array_equal(whole, np.concatenate(parts, axis=1))
