"""Predictor speed: MLP throughput vs plain matmul, a NAS-Bench-201 repeat mlp vs sklearn-mlp, EI cost.

Everything printed comes from one run on one machine, so the ratios compare like with like:

1. plain matrix multiply GFLOP/s for the chosen dtype and thread count (the ceiling);
2. ``mlp`` training and whole-pool prediction GFLOP/s (method's 4 x 1000 MLP), and their share of (1);
3. one NAS-Bench-201 cifar10 WeakNAS uniform repeat (published settings: n0 = k = 10, N = 100) with
   ``mlp`` and with ``sklearn-mlp``: wall times, their ratio, best test accuracy of each;
4. WeakNAS-EI's per-iteration cost on a NAS-Bench-101-sized pool (423,624 x 45) with a 5-member
   ensemble: fit on the end-of-run training set, predict the pool, EI-select 10;
5. with ``--group G``: G separate fits of the 4 x 1000 MLP against one ``fit_group`` of G data sets
   (what ``ray.repeats_per_actor: G`` does per iteration), and their time ratio;
6. with ``--dtype bfloat16``: Kendall tau between bfloat16 and float32 predictions on NAS-Bench-201
   (slow where the CPU lacks native bfloat16, e.g. AVX2-only: there every bfloat16 matmul is emulated).

First it prints what ``dtype: auto`` chooses on this device, why, and the probe's cost, and a roofline per
phase (train E = 1, train E = 5, predict E = 5) for float32 and bfloat16 side by side: the phase's matrix
FLOPs at that dtype's measured matmul ceiling plus its least memory traffic (weights, gradients, Adam
moments, activations: :func:`traffic_bytes`) at the measured copy bandwidth, the achieved share of that
minimum, and bfloat16 / float32 ratios. ``--roofline-only`` stops there.

``--quick`` shrinks every budget (a 30-query repeat; for EI a 2,048-row pool slice and a 5-epoch fit,
timed and scaled to the full pool and to 100 epochs, labelled so) to finish in about a minute on CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import time

import numpy as np

# NOTE: NAS-Bench-101's pool size and the method's feature width there; EI runs use 5 members.
NB101_POOL, NB101_FEATURES, EI_MEMBERS = 423_624, 45, 5
# NOTE: the method's epoch budget (mlp_iter), the upper bound a scaled quick EI fit is reported at.
MAX_EPOCHS = 100


# NOTE: the roofline's phases train on one batch of the method (200 rows); its ceilings are the best of a
# 1024^2 product (an emulated bfloat16 4096^2 one would take minutes) and a hidden layer's own products.
ROOF_TRAIN_ROWS, ROOF_MATMUL, DTYPES = 200, 1024, ("float32", "bfloat16")
# NOTE: bytes per float32 parameter a training step moves at the least: its gradient written, then Adam
# reading parameter, gradient and both moments and writing parameter and moments back.
ADAM_BYTES_PER_PARAM = 4 + 7 * 4


@dataclasses.dataclass(frozen=True)
class Budget:
    """Sizes of one bench run."""

    matmul_size: int  # square matmul side for the ceiling
    train_rows: int  # rows of the throughput fit (batches of 200)
    train_epochs: int
    pool_rows: int  # rows actually predicted (the rest of NB101_POOL is extrapolated)
    nb201_queries: int  # WeakNAS repeat budget (published plots: 300 here)
    ei_train_rows: int  # training-set size of the EI iteration (NB101 run ends near 1000)
    ei_epochs: int | None  # epochs of the timed EI fit, scaled to 100; None: the method's fit as is
    roof_epochs: int  # training steps of each roofline fit (one batch of ROOF_TRAIN_ROWS per epoch)
    roof_predict_rows: int  # rows of the roofline's prediction phase


QUICK = Budget(matmul_size=1024, train_rows=200, train_epochs=2, pool_rows=2048, nb201_queries=30, ei_train_rows=100,
               ei_epochs=5, roof_epochs=2, roof_predict_rows=1024)
FULL = Budget(matmul_size=4096, train_rows=1000, train_epochs=5, pool_rows=NB101_POOL, nb201_queries=300,
              ei_train_rows=1000, ei_epochs=None, roof_epochs=5, roof_predict_rows=4096)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def widths(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated hidden widths, each >= 1."""
    return tuple(positive_int(part) for part in text.split(","))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="small budgets, about a minute on CPU")
    parser.add_argument("--device", default="cpu", help="torch device for mlp: cpu, cuda, cuda:1 (default cpu)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                        help="mlp compute dtype of the measurements after the roofline (default auto)")
    parser.add_argument("--hidden", type=widths, default=(1000,) * 4, help="mlp hidden widths (default 1000,1000,1000,1000)")
    parser.add_argument("--roofline-only", action="store_true", help="stop after the dtype choice and the roofline")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="benchmark data root (NAS-Bench-201 table)")
    parser.add_argument("--skip-sklearn", action="store_true", help="skip the sklearn-mlp repeat (slow)")
    parser.add_argument("--queries", type=positive_int, default=None, help="NB201 repeat budget (default 300, quick 30)")
    parser.add_argument("--group", type=positive_int, default=None, help="also time G separate fits vs one grouped fit")


