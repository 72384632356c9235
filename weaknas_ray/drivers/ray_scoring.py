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

Every wait on these tasks is watched (:class:`TaskWatch`): when none of them finishes for
``ray.task_timeout_s`` (their node was lost and the retries find no free CPU, the repeat's actor holding
the last one) or one is lost for good, they are cancelled and the repeat fits and scores in its own
actor from then on, the in-process path, which selects the same architectures.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
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


class TaskWatch:
    """Bounded waits on one repeat's Ray tasks, shared by its fitter and scorer: once the tasks make no
    progress for ``timeout_s`` or one is lost, the rest of the repeat runs in the actor (:attr:`note`
    says why, for the driver's warning; the runner clears it when the actor takes the next repeat).

    Args:
        timeout_s: ``ray.task_timeout_s``: longest wait for the next of a set of tasks to finish.
    """

    def __init__(self, timeout_s: float):
        self.timeout_s, self.note = float(timeout_s), None

    @property
    def local(self) -> bool:
        """True once this repeat fits and scores in the actor."""
        return self.note is not None

    def ready(self, pending: list, what: str) -> list | None:
        """The refs of ``pending`` that are done, waiting up to ``timeout_s`` for the first; ``None`` (the
        tasks cancelled, :attr:`note` set) when none finished in that time or the repeat runs locally."""
        import ray

        if not self.local:
            ready, _ = ray.wait(pending, num_returns=1, timeout=self.timeout_s)
            if ready:
                return ray.wait(pending, num_returns=len(pending), timeout=0)[0]
            self.note = (f"its {what} made no progress for {self.timeout_s:g} s (ray.task_timeout_s: a lost node, "
                         "or no free CPU)")
        self.cancel(pending)
        return None

    def gather(self, refs: list, what: str) -> list | None:
        """Every result of ``refs`` in order, or ``None`` (see :meth:`ready`; also when a task was lost:
        its node died and its retries failed)."""
        import ray

        pending = list(refs)
        while pending:
            done = self.ready(pending, what)
            if done is None:
                return None
            pending = [ref for ref in pending if ref not in done]
        try:
            return ray.get(refs)
        except ray.exceptions.RayTaskError:
            raise  # the task's own error: the same code would raise it here
        except ray.exceptions.RayError as exc:
            self.note = f"one of its {what} was lost ({type(exc).__name__})"
            return None

    @staticmethod
    def cancel(refs: list) -> None:
        """Cancel tasks no longer waited for, ending a running one's worker (they are pure: nothing is lost),
        so that none holds a CPU later; finished ones are left as they are."""
        import ray

        for ref in refs:
            try:
                ray.cancel(ref, force=True)
            except (ray.exceptions.RayError, TypeError, ValueError):
                pass


class RemoteMembers(Predictor):
    """An ensemble whose member slices are fitted (or being fitted) by Ray tasks.

    Args:
        part_cls: the predictor class of every slice.
        states: ObjectRefs of the slices' ``get_state()``, member order.
        n_members: E of the whole ensemble.
        fit_here: fits the whole ensemble in this process (what the tasks compute, member for member),
            for when :class:`TaskWatch` gives up on them.
        watch: the repeat's task watch.
    """

    def __init__(self, part_cls: type[Predictor], states: list, n_members: int, fit_here: Callable[[], Predictor],
                 watch: TaskWatch):
        self.part_cls, self.states, self.n_members = part_cls, list(states), int(n_members)
        self.fit_here, self.watch = fit_here, watch

    def fit(self, X, y, seed):
        raise WeakNASError("RemoteMembers: already fitted by member tasks")

    def join(self) -> Predictor:
        """The fitted ensemble in this process (waits for every member task, or fits it here)."""
        states = self.watch.gather(self.states, "member tasks")
        if states is None:
            return self.fit_here()
        return JoinedEnsemble([self.part_cls.from_state(state) for state in states])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.join().predict(X)

    def get_state(self) -> dict:
        return self.join().get_state()

    @classmethod
    def from_state(cls, state: dict) -> JoinedEnsemble:
        return JoinedEnsemble.from_state(state)


