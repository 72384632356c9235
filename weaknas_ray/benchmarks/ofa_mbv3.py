"""Once-for-All MobileNetV3 (``ofa_mbv3_d234_e346_k357_w1.2``) on ImageNet: a pool of subnets and two oracles.

The pool is N unique subnets inside a FLOPs window at one resolution (published: 10,000 in [550, 600]
MFLOPs at 236 px), built once per seed and cached (:mod:`weaknas_ray.benchmarks.ofa.pool`); the space is
:class:`~weaknas_ray.spaces.ofa_mbv3.OFAMobileNetV3Space`. Oracles: ``predictor``, OFA's accuracy predictor
as a surrogate (percent, search = reported), and ``supernet``, evaluator actors measuring ImageNet top-1 of
each subnet of trained supernet weights.
"""

from __future__ import annotations

import os
from typing import Any

from weaknas_ray.benchmarks.ofa.pool import cached_pool
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.interfaces import Benchmark, Oracle
from weaknas_ray.spaces.ofa_mbv3 import OFAMobileNetV3Space

ORACLES = ("predictor", "supernet")


def load_benchmark(
    oracle: str = "predictor",
    pool_size: int = 10000,
    flops_min: float = 550.0,
    flops_max: float = 600.0,
    resolution: int = 236,
    seed: int = 0,
    encoding: str = "raw",
    data_dir: str | os.PathLike | None = None,
    predictor_path: str | os.PathLike | None = None,
    **supernet: Any,
) -> Benchmark:
    """The OFA MobileNetV3 benchmark: a cached pool and the oracle the config names.

    Args:
        oracle: ``"predictor"`` (OFA's accuracy predictor, fast) or ``"supernet"`` (ImageNet evaluation).
        pool_size: number of unique subnets.
        flops_min: lower bound of the FLOPs window (MFLOPs at ``resolution``).
        flops_max: upper bound.
        resolution: input resolution (pixels); the predictor covers 112..239.
        seed: seed of the pool (one pool per seed, cached).
        encoding: ``"raw"`` (45 integers) or ``"onehot"`` (OFA's 128).
        data_dir: a data root searched first for ``ofa/acc_predictor.pth``.
        predictor_path: explicit accuracy-predictor checkpoint (overrides the data roots).
        **supernet: options of :class:`weaknas_ray.benchmarks.ofa.evaluator.SupernetOracle` (``weights``, ``imagenet``,
            ``n_evaluators``, ``num_gpus_per_evaluator``, ...), only with ``oracle="supernet"``.

    Returns:
        ``Benchmark("ofa_mbv3/<oracle>", OFAMobileNetV3Space, oracle)``.

    Raises:
        ConfigError: unknown oracle or encoding, options of the other oracle, an impossible FLOPs window.
        BenchmarkDataError: the predictor checkpoint, supernet weights or ImageNet folder is missing.
    """
    if oracle not in ORACLES:
        raise ConfigError(f"benchmark.oracle: unknown OFA oracle {oracle!r}; choose one of {list(ORACLES)}")
    if oracle == "predictor" and supernet:
        raise ConfigError(
            f"benchmark: options {sorted(supernet)} need oracle: supernet (the predictor oracle takes none)"
        )
    space = OFAMobileNetV3Space(
        cached_pool(int(pool_size), flops_min, flops_max, int(resolution), int(seed)), resolution, encoding
    )
    if oracle == "predictor":
        from weaknas_ray.benchmarks.ofa.surrogate import AccuracyPredictor, SurrogateOracle, locate_predictor

        predictor = AccuracyPredictor(locate_predictor(predictor_path, data_dir))
        result: Oracle = SurrogateOracle(predictor, space.configs, space.resolution)
    else:
        from weaknas_ray.benchmarks.ofa.evaluator import SupernetOracle

        result = SupernetOracle(space.configs, space.resolution, **supernet)
    return Benchmark(f"ofa_mbv3/{oracle}", space, result)
