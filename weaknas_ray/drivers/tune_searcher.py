"""WeakNAS (or any ask/tell optimizer of ``weaknas_ray.engine``) as a Ray Tune ``Searcher``.

Batch semantics (the HEBO pattern, design.md): the engine's ``ask`` gives one batch (one WeakNAS
iteration); ``suggest`` hands it out one configuration at a time and then returns ``None`` until every
trial of the batch has completed, tells the engine the whole batch, and asks for the next. At the budget
it returns ``Searcher.FINISHED``, so run it with ``num_samples=-1``.

Where the predictor trains: in a Ray task (``fit_in_task``; by default whenever Ray runs and has a
free CPU when the fit starts) while ``suggest`` returns ``None``, so Tune's event loop keeps running;
else inline in ``suggest``, in the Tune driver process. Neither waits on a CPU the trials hold: under
batch semantics no trial of this searcher runs while the next batch is chosen, and the task is started
only when a CPU is free.

Spaces: a :class:`SearchSpace` object, or any Tune ``param_space`` (:func:`space_from_param_space`):
``tune.choice`` over NAS-Bench-201's edges restricts that benchmark's exact pool; anything else becomes a
:class:`TuneSpace`, a pool enumerated or sampled from the domains. Constants pass through to each config.

Failures: an errored trial, a trial stopped before it reported the metric, or a NaN/missing metric still
counts as a query (the architecture is never proposed again) and is told to the engine with the worst
search value of the run so far (the lowest value told or in the same batch; 0.0 before any value is
known). Its base index is listed in ``failed``. ``mode="min"`` negates the metric for the engine, which
maximises.
"""

from __future__ import annotations

import copy
import logging
import math
import pickle
from typing import Any

import numpy as np
from ray.tune.search import Searcher

from weaknas_ray.drivers.tune_space import POOL_SIZE, SubsetSpace, TuneSpace, merge_config, space_from_param_space
from weaknas_ray.engine import make_optimizer
from weaknas_ray.engine.base import PredictorOptimizer
from weaknas_ray.exceptions import ConfigError, WeakNASError
from weaknas_ray.interfaces import SearchSpace

logger = logging.getLogger(__name__)

# NOTE: names of the two extra config fields every suggestion carries beside ``space.params``.
INDEX_KEY = "arch_index"
ARCH_KEY = "arch"