def main(args: argparse.Namespace) -> int:
    import threadpoolctl
    import torch

    with contextlib.ExitStack() as limits:
        if args.threads is not None:
            torch.set_num_threads(args.threads)
            # NOTE: the same thread count for numpy's BLAS, so sklearn-mlp is compared like for like.
            limits.enter_context(threadpoolctl.threadpool_limits(args.threads))
        return _run(args, torch)


def _run(args: argparse.Namespace, torch) -> int:
    """Every measurement, printed as it completes."""
    budget = QUICK if args.quick else FULL
    if args.queries is not None:
        budget = dataclasses.replace(budget, nb201_queries=args.queries)
    mlp = {"device": args.device, "dtype": args.dtype, "hidden": args.hidden}
    from weaknas_ray.predictors.mlp import resolve_device

    _model(1, mlp)  # a bad device or dtype stops here, named, not deep inside the first matmul
    resolve_device(torch, args.device)
    print(f"device {args.device}  dtype {args.dtype}  hidden {list(args.hidden)}  torch threads {torch.get_num_threads()}  "
          f"{'quick' if args.quick else 'full'} budgets  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    start = time.perf_counter()
    choice = _model(1, {**mlp, "dtype": "auto"}).dtype_choice()
    print(f"dtype auto -> {choice.dtype}: {choice.reason}; first call {(time.perf_counter() - start) * 1e3:.0f} ms, "
          f"cached for the process")
    print_roofline(roofline(torch, budget, mlp, args.seed))
    if args.roofline_only:
        return 0
    mlp["dtype"] = _model(1, mlp).dtype_choice().dtype
    ceiling = matmul_gflops(torch, budget.matmul_size, args.device, mlp["dtype"])
    print(f"plain matmul {budget.matmul_size}^2: {ceiling:8.1f} GFLOP/s")
    for members in (1, EI_MEMBERS):
        rate = train_gflops(budget, members, mlp, args.seed)
        print(f"mlp train E={members} n={budget.train_rows}: {rate:8.1f} GFLOP/s  ({rate / ceiling:5.1%} of matmul)")
    pool = np.random.default_rng(args.seed).random((budget.pool_rows, NB101_FEATURES), dtype=np.float32)
    rate, seconds = predict_gflops(pool, mlp, args.seed)
    print(f"mlp predict E={EI_MEMBERS} {len(pool)} rows: {rate:8.1f} GFLOP/s  ({rate / ceiling:5.1%} of matmul), {seconds:.2f} s")
    ei_iteration(pool, budget, mlp, args.seed)
    if args.group:
        group_fit(torch, budget, args.group, mlp, args.seed)
    nb201_repeats(budget, mlp, args)
    if mlp["dtype"] == "bfloat16":
        bf16_ranking(mlp, args)
    return 0


def _timed(torch, device: str, fn) -> float:
    """Seconds ``fn()`` takes, synchronising the device before and after."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def matmul_gflops(torch, size: int, device: str, dtype: str, budget_s: float = 30.0) -> float:
    """The best of up to 5 ``size x size`` matmuls in ``dtype`` (the ceiling the MLP is compared to), fewer
    where they take over ``budget_s`` together (an emulated bfloat16 product takes seconds)."""
    dt = getattr(torch, dtype)
    a, b = (torch.randn(size, size, device=device).to(dt) for _ in range(2))
    torch.mm(a, b)  # warm-up: thread pool, kernels
    return 2 * size**3 / _best_seconds(torch, device, lambda: torch.mm(a, b), budget_s) / 1e9


def layer_gflops(torch, rows: int, width: int, device: str, dtype: str) -> float:
    """The best rate of a hidden layer's three training products in ``dtype``, each the best of a few:
    forward ``(rows, width) x (width, width)``, weight gradient ``(width, rows) x (rows, width)`` and
    backpropagated delta ``(rows, width) x (width, width)^T``, with the transposed views the MLP passes.
    Why: some kernels (emulated bfloat16) run one layout 20x faster than another or than a square product."""
    dt = getattr(torch, dtype)
    a, w = torch.randn(1, rows, width, device=device).to(dt), torch.randn(1, width, width, device=device).to(dt)
    products = [(a, w), (a.transpose(1, 2), a), (a, w.transpose(1, 2))]
    best = 0.0
    for left, right in products:
        torch.bmm(left, right)  # warm-up
        best = max(best, 2 * rows * width**2 / _best_seconds(torch, device, lambda: torch.bmm(left, right), 0.2) / 1e9)
    return best


def copy_gbps(torch, device: str, mib: int = 256) -> float:
    """GB/s (bytes read plus written) of the best of up to 10 copies of a ``mib`` MiB float32 tensor: the
    memory roof, far larger than any cache."""
    src = torch.ones(mib << 18, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: pages, thread pool
    best = _best_seconds(torch, device, lambda: dst.copy_(src), budget_s=1.0, most=10)
    return 2 * src.numel() * src.element_size() / best / 1e9


def traffic_bytes(sizes: list[int], rows: int, members: int, dtype: str, train: bool) -> float:
    """The least bytes one training step (``train``) or one prediction pass over ``rows`` rows moves.

    Per member: its inputs; the weights in the compute dtype, read once per prediction block, or twice
    per step (forward and backward) plus, in bfloat16, writing the copy of the updated weights; each
    hidden activation written and read once, in training also its backpropagated delta; in training the
    float32 gradients and Adam (:data:`ADAM_BYTES_PER_PARAM`); in prediction the outputs.
    """
    from weaknas_ray.predictors.base import PREDICT_BLOCK_ROWS

    size = 2 if dtype == "bfloat16" else 4
    weights = sum(i * o for i, o in zip(sizes[:-1], sizes[1:]))
    acts = rows * sum(sizes[1:-1]) * size
    inputs = rows * sizes[0] * 4
    if train:
        copy = 2 * weights if dtype == "bfloat16" else 0
        per_member = inputs + 2 * weights * size + copy + 4 * acts + ADAM_BYTES_PER_PARAM * (weights + sum(sizes[1:]))
    else:
        per_member = inputs + -(-rows // PREDICT_BLOCK_ROWS) * weights * size + 2 * acts + rows * 4
    return float(members * per_member)


@dataclasses.dataclass(frozen=True)
class Phase:
    """One roofline row: a phase's measured time in one dtype against its least time on this machine."""

    name: str
    dtype: str
    seconds: float
    flops: float
    traffic: float  # bytes
    ceiling: float  # GFLOP/s of this dtype's plain matmul
    bandwidth: float  # GB/s of a large copy

    @property
    def matmul_s(self) -> float:
        return self.flops / self.ceiling / 1e9

    @property
    def memory_s(self) -> float:
        return self.traffic / self.bandwidth / 1e9

    @property
    def share(self) -> float:
        """The least time (matrix FLOPs at the ceiling plus traffic at the copy bandwidth) / the measured."""
        return (self.matmul_s + self.memory_s) / self.seconds


def roofline(torch, budget: Budget, mlp: dict, seed: int) -> list[Phase]:
    """Train E = 1, train E = 5 (per step of ``ROOF_TRAIN_ROWS`` rows) and predict E = 5
    (``budget.roof_predict_rows`` rows), each in float32 and in bfloat16, against their rooflines."""
    device, sizes = mlp["device"], [NB101_FEATURES, *mlp["hidden"], 1]
    bandwidth = copy_gbps(torch, device)
    rng = np.random.default_rng(seed)
    X = rng.random((max(ROOF_TRAIN_ROWS, budget.roof_predict_rows), NB101_FEATURES), dtype=np.float32)
    y = rng.standard_normal(len(X)).astype(np.float32)
    forward, train = _flops_per_row(sizes)
    phases = []
    for dtype in DTYPES:
        params = {**mlp, "dtype": dtype}
        ceiling = max(matmul_gflops(torch, ROOF_MATMUL, device, dtype, budget_s=1.0),
                      layer_gflops(torch, ROOF_TRAIN_ROWS, max(mlp["hidden"]), device, dtype))
        for members in (1, EI_MEMBERS):
            seconds, model = step_seconds(torch, X[:ROOF_TRAIN_ROWS], y[:ROOF_TRAIN_ROWS], members, params,
                                          budget.roof_epochs, seed)
            phases.append(Phase(f"train E={members}, {ROOF_TRAIN_ROWS} rows", dtype, seconds,
                                train * members * ROOF_TRAIN_ROWS, traffic_bytes(sizes, ROOF_TRAIN_ROWS, members, dtype, True),
                                ceiling, bandwidth))
        rows = budget.roof_predict_rows
        model.predict(X[:8])  # warm-up
        seconds = _best_seconds(torch, device, lambda: model.predict(X[:rows]))
        phases.append(Phase(f"predict E={members}, {rows} rows", dtype, seconds, forward * members * rows,
                            traffic_bytes(sizes, rows, members, dtype, False), ceiling, bandwidth))
    return phases


def step_seconds(torch, X: np.ndarray, y: np.ndarray, members: int, mlp: dict, steps: int, seed: int):
    """(seconds per training step, the 1-epoch fit): a fit of ``1 + steps`` epochs of one batch each minus a
    fit of 1 epoch, so the fit's set-up (random draws, copies) cancels."""
    _model(members, mlp, max_epochs=1).fit(X[:8], y[:8], seed)  # warm-up
    fits = {e: _model(members, mlp, max_epochs=e, n_iter_no_change=e, batch_size=len(X)) for e in (1, 1 + steps)}
    times = {e: _best_seconds(torch, mlp["device"], lambda e=e: fits[e].fit(X, y, seed), budget_s=2.0) for e in fits}
    return max(times[1 + steps] - times[1], 1e-9) / steps, fits[1]


def _best_seconds(torch, device: str, fn, budget_s: float = 0.5, most: int = 5) -> float:
    """The fastest of repeated timed ``fn()`` calls: at least one, more while they total under ``budget_s``
    (small models, whose single calls are too short to time alone)."""
    times = [_timed(torch, device, fn)]
    while len(times) < most and sum(times) < budget_s:
        times.append(_timed(torch, device, fn))
    return min(times)


def print_roofline(phases: list[Phase]) -> None:
    """The roofline table and the bfloat16 / float32 ratios of each phase."""
    per_dtype = {p.dtype: p for p in phases}
    print(f"roofline: least time = matrix FLOPs at the dtype's matmul ceiling (best of {ROOF_MATMUL}^2 and a "
          "hidden layer's training products) + least memory "
          f"traffic at the copy bandwidth ({phases[0].bandwidth:.1f} GB/s); share = least / measured")
    print("  matmul ceiling " + ", ".join(f"{d} {per_dtype[d].ceiling:.1f} GFLOP/s" for d in DTYPES)
          + f" (bfloat16/float32 {per_dtype['bfloat16'].ceiling / per_dtype['float32'].ceiling:.2f}x)")
    print(f"  {'phase':<24} {'dtype':<8} {'time':>10} {'GFLOP/s':>8} {'matmul':>10} {'memory':>10} {'least':>10} {'share':>6}")
    for p in phases:
        print(f"  {p.name:<24} {p.dtype:<8} {_ms(p.seconds)} {p.flops / p.seconds / 1e9:8.1f} {_ms(p.matmul_s)} "
              f"{_ms(p.memory_s)} {_ms(p.matmul_s + p.memory_s)} {p.share:6.1%}")
    by_name = {}
    for p in phases:
        by_name.setdefault(p.name, {})[p.dtype] = p
    ratios = [f"{name}: speed {d['float32'].seconds / d['bfloat16'].seconds:.2f}x, share {d['bfloat16'].share / d['float32'].share:.2f}x"
              for name, d in by_name.items()]
    print("  bfloat16 / float32: " + "; ".join(ratios))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:7.1f} ms"


