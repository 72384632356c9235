"""Acquisition: turn ensemble predictions over the pool into the next batch (design.md, layer 3).

Pure and vectorised. Scoring runs on one chunk of the pool at a time and merges exactly, so the Ray
runner can spread it over tasks: :func:`score_chunk` per chunk, :func:`merge_chunks` to combine, and
:func:`score_pool` as the local default.
"""

from weaknas_ray.acquisition.functions import (
    EI_VARIANTS,
    ensemble_mean_sd,
    expected_improvement,
    incumbent,
    log_expected_improvement,
)
from weaknas_ray.acquisition.selection import (
    ChunkResult,
    ScoreRequest,
    merge_chunks,
    score_chunk,
    score_pool,
    select_chunk,
    uniform_from_top,
)

__all__ = [
    "EI_VARIANTS",
    "ChunkResult",
    "ScoreRequest",
    "ensemble_mean_sd",
    "expected_improvement",
    "incumbent",
    "log_expected_improvement",
    "merge_chunks",
    "score_chunk",
    "score_pool",
    "select_chunk",
    "uniform_from_top",
]
