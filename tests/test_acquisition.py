"""EI against a direct scalar computation; chunked scoring equals unchunked; the uniform draw's rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from weaknas_ray.acquisition import (
    ScoreRequest,
    ensemble_mean_sd,
    expected_improvement,
    incumbent,
    log_expected_improvement,
    merge_chunks,
    score_chunk,
    score_pool,
    uniform_from_top,
)
from weaknas_ray.engine.testing import FixedPredictor
from weaknas_ray.exceptions import ConfigError, WeakNASError


def scalar_ei(preds: np.ndarray, observed: np.ndarray, variant: str, calibration: float = 5.0) -> list[float]:
    """The published code's per-candidate loop, with scalar scipy calls (weaknas-method.md)."""
    out = []
    for j in range(preds.shape[1]):
        mu = float(np.mean(preds[:, j]))
        sd = float(np.std(preds[:, j])) / calibration
        gain = mu - max(observed) if variant == "corrected" else min(observed) + mu
        if sd == 0:
            out.append(max(gain, 0.0))
            continue
        g = gain / sd
        out.append(sd * (g * norm.cdf(g) + norm.pdf(g)))
    return out


@pytest.mark.parametrize("variant", ["corrected", "faithful"])
def test_ei_matches_scalar_computation(variant):
    rng = np.random.default_rng(0)
    preds = rng.normal(size=(5, 200))
    preds[:, :20] = rng.normal(size=20)  # members agree: zero spread
    observed = rng.normal(size=30)
    mu, sd = ensemble_mean_sd(preds, 5.0)
    got = expected_improvement(mu, sd, incumbent(observed, variant))
    np.testing.assert_allclose(got, scalar_ei(preds, observed, variant), rtol=1e-9, atol=1e-300)
    assert (sd[:20] == 0).all() and np.isfinite(got).all()


def test_zero_spread_gives_plain_improvement_and_log_minus_inf():
    mu = np.array([1.0, 0.5, 0.2])
    log_ei = log_expected_improvement(mu, np.zeros(3), 0.5)
    np.testing.assert_allclose(np.exp(log_ei), [0.5, 0.0, 0.0])
    assert np.isneginf(log_ei[1:]).all()


def test_log_ei_is_finite_and_increasing_far_below_the_incumbent():
    mu = -np.logspace(6, -3, 400)  # g from -1e6 up to -1e-3 at sd = 1
    log_ei = log_expected_improvement(mu, np.ones_like(mu), 0.0)
    assert np.isfinite(log_ei).all() and (np.diff(log_ei) > 0).all()
    moderate = mu > -30  # where the plain formula is still accurate
    direct = np.log(mu[moderate] * norm.cdf(mu[moderate]) + norm.pdf(mu[moderate]))
    np.testing.assert_allclose(log_ei[moderate], direct, rtol=1e-6)


def test_log_ei_matches_50_digit_arithmetic_in_every_regime():
    """Each branch (direct, log1p/erfcx, asymptotic tail) against mpmath at 50 digits: the tail's switch
    point must keep full double precision (a switch at g = -40 is off by 1e-3 at g = -50)."""
    import mpmath

    g = np.array([2.0, 0.3, -0.5, -1.0, -3.0, -10.0, -35.0, -50.0, -100.0, -1e3, -9999.0, -1e4, -1e5])
    with mpmath.workdps(50):
        want = [float(mpmath.log(mpmath.mpf(v) * mpmath.ncdf(v) + mpmath.npdf(v))) for v in g]
    np.testing.assert_allclose(log_expected_improvement(g, np.ones_like(g), 0.0), want, rtol=1e-14)


def test_bad_variant_and_calibration_are_named():
    with pytest.raises(ConfigError, match="EI variant"):
        incumbent(np.ones(2), "pessimistic")
    with pytest.raises(ConfigError, match="calibration"):
        ensemble_mean_sd(np.ones((2, 2)), 0.0)