def _flops_per_row(sizes: list[int]) -> tuple[int, int]:
    """(forward, training) FLOPs per row of one member: forward 2*in*out per layer; a training step
    adds the weight gradient (2*in*out) and the backpropagated delta (2*in*out, not for layer 0)."""
    layers = [i * o for i, o in zip(sizes[:-1], sizes[1:])]
    forward = 2 * sum(layers)
    return forward, forward + 2 * sum(layers) + 2 * sum(layers[1:])


def _model(members: int, mlp: dict, **params):
    from weaknas_ray.predictors import make_predictor

    return make_predictor("mlp", n_members=members, **mlp, **params)


def train_gflops(budget: Budget, members: int, mlp: dict, seed: int) -> float:
    """Training GFLOP/s of a full-length fit (early stopping off) of ``members`` 4 x 1000 MLPs."""
    rng = np.random.default_rng(seed)
    X = rng.random((budget.train_rows, NB101_FEATURES), dtype=np.float32)
    y = rng.standard_normal(budget.train_rows).astype(np.float32)
    _model(members, mlp, max_epochs=1).fit(X[:200], y[:200], seed)  # warm-up
    model = _model(members, mlp, max_epochs=budget.train_epochs, n_iter_no_change=budget.train_epochs)
    start = time.perf_counter()
    model.fit(X, y, seed)
    seconds = time.perf_counter() - start
    _, train = _flops_per_row([NB101_FEATURES, *model.hidden, 1])
    return train * members * budget.train_rows * budget.train_epochs / seconds / 1e9


