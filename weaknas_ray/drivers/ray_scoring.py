"""Pool scoring spread over Ray tasks, one per chunk of the pool, merged exactly.

The pool is put into the object store once, chunk by chunk (:func:`put_pool_chunks`); each scoring pass
puts the fitted predictor's state once and sends every chunk task the two references. A task rebuilds
the predictor with ``type(predictor).from_state`` and returns only the chunk's selection
(:func:`~weaknas_ray.acquisition.score_chunk`), which :func:`~weaknas_ray.acquisition.merge_chunks`
combines into exactly the in-process result.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np

from weaknas_ray.exceptions import ConfigError
from weaknas_ray.predictors.base import PREDICT_BLOCK_ROWS

# NOTE: below this many member-rows (pool rows x ensemble size) one local pass beats task overhead
# (NAS-Bench-201: 15,625 x 5 = 78k stays local; NAS-Bench-101: 423,624 rows is chunked).
AUTO_MIN_MEMBER_ROWS = 200_000
# NOTE: chunks smaller than this spend more on task dispatch than on prediction.
MIN_CHUNK_ROWS = 10_000


def choose_chunk_size(n_rows: int, n_members: int, chunk_slots: float, setting: int | None) -> int:
    """Rows per scoring chunk; 0 means score in-process without tasks.

    Args:
        n_rows: pool size.
        n_members: ensemble size of the widest method.
        chunk_slots: how many chunk tasks can run at once (free CPUs / ``cpus_per_chunk``).
        setting: ``ray.chunk_size``: ``None`` chooses (two chunks per CPU, at least
            :data:`MIN_CHUNK_ROWS` rows, none below :data:`AUTO_MIN_MEMBER_ROWS` member-rows, rounded up to
            a multiple of ``PREDICT_BLOCK_ROWS`` so chunked predictions equal the whole-pool pass bit for
            bit), ``0`` turns chunking off, ``N`` forces N rows (use a multiple of 4,096 for exactness).
    """
    if setting is not None:
        return int(setting)
    if n_rows * n_members < AUTO_MIN_MEMBER_ROWS:
        return 0
    rows = max(MIN_CHUNK_ROWS, math.ceil(n_rows / max(1, 2 * int(chunk_slots))))
    return math.ceil(rows / PREDICT_BLOCK_ROWS) * PREDICT_BLOCK_ROWS  # aligned: bit-identical predictions


def put_pool_chunks(features: np.ndarray, chunk_size: int) -> list[tuple[int, object]]:
    """Put ``features`` (``(n, d)``) into the object store in chunks of ``chunk_size`` rows.

    Returns:
        ``[(offset, ObjectRef), ...]`` in pool order.
    """
    import ray

    if chunk_size < 1:
        raise ConfigError(f"ray.chunk_size: expected >= 1 rows to put chunks, got {chunk_size}")
    return [(start, ray.put(features[start : start + chunk_size])) for start in range(0, features.shape[0], chunk_size)]


@cache
def _chunk_task():
    import ray

    @ray.remote
    def score_chunk_task(predictor_cls, state, X_chunk, offset, request):
        from weaknas_ray.acquisition import score_chunk

        return score_chunk(predictor_cls.from_state(state), X_chunk, offset, request)

    return score_chunk_task


class RayPoolScorer:
    """A WeakNAS ``pool_scorer``: ``(predictor, request) -> ChunkResult`` computed by Ray tasks.

    Args:
        chunks: ``[(offset, ObjectRef of rows), ...]`` from :func:`put_pool_chunks`.
        cpus_per_chunk: ``num_cpus`` of each chunk task.
    """

    def __init__(self, chunks: list[tuple[int, object]], cpus_per_chunk: float = 1.0):
        if not chunks:
            raise ConfigError("RayPoolScorer: got no pool chunks")
        self.chunks = list(chunks)
        self.cpus_per_chunk = float(cpus_per_chunk)

    def __call__(self, predictor, request):
        import ray

        from weaknas_ray.acquisition import merge_chunks

        task = _chunk_task().options(num_cpus=self.cpus_per_chunk)
        state, req = ray.put(predictor.get_state()), ray.put(request)
        refs = [task.remote(type(predictor), state, chunk, offset, req) for offset, chunk in self.chunks]
        return merge_chunks(ray.get(refs), request)