class WeakNASSearcher(Searcher):
    """Suggests architectures of a finite space with an ask/tell optimizer, batch by batch.

    Each suggestion is ``space.params(i)`` plus ``"arch_index"`` (the base space's index, e.g. the
    NAS-Bench-201 index) and ``"arch"`` (its string).

    Args:
        space: a :class:`SearchSpace`, or a Tune ``param_space`` dict (any of ``choice``, ``randint``,
            ``qrandint``, ``lograndint``, ``uniform``, ``quniform``, ``loguniform``, ``qloguniform``,
            ``randn``, nested dicts, constants; ``tune.choice`` over the fields of ``base_space`` or
            NAS-Bench-201's edges restricts that space); ``None`` to take the Tuner's ``param_space``.
        metric: the reported result key to optimise. ``TuneConfig``'s metric is used when this is
            ``None``; giving both, differently, is refused.
        mode: ``"max"`` or ``"min"``, with ``TuneConfig``'s mode as for ``metric``.
        max_sample: the budget: number of trials this searcher starts.
        method: the optimizer's name (``weaknas``, ``weaknas-ei``, ``random``, ``evolution``, ``tpe``).
        seed: seed of the optimizer (all its randomness derives from it).
        points_to_evaluate: configurations to run in the first batch, before the optimizer's own; each
            a dict with ``"arch"``, or every field of the space, or ``"arch_index"``. They count toward
            ``max_sample``.
        evaluated_rewards: known metric values of ``points_to_evaluate`` (same length); those points are
            then told to the optimizer (``Optimizer.add_evaluated``) and not run, and do not count toward
            ``max_sample``.
        base_space: the full space a dict ``space`` of ``tune.choice`` domains restricts; default:
            NAS-Bench-201 from the default data folder when the dict names its edges, else none.
        pool_size: candidates of a :class:`TuneSpace` that cannot be enumerated: that many are drawn,
            seeded (default 10,000).
        pool_extend: draw this many more candidates before each batch (a sampled pool only; default 0).
        numeric_choices: how a :class:`TuneSpace` encodes a ``tune.choice`` of more than two numbers:
            ``"ordinal"`` (default: one ordered column, log-scaled where the values span more than a decade)
            or ``"categorical"`` (one-hot, as written).
        fit_in_task: fit the predictor in a Ray task while ``suggest`` returns ``None`` when Ray runs and
            has a free CPU (``None``, default; ``True`` also warns when it cannot), or always in
            ``suggest`` (``False``).
        **settings: the optimizer's own keyword arguments (``init_sample``, ``sample_each_iter``,
            ``top_start``, ``top_end``, ``predictor``, ``predictor_params``, ...).

    Raises:
        ConfigError: bad mode, budget or points.
    """

    def __init__(
        self,
        space: SearchSpace | dict[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        max_sample: int = 100,
        method: str = "weaknas",
        seed: int = 0,
        points_to_evaluate: list[dict[str, Any]] | None = None,
        evaluated_rewards: list[float] | None = None,
        base_space: SearchSpace | None = None,
        pool_size: int = POOL_SIZE,
        pool_extend: int = 0,
        numeric_choices: str = "ordinal",
        fit_in_task: bool | None = None,
        **settings: Any,
    ):
        if mode not in (None, "max", "min"):
            raise ConfigError(f"WeakNASSearcher: mode must be 'max' or 'min', got {mode!r}")
        if int(max_sample) < 1:
            raise ConfigError(f"WeakNASSearcher: max_sample must be at least 1, got {max_sample}")
        if evaluated_rewards is not None and len(evaluated_rewards) != len(points_to_evaluate or []):
            raise ConfigError(
                f"WeakNASSearcher: evaluated_rewards has {len(evaluated_rewards)} values but points_to_evaluate "
                f"has {len(points_to_evaluate or [])} points; give one reward per point"
            )
        bad = [r for r in evaluated_rewards or [] if _as_float(r) is None or not math.isfinite(_as_float(r))]
        if bad:
            raise ConfigError(f"WeakNASSearcher: evaluated_rewards must be finite numbers, got {bad}")
        if int(pool_extend) < 0:
            raise ConfigError(f"WeakNASSearcher: pool_extend must be >= 0, got {pool_extend}")
        super().__init__(metric=metric, mode=mode)
        self.max_sample = int(max_sample)
        self.method = method
        self.seed = int(seed)
        self.settings = settings
        self._points = list(points_to_evaluate or [])
        self._rewards = None if evaluated_rewards is None else [float(r) for r in evaluated_rewards]
        self._base_space = base_space
        self.pool_size, self.pool_extend, self.fit_in_task = int(pool_size), int(pool_extend), fit_in_task
        self.numeric_choices = numeric_choices
        self._space: SearchSpace | None = None
        self._constants: dict[str, Any] = {}  # param_space keys without a domain, added to every config
        self._added: list[tuple[dict, float]] = []  # add_evaluated_point before the run: (config, value)
        self._fit_ref = None  # the Ray task fitting the next predictor (never saved)
        self._opt = None
        self._max_concurrent: int | None = None
        self._live: dict[str, int] = {}  # trial id -> engine index, for trials handed out and not complete
        self._queue: list[int] = []  # engine indices of the current batch not yet handed out
        self._order: list[int] = []  # engine indices of the current batch, in hand-out order
        self._batch: dict[int, float | None] = {}  # engine index -> engine value (None: failed), as they come
        self.failed: list[int] = []  # base indices of trials told with the worst value
        if space is not None:
            self._setup(space)

    # ----- Tune hooks -------------------------------------------------------------------------

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """Take metric and mode from the Tuner (``TuneConfig``) and, when the searcher has none, its space
        from ``param_space``. Returns ``False`` when the searcher already has a space, as Tune expects
        (Tune then adds ``param_space``'s constants to each config itself).

        Raises:
            ConfigError: ``TuneConfig``'s metric or mode differs from the one given to the constructor.
        """
        for name, given in (("metric", metric), ("mode", mode)):
            own = getattr(self, f"_{name}")
            if given is not None and own is not None and given != own:
                raise ConfigError(
                    f"WeakNASSearcher: {name} {own!r} given to the searcher but {given!r} to TuneConfig; the "
                    f"searcher, the Tuner and its scheduler must agree: give the {name} to TuneConfig only"
                )
        if mode not in (None, "max", "min"):
            raise ConfigError(f"WeakNASSearcher: mode must be 'max' or 'min', got {mode!r}")
        self._metric, self._mode = metric or self._metric, mode or self._mode
        if self._opt is not None:
            return False
        if config:
            self._setup(config)
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        """Run at most ``max_concurrent`` trials of a batch at once (batch semantics kept)."""
        self._max_concurrent = int(max_concurrent) if max_concurrent and max_concurrent > 0 else None
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The next configuration of the current batch; ``None`` while the batch is out and results are
        missing; ``Searcher.FINISHED`` at the budget."""
        if self._opt is None:
            raise ConfigError("WeakNASSearcher: no search space; pass `space` or a Tuner `param_space`")
        if self._metric is None or self._mode is None:
            raise ConfigError("WeakNASSearcher: metric and mode are not set; pass them to the searcher")
        while not self._queue:
            if self._live:
                return None
            if self._opt.finished:
                return Searcher.FINISHED
            if not self._start_batch():
                return None  # the predictor is fitting in a Ray task
        if self._max_concurrent is not None and len(self._live) >= self._max_concurrent:
            return None
        index = self._queue.pop(0)
        self._live[trial_id] = index
        return self.config_of(index)

    def add_evaluated_point(
        self, parameters: dict, value: float, error: bool = False, pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:  # fmt: skip
        """Tell the optimizer a configuration evaluated elsewhere (Tune's warm start): it learns from it and
        never proposes it; it does not count toward ``max_sample``. An errored point, or one without a
        finite value, is skipped with a warning; so is one already known. A pruned point counts with its
        last value. Before the run starts the points join its first iteration."""
        number = _as_float(value)
        if error or number is None or not math.isfinite(number):
            logger.warning("WeakNASSearcher: skipping evaluated point %s: error or no finite value (%r)", parameters, value)
            return
        if self._opt is None or not self._order:
            self._added.append((copy.deepcopy(parameters), number))
        else:
            self._tell_known([(parameters, number)])

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Record the trial's metric (or a failure); tell the engine once the whole batch is in."""
        index = self._live.pop(trial_id, None)
        if index is None:
            logger.warning("WeakNASSearcher: ignoring completion of unknown trial %s", trial_id)
            return
        value = None if error or not result else _as_float(result.get(self._metric))
        if value is None or not math.isfinite(value):
            logger.warning("WeakNASSearcher: trial %s (%s) gave no valid %r; counted with the worst value",
                           trial_id, self._space.arch_str(index), self._metric)
            self._batch[index] = None
        else:
            self._batch[index] = self._engine_value(value)
        if len(self._batch) == len(self._order):
            self._tell_batch()

    def save(self, checkpoint_path: str) -> None:
        """Pickle the optimizer and the trial bookkeeping (no object refs) to ``checkpoint_path``."""
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        """Load what :meth:`save` wrote; pending trials resume under the same trial ids."""
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))

    def get_state(self) -> dict[str, Any]:
        """A copy of the searcher's state: later ``suggest`` calls do not change it."""
        return copy.deepcopy({key: getattr(self, key) for key in _STATE_KEYS})

    def set_state(self, state: dict[str, Any]) -> None:
        for key, value in copy.deepcopy(state).items():
            if key in _STATE_KEYS:
                setattr(self, key, value)

    # ----- public helpers ---------------------------------------------------------------------

    @property
    def optimizer(self):
        """The wrapped ask/tell optimizer (its ``history`` holds engine indices and engine values)."""
        return self._opt

    @property
    def space(self) -> SearchSpace | None:
        """The space the optimizer searches (a :class:`SubsetSpace` for a restricted domain dict)."""
        return self._space

    def config_of(self, index: int) -> dict[str, Any]:
        """The trial config of engine index ``index``: the constants of ``param_space`` and the
        architecture's fields, plus (for a :class:`SearchSpace` object or a benchmark's domains) its base
        index and string; a :class:`TuneSpace` config holds exactly the ``param_space`` keys."""
        config = merge_config(self._constants, {(key,): value for key, value in self._space.params(index).items()})
        if getattr(self._space, "extra_keys", True):
            config.update({INDEX_KEY: self._base_index(index), ARCH_KEY: self._space.arch_str(index)})
        return config

    # ----- internals --------------------------------------------------------------------------

    def _setup(self, space: SearchSpace | dict[str, Any]) -> None:
        """Build the space and the optimizer (budget plus the pre-evaluated points)."""
        if isinstance(space, dict):
            space, self._constants = space_from_param_space(
                space, self._base_space, _default_base_space, self.pool_size, self.seed, self.numeric_choices)
        if not isinstance(space, SearchSpace):
            raise ConfigError(f"WeakNASSearcher: space must be a SearchSpace or a dict of tune domains, got {type(space).__name__}")
        self._space = space
        n_known = len(self._rewards or [])
        self._points = [self._engine_index(point) for point in self._points]
        if self.max_sample + n_known > len(space):
            raise ConfigError(
                f"WeakNASSearcher: max_sample {self.max_sample} plus {n_known} evaluated points exceeds the "
                f"{len(space)} architectures of {space.name}"
            )
        if len(set(self._points)) != len(self._points):
            raise ConfigError(f"WeakNASSearcher: points_to_evaluate repeat an architecture: {self._points}")
        if len(self._points) - n_known > self.max_sample:
            raise ConfigError(
                f"WeakNASSearcher: {len(self._points)} points_to_evaluate to run exceed max_sample {self.max_sample}"
            )
        self._opt = make_optimizer(self.method, space, self.max_sample, self.seed, **self.settings)

    def _start_batch(self) -> bool:
        """Ask the next batch; ``False`` while its predictor is still fitting in a Ray task.

        The first batch also carries ``points_to_evaluate``: those to run are enqueued after the
        optimizer's ``ask`` (so it never proposes them again), those with rewards and the points of
        ``add_evaluated_point`` are told through ``Optimizer.add_evaluated``; asked architectures beyond
        the budget are withdrawn.
        """
        asked = self._ask()
        if asked is None:
            return False
        points, self._points = self._points, []
        known = dict(zip(points, self._rewards or []))
        known.update((self._engine_index(point, grow=True), value) for point, value in self._added)
        self._rewards, self._added = None, []
        run = [i for i in points if i not in known]
        self._opt.enqueue(run)
        batch = run + [i for i in asked if i not in run and i not in known]
        room = self._opt.max_sample - self._opt.n_told
        self._opt.withdraw(batch[room:])
        self._opt.withdraw([i for i in asked if i in known])  # told below, with their rewards
        batch = batch[:room]
        self._queue, self._order, self._batch = list(batch), batch, {}
        self._tell_known(list(known.items()))
        if not batch and not self._opt.finished:
            raise WeakNASError(f"WeakNASSearcher: {self.method} proposed nothing with {self._opt.n_told} of {self._opt.max_sample} told")
        return True

    def _ask(self) -> list[int] | None:
        """The optimizer's next batch (after extending a sampled pool); ``None`` while a Ray task fits its
        predictor. A fit runs in a task when ``fit_in_task`` allows it (see the class docstring)."""
        if self._fit_ref is None and self.pool_extend and isinstance(self._space, TuneSpace):
            if self._space.extend(self.pool_extend):
                self._opt.extend_pool(len(self._space))
        data = self._opt.next_fit() if isinstance(self._opt, PredictorOptimizer) else None
        if data is None or (self._fit_ref is None and not _use_task(self.fit_in_task)):
            return [int(i) for i in self._opt.ask()]
        import ray

        if self._fit_ref is None:
            self._fit_ref = _fit_task().remote(self._opt.new_predictor(), data.X, data.y, data.seed)
        done, _ = ray.wait([self._fit_ref], timeout=0)
        if not done:
            return None
        model, self._fit_ref = ray.get(self._fit_ref), None
        return [int(i) for i in self._opt.ask_fitted(model)]

    def _tell_known(self, points: list[tuple[Any, float]]) -> None:
        """Tell the optimizer points evaluated elsewhere (engine index or config, metric value), beyond the
        budget; points already told or in the current batch are skipped with a warning."""
        indices, values = [], []
        for point, value in points:
            index = point if isinstance(point, (int, np.integer)) else self._engine_index(point, grow=True)
            if self._opt.evaluated[index] or index in self._order or index in indices:
                logger.warning("WeakNASSearcher: evaluated point %s is already known; skipped", point)
                continue
            indices.append(int(index))
            values.append(self._engine_value(value))
        if indices:
            self._opt.add_evaluated(np.asarray(indices, dtype=np.int64), np.asarray(values), extend_budget=True)

    def _tell_batch(self) -> None:
        """Tell the engine the completed batch in hand-out order (so a run does not depend on the order
        trials finish in), failures with the worst value known."""
        known = [v for v in self._batch.values() if v is not None] + self._opt.history.values
        if not known:  # no scale to place a failure on: any stand-in value could rank failures first
            raise WeakNASError(
                f"WeakNASSearcher: all {len(self._batch)} trials of the first batch failed or reported no valid "
                f"{self._metric!r}; nothing to rank architectures by. Check the trainable and the metric name."
            )
        worst = min(known)
        values = [self._batch[i] for i in self._order]
        self.failed += [self._base_index(i) for i, v in zip(self._order, values) if v is None]
        self._opt.tell(np.asarray(self._order, dtype=np.int64), np.array([worst if v is None else v for v in values]))
        self._order, self._batch = [], {}

    def _engine_value(self, value: float) -> float:
        return -value if self._mode == "min" else value

    def _base_index(self, index: int) -> int:
        return self._space.base_index(index) if isinstance(self._space, SubsetSpace) else int(index)

    def _engine_index(self, point: dict[str, Any], grow: bool = False) -> int:
        """The engine index of a ``points_to_evaluate`` entry; a :class:`TuneSpace` adds a configuration
        not in its pool (and, with ``grow``, tells the optimizer its pool grew)."""
        if isinstance(self._space, TuneSpace):
            index = self._space.add(point)
            if grow and self._opt is not None and self._opt.n_pool < len(self._space):
                self._opt.extend_pool(len(self._space))
            return index
        fields = self._space.param_choices() or {}
        if ARCH_KEY in point:
            return self._space.index_of(point[ARCH_KEY])
        if fields and all(key in point for key in fields):
            return self._space.index_of({key: point[key] for key in fields})
        if INDEX_KEY in point:
            index = int(point[INDEX_KEY])
            if isinstance(self._space, SubsetSpace):
                return self._space.local_index(index)
            return int(self._space.check_indices(index)[0])
        raise ConfigError(
            f"WeakNASSearcher: point {point!r} names no architecture; give {ARCH_KEY!r}, {INDEX_KEY!r} or "
            f"every field of {sorted(fields)}"
        )