def group_fit(torch, budget: Budget, group: int, mlp: dict, seed: int) -> None:
    """Print the time of ``group`` separate fits (one per repeat) and of one grouped fit of the same data."""
    rng = np.random.default_rng(seed)
    X = rng.random((group, budget.train_rows, NB101_FEATURES), dtype=np.float32)
    y = rng.standard_normal((group, budget.train_rows)).astype(np.float32)
    params = {"max_epochs": budget.train_epochs, "n_iter_no_change": budget.train_epochs}
    _model(1, mlp, max_epochs=1).fit(X[0, :200], y[0, :200], seed)  # warm-up
    device = mlp["device"]
    separate = _timed(torch, device, lambda: [_model(1, mlp, **params).fit(X[g], y[g], seed + g) for g in range(group)])
    grouped = _timed(torch, device, lambda: _model(1, mlp, **params).fit_group(X, y, [seed + g for g in range(group)]))
    print(f"mlp fit x{group} separate {separate:.2f} s, grouped {grouped:.2f} s: {separate / grouped:.2f}x "
          f"(n={budget.train_rows}, {budget.train_epochs} epochs)")


def predict_gflops(pool: np.ndarray, mlp: dict, seed: int) -> tuple[float, float]:
    """(GFLOP/s, seconds) of predicting ``pool`` with an E = 5 ensemble (fitted for 1 epoch: weights'
    values do not change the cost)."""
    model = _model(EI_MEMBERS, mlp, max_epochs=1).fit(pool[:200], np.zeros(200, np.float32), seed)
    model.predict(pool[:1024])  # warm-up
    start = time.perf_counter()
    model.predict(pool)
    seconds = time.perf_counter() - start
    forward, _ = _flops_per_row([pool.shape[1], *model.hidden, 1])
    return forward * EI_MEMBERS * len(pool) / seconds / 1e9, seconds


