"""NAS-Bench-201's table file (``nb201_200ep.csv``, one row per cell: index, arch string, per-dataset
accuracies per training seed and their means) -> the columns the benchmark caches and loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from weaknas_ray.benchmarks.store import Columns, read_csv_columns
from weaknas_ray.exceptions import BenchmarkDataError, UnknownArchitectureError
from weaknas_ray.spaces.nasbench201 import EDGES, parse_arch_str

# dataset -> (search column, reported column); per-seed search columns are f"{search}_seed{0,1,2}".
DATASETS = {
    "cifar10": ("cifar10_valid_valid_acc", "cifar10_test_acc"),
    "cifar100": ("cifar100_valid_acc", "cifar100_test_acc"),
    "ImageNet16-120": ("imagenet16_120_valid_acc", "imagenet16_120_test_acc"),
}
COST_COLUMN = "cifar10_valid_train_time_s"
N_SEEDS = 3
# NOTE: bump when the cached columns change, so old caches are rebuilt.
SCHEMA_VERSION = 1


def seed_columns(search_column: str) -> list[str]:
    """The per-training-seed columns of a search column (the last may be empty: 2-seed cells)."""
    return [f"{search_column}_seed{s}" for s in range(N_SEEDS)]


def convert_csv(path: Path) -> Columns:
    """CSV -> columns: ``ops`` (n, 6) int8 in index order plus every numeric column used.

    Raises:
        BenchmarkDataError: bad schema, an index column other than 0..n-1, a bad or repeated arch string.
    """
    numeric = ["index", COST_COLUMN, "params_mb"]
    nullable = []
    for search, reported in DATASETS.values():
        numeric += [search, reported, *seed_columns(search)]
        nullable += seed_columns(search)[2:]
    columns = read_csv_columns(path, numeric=numeric, text=["arch_str"], nullable=nullable)
    index = columns.pop("index")
    if not np.array_equal(index, np.arange(len(index))):
        raise BenchmarkDataError(f"{path}: column 'index' is not 0..{len(index) - 1} in order")
    ops = np.empty((len(index), len(EDGES)), dtype=np.int8)
    for row, text in enumerate(columns.pop("arch_str")):
        try:
            ops[row] = parse_arch_str(text)
        except UnknownArchitectureError as exc:
            raise BenchmarkDataError(f"{path}: row {row}: {exc}") from exc
    if len(np.unique(ops, axis=0)) != len(ops):
        raise BenchmarkDataError(f"{path}: column 'arch_str' repeats an architecture")
    columns["ops"] = ops
    return columns