def _pool(values: list[int], n_members: int):
    """A one-hot pool whose FixedPredictor predicts ``values`` (+ member offsets), and its features."""
    n = len(values)
    offsets = np.arange(n_members, dtype=np.float32)[:, None] * np.linspace(0, 1, n, dtype=np.float32)
    model = FixedPredictor(np.asarray(values, dtype=np.float32)[None, :] + offsets).fit(np.zeros((1, n)), np.zeros(1), 0)
    return model, np.eye(n, dtype=np.float32)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    values=st.lists(st.integers(-3, 3), min_size=1, max_size=40),  # small range: many ties
    n_members=st.integers(1, 3),
    data=st.data(),
)
def test_chunked_scoring_equals_unchunked(values, n_members, data):
    n = len(values)
    model, X = _pool(values, n_members)
    request = ScoreRequest(
        data.draw(st.sampled_from(["mean", "ei"])),
        n_top=data.draw(st.integers(0, n + 2)),
        k=data.draw(st.integers(0, n + 2)),
        excluded=data.draw(st.lists(st.integers(0, n - 1), max_size=n)),
        best=data.draw(st.floats(-3, 3)),
    )
    whole = score_pool(model, X, request)
    chunked = score_pool(model, X, request, chunk_size=data.draw(st.integers(1, n)))
    for field in ("top_indices", "top_means", "candidates", "candidate_scores"):
        np.testing.assert_array_equal(getattr(chunked, field), getattr(whole, field))
    # The whole-pool answer is the full sort by (score desc, index asc).
    mu = model.predict(X).astype(np.float64).mean(axis=0)
    assert whole.top_indices.tolist() == np.lexsort((np.arange(n), -mu))[: request.n_top].tolist()
    assert not np.isin(whole.candidates, request.excluded).any()
    assert whole.candidates.size == min(request.k, n - request.excluded.size)


def test_merge_is_order_free_and_needs_results():
    model, X = _pool([3, 1, 2, 3, 0, 2], 2)
    request = ScoreRequest("ei", n_top=3, k=2, excluded=[0], best=1.0)
    parts = [score_chunk(model, X[s : s + 2], s, request) for s in (0, 2, 4)]
    a, b = merge_chunks(parts, request), merge_chunks(parts[::-1], request)
    np.testing.assert_array_equal(a.candidates, b.candidates)
    np.testing.assert_array_equal(a.top_indices, b.top_indices)
    with pytest.raises(WeakNASError, match="no chunk results"):
        merge_chunks([], request)


def test_non_finite_predictions_name_the_rows():
    model, X = _pool([1, 2, 3, 4], 1)
    model.weights[0, 2] = np.nan
    with pytest.raises(WeakNASError, match="rows 2..3"):
        score_chunk(model, X[2:], 2, ScoreRequest("mean", n_top=1, k=1))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(values=st.lists(st.integers(-5, 5), min_size=2, max_size=60), data=st.data())
def test_uniform_draw_never_repeats_and_falls_back_exactly(values, data):
    n = len(values)
    model, X = _pool(values, 1)
    n_top = data.draw(st.integers(1, n))
    k = data.draw(st.integers(1, n))
    excluded_idx = data.draw(st.lists(st.integers(0, n - 1), max_size=n - 1))
    excluded = np.zeros(n, dtype=bool)
    excluded[excluded_idx] = True
    result = score_pool(model, X, ScoreRequest("mean", n_top=n_top, k=k, excluded=excluded_idx))
    batch = uniform_from_top(result, excluded, n_top, k, np.random.default_rng(data.draw(st.integers(0, 99))))
    ranking = np.lexsort((np.arange(n), -np.asarray(values, dtype=float)))
    free_top = [i for i in ranking[:n_top] if not excluded[i]]
    assert len(set(batch.tolist())) == batch.size and not excluded[batch].any()
    assert batch.size == min(k, int((~excluded).sum()))
    if len(free_top) >= k:
        assert set(batch.tolist()) <= set(free_top)
    else:  # walk the full ranking, first k not evaluated
        assert batch.tolist() == [i for i in ranking if not excluded[i]][:k]