def ei_iteration(pool: np.ndarray, budget: Budget, mlp: dict, seed: int) -> None:
    """One WeakNAS-EI iteration on a NAS-Bench-101-sized pool: fit E = 5, score the pool by EI, take 10."""
    from weaknas_ray.acquisition import ScoreRequest, score_pool

    rng = np.random.default_rng(seed)
    train = rng.choice(len(pool), budget.ei_train_rows, replace=False)
    y = rng.standard_normal(len(train)).astype(np.float32)
    epochs = {} if budget.ei_epochs is None else {"max_epochs": budget.ei_epochs, "n_iter_no_change": budget.ei_epochs}
    start = time.perf_counter()
    model = _model(EI_MEMBERS, mlp, **epochs).fit(pool[train], y, seed)
    fit_s = time.perf_counter() - start
    request = ScoreRequest("ei", n_top=1000, k=10, excluded=train, best=float(y.max()))
    start = time.perf_counter()
    score_pool(model, pool, request, chunk_size=1 << 16)
    score_s = (time.perf_counter() - start) * NB101_POOL / len(pool)
    notes = [f"epochs {model.n_epochs_.tolist()}"]
    if budget.ei_epochs is not None:
        fit_s *= MAX_EPOCHS / budget.ei_epochs
        notes.append(f"fit timed for {budget.ei_epochs} epochs, scaled to {MAX_EPOCHS} (no early stop)")
    if len(pool) != NB101_POOL:
        notes.append(f"scoring timed on {len(pool)} rows, scaled to {NB101_POOL}")
    print(f"EI iteration, E={EI_MEMBERS}, {len(train)} training rows, {NB101_POOL} x {NB101_FEATURES} pool: "
          f"{fit_s + score_s:.1f} s = fit {fit_s:.1f} s + predict/EI {score_s:.1f} s ({'; '.join(notes)})")


