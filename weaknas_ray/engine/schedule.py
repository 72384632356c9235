"""WeakNAS's query and top-N schedules, with the published code's arithmetic (weaknas-method.md 1-2)."""

from __future__ import annotations

import numpy as np

from weaknas_ray.exceptions import ConfigError


def n_iterations(init_sample: int, sample_each_iter: int, max_sample: int) -> int:
    """Number of iterations, as the published code computes it.

    ``ceil((B - n0 + k) / k - 1) + 1`` if ``n0 > k`` else ``ceil((B - n0 + k) / k)``; both equal
    ``1 + ceil((B - n0) / k)`` (91 for 100/10/1000, 100 for 10/10/1000).
    """
    _check(init_sample, sample_each_iter, max_sample)
    return 1 + -(-(max_sample - init_sample) // sample_each_iter)


def query_sizes(init_sample: int, sample_each_iter: int, max_sample: int) -> list[int]:
    """Architectures evaluated per iteration: ``n0`` first, then ``k`` each, the last one cut so the
    total is exactly ``max_sample``.

    Args:
        init_sample: n0, random architectures of iteration 0.
        sample_each_iter: k, architectures per later iteration.
        max_sample: B, total budget.

    Returns:
        One size per iteration, ``len == n_iterations(...)``, ``sum == max_sample``.
    """
    iters = n_iterations(init_sample, sample_each_iter, max_sample)
    sizes = [init_sample] + [sample_each_iter] * (iters - 1)
    sizes[-1] -= sum(sizes) - max_sample
    return sizes


def top_n_schedule(iterations: int, top_start: int, top_end: int, top_decay: float) -> np.ndarray:
    """N of the top-N per iteration: ``y = top_decay ** linspace(0, 99, iterations)`` min-max normalised
    onto ``[top_end, top_start]`` and truncated to int (published defaults 80000 / 500 / 0.96; every
    published command uses 100 / 100, a constant N = 100).

    Returns:
        int64 array of shape ``(iterations,)``, non-increasing when ``top_start >= top_end``.
    """
    if iterations < 1:
        raise ConfigError(f"top-N schedule: iterations must be >= 1, got {iterations}")
    if top_start < 1 or top_end < 1:
        raise ConfigError(f"top_start and top_end must be >= 1, got top_start={top_start}, top_end={top_end}")
    if not 0 < top_decay < 1:
        raise ConfigError(f"top_decay must lie in (0, 1), got {top_decay}")
    if iterations == 1:
        return np.array([top_start], dtype=np.int64)
    y = top_decay ** np.linspace(0, 99, iterations)
    y = (y - y.min()) / (y.max() - y.min()) * (top_start - top_end) + top_end
    return y.astype(np.int64)


def _check(init_sample: int, sample_each_iter: int, max_sample: int) -> None:
    if init_sample < 1 or sample_each_iter < 1:
        raise ConfigError(
            f"init_sample and sample_each_iter must be >= 1, got init_sample={init_sample}, "
            f"sample_each_iter={sample_each_iter}"
        )
    if init_sample > max_sample:
        raise ConfigError(f"init_sample ({init_sample}) exceeds max_sample ({max_sample})")

