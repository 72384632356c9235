"""The candidate pool of the OFA search: N unique subnets inside a FLOPs window, built once per seed.

Published setting (method doc, "The MobileNet (OFA) search"): 10,000 unique subnets drawn with the
supernet's random sampler, kept when their FLOPs at 236 px lie in [550, 600] MFLOPs. About one draw in
eight lands in that window, so a pool costs a few vectorised batches of :func:`arch.sample_configs` and
:class:`arch.FlopsTable` (well under a second); it is still cached so every worker and resumed run sees the
same pool.
"""

from __future__ import annotations

import numpy as np

from weaknas_ray.benchmarks.store import read_cache, write_cache
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.spaces import ofa_arch as arch

# NOTE: bump when the pool construction changes, so cached pools are rebuilt.
POOL_VERSION = 1
# NOTE: draws per batch; at a 1-in-8 acceptance a 10,000 pool takes about 4 batches.
BATCH = 32768
# NOTE: give up after this many draws without filling the pool (window too narrow or pool too large).
MAX_DRAWS = 50_000_000


def build_pool(size: int, flops_min: float, flops_max: float, resolution: int, seed: int) -> np.ndarray:
    """``size`` unique canonical configs with ``flops_min <= MFLOPs <= flops_max``, in draw order.

    Args:
        size: pool size.
        flops_min: lower FLOPs bound (MFLOPs, inclusive).
        flops_max: upper FLOPs bound (MFLOPs, inclusive).
        resolution: input resolution the FLOPs are counted at.
        seed: seed of the ``numpy.random.Generator`` that draws the configs.

    Returns:
        int8 array, shape ``(size, 45)``.

    Raises:
        ConfigError: the window admits too few subnets to fill the pool.
    """
    if size < 1 or flops_min > flops_max:
        raise ConfigError(
            f"benchmark: need pool_size >= 1 and flops_min <= flops_max, got {size}, [{flops_min}, {flops_max}]"
        )
    rng = np.random.default_rng(seed)
    flops = arch.FlopsTable(resolution)
    kept = np.empty((0, arch.N_RAW), dtype=np.int8)
    drawn = 0
    while len(kept) < size:
        if drawn >= MAX_DRAWS:
            raise ConfigError(
                f"benchmark: only {len(kept)} unique subnets with {flops_min}..{flops_max} MFLOPs at {resolution} px "
                f"in {drawn} draws, the pool needs {size}; widen the FLOPs window or lower pool_size"
            )
        batch = arch.sample_configs(rng, BATCH)
        drawn += BATCH
        f = flops(batch)
        kept = _unique_in_order(np.concatenate([kept, batch[(f >= flops_min) & (f <= flops_max)]]))
    return kept[:size]


def _unique_in_order(rows: np.ndarray) -> np.ndarray:
    """``rows`` without repeats, first occurrences kept in their order."""
    _, first = np.unique(rows, axis=0, return_index=True)
    return rows[np.sort(first)]


def cached_pool(size: int, flops_min: float, flops_max: float, resolution: int, seed: int) -> np.ndarray:
    """:func:`build_pool`, read from the derived-data cache when built before with the same arguments."""
    key = f"ofa_mbv3_pool_v{POOL_VERSION}_n{size}_f{flops_min:g}-{flops_max:g}_r{resolution}_s{seed}"
    cached = read_cache(key)
    if cached is not None:
        columns, _ = cached
        configs = columns.get("configs")
        if configs is not None and configs.shape == (size, arch.N_RAW):
            return configs
    configs = build_pool(size, flops_min, flops_max, resolution, seed)
    write_cache(key, {"configs": configs}, {"key": key, "pool_version": POOL_VERSION})
    return configs
