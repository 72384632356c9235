"""WeakNAS as an ask/tell optimizer: a new weak predictor each iteration zooms into the predicted top.

Reproduces weaknas-method.md ("The loop"): iteration 0 draws ``init_sample`` architectures uniformly;
every later iteration ``z`` fits a fresh predictor on the evaluated architectures, scores the whole pool
and picks ``sample_each_iter`` new ones, uniformly from the predicted top-N (:class:`WeakNAS`) or by
expected improvement over an ensemble (:class:`WeakNASEI`).

Seeding: iteration ``z``'s predictor is fitted with ``seed + z * E`` (member ``i`` gets ``+ i``), and
every uniform draw of iteration ``z`` uses ``numpy.random.default_rng([seed, z])``, so a run depends on
the seed alone and chunked or Ray-scored runs select the same indices as local ones.

Top-N: the batch of iteration ``z`` is drawn from the predicted top-``top_n[z - 1]``, as in the
published loop, whose list for batch ``z`` is built (with ``top_acc_list[z - 1]``) by the model fitted
on the batches before it.

Targets: the search values of the training set, z-scored by the mean and population std that
``target_scaling`` names: ``"pool"`` the whole pool's (what the published code does; only an oracle that
knows the pool has them, handed over as ``pool_stats``), ``"initial"`` those of iteration 0's uniform
sample (an unbiased estimate of the pool's, available everywhere), ``"train"`` the training set's own.
The choice changes the search, not only the numbers: with an L2 penalty and an absolute early-stopping
tolerance, the target scale decides how finely the MLP ranks the top of the pool. Under pool scaling
the pool's top-100 NAS-Bench-201 cells span about 0.04 target units (a loose ranking that keeps
exploring); z-scored by a training set that has zoomed into the top they span several units (a sharp
ranking that exploits, and can stall in a region without the optimum). The EI incumbent is z-scored
the same way as the targets.

The default :class:`WeakNAS` is not the published loop: it exploits harder and escapes when that stalls.
It draws each batch from a top-20 (twice the batch, instead of 100), so the predicted order inside the
top counts, with targets z-scored by iteration 0's statistics (``initial``: the published code's loose
ranking, available in every space). A search stalls when the region it zooms into lacks the optimum, or
holds only cells just below it. After ``stall_patience`` iterations in a row without a new best search
value, and until a batch finds one, each batch is split (``stall_escape="local+widen"``):

- half is the predictor's best unevaluated neighbours (:meth:`~weaknas_ray.interfaces.SearchSpace.neighbours`)
  of the incumbent (``stall_anchors``): a predictor-guided local search, which reaches an optimum that the
  smooth predictor ranks just below its neighbours;
- half is drawn from a top-N that doubles with every further stalled iteration (capped at the pool), which
  leaves a local optimum that local moves cannot.

``"local"`` and ``"widen"`` apply one of the two rules to the whole batch. :class:`PublishedWeakNAS`
(``weaknas-published``) is the published loop exactly: top-100, pool scaling, no stall rule.

The answer: after the last batch the published code runs its fit once more (on every query under the
published ``keep_old="all"``; ``"top"`` and ``"none"`` keep old data by their own rule) and logs that
model's predicted top; :meth:`WeakNAS.final_prediction` does the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from weaknas_ray.acquisition import ChunkResult, ScoreRequest, incumbent, score_pool, uniform_from_top
from weaknas_ray.engine.base import FitData, PredictorOptimizer
from weaknas_ray.engine.schedule import query_sizes, top_n_schedule
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.predictors import Predictor, check_predictor_params, make_predictor

KEEP_OLD = ("all", "top", "none")
TARGET_SCALING = ("pool", "initial", "train")
TARGET_TRANSFORMS = ("auto", "none", "log", "rank")
AUTO = "auto"
STALL_ESCAPES = ("local+widen", "local", "widen")
# NOTE: the method logs each iteration's predicted top-1000 (weaknas-method.md, step 7).
N_LOGGED = 1000

PoolScorer = Callable[[Predictor, ScoreRequest], ChunkResult]
# (unfitted predictor, X, y, seed) -> the fitted predictor, as ``predictor.fit(X, y, seed)`` would be
Fitter = Callable[[Predictor, np.ndarray, np.ndarray, int], Predictor]


def default_predictor(space) -> str:
    """The predictor ``predictor="auto"`` fits on ``space``: gradient-boosted trees (``"gbt"``) where some
    of its parameters are numbers (HPOLib's widths and rates, OFA's kernel sizes and depths, a Tune space
    of ranges), the MLP (``"mlp"``) where all are categories (NAS-Bench-201's and NAS-Bench-101's cells).
    The published method made the same split: the MLP for the cell benchmarks, boosted trees for
    MobileNet. On NAS-Bench-201 CIFAR-100 the trees need more queries to the optimum (mean 106 against 71
    over 20 seeds); on HPOLib they find it far more often (docs/results-hpolib.md)."""
    table = space.parameter_table()
    return "gbt" if table is not None and any(p.numeric for p in table[0]) else "mlp"


def default_batch(predictor: str) -> int:
    """``sample_each_iter`` when none is given: 10 for the networks (the published batch; a fit takes
    seconds), 5 for boosted trees, which refit in a fraction of one. On HPOLib (seeds 0..29, budget 200)
    batches of 5 lower the mean log-regret at 200 queries on all four datasets and at 100 on three
    (docs/results-hpolib.md)."""
    return 5 if predictor == "gbt" else 10


def rank_scores(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Normal scores of ``values`` by their rank in ``reference``: ``ndtri(q)`` with ``q`` the mid-rank share
    ``(below + at_or_below) / (2 n)``, clipped to ``[0.5 / n, 1 - 0.5 / n]``; ties share a score. Shape of
    ``values``; float64. Monotone and free of the values' scale, so a loss spanning five decades and an
    accuracy with a heavy lower tail are learnt alike."""
    from scipy.special import ndtri

    ref = np.sort(np.asarray(reference, dtype=np.float64))
    n = ref.size
    below = np.searchsorted(ref, values, side="left")
    at_or_below = np.searchsorted(ref, values, side="right")
    q = np.clip((below + at_or_below) / (2.0 * n), 0.5 / n, 1 - 0.5 / n)
    return ndtri(q)