def nb201_repeats(budget: Budget, mlp: dict, args: argparse.Namespace) -> None:
    """One NAS-Bench-201 cifar10 WeakNAS uniform repeat per predictor, published settings."""
    from weaknas_ray.benchmarks.nasbench201 import load_benchmark
    from weaknas_ray.drivers.loop import run_repeat
    from weaknas_ray.engine import make_optimizer

    bench = load_benchmark("cifar10", data_dir=args.data_dir)
    runs = {"mlp": mlp} if args.skip_sklearn else {"mlp": mlp, "sklearn-mlp": {}}
    seconds = {}
    for name, params in runs.items():
        optimizer = make_optimizer("weaknas", bench.space, budget.nb201_queries, args.seed,
                                   predictor=name, predictor_params=params)
        start = time.perf_counter()
        rows = run_repeat(optimizer, bench.oracle)
        seconds[name] = time.perf_counter() - start
        print(f"NB201 cifar10 weaknas {budget.nb201_queries} queries, {name:11s}: {seconds[name]:7.1f} s, "
              f"best test accuracy {rows['best_reported_so_far'].iloc[-1]:.2f}")
    if len(seconds) == 2:
        print(f"  sklearn-mlp / mlp wall time: {seconds['sklearn-mlp'] / seconds['mlp']:.1f}x")


def bf16_ranking(mlp: dict, args: argparse.Namespace) -> None:
    """Kendall tau of bfloat16 vs float32 predictions on 3,000 held-out NAS-Bench-201 cells, and of
    each against the truth, for MLPs trained on the same 100 random cells with the same seed."""
    from scipy.stats import kendalltau

    from weaknas_ray.benchmarks.nasbench201 import load_benchmark

    bench = load_benchmark("cifar10", data_dir=args.data_dir)
    X = bench.space.features
    acc = np.asarray(bench.oracle.evaluate(np.arange(len(X))).search, dtype=np.float64)
    y = ((acc - acc.mean()) / acc.std()).astype(np.float32)
    cells = np.random.default_rng(args.seed).permutation(len(X))
    train, test = cells[:100], cells[100:3100]
    preds = {}
    for dtype in ("float32", "bfloat16"):
        start = time.perf_counter()
        preds[dtype] = _model(1, {**mlp, "dtype": dtype}).fit(X[train], y[train], args.seed).predict(X[test])[0]
        print(f"NB201 fit on 100 + predict 3,000, {dtype:8s}: {time.perf_counter() - start:5.1f} s, "
              f"tau vs truth {kendalltau(preds[dtype], y[test])[0]:.3f}")
    print(f"  tau bfloat16 vs float32 predictions: {kendalltau(preds['float32'], preds['bfloat16'])[0]:.3f}")
