"""NAS-Bench-201 data: locate ``nb201_200ep.csv`` over the data roots, check it against the manifest,
convert it once into the columnar cache (:mod:`weaknas_ray.benchmarks.convert.nasbench201`) and build the
space (:class:`~weaknas_ray.spaces.nasbench201.NASBench201Space`) with its tabular oracles."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from weaknas_ray.benchmarks.convert.nasbench201 import COST_COLUMN, DATASETS, SCHEMA_VERSION, convert_csv, seed_columns
from weaknas_ray.benchmarks.manifest import file_spec
from weaknas_ray.benchmarks.paths import resolve_file
from weaknas_ray.benchmarks.store import Columns, cache_key, cached_table
from weaknas_ray.benchmarks.tabular import SeededTableOracle
from weaknas_ray.exceptions import ConfigError
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces.nasbench201 import NASBench201Space


def load_table(data_dir: str | os.PathLike | None = None) -> Columns:
    """The NAS-Bench-201 table (read-only columns, see
    :func:`~weaknas_ray.benchmarks.convert.nasbench201.convert_csv`), found over the data roots,
    checked against the manifest, loaded from the columnar cache and kept per process.

    Raises:
        BenchmarkDataError: file missing (lists the places looked in), checksum mismatch or bad schema.
    """
    return _load_table(*_locate(data_dir))


def _locate(data_dir: str | os.PathLike | None) -> tuple[Path, int, int]:
    """The resolved table file with its size and mtime: the per-process cache key."""
    spec = file_spec("nasbench201")
    path = resolve_file(spec.path, data_dir, spec.source).resolve()
    stat = path.stat()
    return path, stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=4)
def _load_table(path: Path, size: int, mtime_ns: int) -> Columns:
    """Cached per (file, size, mtime): a repeated load in the same process is free."""
    spec = file_spec("nasbench201")
    columns = cached_table(
        cache_key("nasbench201", path), path, convert_csv, schema_version=SCHEMA_VERSION,
        expected_sha256=spec.sha256, rows=spec.rows, how_to_get=spec.source,
    )  # fmt: skip
    for column in columns.values():
        column.setflags(write=False)
    return columns


@lru_cache(maxsize=4)
def _space(path: Path, size: int, mtime_ns: int) -> NASBench201Space:
    table = _load_table(path, size, mtime_ns)
    return NASBench201Space(table["ops"], table["params_mb"])


def load_benchmark(dataset: str = "cifar10", data_dir: str | os.PathLike | None = None, noisy: bool = False) -> Benchmark:
    """NAS-Bench-201 on ``dataset``: search on the validation accuracy (mean over training seeds),
    report the test accuracy, cost = CIFAR-10-valid training time in seconds.

    Args:
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"ImageNet16-120"``.
        data_dir: a data root searched before the default ones.
        noisy: when True, ``oracle.for_repeat(seed)`` searches on one training seed's validation accuracy
            per architecture, drawn among that cell's seeds (2 or 3) with ``default_rng(seed)``.

    Returns:
        ``Benchmark("nasbench201/<dataset>", NASBench201Space, SeededTableOracle)``.

    Raises:
        ConfigError: unknown dataset.
        BenchmarkDataError: see :func:`load_table`.
    """
    if dataset not in DATASETS:
        raise ConfigError(
            f"benchmark.dataset: unknown NAS-Bench-201 dataset {dataset!r}; choose one of {list(DATASETS)}"
        )
    located = _locate(data_dir)
    table = _load_table(*located)
    search, reported = DATASETS[dataset]
    seeds = np.stack([table[c] for c in seed_columns(search)], axis=1) if noisy else None
    oracle = SeededTableOracle(table[search], table[reported], table[COST_COLUMN], seed_search=seeds)
    return Benchmark(f"nasbench201/{dataset}", _space(*located), oracle)