class RayMemberFitter:
    """A WeakNAS ``fitter``: fits the ensemble's members in up to ``parts`` Ray tasks, one slice each.

    An ensemble of one member (or ``parts`` < 2) is fitted in this process, as is every ensemble of a
    repeat whose tasks the ``watch`` gave up on. Members fitted apart equal the whole fit bit for bit where
    the predictor's arithmetic does not depend on how many members share a batch (the MLP on CPU at equal
    thread counts: see ``tests/test_predictors.py``).

    Args:
        parts: most member tasks per fit.
        cpus_per_task: ``num_cpus`` (and torch threads) of each member task.
        watch: the repeat's :class:`TaskWatch`; default one of ``ray.task_timeout_s``'s default.
    """

    def __init__(self, parts: int, cpus_per_task: float = 1.0, watch: TaskWatch | None = None):
        self.parts, self.cpus_per_task = int(parts), float(cpus_per_task)
        self.watch = watch or default_watch()

    def __call__(self, predictor: Predictor, X: np.ndarray, y: np.ndarray, seed: int) -> Predictor:
        import ray

        bounds = member_slices(predictor.n_members, self.parts)
        if len(bounds) < 2 or self.watch.local:
            return predictor.fit(X, y, seed)
        fit_task = _member_tasks()[0].options(num_cpus=self.cpus_per_task)
        X_ref, y_ref = ray.put(X), ray.put(y)
        states = [fit_task.remote(predictor.members(a, b), X_ref, y_ref, seed + a, self.cpus_per_task) for a, b in bounds]
        return RemoteMembers(type(predictor), states, predictor.n_members, lambda: predictor.fit(X, y, seed), self.watch)


class RayPoolScorer:
    """A WeakNAS ``pool_scorer``: ``(predictor, request) -> ChunkResult`` computed by Ray tasks, or chunk by
    chunk in this process once the ``watch`` gave up on the repeat's tasks.

    Args:
        chunks: ``[(offset, ObjectRef of rows), ...]`` from :func:`put_pool_chunks`.
        cpus_per_chunk: ``num_cpus`` of each chunk task.
        watch: the repeat's :class:`TaskWatch`; default one of ``ray.task_timeout_s``'s default.
    """

    def __init__(self, chunks: list[tuple[int, object]], cpus_per_chunk: float = 1.0, watch: TaskWatch | None = None):
        if not chunks:
            raise ConfigError("RayPoolScorer: got no pool chunks")
        self.chunks = list(chunks)
        self.cpus_per_chunk = float(cpus_per_chunk)
        self.watch = watch or default_watch()

    def __call__(self, predictor, request):
        from weaknas_ray.acquisition import merge_chunks

        results = None if self.watch.local else self._score_in_tasks(predictor, request)
        return merge_chunks(self._score_here(predictor, request) if results is None else results, request)

    def _score_in_tasks(self, predictor, request) -> list | None:
        """The chunk results computed by Ray tasks; ``None`` when the watch gave up on them."""
        import ray

        if isinstance(predictor, RemoteMembers):
            return self._score_members(predictor, request)
        task = _chunk_task().options(num_cpus=self.cpus_per_chunk)
        state, req = ray.put(predictor.get_state()), ray.put(request)
        refs = [task.remote(type(predictor), state, chunk, offset, req, self.cpus_per_chunk) for offset, chunk in self.chunks]
        return self.watch.gather(refs, "pool-scoring tasks")

    def _score_here(self, predictor, request) -> list:
        """The chunk results computed in this process, chunk by chunk as the tasks would."""
        import ray

        from weaknas_ray.acquisition import score_chunk

        model = predictor.join() if isinstance(predictor, RemoteMembers) else predictor
        rows = ray.get([chunk for _, chunk in self.chunks])  # put by the driver: on its node, which survives
        return [score_chunk(model, X, offset, request) for (offset, _), X in zip(self.chunks, rows)]

    def _score_members(self, model: RemoteMembers, request) -> list | None:
        """Chunk results of an ensemble still being fitted by member tasks: a prediction task per (slice,
        chunk) starts when its slice is fitted; a chunk is selected here once all its slices are in.
        ``None`` when the watch gave up on the tasks."""
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
            ready = self.watch.ready(list(pending), "member tasks")
            values = None if ready is None else self.watch.gather(ready, "member tasks")
            if values is None:
                self.watch.cancel(list(pending))
                return None
            for ref, value in zip(ready, values):
                c, s = pending.pop(ref)
                parts = got.setdefault(c, {})
                parts[s] = value
                if len(parts) == len(model.states):
                    preds = np.concatenate([parts[i] for i in range(len(model.states))])
                    results.append(select_chunk(preds, preds.shape[1], self.chunks[c][0], request, model.part_cls.__name__))
                    del got[c]
        return results


def default_watch() -> TaskWatch:
    """A :class:`TaskWatch` of the default ``ray.task_timeout_s`` (for a scorer or fitter used alone)."""
    from weaknas_ray.config import BASE

    return TaskWatch(BASE["ray"]["task_timeout_s"])
