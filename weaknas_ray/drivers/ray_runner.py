"""The Ray runner: every repeat of every method runs in a repeat actor, results stream to the output folder.

Flow: load the benchmark once in the driver, put it into the object store once, start as many
:class:`RepeatWorker` actors as the cluster's CPUs (and GPUs) allow, hand each a repeat at a time
(workers are reused, so each process imports torch once), save every finished repeat atomically,
retry a failed repeat ``ray.max_retries`` times, then write the summary and figures.

Seeds: repeat ``r`` uses seed ``search.seed + r`` for every method, so methods start from the same
conditions where their randomness allows. Every repeat calls exactly
:func:`weaknas_ray.drivers.loop.run_repeat`, so a seed gives the same rows here and in-process; with
``ray.repeats_per_actor`` > 1 a worker runs a group of repeats of one method in lockstep
(:func:`weaknas_ray.drivers.group_loop.run_group`, predictors fitted as one batched model) with the
same rows up to float rounding.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from weaknas_ray.benchmarks.registry import load_configured_benchmark
from weaknas_ray.config import method_settings
from weaknas_ray.exceptions import ConfigError, WeakNASError, interrupt_on_sigterm
from weaknas_ray.results.aggregate import counted
from weaknas_ray.results.records import RunStore

# NOTE: how often the driver refreshes the progress bar from the workers (seconds).
POLL_S = 0.5


@dataclass(frozen=True)
class RepeatTask:
    """One repeat to run: picklable, sent to a worker."""

    method: str
    repeat: int
    seed: int
    max_sample: int
    settings: dict[str, Any] = field(default_factory=dict)
    stop_at_optimum: bool = False


@dataclass
class RunOutcome:
    """What :func:`run_search` did: where, how many repeats ran or were skipped, what failed."""

    output: Path
    ran: int
    skipped: int
    failures: list[dict[str, Any]]
    summary: dict[str, Any] | None


def run_one_repeat(benchmark, task: RepeatTask, pool_scorer=None, on_batch: Callable | None = None):
    """Run one repeat in this process (see :func:`run_repeats`); returns its ``(rows, final_top1)``."""
    return run_repeats(benchmark, [task], pool_scorer, on_batch)[0]


def run_repeats(benchmark, tasks: list[RepeatTask], pool_scorer=None, on_batch: Callable | None = None):
    """Run repeats in this process: the body of a worker's ``run``.

    One task runs through :func:`~weaknas_ray.drivers.loop.run_repeat`; several (a group of
    ``ray.repeats_per_actor`` repeats of one method) run in lockstep through
    :func:`~weaknas_ray.drivers.group_loop.run_group`, which fits their predictors as one batched model.

    Args:
        benchmark: a :class:`~weaknas_ray.benchmarks.registry.Benchmark`.
        tasks: what to run; a group shares method and ``stop_at_optimum``.
        pool_scorer: passed to methods whose constructor takes one (chunked Ray scoring).
        on_batch: called with each batch's rows of any repeat.

    Returns:
        Per task, ``(rows, final_top1)``: the query rows (``method``, ``repeat``, ``seed``, the loop's
        columns, ``arch`` and the space's ``describe`` columns) and, for methods with a predictor, a
        one-row frame with the predicted top-1 of a predictor fitted on all its queries, evaluated (not a
        query), else ``None``.
    """
    from weaknas_ray.drivers.group_loop import run_group
    from weaknas_ray.drivers.loop import run_repeat
    from weaknas_ray.engine import make_optimizer, method_class

    space = benchmark.space
    oracles = [benchmark.oracle.for_repeat(task.seed) for task in tasks]
    optimizers = []
    for task in tasks:
        settings = dict(task.settings)
        if pool_scorer is not None and method_class(task.method).scores_pool:
            settings["pool_scorer"] = pool_scorer
        optimizers.append(make_optimizer(task.method, space, task.max_sample, task.seed, **settings))
    for optimizer, oracle in zip(optimizers, oracles):
        if getattr(optimizer, "wants_pool_stats", False):
            optimizer.target_stats = oracle.search_stats  # None where the oracle does not know the pool
    stop = tasks[0].stop_at_optimum
    if len(tasks) == 1:
        rows = [run_repeat(optimizers[0], oracles[0], stop_at_optimum=stop, on_batch=on_batch)]
    else:
        rows = run_group(optimizers, oracles, stop_at_optimum=stop, on_batch=on_batch)
    return [_outcome(*args, space) for args in zip(tasks, optimizers, oracles, rows)]


def _outcome(task: RepeatTask, optimizer, oracle, rows, space):
    """``(rows, final_top1)`` of a finished repeat, labelled (see :func:`run_repeats`)."""
    import pandas as pd

    rows = _label(rows, task, space)
    final = None
    top = optimizer.final_prediction()
    if top is not None:
        top1 = np.asarray(top[:1], dtype=np.int64)
        ev = oracle.evaluate(top1)
        final = pd.DataFrame(
            {
                "iteration": [optimizer.iteration],
                "arch_index": top1,
                "search_value": np.asarray(ev.search, dtype=np.float64),
                "reported_value": np.asarray(ev.reported, dtype=np.float64),
                "already_queried": [bool(optimizer.evaluated[top1[0]])],
                "queries": [optimizer.n_told],
            }
        )
        for name, values in ev.extra.items():
            final[name] = np.asarray(values, dtype=np.float64)
        final = _label(final, task, space)
    return rows, final


def _label(frame, task: RepeatTask, space):
    """``frame`` with ``method, repeat, seed`` in front and ``arch`` plus ``space.describe`` columns."""
    idx = frame["arch_index"].to_numpy(dtype=np.int64)
    frame.insert(0, "seed", task.seed)
    frame.insert(0, "repeat", task.repeat)
    frame.insert(0, "method", task.method)
    frame["arch"] = [space.arch_str(int(i)) for i in idx]
    for column, values in space.describe(idx).items():
        frame[column] = values
    return frame


class RepeatWorker:
    """The body of a repeat actor: holds the benchmark (zero-copy from the object store) and runs
    repeats one group at a time (``ray.repeats_per_actor``, default one repeat); a second thread answers
    :meth:`queries_done` for the progress bar.

    Args:
        benchmark: the benchmark (passed as an object ref, resolved by Ray).
        chunks: pool chunk refs for :class:`~weaknas_ray.drivers.ray_scoring.RayPoolScorer`, or ``None``
            to score in-process.
        cpus: the actor's CPUs; torch uses as many threads (at least 1).
        cpus_per_chunk: ``num_cpus`` of chunk tasks.
    """

    def __init__(self, benchmark, chunks: list | None, cpus: float, cpus_per_chunk: float):
        from weaknas_ray.drivers.ray_scoring import RayPoolScorer

        # torch reads OMP_NUM_THREADS when first imported (lazily, by a predictor): random-only workers
        # never pay for importing it
        threads = max(1, int(cpus))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        self.benchmark = benchmark
        self.scorer = RayPoolScorer(chunks, cpus_per_chunk) if chunks else None
        self._done = 0

    def run(self, tasks: list[RepeatTask]):
        """Run a group of repeats (usually one); returns their ``(rows, final_top1)`` in order."""
        try:
            return run_repeats(self.benchmark, tasks, self.scorer, on_batch=self._count)
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


def check_methods(config: dict[str, Any], benchmark) -> None:
    """Build every method's optimizer and predictor once, so that a bad setting stops the run before its
    output folder is written or Ray starts (a worker would only fail with it, repeat after repeat).

    Raises:
        ConfigError: naming the key (``search.max_sample``, ``methods.<m>...``).
    """
    from weaknas_ray.engine import make_optimizer

    search, n_pool = config["search"], len(benchmark.space)
    if search["max_sample"] > n_pool:
        raise ConfigError(f"search.max_sample: {search['max_sample']} exceeds the pool of {n_pool} architectures")
    for method in dict.fromkeys([*search["methods"], *config["methods"]]):  # unused sections too: no typo hides
        try:
            optimizer = make_optimizer(method, benchmark.space, search["max_sample"], search["seed"],
                                       **method_settings(config, method))
            if hasattr(optimizer, "new_predictor"):
                _check_device(config, method, optimizer.new_predictor())
        except WeakNASError as exc:
            raise ConfigError(_key_path(method, str(exc))) from exc


def _check_device(config: dict[str, Any], method: str, predictor) -> None:
    """A CUDA predictor needs GPUs: from ``ray.num_gpus_per_repeat``, else on this machine (local runs),
    checked here rather than in every worker."""
    device = str(getattr(predictor, "device", "cpu"))
    if device.startswith("cuda") and not config["ray"]["num_gpus_per_repeat"]:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                f"methods.{method}.predictor_params.device: {device!r}, but ray.num_gpus_per_repeat is 0 and "
                "this machine has no CUDA GPU; use device: cpu, or give repeats GPUs"
            )


def _key_path(method: str, text: str) -> str:
    """An optimizer's or predictor's error under the config key it came from: ``predictor: unknown ...``
    -> ``methods.weaknas.predictor: unknown ...``; errors already naming a path stay as they are."""
    from weaknas_ray.arguments import parameters
    from weaknas_ray.engine import method_class

    head, sep, rest = text.partition(": ")
    if text.startswith("methods."):
        return text
    if text.startswith(f"{method}."):
        return f"methods.{text}"
    if sep and " " not in head and head.split(".")[0] in parameters(method_class(method))[0]:
        return f"methods.{method}.{head}: {rest}"
    return f"methods.{method}: {text}"


def plan_tasks(config: dict[str, Any], done: set[tuple[str, int]]) -> list[RepeatTask]:
    """The repeats still to run, repeat-major (every method's repeat 0, then repeat 1, ...) so a
    partial run compares methods on the same seeds."""
    search = config["search"]
    settings = {m: method_settings(config, m) for m in search["methods"]}
    return [
        RepeatTask(m, r, search["seed"] + r, search["max_sample"], settings[m], search["stop_at_optimum"])
        for r in range(search["repeats"])
        for m in search["methods"]
        if (m, r) not in done
    ]


def group_tasks(tasks: list[RepeatTask], size: int) -> list[list[RepeatTask]]:
    """Split ``tasks`` into groups of at most ``size`` repeats of one method with consecutive repeat
    indices (``ray.repeats_per_actor``), ordered by their first task, so repeat-major stays repeat-major."""
    groups: list[list[RepeatTask]] = []
    current: dict[str, list[RepeatTask]] = {}
    for task in tasks:
        group = current.get(task.method)
        if group is None or len(group) == size or group[-1].repeat != task.repeat - 1:
            group = current[task.method] = []
            groups.append(group)
        group.append(task)
    return groups


def run_search(
    config: dict[str, Any], *, benchmark=None, progress: bool = True, report: bool = True, echo: Callable = print,
    allow_loaders: tuple[str, ...] = (),
) -> RunOutcome:
    """Run (or resume) the search a resolved config describes, writing its output folder.

    Args:
        config: from :func:`weaknas_ray.config.load_config`.
        benchmark: an already loaded benchmark (tests, fakes); ``None`` loads the configured one.
        progress: show a tqdm bar of queries and repeats.
        report: write ``summary.json`` and the figures at the end.
        echo: where progress messages go (failed attempts are written to stderr).
        allow_loaders: ``benchmark.loader`` values the user allows to be imported (``--allow-loader``).

    Returns:
        A :class:`RunOutcome`.

    Raises:
        ConfigError: bad method settings, a folder holding a different run, or too few CPUs.
    """
    import ray

    store = RunStore(config["output"])
    benchmark = benchmark if benchmark is not None else load_configured_benchmark(config, allow_loaders)
    oracle = benchmark.oracle
    check_methods(config, benchmark)
    probe_address(config["ray"])
    if config["search"]["stop_at_optimum"] and oracle.optimum_indices is None:
        raise ConfigError("search.stop_at_optimum: the benchmark's oracle does not know its optimum")
    with store.lock():  # one writer per output folder
        store.prepare(config, _meta(benchmark))
        done = store.finished()
        tasks = plan_tasks(config, done)
        echo(f"results: {store.root.resolve()} ({counted(len(done), 'repeat')} already done, {len(tasks)} to run)")
        failures: list[dict[str, Any]] = []
        embedding = None
        if tasks:
            from weaknas_ray.results.report import start_embedding

            embedding = start_embedding(benchmark) if report else None
            started = connect(config["ray"])
            try:
                failures = _Dispatcher(config, benchmark, store, tasks, progress).run()
            finally:
                if started:
                    ray.shutdown()
        store.write_failures(failures)
        store.merge()
        if embedding is not None and embedding.is_alive():
            echo("computing the pool's t-SNE layout for search_dynamics.png (once per pool; cached) ...")
            embedding.join()
        summary = None
        if report and (done or len(failures) < len(tasks)):
            from weaknas_ray.results.aggregate import summary_table
            from weaknas_ray.results.report import write_report

            summary = write_report(store, benchmark, echo=echo)
            echo(summary_table(summary))
            echo(f"results written to {store.root.resolve()}")
        return RunOutcome(store.root, len(tasks) - len(failures), len(done), failures, summary)


def _meta(benchmark) -> dict[str, Any]:
    optimum, indices = benchmark.oracle.optimum, benchmark.oracle.optimum_indices
    return {
        "benchmark": benchmark.name,
        "pool_size": len(benchmark.space),
        "optimum": None if optimum is None else {"search": optimum[0], "reported": optimum[1]},
        "optimum_indices": None if indices is None else [int(i) for i in indices],
    }


def plan_resources(
    ray_cfg: dict[str, Any], cluster: dict[str, float], n_pool: int, tasks: list[RepeatTask], n_groups: int
) -> tuple[int, int]:
    """How many repeat actors to start, and the rows per pool-scoring chunk (0: score in the actor).

    An actor blocked on its chunk tasks keeps its CPUs, so chunks can only use CPUs no actor holds:
    automatic chunking (``ray.chunk_size: null``) happens only when at least two chunk tasks' worth of CPUs
    stay free after one actor per group of repeats (few repeats on many CPUs, where it pays), with chunks
    sized for those free CPUs; never for repeats on GPUs (they score on their own GPU) or when no method
    scores the pool. A forced ``chunk_size`` keeps ``cpus_per_chunk`` free, fewer actors if need be.

    Raises:
        ConfigError: too few CPUs or GPUs for one repeat actor.
    """
    from weaknas_ray.drivers.ray_scoring import choose_chunk_size
    from weaknas_ray.engine import method_class

    cpus, per_repeat, per_chunk = float(cluster.get("CPU", 0)), ray_cfg["cpus_per_repeat"], ray_cfg["cpus_per_chunk"]
    slots = int(cpus // per_repeat)
    if ray_cfg["num_gpus_per_repeat"]:
        gpus = float(cluster.get("GPU", 0))
        slots = min(slots, int(gpus // ray_cfg["num_gpus_per_repeat"]))
        if slots < 1:
            raise ConfigError(f"ray.num_gpus_per_repeat: {ray_cfg['num_gpus_per_repeat']:g} GPUs per repeat but the cluster has {gpus:g}")
    if ray_cfg["max_workers"] is not None:
        slots = min(slots, ray_cfg["max_workers"])
    actors = min(slots, n_groups)
    scoring = [t for t in tasks if method_class(t.method).scores_pool]
    setting, chunk = ray_cfg["chunk_size"], 0
    free = cpus - actors * per_repeat
    if scoring and (setting is not None or (not ray_cfg["num_gpus_per_repeat"] and free >= 2 * per_chunk)):
        chunk = choose_chunk_size(n_pool, max(_ensemble_size(t) for t in scoring), free / per_chunk, setting)
    if chunk:
        actors = min(actors, int((cpus - per_chunk) // per_repeat))
    if actors < 1:
        raise ConfigError(
            f"ray.cpus_per_repeat: the cluster has {cpus:g} CPUs, too few for one repeat actor "
            f"({per_repeat:g} CPUs)" + (f" plus chunk tasks ({per_chunk:g} CPUs)" if chunk else "")
        )
    return actors, chunk


def _ensemble_size(task: RepeatTask) -> int:
    """E of a task's method: its ``n_members`` setting, else the constructor's default, else 1."""
    from weaknas_ray.engine import method_class

    param = inspect.signature(method_class(task.method).__init__).parameters.get("n_members")
    return int(task.settings.get("n_members", 1 if param is None else param.default))


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
        slots, chunk = plan_resources(ray_cfg, ray.cluster_resources(), len(benchmark.space), tasks, len(self.queue))
        self.options = {"num_cpus": ray_cfg["cpus_per_repeat"], "num_gpus": ray_cfg["num_gpus_per_repeat"]}
        self.args = (
            ray.put(benchmark),
            put_pool_chunks(benchmark.space.features, chunk) if chunk else None,
            ray_cfg["cpus_per_repeat"],
            ray_cfg["cpus_per_chunk"],
        )
        self.workers = [self._new_worker() for _ in range(min(slots, len(self.queue)))]
        self.bar = _Progress(tasks, progress)

    def _new_worker(self):
        return _remote_worker().options(**self.options).remote(*self.args)

    def run(self) -> list[dict[str, Any]]:
        import ray

        failures: list[dict[str, Any]] = []
        running: dict[Any, tuple[Any, list[RepeatTask]]] = {}
        idle = list(self.workers)
        finished_queries = 0
        try:
            while self.queue or running:
                while self.queue and idle:
                    worker, group = idle.pop(), self.queue.pop(0)
                    running[worker.run.remote(group)] = (worker, group)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                if ready:  # every other result that is in too: a second dead actor must not wait a pass
                    ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0)
                for ref in ready:
                    worker, group = running.pop(ref)
                    try:
                        outcomes = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        worker = self._failed(group, exc, worker, failures)
                    else:
                        for task, (rows, final) in zip(group, outcomes):
                            self.store.write_repeat(task.method, task.repeat, rows, final)
                            finished_queries += task.max_sample
                            self.bar.update_repeat()
                    idle.append(worker)
                self.bar.show(finished_queries + self._live_queries(running))
        finally:
            self.bar.close()
            for worker in self.workers:
                ray.kill(worker)
        return failures

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
        while attempts remain. Returns a usable worker."""
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
        if isinstance(exc, ray.exceptions.RayActorError):  # the process died: replace it
            self.workers.remove(worker)
            worker = self._new_worker()
            self.workers.append(worker)
        return worker


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