# NOTE: everything that changes between suggest calls; the space is reachable through the optimizer.
_STATE_KEYS = (
    "_metric", "_mode", "_space", "_opt", "_max_concurrent", "_live", "_queue", "_order", "_batch",
    "_points", "_rewards", "failed", "_constants", "_added",
)
_FIT_TASK = None


def _use_task(fit_in_task: bool | None) -> bool:
    """Whether to fit in a Ray task: never for ``False``; else when Ray runs and a CPU is free (a task
    waiting for a CPU that idle reused trial actors hold would never run). ``True`` warns when it cannot."""
    if fit_in_task is False:
        return False
    import ray

    free = ray.is_initialized() and ray.available_resources().get("CPU", 0) >= 1
    if fit_in_task and not free:
        logger.warning("WeakNASSearcher: no free CPU for the predictor fit task (trials or reused actors hold them); "
                       "fitting in suggest")
    return free


def _fit_task():
    """The Ray task ``(predictor, X, y, seed) -> fitted predictor`` (one CPU), made once per process."""
    global _FIT_TASK
    if _FIT_TASK is None:
        import ray

        @ray.remote(num_cpus=1)
        def fit(predictor, X, y, seed):
            return predictor.fit(X, y, seed=seed)

        _FIT_TASK = fit
    return _FIT_TASK


def _as_float(value: Any) -> float | None:
    """A reported metric as a float; ``None`` when missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _default_base_space() -> SearchSpace:
    """NAS-Bench-201 (CIFAR-10 table) from the default data folder: the space Tune domain dicts name."""
    from weaknas_ray.benchmarks.registry import load_benchmark

    return load_benchmark("nasbench201").space