class WeakNAS(PredictorOptimizer):
    """WeakNAS, uniform variant: ``k`` drawn uniformly from the predicted top-N minus evaluated.

    Args:
        space: the search space; its ``features`` (``(n_pool, d)``) are the predictor's inputs.
        max_sample: B, budget of distinct queries.
        seed: repeat seed, >= 0.
        init_sample: n0, random architectures of iteration 0 (default 10).
        sample_each_iter: k, architectures per later iteration; default (``None``) 10 for the MLP (the
            published batch) and 5 for boosted trees, which refit in a fraction of a second, so that the
            search learns from its queries twice as often (:func:`default_batch`).
        top_start, top_end, top_decay: the top-N schedule (:func:`~weaknas_ray.engine.schedule.top_n_schedule`;
            default a constant N = 20, twice the batch; every published command uses a constant 100).
        keep_old: training set of each predictor: ``"all"`` evaluated (published default); ``"top"`` the
            last batch plus those of the previous training set that the previous predictor ranked in
            its top-N; ``"none"`` only the last batch (both as in the published code).
        predictor: a name of :data:`~weaknas_ray.predictors.PREDICTORS`, or ``"auto"`` (default): the one
            :func:`default_predictor` picks for the space.
        predictor_params: extra constructor arguments of the predictor (the chosen one under ``"auto"``).
        n_members: ensemble size E; the uniform variant ranks by the member mean.
        target_scaling: what the targets are z-scored by (see the module docstring): ``"pool"``
            (published; needs ``pool_stats``), ``"initial"`` (default) or ``"train"``.
        target_transform: what is z-scored (by ``target_scaling``) into targets: ``"none"``: the search
            values; ``"log"``: ``-log(-v)`` of search values ``v`` that are negated losses (all below 0), so
            a loss spanning decades is learnt on the scale its regret is measured on; ``"rank"``: their
            normal scores within the training set (:func:`rank_scores`), free of any scale (``target_scaling``
            is then unused). ``"auto"`` (default): ``"rank"`` while the values so far are all negative (negated
            losses) and ``target_scaling`` is not ``"pool"``, else ``"none"``.
        stall_patience: after this many iterations in a row without a new best search value the search
            escapes by ``stall_escape`` until a batch finds a new best; ``None`` never (default 2).
        stall_escape: ``"local+widen"`` (default): half of each batch by each of the two rules below;
            ``"local"``: the unevaluated neighbours of the best evaluated architectures that the predictor
            ranks best; ``"widen"``: drawn from a top-N that doubles with every further stalled iteration
            (capped at the pool).
        stall_anchors: how many of the best evaluated architectures the local escape searches around
            (more when their neighbours hold fewer than ``k`` unevaluated ones; default 1: the best, a
            local search from the incumbent).
        pool_scorer: ``(predictor, request) -> ChunkResult`` replacing local whole-pool scoring (the Ray
            runner passes one that scores chunks in tasks); must equal :func:`~weaknas_ray.acquisition.score_pool`.
        pool_stats: ``(mean, population std)`` of the search signal over the whole pool, where the oracle
            knows them (:attr:`~weaknas_ray.spaces.Oracle.search_stats`); drivers pass it.
        fitter: ``(unfitted predictor, X, y, seed) -> fitted predictor`` replacing ``predictor.fit`` (the Ray
            runner passes one that fits member slices in tasks); must equal that fit.

    Raises:
        ConfigError: an unknown setting, or ``target_scaling="pool"`` without ``pool_stats``.
    """

    method = "weaknas"
    acquisition = "mean"
    scores_pool = True

    def __init__(
        self,
        space,
        max_sample: int,
        seed: int,
        init_sample: int = 10,
        sample_each_iter: int | None = None,
        top_start: int = 20,
        top_end: int = 20,
        top_decay: float = 0.96,
        keep_old: str = "all",
        predictor: str = AUTO,
        predictor_params: dict | None = None,
        n_members: int = 1,
        target_scaling: str = "initial",
        target_transform: str = AUTO,
        stall_patience: int | None = 2,
        stall_escape: str = "local+widen",
        stall_anchors: int = 1,
        pool_scorer: PoolScorer | None = None,
        pool_stats: tuple[float, float] | None = None,
        fitter: Fitter | None = None,
    ):
        super().__init__(len(space), max_sample, seed)
        if self.seed < 0:
            raise ConfigError(f"{self.method}: seed must be >= 0, got {seed}")
        if keep_old not in KEEP_OLD:
            raise ConfigError(f"{self.method}.keep_old: unknown {keep_old!r}; choose one of {list(KEEP_OLD)}")
        if n_members < 1:
            raise ConfigError(f"{self.method}.n_members must be >= 1, got {n_members}")
        if stall_patience is not None and stall_patience < 1:
            raise ConfigError(f"{self.method}.stall_patience must be >= 1 or null (no stall rule), got {stall_patience}")
        if stall_escape not in STALL_ESCAPES:
            raise ConfigError(f"{self.method}.stall_escape: unknown {stall_escape!r}; choose one of {list(STALL_ESCAPES)}")
        if stall_anchors < 1:
            raise ConfigError(f"{self.method}.stall_anchors must be >= 1, got {stall_anchors}")
        if target_scaling not in TARGET_SCALING:
            raise ConfigError(
                f"{self.method}.target_scaling: unknown {target_scaling!r}; choose one of {list(TARGET_SCALING)}"
            )
        if target_transform not in TARGET_TRANSFORMS:
            raise ConfigError(
                f"{self.method}.target_transform: unknown {target_transform!r}; choose one of {list(TARGET_TRANSFORMS)}"
            )
        if target_scaling == "pool" and target_transform == "log":
            raise ConfigError(f"{self.method}.target_transform: 'log' cannot be z-scored by the pool's statistics "
                              "(target_scaling 'pool'); use 'initial'")
        if target_scaling == "pool" and pool_stats is None:
            raise ConfigError(
                f"{self.method}.target_scaling: 'pool' needs the pool's mean and std, which this benchmark's oracle "
                "does not know; use 'initial' (the mean and std of iteration 0's random sample)"
            )
        self.space = space
        self.predictor = default_predictor(space) if predictor == AUTO else predictor
        sample_each_iter = default_batch(self.predictor) if sample_each_iter is None else sample_each_iter
        self.sizes = query_sizes(init_sample, sample_each_iter, max_sample)
        self.sample_each_iter = int(sample_each_iter)
        self.top_n = top_n_schedule(len(self.sizes), top_start, top_end, top_decay)
        self.keep_old = keep_old
        self.predictor_params = dict(predictor_params or {})
        self.n_members = int(n_members)
        self._check_predictor_params(chosen_by_auto=predictor == AUTO)
        self.pool_scorer = pool_scorer
        self.fitter = fitter
        self.target_scaling = target_scaling
        self.target_transform = target_transform
        self.stall_patience = None if stall_patience is None else int(stall_patience)
        self.stall_escape = stall_escape
        self.stall_anchors = int(stall_anchors)
        self.pool_stats = None if pool_stats is None else (float(pool_stats[0]), float(pool_stats[1]))
        self._kept = np.empty(0, dtype=np.int64)  # keep_old="top": what the next training set keeps
        self._given_model: Predictor | None = None  # set only inside ask_fitted

    def next_fit(self) -> FitData | None:
        """The data the next ``ask`` fits its predictor on; ``None`` when it fits none (iteration 0, a
        batch still pending, budget spent). Lets a driver fit several repeats' predictors in one batched
        call (:func:`~weaknas_ray.drivers.group_loop.run_group`) and hand each back to :meth:`ask_fitted`."""
        if self.iteration == 0 or self.pending.any() or self.finished:
            return None
        return self._fit_data(self.iteration)

    def _check_predictor_params(self, chosen_by_auto: bool) -> None:
        """Refuse ``predictor_params`` the predictor does not take before anything runs; under ``"auto"``
        the message says which predictor was chosen and how to name another."""
        try:
            check_predictor_params(self.predictor, {"n_members": self.n_members, **self.predictor_params})
        except ConfigError as err:
            if not chosen_by_auto:
                raise
            raise ConfigError(f"{err} (predictor 'auto' chose {self.predictor!r} for this space; name the predictor "
                              f"these settings are for, e.g. {self.method}.predictor: mlp)") from None

    def new_predictor(self) -> Predictor:
        """An unfitted predictor of this optimizer's settings."""
        return make_predictor(self.predictor, n_members=self.n_members, **self.predictor_params)

    def ask_fitted(self, model: Predictor) -> np.ndarray:
        """``ask()``, scoring with ``model``: this iteration's predictor already fitted on :meth:`next_fit`'s data."""
        self._given_model = model
        try:
            return self.ask()
        finally:
            self._given_model = None

    def final_prediction(self) -> np.ndarray | None:
        """The predicted top (best first, at most 1000) of the predictor iteration ``self.iteration`` would
        fit (on every query told so far under ``keep_old="all"``), logged as that iteration of
        ``history.predicted_top``; its first entry is the method's answer. ``None`` before any query is
        told or while a batch is pending."""
        if self.n_told == 0 or self.pending.any():
            return None
        z = self.iteration
        if z not in self.history.predicted_top:
            model, _ = self._fit(z)
            result = self._score(model, ScoreRequest("mean", n_top=N_LOGGED, k=0))
            self.history.predicted_top[z] = result.top_indices[:N_LOGGED].copy()
        return self.history.predicted_top[z]

    def _rng(self, z: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, z])

    def _n_top(self, z: int) -> int:
        """N of the batch of iteration ``z`` (>= 1): the published ``top_acc_list[z - 1]`` (its last entry once
        added points run past the schedule); when the stall escape widens, doubled for every stalled
        iteration from ``stall_patience`` on (capped at the pool)."""
        n = int(self.top_n[min(z, len(self.top_n)) - 1])
        if not self.stall_patience or self.stall_escape == "local":
            return n
        doublings = self.stalled_iterations() - self.stall_patience + 1
        return n if doublings <= 0 else int(min(n * 2**doublings, self.n_pool))

    def _score(self, model: Predictor, request: ScoreRequest) -> ChunkResult:
        if self.pool_scorer is None:
            return score_pool(model, self.space.features, request)
        return self.pool_scorer(model, request)

    def _propose(self, room: int) -> np.ndarray:
        if self.pending.any():  # one iteration's batch at a time: wait until it is told
            return np.empty(0, dtype=np.int64)
        z = self.iteration
        # NOTE: points added by add_evaluated can shift the iterations past the schedule: later ones use k.
        k = min(self.sizes[z] if z < len(self.sizes) else self.sample_each_iter, room)
        if z == 0:  # the same draw as choice(n_pool) when nothing is known yet
            free = np.flatnonzero(~(self.evaluated | self.pending))
            return self._rng(0).choice(free, size=min(k, free.size), replace=False)
        model, data = self._fit(z)
        excluded = self.evaluated | self.pending
        moves = self._local_moves(excluded, k)
        observed = self._on_target_scale(np.asarray(self.history.values), data)
        request = self._request(z, k, np.flatnonzero(excluded if moves is None else ~moves), observed)
        result = self._score(model, request)
        self.history.predicted_top[z] = result.top_indices[:N_LOGGED].copy()
        if self.keep_old == "top":
            self._kept = self._kept_after(data.indices, result, z)
        if moves is None:
            return self._select(result, z, k, excluded)
        # the best-scoring neighbours (the only candidates the request allowed), then the widened draw
        picks = result.candidates[: k if self.stall_escape == "local" else (k + 1) // 2].copy()
        if picks.size == k:
            return picks
        excluded[picks] = True
        return np.concatenate([picks, self._widened(result, z, k - picks.size, excluded)])

    def _widened(self, result: ChunkResult, z: int, k: int, excluded: np.ndarray) -> np.ndarray:
        """``k`` drawn uniformly from the (widened) top-N minus ``excluded``; from the whole scored top
        when fewer are free there (a pool almost exhausted)."""
        top = result.top_indices[: self._n_top(z)]
        free = top[~excluded[top]]
        if free.size < k:
            free = result.top_indices[~excluded[result.top_indices]]
        return self._rng(z).choice(free, size=min(k, free.size), replace=False)

    def _local_moves(self, excluded: np.ndarray, k: int) -> np.ndarray | None:
        """The local stall escape's candidates, a mask over the pool: the unevaluated neighbours of the
        ``stall_anchors`` best evaluated architectures, or of as many more as it takes to hold ``k``.
        ``None`` when the search does not escape locally now, or no anchors' neighbours hold ``k``."""
        if self.stall_escape == "widen" or not self.stall_patience or self.stalled_iterations() < self.stall_patience:
            return None
        indices = np.asarray(self.history.indices, dtype=np.int64)
        anchors = indices[np.argsort(-np.asarray(self.history.values), kind="stable")]
        moves, free = np.zeros(self.n_pool, dtype=bool), ~excluded
        for count, anchor in enumerate(anchors, start=1):
            moves[self.space.neighbours(anchor)] = True
            if min(self.stall_anchors, anchors.size) <= count and np.count_nonzero(moves & free) >= k:
                return moves & free
        return None

    def _training_set(self, z: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(n,)`` and search values ``(n,)`` the iteration-``z`` predictor trains on."""
        idx = np.asarray(self.history.indices, dtype=np.int64)
        val = np.asarray(self.history.values, dtype=np.float64)
        if self.keep_old == "all":
            return idx, val
        keep = np.asarray(self.history.iterations) == z - 1
        if self.keep_old == "top":
            keep |= np.isin(idx, self._kept)
        return idx[keep], val[keep]

    def _kept_after(self, trained: np.ndarray, result: ChunkResult, z: int) -> np.ndarray:
        """``keep_old="top"``: the training set's architectures inside the top-N the next batch is drawn from."""
        return trained[np.isin(trained, result.top_indices[: self._n_top(z)])]

    def _fit_data(self, z: int) -> FitData:
        """The iteration-``z`` training set with its targets (z-scored, or rank scores) and the fit's seed."""
        idx, val = self._training_set(z)
        transform = self.resolved_transform()
        if transform == "rank":
            y, mean, std = rank_scores(val, val), 0.0, 1.0
        else:
            val = self._transformed(val, transform)
            mean, std = self._target_stats(val, transform)
            std = std if std > 0 else 1.0  # all values equal: centre only
            y = (val - mean) / std
        return FitData(idx, self.space.features[idx], y.astype(np.float32), self.seed + z * self.n_members, mean, std)

    def _on_target_scale(self, values: np.ndarray, data: FitData) -> np.ndarray:
        """Search values on the scale of ``data``'s targets (the EI incumbent)."""
        transform = self.resolved_transform()
        if transform == "rank":
            return rank_scores(values, np.asarray(self.history.values)[np.isin(self.history.indices, data.indices)])
        return (self._transformed(values, transform) - data.mean) / data.std

    def resolved_transform(self) -> str:
        """``target_transform`` with ``"auto"`` decided on the values so far: ``"rank"`` while every one is
        below 0 (a negated loss, whose tail of diverged runs spans decades), else ``"none"`` (accuracies;
        an objective that turns out not to be a loss falls back at its first value at or above 0)."""
        if self.target_transform != AUTO:
            return self.target_transform
        negated_loss = len(self.history.values) > 0 and max(self.history.values) < 0
        return "rank" if negated_loss and self.target_scaling != "pool" else "none"

    def _transformed(self, values: np.ndarray, transform: str) -> np.ndarray:
        """``values`` under ``"none"`` or ``"log"``; a value at or above 0 under ``"log"`` is refused."""
        if transform == "none":
            return values
        if (values >= 0).any():
            raise ConfigError(
                f"{self.method}.target_transform: 'log' takes negated losses (search values below 0), got "
                f"{float(values.max())}; use 'none' or 'rank'"
            )
        return -np.log(-values)

    def stalled_iterations(self) -> int:
        """Completed iterations in a row, up to the last, whose batch did not raise the best search value."""
        if not self.history.values:
            return 0
        iterations = np.asarray(self.history.iterations)
        best = np.maximum.accumulate(np.asarray(self.history.values))
        last = best[np.r_[np.flatnonzero(np.diff(iterations)), iterations.size - 1]]  # best after each iteration
        rose = np.flatnonzero(np.diff(last) > 0)
        return int(last.size - 1 - (rose[-1] + 1 if rose.size else 0))

    def _target_stats(self, train_values: np.ndarray, transform: str) -> tuple[float, float]:
        """``(mean, std)`` the (``transform``-ed) targets are z-scored by, under ``target_scaling``."""
        if self.target_scaling == "pool":
            return self.pool_stats
        if self.target_scaling == "initial":
            first = np.asarray(self.history.values)[np.asarray(self.history.iterations) == 0]
            first = self._transformed(first, transform)
            return float(first.mean()), float(first.std())
        return float(train_values.mean()), float(train_values.std())

    def _fit(self, z: int) -> tuple[Predictor, FitData]:
        """The iteration's predictor (the one given to :meth:`ask_fitted`, else a new one fitted here)
        and the data it was fitted on."""
        data = self._fit_data(z)
        model = self._given_model
        if model is None:
            model = self.new_predictor()
            model = model.fit(data.X, data.y, seed=data.seed) if self.fitter is None else self.fitter(model, data.X, data.y, data.seed)
        return model, data

    def _request(self, z: int, k: int, excluded: np.ndarray, observed: np.ndarray) -> ScoreRequest:
        """What to score: the top-max(N, 1000) and the best k by mean (the uniform draw's fallback)."""
        return ScoreRequest("mean", n_top=max(self._n_top(z), N_LOGGED), k=k, excluded=excluded)

    def _select(self, result: ChunkResult, z: int, k: int, excluded: np.ndarray) -> np.ndarray:
        return uniform_from_top(result, excluded, self._n_top(z), k, self._rng(z))


class PublishedWeakNAS(WeakNAS):
    """The published WeakNAS loop exactly (method ``weaknas-published``): a constant top-100, targets
    z-scored by the pool's statistics, no stall rule, the MLP on every space. Takes every :class:`WeakNAS`
    argument; only these defaults differ."""

    method = "weaknas-published"
    predictor_defaults = {"mlp": {"dtype": "float32"}}  # the paper's float32 arithmetic on every machine

    def __init__(self, space, max_sample: int, seed: int, sample_each_iter: int = 10, top_start: int = 100,
                 top_end: int = 100, target_scaling: str = "pool", stall_patience: int | None = None,
                 predictor: str = "mlp", target_transform: str = "none", predictor_params: dict | None = None,
                 **settings):  # fmt: skip
        super().__init__(space, max_sample, seed, sample_each_iter=sample_each_iter, top_start=top_start,
                         top_end=top_end, target_scaling=target_scaling,
                         stall_patience=stall_patience, predictor=predictor, target_transform=target_transform,
                         predictor_params={**self.predictor_defaults.get(predictor, {}), **(predictor_params or {})}, **settings)


class WeakNASEI(WeakNAS):
    """WeakNAS, EI variant: the ``k`` unevaluated architectures of largest expected improvement under
    an ensemble of ``n_members`` predictors (greedy; the top-N schedule is unused).

    Args:
        n_members: ensemble size E (published 5).
        ei: ``"corrected"`` (incumbent = best observed) or ``"faithful"`` (the published code's
            incumbent = minus the worst observed); see :mod:`weaknas_ray.acquisition.functions`.
        calibration: the ensemble std is divided by this (published 5).
        target_scaling: as in :class:`WeakNAS`; default ``"initial"`` (the published code's ``"pool"``
            needs an oracle that knows the pool).
        stall_patience: as in :class:`WeakNAS`; default ``None``, no stall rule (EI explores by itself).
        predictor: as in :class:`WeakNAS`; default ``"mlp"`` on every space (the published EI ensemble: trees
            of one setting differ too little for an EI spread).
        **settings: every other :class:`WeakNAS` argument.
    """

    method = "weaknas-ei"
    acquisition = "ei"

    def __init__(self, space, max_sample: int, seed: int, n_members: int = 5, ei: str = "corrected",
                 calibration: float = 5.0, target_scaling: str = "initial", stall_patience: int | None = None,
                 predictor: str = "mlp", **settings):
        super().__init__(space, max_sample, seed, n_members=n_members, target_scaling=target_scaling,
                         stall_patience=stall_patience, predictor=predictor, **settings)
        incumbent(np.zeros(1), ei)  # validates the variant name now, not at iteration 1
        if calibration <= 0:
            raise ConfigError(f"{self.method}.calibration must be > 0, got {calibration}")
        self.ei = ei
        self.calibration = float(calibration)

    def _request(self, z: int, k: int, excluded: np.ndarray, observed: np.ndarray) -> ScoreRequest:
        return ScoreRequest(
            "ei", n_top=N_LOGGED, k=k, excluded=excluded, best=incumbent(observed, self.ei), calibration=self.calibration
        )

    def _select(self, result: ChunkResult, z: int, k: int, excluded: np.ndarray) -> np.ndarray:
        return result.candidates[:k].copy()

    def _kept_after(self, trained: np.ndarray, result: ChunkResult, z: int) -> np.ndarray:
        """``keep_old="top"`` keeps everything under EI: the published EI ranking spans the whole pool."""
        return trained