def test_merge_breaks_ties_by_pool_index_whatever_the_chunk_order():
    """Tied predictions across chunks: the merged top keeps the smallest pool indices, best first, even
    when the chunks arrive last-first (Ray returns them in completion order)."""
    model, X = _pool([2, 2, 1, 2, 2, 0, 2, 2], 1)  # one member: the ties stay exact
    request = ScoreRequest("mean", n_top=3, k=3, excluded=[1])
    whole = score_pool(model, X, request)
    assert whole.top_indices.tolist() == [0, 1, 3] and whole.candidates.tolist() == [0, 3, 4]
    parts = [score_chunk(model, X[s : s + 2], s, request) for s in (0, 2, 4, 6)]
    for order in (parts[::-1], [parts[2], parts[0], parts[3], parts[1]]):
        merged = merge_chunks(order, request)
        for field in ("top_indices", "top_means", "candidates", "candidate_scores"):
            np.testing.assert_array_equal(getattr(merged, field), getattr(whole, field))


@pytest.mark.parametrize("seed", range(3))
def test_uniform_draw_when_exactly_k_are_free_in_the_top(seed):
    """Exactly k free architectures in the top-N: still the uniform draw among them (from the
    iteration's generator), not the full-ranking fallback."""
    values = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    model, X = _pool(values, 1)
    excluded = np.zeros(10, dtype=bool)
    excluded[[0, 2]] = True
    n_top, k = 6, 4  # top-6 = 0..5, free there: 1, 3, 4, 5
    result = score_pool(model, X, ScoreRequest("mean", n_top=n_top, k=k, excluded=[0, 2]))
    rng = np.random.default_rng(seed)
    batch = uniform_from_top(result, excluded, n_top, k, rng)
    ref = np.random.default_rng(seed)
    want = ref.choice(np.array([1, 3, 4, 5]), size=k, replace=False)
    assert batch.tolist() == want.tolist()
    assert rng.bit_generator.state == ref.bit_generator.state  # the draw happened


def test_ei_request_still_ranks_the_top_by_mean():
    """``top_indices`` is the predicted top by member mean whatever the acquisition; only the
    candidates are ranked by EI (here the two orders differ)."""
    model, X = _pool([3, 1, 2, 0, 2, 1], 3)  # spread grows with the pool index
    mu, sd = ensemble_mean_sd(model.predict(X))
    by_mean = np.lexsort((np.arange(6), -mu))
    by_ei = np.lexsort((np.arange(6), -log_expected_improvement(mu, sd, 3.5)))
    assert set(by_mean[:3]) != set(by_ei[:3])  # the two top-3s differ
    for chunk_size in (None, 2):
        result = score_pool(model, X, ScoreRequest("ei", n_top=3, k=6, best=3.5), chunk_size=chunk_size)
        assert result.top_indices.tolist() == by_mean[:3].tolist()
        np.testing.assert_allclose(result.top_means, mu[by_mean[:3]])
        assert result.candidates.tolist() == by_ei.tolist()


def test_bad_requests_and_short_scorings_are_named():
    with pytest.raises(ConfigError, match="at least one observed"):
        incumbent(np.empty(0), "corrected")
    with pytest.raises(ConfigError, match="k must be >= 0"):
        ScoreRequest("mean", n_top=1, k=-1)
    model, X = _pool([5, 4, 3, 2, 1], 1)
    short = score_pool(model, X, ScoreRequest("mean", n_top=2, k=1))
    with pytest.raises(WeakNASError, match="need 4"):  # asked for a top-4 draw, scored only a top-2
        uniform_from_top(short, np.zeros(5, dtype=bool), 4, 1, np.random.default_rng(0))
