"""The method's MLP predictor in torch, an ensemble trained as one batched model.

WeakNAS (Wu et al., NeurIPS 2021) fits scikit-learn's ``MLPRegressor(hidden_layer_sizes=(1000,) * 4,
max_iter=100)``. This module reproduces that training exactly, only faster:

- Glorot-uniform init of weights AND biases, bound ``sqrt(6 / (fan_in + fan_out))`` (sklearn, relu);
- per batch of size ``b``: loss ``0.5 * mean((f(x) - y)^2) + alpha / (2 b) * sum_l ||W_l||^2`` and its
  gradient by hand-written backprop (sklearn's ``_backprop``; the L2 part enters as Adam weight decay);
- sklearn's Adam: ``lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t)``, ``p -= lr_t * m / (sqrt(v) + eps)``;
- batches of ``min(batch_size, n)`` over a fresh permutation each epoch, the last one possibly smaller;
- early stop once the epoch's mean training loss has not improved by ``tol`` for more than
  ``n_iter_no_change`` consecutive epochs, or after ``max_epochs``.

E members share one set of tensors of shape ``(E, fan_in, fan_out)`` and every layer is one
``torch.baddbmm``, so E members cost about one kernel launch per layer, like one model. Member ``i``
draws its init and shuffles from ``numpy.random.default_rng(seed + i)``, so an ensemble equals E separate
fits with those seeds. A member that stops is removed from the batch (its weights frozen) while the
others keep training. :meth:`MLPEnsemble.fit_group` extends the batch across G ensembles that each train
on their own data (G lockstep search repeats), equal to G separate fits.

Two training steps use torch's private fast kernels, ``torch._fused_adam_`` and
``torch.ops.aten.threshold_backward``, when this torch has them and they behave as expected; otherwise
public operations do the same arithmetic (see :func:`kernels`). The choice is made once, on first use.

``dtype="auto"`` (the default) trains and predicts with bfloat16 matrix products where the device runs
them fast (CPUs with AMX or AVX512-BF16, CUDA GPUs with bfloat16 tensor cores) and in float32
elsewhere; see :func:`choose_dtype`. The choice is made once per process and device. In bfloat16 the
weights, gradients and Adam moments stay float32; each step casts the weights once for its products.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np

from weaknas_ray.exceptions import ConfigError
from weaknas_ray.predictors._checks import check_fit_data, check_fitted, check_members, check_predict_data
from weaknas_ray.predictors.base import PREDICT_BLOCK_ROWS, Predictor

AUTO = "auto"
DTYPES = (AUTO, "float32", "bfloat16")
DEVICE_TYPES = ("cpu", "cuda")
# NOTE: scikit-learn's AdamOptimizer defaults, which the method uses.
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
# NOTE: rows per prediction chunk. CPU: the aligned block of the base module (exact chunked scoring;
# 4,096 x E x 1000 float32 activations, 16 MiB per member). A GPU has the memory and launch latency that
# favour 64x larger chunks (still block-aligned).
_CHUNK_ROWS = {"cpu": PREDICT_BLOCK_ROWS, "cuda": 64 * PREDICT_BLOCK_ROWS}
# NOTE: "auto" takes bfloat16 only where its matmul is at least this much faster than float32's: the
# casts and the float32 Adam moments bfloat16 training keeps eat part of the gain.
BF16_MIN_SPEEDUP = 2.0
# NOTE: rows of the probe's products: a quick look at bfloat16, then a training batch of the method.
_PROBE_ROWS = (8, 200)
# NOTE: the quick look gives up on bfloat16 where its 8 rows, scaled linearly to 200, take this many
# times float32's 200: a margin for load noise and for a fixed per-call cost, which that scaling inflates.
_PROBE_GIVE_UP = 10.0
# NOTE: CUDA compute capability from which GPUs have bfloat16 tensor cores (Ampere).
_CUDA_BF16_CAPABILITY = (8, 0)


class MLPEnsemble(Predictor):
    """E ReLU MLPs trained as one batched torch model, exactly as scikit-learn's MLPRegressor trains one.

    Args:
        n_members: ensemble size E (member ``i`` is seeded with ``seed + i``).
        hidden: hidden layer widths (the method: four of 1000).
        lr: Adam learning rate.
        alpha: L2 penalty (sklearn's ``alpha``).
        batch_size: minibatch size, capped at ``n``.
        max_epochs: most epochs per member (the method's ``mlp_iter`` = 100).
        tol: least improvement of the epoch training loss that resets the patience counter.
        n_iter_no_change: patience in epochs (sklearn stops when the counter exceeds it).
        device: torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        dtype: ``"auto"`` (bfloat16 where the device runs it fast, else float32: :func:`choose_dtype`),
            ``"float32"``, or ``"bfloat16"`` for the matrix products (as bfloat16 autocast computes them;
            weights and Adam stay float32).
        threads: torch intra-op threads during fit/predict; ``None`` keeps the process setting (which Ray
            sets to the task's CPU count).
    """

    def __init__(
        self,
        n_members: int = 1,
        hidden: Sequence[int] = (1000, 1000, 1000, 1000),
        lr: float = 1e-3,
        alpha: float = 1e-4,
        batch_size: int = 200,
        max_epochs: int = 100,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        device: str = "cpu",
        dtype: str = AUTO,
        threads: int | None = None,
    ) -> None:
        self.n_members = check_members(n_members, "mlp")
        self.hidden = tuple(int(h) for h in hidden)
        self.lr = float(lr)
        self.alpha = float(alpha)
        self.batch_size = int(batch_size)
        self.max_epochs = int(max_epochs)
        self.tol = float(tol)
        self.n_iter_no_change = int(n_iter_no_change)
        self.device = str(device)
        self.dtype = dtype
        self.threads = threads
        _check_params(self)

    def fit(self, X: np.ndarray, y: np.ndarray, seed: int) -> MLPEnsemble:
        """Train E members from scratch.

        Args:
            X: features, float32 ``(n, d)``.
            y: targets (the engine passes z-scored accuracies), ``(n,)``; not rescaled here.
            seed: member ``i`` uses ``numpy.random.default_rng(seed + i)`` for init and shuffles.

        Returns:
            self, with ``weights_`` / ``biases_`` (lists of ``(E, fan_in, fan_out)`` / ``(E, 1, fan_out)``
            tensors), ``n_epochs_`` and ``loss_`` (``(E,)`` numpy: epochs run, last epoch's loss) and
            ``compute_dtype_`` (the dtype it trained in, which :meth:`predict` uses too).
        """
        X, y = check_fit_data(X, y, "mlp")
        return self._fit_stacked(X[None], y[None], [seed])

    def fit_group(self, X: np.ndarray, y: np.ndarray, seeds: Sequence[int]) -> list[MLPEnsemble]:
        """Train G independent ensembles, each on its own data, as one batched model of G * E members.

        Why: on a GPU one small training step is launch-bound, so G lockstep repeats (same schedule,
        hence the same ``n``) fitting their predictors together cost about one fit. Ensemble ``g`` draws
        exactly the randomness of ``fit(X[g], y[g], seeds[g])`` and every member's arithmetic is its own
        slice of each batched product, so it equals that separate fit up to float rounding: like an
        E-member ensemble against E single fits, the BLAS may round a product of a different batch count
        differently (on CPU: bit-equal for small layers, about 1e-6 apart for 200-wide ones).

        Args:
            X: features, float32 ``(G, n, d)``.
            y: targets, ``(G, n)``.
            seeds: ``(G,)`` base seeds, one per ensemble (member ``i`` of ensemble ``g`` uses ``seeds[g] + i``).

        Returns:
            G fitted ensembles with this one's parameters; their tensors are views of one batched model.

        Raises:
            ConfigError: ``X`` / ``y`` not shaped ``(G, n, d)`` / ``(G, n)``, or ``len(seeds) != G``.
        """
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim != 3 or y.shape != X.shape[:2] or len(seeds) != len(X):
            raise ConfigError(
                f"mlp.fit_group: expected X (G, n, d), y (G, n) and G seeds, got X {X.shape}, y {y.shape} "
                f"and {len(seeds)} seeds"
            )
        checked = [check_fit_data(Xg, yg, "mlp") for Xg, yg in zip(X, y)]
        batched = self._fit_stacked(np.stack([c[0] for c in checked]), np.stack([c[1] for c in checked]), seeds)
        E = self.n_members
        return [batched._member_slice(g * E, (g + 1) * E) for g in range(len(seeds))]

    def _fit_stacked(self, X: np.ndarray, y: np.ndarray, seeds: Sequence[int]) -> MLPEnsemble:
        """Fit ``len(seeds) * E`` members, member ``g * E + i`` on ``X[g], y[g]`` seeded ``seeds[g] + i``.

        Args:
            X: checked float32 ``(G, n, d)``; y: checked float32 ``(G, n)``; seeds: ``(G,)``.

        Returns:
            self, holding all ``G * E`` members (``fit`` has G = 1).
        """
        torch = _torch()
        G, n, d = X.shape
        draws = [_draw_member_randomness(s, self.n_members, [d, *self.hidden, 1], n, self.max_epochs) for s in seeds]
        init = [tuple(np.concatenate(parts) for parts in zip(*layer)) for layer in zip(*(i for i, _ in draws))]
        perms = np.concatenate([p for _, p in draws], axis=1)
        group = np.repeat(np.arange(G), self.n_members)
        # NOTE: training data is small (n <= a few thousand rows); copying it to the device once is free.
        with _torch_threads(torch, self.threads):
            device = resolve_device(torch, self.device)
            dtype = self.dtype_choice().dtype
            weights = [torch.as_tensor(w, device=device) for w, _ in init]
            biases = [torch.as_tensor(b, device=device) for _, b in init]
            epochs, losses = _train(
                self, dtype, weights, biases, *(_read_only_tensor(torch, a, device) for a in (X, y, perms, group))
            )
        self.weights_, self.biases_, self.compute_dtype_ = weights, biases, dtype
        self.n_epochs_, self.loss_ = epochs, losses
        self.n_features_in_ = d
        return self

    def _member_slice(self, start: int, stop: int) -> MLPEnsemble:
        """A fitted ensemble of members ``start:stop`` (views of this one's tensors)."""
        part = type(self)(**{k: getattr(self, k) for k in _PARAM_NAMES})
        part.weights_ = [w[start:stop] for w in self.weights_]
        part.biases_ = [b[start:stop] for b in self.biases_]
        part.n_epochs_, part.loss_ = self.n_epochs_[start:stop].copy(), self.loss_[start:stop].copy()
        part.n_features_in_, part.compute_dtype_ = self.n_features_in_, self.compute_dtype_
        return part

    def dtype_choice(self) -> DtypeChoice:
        """The dtype a fit runs in on this ensemble's device and why: ``dtype`` as set, or what ``"auto"``
        chose there (:func:`choose_dtype`, measured once per process)."""
        if self.dtype != AUTO:
            return DtypeChoice(self.dtype, "set explicitly")
        torch = _torch()
        return choose_dtype(torch, resolve_device(torch, self.device), max(self.hidden))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions of every member, float32 ``(E, m)``, computed in chunks under inference mode."""
        X = check_predict_data(X, getattr(self, "n_features_in_", None), "mlp")
        torch = _torch()
        device = resolve_device(torch, self.device)
        chunk = _CHUNK_ROWS.get(device.type, _CHUNK_ROWS["cpu"])
        compute = getattr(torch, self.compute_dtype_)
        with _torch_threads(torch, self.threads), torch.inference_mode():
            Xd = _read_only_tensor(torch, X, device)
            # NOTE: bfloat16 copies made once per call, not per chunk (float32: no copy)
            weights, biases = ([p.to(compute) for p in params] for params in (self.weights_, self.biases_))
            out = torch.empty((self.n_members, len(X)), dtype=torch.float32, device=device)
            for start in range(0, len(X), chunk):
                h = Xd[start : start + chunk].to(compute).expand(self.n_members, -1, -1)
                for W, b in zip(weights[:-1], biases[:-1]):
                    h = member_bmm(torch, h, W, b).relu_()
                out[:, start : start + chunk] = member_bmm(torch, h, weights[-1], biases[-1])[..., 0]
            return out.cpu().numpy()

    def get_state(self) -> dict:
        """Constructor parameters, fitted weights as numpy float32 arrays and the dtype they were trained in
        (device-free, picklable; a chunk task predicts in that dtype whatever its machine would choose)."""
        check_fitted(getattr(self, "n_features_in_", None), "mlp.get_state")
        return {
            "params": {k: getattr(self, k) for k in _PARAM_NAMES},
            "weights": [w.detach().float().cpu().numpy() for w in self.weights_],
            "biases": [b.detach().float().cpu().numpy() for b in self.biases_],
            "n_epochs": self.n_epochs_.copy(),
            "loss": self.loss_.copy(),
            "compute_dtype": self.compute_dtype_,
        }

    @classmethod
    def from_state(cls, state: dict) -> MLPEnsemble:
        """Rebuild a fitted ensemble on CPU from :meth:`get_state` output."""
        torch = _torch()
        model = cls(**{**state["params"], "device": "cpu"})
        model.weights_ = [torch.as_tensor(np.array(w, dtype=np.float32)) for w in state["weights"]]
        model.biases_ = [torch.as_tensor(np.array(b, dtype=np.float32)) for b in state["biases"]]
        model.n_epochs_, model.loss_ = np.array(state["n_epochs"]), np.array(state["loss"])
        model.n_features_in_, model.compute_dtype_ = model.weights_[0].shape[1], state["compute_dtype"]
        return model


_PARAM_NAMES = ("n_members", "hidden", "lr", "alpha", "batch_size", "max_epochs", "tol", "n_iter_no_change", "device", "dtype", "threads")


def _check_params(model: MLPEnsemble) -> None:
    """Reject settings that would fail deep inside torch, naming the parameter."""
    if model.dtype not in DTYPES:
        raise ConfigError(f"mlp: dtype must be one of {DTYPES}, got {model.dtype!r}")
    if not model.hidden or min(model.hidden) < 1:
        raise ConfigError(f"mlp: hidden must be a non-empty list of positive widths, got {model.hidden!r}")
    for name in ("batch_size", "max_epochs"):
        if getattr(model, name) < 1:
            raise ConfigError(f"mlp: {name} must be >= 1, got {getattr(model, name)!r}")
    if model.threads is not None and int(model.threads) < 1:
        raise ConfigError(f"mlp: threads must be None or >= 1, got {model.threads!r}")
    kind, _, index = model.device.partition(":")
    if kind not in DEVICE_TYPES or (index and not index.isdigit()):
        raise ConfigError(f"mlp: device must be one of {DEVICE_TYPES} (optionally ':N'), got {model.device!r}")


def resolve_device(torch, name: str):
    """``torch.device(name)``; a ConfigError naming it when this process's torch cannot use it (a CUDA
    device on a CPU-only build or machine, an index beyond the GPUs present)."""
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(f"mlp: device {name!r}, but this process sees {count} CUDA GPU(s) (torch {torch.__version__})")
    return device


class DtypeChoice(NamedTuple):
    """A compute dtype and why it was taken (shown in run summaries and ``weaknas-ray bench predictor``)."""

    dtype: str
    reason: str


_DTYPE_CHOICES: dict[tuple[str, int], DtypeChoice] = {}


def choose_dtype(torch, device, width: int) -> DtypeChoice:
    """What ``dtype="auto"`` runs in on ``device`` for layers ``width`` wide, decided once per process.

    CUDA: bfloat16 from compute capability 8.0 (bfloat16 tensor cores), else float32. CPU: a measured
    probe (:func:`probe_bf16_speedup` on one thread), because CPU flags do not say how fast this torch's
    kernels are: bfloat16 where its matmul is at least :data:`BF16_MIN_SPEEDUP` times float32's. Why cached: the
    probe costs tens of milliseconds, a search fits hundreds of times.
    """
    key = (str(device), int(width))
    if key not in _DTYPE_CHOICES:
        _DTYPE_CHOICES[key] = _cuda_choice(torch, device) if device.type == "cuda" else _cpu_choice(torch, width)
    return _DTYPE_CHOICES[key]


def _cuda_choice(torch, device) -> DtypeChoice:
    major, minor = torch.cuda.get_device_capability(device)
    fast = (major, minor) >= _CUDA_BF16_CAPABILITY
    return DtypeChoice("bfloat16" if fast else "float32", f"auto: CUDA compute capability {major}.{minor} "
                       f"{'has' if fast else 'lacks'} bfloat16 tensor cores (from 8.0)")


def _cpu_choice(torch, width: int) -> DtypeChoice:
    wall, cpu = time.perf_counter(), time.process_time()
    with _torch_threads(torch, 1):
        speedup = probe_bf16_speedup(torch, width)
    wall, cpu = (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3
    fast = speedup >= BF16_MIN_SPEEDUP
    return DtypeChoice("bfloat16" if fast else "float32", f"auto: bfloat16 matmul {speedup:.2g}x float32's on this CPU "
                       f"(1 thread; probe {wall:.0f} ms, {cpu:.0f} ms CPU; bfloat16 from {BF16_MIN_SPEEDUP:g}x)")


def probe_bf16_speedup(torch, width: int) -> float:
    """float32 time / bfloat16 time of a ``(200, width) x (width, width)`` CPU product (the predictor's
    hidden layer on a training batch), each the best of a few after a warm-up, on the calling thread's
    torch threads (:func:`choose_dtype` uses one: on a loaded machine several OpenMP threads starve, and a
    kernel's speed per thread is what tells the dtypes apart).

    Why a first look at 8 rows: where bfloat16 is emulated it runs about 40x slower. When 8 rows, scaled
    to 200, stay :data:`_PROBE_GIVE_UP` times slower than float32 in 2 tries, the probe stops there
    (within tens of milliseconds) with that scaled ratio, as emulated bfloat16 scales with the rows.
    Where bfloat16 looks fast, float32 is timed again and its best time kept, so that a load spike
    while float32 was timed cannot choose bfloat16.
    """
    a, w = torch.full((1, _PROBE_ROWS[1], width), 0.5), torch.full((1, width, width), 0.5)
    f32 = _best_seconds(torch, a, w)
    a16, w16 = a.bfloat16(), w.bfloat16()
    scale = _PROBE_ROWS[1] / _PROBE_ROWS[0]
    for _ in range(2):  # the first call may include the kernel's set-up
        start = time.perf_counter()
        torch.bmm(a16[:, : _PROBE_ROWS[0]], w16)
        few = (time.perf_counter() - start) * scale
        if few <= _PROBE_GIVE_UP * f32:
            bf16 = _best_seconds(torch, a16, w16)
            if f32 >= BF16_MIN_SPEEDUP * bf16:
                f32 = min(f32, _best_seconds(torch, a, w, budget_s=0.02))
            return f32 / bf16
    return f32 / few


def _best_seconds(torch, a, b, budget_s: float = 0.005) -> float:
    """The fastest timed ``torch.bmm(a, b)`` after one untimed (kernel set-up) call: at least 2 timed,
    more while they total under ``budget_s`` (a narrow layer's product takes microseconds, too few to
    time once)."""
    torch.bmm(a, b)
    times: list[float] = []
    while len(times) < 2 or sum(times) < budget_s:
        start = time.perf_counter()
        torch.bmm(a, b)
        times.append(time.perf_counter() - start)
    return min(times)


def _draw_member_randomness(seed: int, n_members: int, sizes: list[int], n: int, max_epochs: int):
    """Glorot-uniform init and per-epoch shuffles of every member, member ``i`` from ``seed + i``.

    Args:
        seed: base seed.
        n_members: E.
        sizes: layer widths, input first, output (1) last.
        n: training rows.
        max_epochs: epochs to draw permutations for.

    Returns:
        ``init``: per layer a pair ``(W (E, fan_in, fan_out), b (E, 1, fan_out))`` float32;
        ``perms``: int64 ``(max_epochs, E, n)``.
    """
    rngs = [np.random.default_rng(seed + i) for i in range(n_members)]
    init = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = np.float32(np.sqrt(6.0 / (fan_in + fan_out)))
        init.append(tuple(
            np.stack([(rng.random(shape, dtype=np.float32) * 2 - 1) * bound for rng in rngs])
            for shape in ((fan_in, fan_out), (1, fan_out))
        ))
    perms = np.stack([np.stack([rng.permutation(n) for _ in range(max_epochs)]) for rng in rngs], axis=1)
    return init, perms


def _train(model: MLPEnsemble, dtype: str, weights: list, biases: list, X, y, perms, group) -> tuple[np.ndarray, np.ndarray]:
    """Adam over minibatches for all live members at once, in place on ``weights`` / ``biases``.

    Args:
        model: supplies the hyper-parameters.
        dtype: the compute dtype of the matrix products, ``"float32"`` or ``"bfloat16"``.
        weights: per layer ``(E, fan_in, fan_out)`` tensors, updated in place (stopped members frozen).
        biases: per layer ``(E, 1, fan_out)`` tensors, likewise.
        X: ``(G, n, d)`` tensor on the device; y: ``(G, n)`` tensor; perms: ``(max_epochs, E, n)`` int64
            tensor; group: ``(E,)`` int64 tensor, the data set ``X[group[i]]`` member ``i`` trains on.

    Returns:
        ``(n_epochs (E,) int, loss (E,) float)``: epochs each member ran and its last epoch's loss.
    """
    torch = _torch()
    n, n_members = X.shape[1], len(group)
    batch = min(model.batch_size, n)
    live = list(range(n_members))  # members still training, in batch order
    params = [*weights, *biases]
    # Live members' parameters and Adam moments; finished members are copied back into `params`.
    state = {"params": [p.clone() for p in params]}
    state["m"] = [torch.zeros_like(p) for p in params]
    state["v"] = [torch.zeros_like(p) for p in params]
    best = torch.full((n_members,), float("inf"), device=X.device)
    patience = torch.zeros(n_members, dtype=torch.int64, device=X.device)
    n_epochs = np.full(n_members, model.max_epochs)
    losses = np.zeros(n_members)
    step = 0
    compute = getattr(torch, dtype)
    with torch.no_grad():
        for epoch in range(model.max_epochs):
            order = perms[epoch, live]
            data = group[live].unsqueeze(-1)  # (live, 1): each live member's data set
            total = torch.zeros(len(live), device=X.device)
            for start in range(0, n, batch):
                idx = order[:, start : start + batch]
                step += 1
                loss, grads = _loss_and_grads(state["params"], X[data, idx], y[data, idx].unsqueeze(-1), model.alpha, compute)
                total += loss * idx.shape[1]
                _adam_step(torch, state, grads, model.lr, step, model.alpha / idx.shape[1])
            epoch_loss = total / n
            no_gain = epoch_loss > best[live] - model.tol
            patience[live] = torch.where(no_gain, patience[live] + 1, 0)
            best[live] = torch.minimum(best[live], epoch_loss)
            last = epoch == model.max_epochs - 1
            # NOTE: one host sync per epoch (not per step) decides which members stop.
            done = [i for i, stop in enumerate((patience[live] > model.n_iter_no_change).tolist()) if stop or last]
            if done:
                _freeze(torch, params, state, live, done)
                done_members = [live[i] for i in done]
                n_epochs[done_members] = epoch + 1
                losses[done_members] = epoch_loss[done].float().cpu().numpy()
                live = [member for i, member in enumerate(live) if i not in done]
                if not live:
                    break
    return n_epochs, losses


def _loss_and_grads(params: list, xb, yb, alpha: float, compute=None):
    """sklearn's ``_backprop`` for a batch of members.

    Args:
        params: weights (L of ``(E, fan_in, fan_out)``) then biases (L of ``(E, 1, fan_out)``).
        xb: ``(E, b, d)`` batch inputs; yb: ``(E, b, 1)`` targets.
        alpha: L2 penalty.
        compute: torch dtype of the matrix products (default: the parameters'). bfloat16 gives what
            bfloat16 autocast gives, bit for bit, but casts each weight once per step where autocast
            casts it for the forward and again for the backward product.

    Returns:
        ``(loss (E,), grads)`` with grads in the order of ``params``, WITHOUT the L2 term
        ``alpha / b * W`` of the weight gradients: :func:`_adam_step` adds it as weight decay, which
        saves copying every weight matrix into its gradient each step.
    """
    torch = _torch()
    n_layers = len(params) // 2
    masters = params[:n_layers]
    compute = compute or masters[0].dtype
    weights, biases = ([p.to(compute) for p in part] for part in (masters, params[n_layers:]))  # float32: no copy
    b = xb.shape[1]
    acts = [xb.to(compute)]
    for W, bias in zip(weights[:-1], biases[:-1]):
        acts.append(member_bmm(torch, acts[-1], W, bias).relu_())
    diff = member_bmm(torch, acts[-1], weights[-1], biases[-1]).to(yb.dtype) - yb
    sq_weights = sum(torch.linalg.vector_norm(W, dim=(1, 2)).square() for W in masters)
    loss = 0.5 * diff.square().mean(dim=(1, 2)) + (0.5 * alpha / b) * sq_weights
    delta = diff / b
    grad_w, grad_b = [None] * n_layers, [None] * n_layers
    for layer in range(n_layers - 1, -1, -1):
        # NOTE: in bfloat16 the products come back in bfloat16; Adam runs in the master weights' dtype.
        grad_w[layer] = member_bmm(torch, acts[layer].transpose(1, 2), delta.to(compute)).to(masters[layer].dtype)
        grad_b[layer] = delta.sum(dim=1, keepdim=True).to(masters[layer].dtype)
        if layer:
            delta = kernels(torch).relu_backward(torch, member_bmm(torch, delta.to(compute), weights[layer].transpose(1, 2)), acts[layer])
    return loss, grad_w + grad_b


def member_bmm(torch, a, b, bias=None):
    """``torch.baddbmm(bias, a, b)`` (``torch.bmm`` without ``bias``) whose member ``i`` is bit for bit what a
    batch holding member ``i`` alone computes, so an ensemble's members equal separate fits and slices of it.

    Why: on CPU a product with a dimension of 1 (the 1-unit output layer and its two backward products)
    takes a matrix-vector BLAS path when the batch count is 1 and another when it is larger, which round
    differently (about 1e-7 per product, 1e-4 after 200 epochs). Those products are tiny, so on CPU they
    run member by member, each as a batch of one; the square products are batch-count independent and stay
    batched, and so does everything on a GPU (where member tasks never run and launches cost).
    """
    degenerate = 1 in (a.shape[1], a.shape[2], b.shape[2])
    if a.device.type != "cpu" or a.shape[0] == 1 or not degenerate:
        return torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)
    return torch.cat([member_bmm(torch, a[i : i + 1], b[i : i + 1], None if bias is None else bias[i : i + 1])
                      for i in range(a.shape[0])])


def _adam_step(torch, state: dict, grads: list, lr: float, step: int, l2: float) -> None:
    """sklearn's Adam update of every live parameter in one fused torch kernel per tensor.

    torch's Adam divides by ``sqrt(v) / sqrt(1 - b2^t) + eps`` where sklearn divides by
    ``(sqrt(v) + eps) / sqrt(1 - b2^t)``; passing ``eps / sqrt(1 - b2^t)`` makes them the same update.
    ``l2`` (sklearn's ``alpha / batch``) is added to the weight gradients as ``l2 * W`` (torch's
    ``weight_decay``, which is plain L2, not AdamW); biases get none.
    """
    n_weights = len(grads) // 2
    for part, decay in ((slice(0, n_weights), l2), (slice(n_weights, None), 0.0)):
        kernels(torch).adam(
            torch, state, state["params"][part], grads[part], state["m"][part], state["v"][part],
            lr=lr, step=step, weight_decay=decay, eps=_EPS / np.sqrt(1 - _BETA2**step),
        )


class Kernels(NamedTuple):
    """The two training steps that have a private fast kernel: ``relu_backward(torch, grad, act)`` (``grad``
    where ``act > 0``, else 0; may overwrite ``grad``) and ``adam(torch, state, params, grads, m, v, *, lr,
    step, weight_decay, eps)`` (torch's Adam with L2 weight decay, in place on ``params``, ``m``, ``v``)."""

    name: str
    relu_backward: Callable
    adam: Callable


def _fused_adam(torch, state, params, grads, m, v, *, lr, step, weight_decay, eps) -> None:
    counter = state.setdefault("step", torch.zeros((), device=params[0].device))
    counter.fill_(step)
    torch._fused_adam_(
        params, grads, m, v, [], [counter] * len(params), lr=lr, beta1=_BETA1, beta2=_BETA2,
        weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False,
    )


def _public_adam(torch, state, params, grads, m, v, *, lr, step, weight_decay, eps) -> None:
    # NOTE: torch.optim.Adam's single-tensor arithmetic, which the fused kernel implements.
    step_size, bias2_sqrt = lr / (1 - _BETA1**step), float(np.sqrt(1 - _BETA2**step))
    for p, g, m_, v_ in zip(params, grads, m, v):
        if weight_decay:
            g = g.add(p, alpha=weight_decay)
        m_.lerp_(g, 1 - _BETA1)
        v_.mul_(_BETA2).addcmul_(g, g, value=1 - _BETA2)
        p.addcdiv_(m_, (v_.sqrt() / bias2_sqrt).add_(eps), value=-step_size)


def _fused_relu_backward(torch, grad, act):
    return torch.ops.aten.threshold_backward(grad, act, 0.0)


def _public_relu_backward(torch, grad, act):
    return grad.masked_fill_(act <= 0, 0.0)


FAST = Kernels("private torch kernels", _fused_relu_backward, _fused_adam)
PUBLIC = Kernels("public torch operations", _public_relu_backward, _public_adam)
_KERNELS: Kernels | None = None


def kernels(torch) -> Kernels:
    """The training kernels in use, chosen once: :data:`FAST` where this torch has the private kernels and
    they give :data:`PUBLIC`'s results on a small probe, else :data:`PUBLIC` (another torch release may
    rename or change private APIs; the public path then keeps working, only slower)."""
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = FAST if _probe(torch, FAST) else PUBLIC
    return _KERNELS


def _probe(torch, fast: Kernels) -> bool:
    """Whether ``fast`` runs and agrees with :data:`PUBLIC` on one small Adam step and ReLU backward."""
    gen = torch.Generator().manual_seed(0)
    tensors = [torch.randn(2, 3, 4, generator=gen) for _ in range(4)]
    runs = []
    for kernel in (fast, PUBLIC):
        params, grads, m, v = [[t.clone()] for t in tensors[:3]] + [[tensors[3].abs()]]
        try:
            kernel.adam(torch, {}, params, grads, m, v, lr=1e-3, step=3, weight_decay=1e-4, eps=1e-8)
            relu = kernel.relu_backward(torch, tensors[0].clone(), tensors[1])
        except (AttributeError, RuntimeError, TypeError):
            return False
        runs.append((params[0], m[0], v[0], relu))
    return all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(*runs))


def _freeze(torch, params: list, state: dict, live: list[int], done: list[int]) -> None:
    """Copy finished members (positions ``done`` of ``live``) into ``params`` and drop them from ``state``."""
    members = torch.as_tensor([live[i] for i in done], device=params[0].device)
    rows = torch.as_tensor(done, device=params[0].device)
    keep = torch.as_tensor([i for i in range(len(live)) if i not in set(done)], dtype=torch.int64, device=params[0].device)
    for p, trained in zip(params, state["params"]):
        p.index_copy_(0, members, trained.index_select(0, rows))
    for key in ("params", "m", "v"):
        state[key] = [t.index_select(0, keep) for t in state[key]]


@contextlib.contextmanager
def _torch_threads(torch, threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, restoring the previous count afterwards."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _read_only_tensor(torch, array: np.ndarray, device):
    """``array`` as a tensor without copying; Ray hands pools over read-only and we never write to them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(array, device=device)



def _torch():
    """torch, imported on first use so that ``import weaknas_ray.predictors`` stays light."""
    import torch

    return torch
