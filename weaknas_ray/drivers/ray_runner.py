"""The Ray runner: every repeat of every method runs in a repeat actor, results stream to the output folder.

Flow: load the benchmark once in the driver, put it into the object store once, start as many
:class:`RepeatWorker` actors as the cluster's CPUs (and GPUs) allow, hand each a repeat at a time
(workers are reused, so each process imports torch once), save every finished repeat atomically,
retry a failed repeat ``ray.max_retries`` times, merge the results. The summary and figures are the
command's step (:mod:`weaknas_ray.commands.run`).

What a repeat is and how it runs without Ray: :mod:`weaknas_ray.drivers.repeats` (with
``ray.repeats_per_actor`` > 1 a worker runs a group of repeats of one method in lockstep); how many
actors and chunk tasks fit the cluster: :mod:`weaknas_ray.drivers.resources`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from weaknas_ray.benchmarks.registry import load_configured_benchmark
from weaknas_ray.drivers.loop import optimum_targets
from weaknas_ray.drivers.repeats import RepeatTask, check_methods, group_tasks, plan_tasks, predictor_dtypes, run_repeats
from weaknas_ray.drivers.resources import plan_resources
from weaknas_ray.exceptions import ConfigError, OutputWriteError, WeakNASError, interrupt_on_sigterm
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.results.aggregate import counted
from weaknas_ray.results.records import RunStore, check_output_path

# NOTE: how often the driver refreshes the progress bar from the workers (seconds).
POLL_S = 0.5


@dataclass
class RunOutcome:
    """What :func:`run_search` did: where, how many repeats ran or were skipped, what failed, and the
    benchmark it ran on (for the report step)."""

    output: Path
    ran: int
    skipped: int
    failures: list[dict[str, Any]]
    benchmark: Benchmark


class RepeatWorker:
    """The body of a repeat actor: holds the benchmark (zero-copy from the object store) and runs
    repeats one group at a time (``ray.repeats_per_actor``, default one repeat); a second thread answers
    :meth:`queries_done` for the progress bar.

    Args:
        benchmark: the benchmark (passed as an object ref, resolved by Ray).
        chunks: pool chunk refs for :class:`~weaknas_ray.drivers.ray_scoring.RayPoolScorer`, or ``None``
            to score in-process.
        cpus: the actor's CPUs; torch uses as many threads (at least 1).
        cpus_per_chunk: ``num_cpus`` of chunk and member tasks.
        member_tasks: most member tasks per ensemble fit
            (:class:`~weaknas_ray.drivers.ray_scoring.RayMemberFitter`); 0 fits in the actor.
        task_timeout_s: ``ray.task_timeout_s``: chunk and member tasks that make no progress this long
            are given up, and the repeat fits and scores in this actor.
    """

    def __init__(self, benchmark, chunks: list | None, cpus: float, cpus_per_chunk: float, member_tasks: int,
                 task_timeout_s: float):
        from weaknas_ray.drivers.ray_scoring import RayMemberFitter, RayPoolScorer, TaskWatch, pin_threads

        # torch reads OMP_NUM_THREADS when first imported (lazily, by a predictor): random-only workers
        # never pay for importing it
        pin_threads(cpus)
        self.benchmark = benchmark
        self.watch = TaskWatch(task_timeout_s)
        self.scorer = RayPoolScorer(chunks, cpus_per_chunk, self.watch) if chunks else None
        self.fitter = RayMemberFitter(member_tasks, cpus_per_chunk, self.watch) if member_tasks else None
        self._done = 0

    def run(self, tasks: list[RepeatTask]):
        """Run a group of repeats (usually one); returns their ``(rows, final_top1)`` in order, and why
        they fell back from Ray tasks to the actor (``None`` when they did not)."""
        self.watch.note = None  # a new repeat tries the tasks again: the cluster may have recovered
        try:
            return run_repeats(self.benchmark, tasks, self.scorer, on_batch=self._count, fitter=self.fitter), self.watch.note
        finally:  # NOTE: reset here, not at the start: a progress poll may arrive before this call starts
            self._done = 0

    def _count(self, batch) -> None:
        self._done += len(batch)

    def queries_done(self) -> int:
        return self._done


@cache
def _remote_worker():
    import ray

    # NOTE: max_concurrency=2: one thread runs the repeat, the other answers progress polls.
    return ray.remote(max_concurrency=2)(RepeatWorker)


def connect(ray_config: dict[str, Any]) -> bool:
    """Start local Ray, or join ``ray.address`` (else ``$RAY_ADDRESS``), unless Ray is already initialised.

    Returns:
        True when this call initialised Ray (so the caller shuts it down).
    """
    import ray

    if ray.is_initialized():
        return False
    address = ray_config["address"] or os.environ.get("RAY_ADDRESS")
    if address:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"ray.address: cannot join the Ray cluster at {address} ({_first_line(exc)})") from None
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(
            address="local",
            num_cpus=ray_config["num_cpus"] or os.cpu_count(),
            object_store_memory=ray_config["object_store_memory"],
            include_dashboard=False,
            log_to_driver=False,
        )
    interrupt_on_sigterm()  # Ray's driver handler exits with a C++ stack dump and loses the message
    return True


def probe_address(ray_config: dict[str, Any]) -> None:
    """Refuse, before anything is written, a cluster address (``ray.address``, else ``$RAY_ADDRESS``)
    where nothing answers within ``ray.connect_timeout_s``: Ray itself retries a dead address for minutes.
    ``auto`` is left to Ray, which fails at once when it finds no cluster.

    Raises:
        ConfigError: naming the address and the timeout.
    """
    import socket

    import ray

    address = ray_config["address"] or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized() or not address or address == "auto":
        return
    timeout = ray_config["connect_timeout_s"]
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"ray.address: no Ray cluster answers at {address} within {timeout:g} s ({_first_line(exc)}); "
            "check the address, or raise ray.connect_timeout_s"
        ) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def run_search(
    config: dict[str, Any],
    *,
    benchmark=None,
    progress: bool = True,
    echo: Callable = print,
    on_start: Callable[[Benchmark], Any] | None = None,
    allow_loaders: tuple[str, ...] = (),
) -> RunOutcome:
    """Run (or resume) the search a resolved config describes, writing its output folder (repeats,
    failures, merged results; the summary and figures are :mod:`weaknas_ray.commands.run`'s step).

    Args:
        config: from :func:`weaknas_ray.config.load_config`.
        benchmark: an already loaded benchmark (tests, fakes); ``None`` loads the configured one.
        progress: show a tqdm bar of queries and repeats.
        echo: where progress messages go (failed attempts are written to stderr).
        on_start: called with the benchmark once the settings are checked and repeats remain to run,
            before Ray starts (the run command starts the pool's t-SNE there).
        allow_loaders: ``benchmark.loader`` values the user allows to be imported (``--allow-loader``).

    Returns:
        A :class:`RunOutcome`.

    Raises:
        ConfigError: an output folder the OS refuses, bad method settings, a folder holding a different
            run, or too few CPUs.
    """
    import ray

    check_output_path(config["output"])
    store = RunStore(config["output"])
    benchmark = benchmark if benchmark is not None else load_configured_benchmark(config, allow_loaders)
    oracle = benchmark.oracle
    predictors = check_methods(config, benchmark)
    probe_address(config["ray"])
    try:
        optimum_targets(oracle, config["search"]["stop_at_optimum"])
    except WeakNASError as exc:
        raise ConfigError(f"search.{exc}") from None
    with store.lock():  # one writer per output folder
        store.prepare(config, run_meta(benchmark, predictor_dtypes(predictors)))
        done = store.finished()
        tasks = plan_tasks(config, done)
        echo(f"results: {store.root.resolve()} ({counted(len(done), 'repeat')} already done, {len(tasks)} to run)")
        failures: list[dict[str, Any]] = []
        if tasks:
            if on_start is not None:
                on_start(benchmark)
            started = connect(config["ray"])
            try:
                failures = _Dispatcher(config, benchmark, store, tasks, progress).run()
            finally:
                if started:
                    ray.shutdown()
        store.write_failures(failures)
        store.merge()
    return RunOutcome(store.root, len(tasks) - len(failures), len(done), failures, benchmark)


def run_meta(benchmark, dtypes: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The ``meta.json`` of a run's folder (what ``report`` needs without the benchmark)."""
    oracle = benchmark.oracle
    optimum = oracle.optimum

    def listed(indices):
        return None if indices is None else [int(i) for i in indices]

    return {
        "benchmark": benchmark.name,
        "pool_size": len(benchmark.space),
        "optimum": None if optimum is None else {"search": optimum[0], "reported": optimum[1]},
        "optimum_indices": listed(oracle.optimum_indices),
        "search_optimum_indices": listed(oracle.search_optimum_indices),
        "regret": oracle.regret,
        "notes": list(benchmark.notes),
        "predictor_dtype": dtypes,
    }


class _Dispatcher:
    """Hands repeats to worker actors, saves results, retries failures; one instance per run."""

    def __init__(self, config, benchmark, store: RunStore, tasks: list[RepeatTask], progress: bool):
        import ray

        from weaknas_ray.drivers.ray_scoring import put_pool_chunks

        ray_cfg = config["ray"]
        self.store = store
        self.queue = group_tasks(tasks, ray_cfg["repeats_per_actor"])
        self.attempts: dict[tuple[str, int], int] = {}
        self.max_attempts = 1 + ray_cfg["max_retries"]
        slots, chunk, members = plan_resources(ray_cfg, ray.cluster_resources(), len(benchmark.space), tasks, len(self.queue))
        self.options = {"num_cpus": ray_cfg["cpus_per_repeat"], "num_gpus": ray_cfg["num_gpus_per_repeat"]}
        self.args = (
            ray.put(benchmark),
            put_pool_chunks(benchmark.space.features, chunk) if chunk else None,
            ray_cfg["cpus_per_repeat"],
            ray_cfg["cpus_per_chunk"],
            members,
            ray_cfg["task_timeout_s"],
        )
        self.placement_timeout = ray_cfg["placement_timeout_s"]
        self.start_error = ""
        self.save_error: OutputWriteError | None = None  # the first repeat that could not be saved
        self.workers: list = []
        self.pending: dict[Any, Any] = {}  # ready-call ref -> actor not placed yet
        for _ in range(min(slots, len(self.queue))):
            self._new_worker()
        self.bar = _Progress(tasks, progress)

    def _new_worker(self):
        """Start an actor; it takes repeats once Ray has placed it (its ready call answered)."""
        worker = _remote_worker().options(**self.options).remote(*self.args)
        self.workers.append(worker)
        self.pending[worker.__ray_ready__.remote()] = worker
        return worker

    def _release(self, worker) -> None:
        """End an actor (dead, or idle with nothing left to hand out): its CPUs go back to the cluster."""
        import ray

        self.workers.remove(worker)
        try:
            ray.kill(worker)
        except ray.exceptions.RayError:
            pass

    def run(self) -> list[dict[str, Any]]:
        """Hand repeats to placed actors only: an actor Ray cannot place (its node was lost and the
        surviving CPUs are held) never holds a repeat; idle actors are ended once the queue is empty.

        Raises:
            WeakNASError: repeats remain but no actor has been placed for ``ray.placement_timeout_s``
                (or none is left to place).
            OutputWriteError: a finished repeat could not be saved (raised once the repeats in flight end).
        """
        import ray

        failures: list[dict[str, Any]] = []
        running: dict[Any, tuple[Any, list[RepeatTask]]] = {}
        idle: list = []  # placed actors with nothing to run
        finished_queries = 0
        stalled_since = None
        try:
            while self.queue or running:
                if self.save_error is not None:  # stopping: only the repeats in flight are finished
                    self.queue.clear()
                while self.queue and idle:
                    worker, group = idle.pop(), self.queue.pop(0)
                    running[worker.run.remote(group)] = (worker, group)
                if not self.queue:
                    for worker in idle:
                        self._release(worker)
                    idle.clear()
                if self.queue and not running:  # nothing runs and no placed actor is free
                    stalled_since = stalled_since or time.monotonic()
                    self._check_stall(time.monotonic() - stalled_since)
                else:
                    stalled_since = None
                refs = [*running, *self.pending]
                ready, _ = ray.wait(refs, num_returns=1, timeout=POLL_S)
                if ready:  # every other result that is in too: a second dead actor must not wait a pass
                    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
                for ref in ready:
                    if ref in self.pending:
                        self._placed(ref, idle)
                        continue
                    worker, group = running.pop(ref)
                    try:
                        outcomes, fell_back = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        worker = self._failed(group, exc, worker, failures)
                    else:
                        if fell_back:
                            self.bar.write(f"warning: {_named(group)}: {fell_back}; fitted and scored in its own "
                                           "actor instead")
                        finished_queries += self._save(group, outcomes)
                    if worker is not None:
                        idle.append(worker)
                self.bar.show(finished_queries + self._live_queries(running))
            if self.save_error is not None:
                self.save_error.fix = (f"{len(self.store.finished())} finished repeat(s) kept in "
                                       f"{self.store.root.resolve()}: free space, then rerun the same command to resume")
                raise self.save_error
        finally:
            self.bar.close()
            for worker in self.workers:
                ray.kill(worker)
        return failures

    def _save(self, group: list[RepeatTask], outcomes: list) -> int:
        """Save the finished repeats of ``group``; returns their queries. A save that fails (a full disk)
        stops the run: no repeat is handed out any more, those in flight are saved where they can be, and
        :meth:`run` then raises the first such error, with the number of finished repeats kept."""
        queries = 0
        for task, (rows, final) in zip(group, outcomes):
            try:
                self.store.write_repeat(task.method, task.repeat, rows, final)
            except OutputWriteError as exc:
                self.save_error = self.save_error or exc
                self.bar.write(f"repeat {task.repeat} of {task.method} could not be saved: {exc.path} ({exc.reason}); "
                               "stopping after the repeats in flight")
                continue
            queries += task.max_sample
            self.bar.update_repeat()
        return queries

    def _placed(self, ref, idle: list) -> None:
        """A starting actor answered: idle when it runs, dropped (with a message) when it could not start."""
        import ray

        worker = self.pending.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayError as exc:
            self.start_error = _describe(exc)
            self.bar.write(f"a repeat actor could not start: {self.start_error}")
            self._release(worker)
        else:
            idle.append(worker)

    def _check_stall(self, waited: float) -> None:
        """Stop, naming lost nodes and the repeats kept, when no actor can take the queued repeats."""
        if self.pending and waited <= self.placement_timeout:
            return
        import ray

        why = (f"no repeat actor could be placed for {self.placement_timeout:g} s (ray.placement_timeout_s)"
               if self.pending else f"no repeat actor is left ({self.start_error or 'all were lost'})")
        try:
            lost = [f"{n['NodeManagerAddress']} (node {n['NodeID'][:8]})" for n in ray.nodes() if not n["Alive"]]
        except Exception:  # noqa: BLE001 - only for the message
            lost = []
        kept = len(self.store.finished())
        raise WeakNASError(
            f"ray: {why} with {counted(sum(len(g) for g in self.queue), 'repeat')} left to run"
            + (f"; lost node(s): {', '.join(lost)}" if lost else "")
            + f"; {kept} finished repeat(s) kept in {self.store.root.resolve()}: rerun the same command to resume "
            f"once the cluster has {self.options['num_cpus']:g} free CPU(s) per repeat"
        )

    @staticmethod
    def _live_queries(running: dict) -> int:
        """Queries told so far by the repeats in flight; a dead actor (reported by its ``run``) counts 0."""
        import ray

        polls = [worker.queries_done.remote() for worker, _ in running.values()]
        ready, _ = ray.wait(polls, num_returns=len(polls), timeout=POLL_S) if polls else ([], [])
        done = 0
        for ref in ready:
            try:
                done += ray.get(ref)
            except ray.exceptions.RayActorError:
                pass
        return done

    def _failed(self, group: list[RepeatTask], exc: Exception, worker, failures: list):
        """Report a failed attempt of every repeat of ``group`` (they ran together); requeue the group
        while attempts remain. Returns the worker when it is still usable; ``None`` when it died (it is
        ended and a replacement started, which takes repeats once placed)."""
        import ray

        error = _describe(exc)
        setting = isinstance(exc, ray.exceptions.RayTaskError) and isinstance(exc.cause, ConfigError)
        again = False
        for task in group:
            key = (task.method, task.repeat)
            self.attempts[key] = self.attempts.get(key, 0) + 1
            again = self.attempts[key] < self.max_attempts and not setting  # a bad setting fails again
            message = (
                f"repeat {task.repeat} of {task.method} (seed {task.seed}) failed, attempt "
                f"{self.attempts[key]} of {self.max_attempts}: {error}" + ("; retrying" if again else "; giving up")
            )
            self.bar.write(message)
            if not again:
                failures.append({"method": task.method, "repeat": task.repeat, "seed": task.seed,
                                 "attempts": self.attempts[key], "error": error})
                self.bar.update_repeat()
        if again:
            self.queue.insert(0, group)
        if isinstance(exc, ray.exceptions.RayActorError):  # the process (or its node) died: replace it
            self._release(worker)  # an unavailable actor may come back: it must not keep its CPUs
            self._new_worker()
            return None
        return worker


def _named(group: list[RepeatTask]) -> str:
    """``repeat 3 of weaknas`` (``repeats 3, 4 of weaknas`` for a group)."""
    repeats = ", ".join(str(task.repeat) for task in group)
    return f"repeat{'s' if len(group) > 1 else ''} {repeats} of {group[0].method}"


def _describe(exc: Exception) -> str:
    """``Type: message`` of the original error inside a Ray error."""
    import ray

    cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None else exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


class _Progress:
    """A tqdm bar over queries with repeats done as postfix; silent (messages to stderr) when off."""

    def __init__(self, tasks: list[RepeatTask], enabled: bool):
        self.total_repeats, self.repeats = len(tasks), 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=sum(t.max_sample for t in tasks), unit="query", dynamic_ncols=True,
                            postfix=f"repeats 0/{self.total_repeats}")

    def show(self, queries: int) -> None:
        if self.bar is not None and queries > self.bar.n:
            self.bar.update(queries - self.bar.n)

    def update_repeat(self) -> None:
        self.repeats += 1
        if self.bar is not None:
            self.bar.set_postfix_str(f"repeats {self.repeats}/{self.total_repeats}")

    def write(self, message: str) -> None:
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
