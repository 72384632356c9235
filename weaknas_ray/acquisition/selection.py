"""Pool scoring that runs chunk by chunk and merges exactly, and WeakNAS's uniform top-N draw.

One scoring pass answers what an iteration needs from a fitted predictor:

- the predicted top ``n_top`` of the whole pool by member-mean prediction, evaluated architectures
  included (the top-N of the uniform variant and the logged predicted top-1000);
- the ``k`` best not-excluded architectures by the acquisition score (``"mean"``: predicted mean, the
  uniform variant's fallback; ``"ei"``: log expected improvement).

Every selection orders by score descending, then pool index ascending, so the top of a union of chunk
tops is the top of the whole pool: :func:`merge_chunks` equals unchunked scoring exactly. The random
draw among the top-N (:func:`uniform_from_top`) happens after merging, in the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from weaknas_ray.acquisition.functions import ensemble_mean_sd, log_expected_improvement
from weaknas_ray.exceptions import ConfigError, WeakNASError

ACQUISITIONS = ("mean", "ei")


@dataclass(frozen=True, eq=False)
class ScoreRequest:
    """What one iteration asks of pool scoring; picklable, sent along with every chunk.

    Attributes:
        acquisition: ``"mean"`` or ``"ei"``, the score of the ``k`` candidates.
        n_top: how many of the predicted top (by mean, evaluated included) to return.
        k: how many best-scoring not-excluded candidates to return.
        excluded: sorted unique int64 pool indices that may not be candidates (evaluated or pending).
        best: EI incumbent ``y*`` in z-scored units (``"ei"`` only).
        calibration: EI spread divisor (``"ei"`` only; published 5).
    """

    acquisition: str
    n_top: int
    k: int
    excluded: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    best: float = 0.0
    calibration: float = 5.0

    def __post_init__(self):
        if self.acquisition not in ACQUISITIONS:
            raise ConfigError(f"acquisition: unknown {self.acquisition!r}; choose one of {list(ACQUISITIONS)}")
        if self.n_top < 0 or self.k < 0:
            raise ConfigError(f"ScoreRequest: n_top and k must be >= 0, got n_top={self.n_top}, k={self.k}")
        object.__setattr__(self, "excluded", np.unique(np.asarray(self.excluded, dtype=np.int64)))


@dataclass(frozen=True, eq=False)
class ChunkResult:
    """The selection from one chunk of the pool, or from the whole pool after :func:`merge_chunks`.

    Attributes:
        top_indices: pool indices of the predicted top, best first, shape ``(<= n_top,)`` int64.
        top_means: their member-mean predictions, same shape, float64.
        candidates: pool indices of the best not-excluded architectures, best first, ``(<= k,)`` int64.
        candidate_scores: their acquisition scores, same shape, float64.
    """

    top_indices: np.ndarray
    top_means: np.ndarray
    candidates: np.ndarray
    candidate_scores: np.ndarray


def _top(scores: np.ndarray, indices: np.ndarray, n: int) -> np.ndarray:
    """Positions of the ``n`` best entries by (score desc, index asc), in that order.

    Args:
        scores: shape ``(m,)``, may hold ``-inf``.
        indices: pool indices, shape ``(m,)``, unique.
        n: how many to keep.

    Returns:
        int64 positions into ``scores``, shape ``(min(n, m),)``.
    """
    m = scores.shape[0]
    if n <= 0 or m == 0:
        return np.empty(0, dtype=np.int64)
    if n < m:
        # argpartition keeps an arbitrary subset of a tie at the threshold: keep everything above it,
        # then the tied entries with the smallest pool indices.
        threshold = scores[np.argpartition(-scores, n - 1)[n - 1]]
        above = np.flatnonzero(scores > threshold)
        tied = np.flatnonzero(scores == threshold)
        tied = tied[np.argsort(indices[tied], kind="stable")[: n - above.size]]
        pos = np.concatenate([above, tied])
    else:
        pos = np.arange(m)
    return pos[np.lexsort((indices[pos], -scores[pos]))]


def score_chunk(predictor, X_chunk: np.ndarray, offset: int, request: ScoreRequest) -> ChunkResult:
    """Predict one contiguous chunk of the pool and keep only what the request needs.

    Args:
        predictor: a fitted :class:`~weaknas_ray.predictors.Predictor`.
        X_chunk: pool rows ``offset .. offset + m - 1``, shape ``(m, d)``.
        offset: pool index of the chunk's first row.
        request: what to select.

    Returns:
        The chunk's top ``n_top`` by mean and its best ``k`` not-excluded candidates, in pool indices.
    """
    return select_chunk(predictor.predict(X_chunk), X_chunk.shape[0], offset, request, type(predictor).__name__)


def select_chunk(predictions: np.ndarray, m: int, offset: int, request: ScoreRequest, source: str = "predictor") -> ChunkResult:
    """:func:`score_chunk` from the chunk's ensemble predictions (every member's row for every pool row),
    for predictions computed elsewhere (the Ray runner's per-member-slice prediction tasks).

    Args:
        predictions: ``(E, m)`` predictions of pool rows ``offset .. offset + m - 1``.
        m: the chunk's row count.
        offset: pool index of the chunk's first row.
        request: what to select.
        source: who predicted, for error messages.
    """
    preds = np.asarray(predictions)
    if preds.ndim != 2 or preds.shape[1] != m:
        raise WeakNASError(f"{source}.predict returned shape {preds.shape}, expected (E, {m})")
    if not np.isfinite(preds).all():
        raise WeakNASError(
            f"{source} predicted non-finite values for pool rows {offset}..{offset + m - 1}: "
            "the fit diverged (try a lower learning rate or another predictor)"
        )
    mu, sd = ensemble_mean_sd(preds, request.calibration)
    indices = np.arange(offset, offset + m, dtype=np.int64)
    top = _top(mu, indices, request.n_top)
    ex = request.excluded
    ex = ex[(ex >= offset) & (ex < offset + m)] - offset
    free = np.ones(m, dtype=bool)
    free[ex] = False
    score = mu if request.acquisition == "mean" else log_expected_improvement(mu, sd, request.best)
    free_pos = np.flatnonzero(free)
    cand = free_pos[_top(score[free_pos], indices[free_pos], request.k)]
    return ChunkResult(indices[top], mu[top], indices[cand], score[cand])


def merge_chunks(results: list[ChunkResult], request: ScoreRequest) -> ChunkResult:
    """Combine chunk results into the whole-pool selection, identical to scoring the pool in one chunk.

    Args:
        results: one :class:`ChunkResult` per chunk (any order; chunks must not overlap).
        request: the request every chunk answered.
    """
    if not results:
        raise WeakNASError("merge_chunks: got no chunk results to merge")
    top_idx = np.concatenate([r.top_indices for r in results])
    top_mu = np.concatenate([r.top_means for r in results])
    cand_idx = np.concatenate([r.candidates for r in results])
    cand_score = np.concatenate([r.candidate_scores for r in results])
    top = _top(top_mu, top_idx, request.n_top)
    cand = _top(cand_score, cand_idx, request.k)
    return ChunkResult(top_idx[top], top_mu[top], cand_idx[cand], cand_score[cand])


def score_pool(predictor, X: np.ndarray, request: ScoreRequest, chunk_size: int | None = None) -> ChunkResult:
    """Score the whole pool in-process, in chunks of ``chunk_size`` rows (``None``: one chunk).

    Args:
        predictor: a fitted predictor.
        X: the pool, shape ``(n, d)``.
        request: what to select.
        chunk_size: rows per chunk; bounds peak memory of the ``(E, chunk)`` predictions.
    """
    n = X.shape[0]
    step = n if chunk_size is None else int(chunk_size)
    if step < 1:
        raise ConfigError(f"chunk_size must be >= 1, got {chunk_size}")
    results = [score_chunk(predictor, X[start : start + step], start, request) for start in range(0, max(n, 1), step)]
    return merge_chunks(results, request)


def uniform_from_top(result: ChunkResult, excluded: np.ndarray, n_top: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """WeakNAS's uniform batch: ``k`` drawn without replacement from the predicted top-``n_top`` minus
    the excluded; when fewer than ``k`` remain there, the first ``k`` not excluded of the full ranking.

    Args:
        result: merged scoring of a ``"mean"`` request with ``n_top`` at least this ``n_top`` and ``k``
            at least this ``k``.
        excluded: boolean mask over the pool, shape ``(n_pool,)``, True for evaluated or pending.
        n_top: N of the top-N schedule.
        k: batch size.
        rng: the iteration's generator (used only when the draw happens).

    Returns:
        int64 pool indices, shape ``(min(k, free architectures),)``.
    """
    if result.top_indices.size < min(n_top, excluded.size):
        raise WeakNASError(f"uniform_from_top: scoring returned {result.top_indices.size} top indices, need {n_top}")
    top = result.top_indices[:n_top]
    free = top[~excluded[top]]
    if free.size >= k:
        return rng.choice(free, size=k, replace=False)
    return result.candidates[:k].copy()
