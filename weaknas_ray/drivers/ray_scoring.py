"""Pool scoring spread over Ray tasks, one per chunk of the pool, merged exactly; ensemble members
fitted in Ray tasks, one per slice of the members, joined exactly.

The pool is put into the object store once, chunk by chunk (:func:`put_pool_chunks`); each scoring pass
puts the fitted predictor's state once and sends every chunk task the two references. A task rebuilds
the predictor with ``type(predictor).from_state`` and returns only the chunk's selection
(:func:`~weaknas_ray.acquisition.score_chunk`), which :func:`~weaknas_ray.acquisition.merge_chunks`
combines into exactly the in-process result.

Member tasks (:class:`RayMemberFitter`): each fits members ``a .. b - 1`` of the iteration's ensemble
(``predictor.members(a, b)`` with seed ``seed + a``, the seeds the whole fit gives them) and returns the
slice's state. The fitter returns at once a :class:`RemoteMembers` holding the state references; scoring
it (:meth:`RayPoolScorer.__call__`) sends one prediction task per (slice, chunk), each waiting only for
its own slice's fit, and selects a chunk (:func:`~weaknas_ray.acquisition.select_chunk`, which needs every
member's row) as soon as all its slices are predicted: no barrier over the whole ensemble.
"""

from __future__ import annotations

import math
import os
import sys
from functools import cache, lru_cache

import numpy as np

from weaknas_ray.exceptions import ConfigError, WeakNASError
from weaknas_ray.predictors.base import PREDICT_BLOCK_ROWS, JoinedEnsemble, Predictor, member_slices

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


def pin_threads(cpus: float) -> int:
    """Make torch in this process use ``max(1, int(cpus))`` intra-op threads (now if it is imported, else
    when it is: torch reads ``OMP_NUM_THREADS`` on import). Returns that count."""
    threads = max(1, int(cpus))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


@cache
def _chunk_task():
    import ray

    @ray.remote
    def score_chunk_task(predictor_cls, state, X_chunk, offset, request, cpus):
        from weaknas_ray.acquisition import score_chunk

        pin_threads(cpus)
        return score_chunk(predictor_cls.from_state(state), X_chunk, offset, request)

    return score_chunk_task


@cache
def _member_tasks():
    import ray

    @ray.remote
    def fit_members_task(part, X, y, seed, cpus):
        pin_threads(cpus)
        return part.fit(X, y, seed).get_state()

    @ray.remote
    def predict_members_task(predictor_cls, state, X_chunk, cpus):
        pin_threads(cpus)
        return np.asarray(predictor_cls.from_state(state).predict(X_chunk), dtype=np.float32)

    return fit_members_task, predict_members_task


class RemoteMembers(Predictor):
    """An ensemble whose member slices are fitted (or being fitted) by Ray tasks.

    Args:
        part_cls: the predictor class of every slice.
        states: ObjectRefs of the slices' ``get_state()``, member order.
        n_members: E of the whole ensemble.
    """

    def __init__(self, part_cls: type[Predictor], states: list, n_members: int):
        self.part_cls, self.states, self.n_members = part_cls, list(states), int(n_members)

    def fit(self, X, y, seed):
        raise WeakNASError("RemoteMembers: already fitted by member tasks")

    def join(self) -> JoinedEnsemble:
        """The fitted ensemble in this process (waits for every member task)."""
        import ray

        return JoinedEnsemble([self.part_cls.from_state(state) for state in ray.get(self.states)])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.join().predict(X)

    def get_state(self) -> dict:
        return self.join().get_state()

    @classmethod
    def from_state(cls, state: dict) -> JoinedEnsemble:
        return JoinedEnsemble.from_state(state)


class RayMemberFitter:
    """A WeakNAS ``fitter``: fits the ensemble's members in up to ``parts`` Ray tasks, one slice each.

    An ensemble of one member (or ``parts`` < 2) is fitted in this process. Members fitted apart equal the
    whole fit bit for bit where the predictor's arithmetic does not depend on how many members share a
    batch (the MLP on CPU at equal thread counts: see ``tests/test_predictors.py``).

    Args:
        parts: most member tasks per fit.
        cpus_per_task: ``num_cpus`` (and torch threads) of each member task.
    """

    def __init__(self, parts: int, cpus_per_task: float = 1.0):
        self.parts, self.cpus_per_task = int(parts), float(cpus_per_task)

    def __call__(self, predictor: Predictor, X: np.ndarray, y: np.ndarray, seed: int) -> Predictor:
        import ray

        bounds = member_slices(predictor.n_members, self.parts)
        if len(bounds) < 2:
            return predictor.fit(X, y, seed)
        fit_task = _member_tasks()[0].options(num_cpus=self.cpus_per_task)
        X_ref, y_ref = ray.put(X), ray.put(y)
        states = [fit_task.remote(predictor.members(a, b), X_ref, y_ref, seed + a, self.cpus_per_task) for a, b in bounds]
        return RemoteMembers(type(predictor), states, predictor.n_members)


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

        if isinstance(predictor, RemoteMembers):
            return merge_chunks(self._score_members(predictor, request), request)
        task = _chunk_task().options(num_cpus=self.cpus_per_chunk)
        state, req = ray.put(predictor.get_state()), ray.put(request)
        refs = [task.remote(type(predictor), state, chunk, offset, req, self.cpus_per_chunk) for offset, chunk in self.chunks]
        return merge_chunks(ray.get(refs), request)

    def _score_members(self, model: RemoteMembers, request) -> list:
        """Chunk results of an ensemble still being fitted by member tasks: a prediction task per (slice,
        chunk) starts when its slice is fitted; a chunk is selected here once all its slices are in."""
        import ray

        from weaknas_ray.acquisition import select_chunk

        task = _member_tasks()[1].options(num_cpus=self.cpus_per_chunk)
        pending = {
            task.remote(model.part_cls, state, chunk, self.cpus_per_chunk): (c, s)
            for c, (_, chunk) in enumerate(self.chunks)
            for s, state in enumerate(model.states)
        }
        got: dict[int, dict[int, np.ndarray]] = {}
        results = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0) if len(pending) > 1 else (ready, None)
            for ref in ready:
                c, s = pending.pop(ref)
                parts = got.setdefault(c, {})
                parts[s] = ray.get(ref)
                if len(parts) == len(model.states):
                    preds = np.concatenate([parts[i] for i in range(len(model.states))])
                    results.append(select_chunk(preds, preds.shape[1], self.chunks[c][0], request, model.part_cls.__name__))
                    del got[c]
        return results
