"""NAS-Bench-101 data: locate the official tfrecord, its cache or NASLib's sample over the data roots,
check it against the manifest, convert it once into the columnar cache
(:mod:`weaknas_ray.benchmarks.convert.nasbench101`) and build the space
(:class:`~weaknas_ray.spaces.nasbench101.NASBench101Space`) with its tabular oracle."""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

from weaknas_ray.benchmarks.convert.nasbench101 import SCHEMA_VERSION, convert_naslib_json, convert_tfrecord
from weaknas_ray.benchmarks.manifest import file_spec
from weaknas_ray.benchmarks.paths import resolve_file
from weaknas_ray.benchmarks.store import Columns, cache_key, cache_path, cached_table, read_cache
from weaknas_ray.benchmarks.tabular import SeededTableOracle
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces.nasbench101 import NASBench101Space

FULL_KEY = "nasbench101-full"  # cache of the official tfrecord: kept after the 499 MB file is deleted


def convert_tfrecord_to_cache(path: Path, verify_checksum: bool = True, verify_data_crc: bool = False) -> Path:
    """Convert the official tfrecord once into the cache that :func:`load_benchmark` reads from then on
    (the tfrecord itself may then be deleted).

    Args:
        path: ``nasbench_only108.tfrecord`` (or ``nasbench_full.tfrecord`` with ``verify_checksum=False``).
        verify_checksum: compare the file's sha256 and cell count with the manifest.
        verify_data_crc: also check every record's CRC (slow; the checksum already covers the official file).

    Returns:
        The cache file written.
    """
    spec = file_spec("nasbench101_tfrecord")
    cached_table(
        FULL_KEY, Path(path), lambda source: convert_tfrecord(source, verify_data_crc=verify_data_crc),
        schema_version=SCHEMA_VERSION, expected_sha256=spec.sha256 if verify_checksum else None,
        rows=spec.rows if verify_checksum else None, how_to_get=spec.source,
    )  # fmt: skip
    return cache_path(FULL_KEY)


def _locate(data_dir: str | os.PathLike | None) -> tuple[str, Path, int, int]:
    """Which table to load: the official tfrecord where found, else its cache, else the NASLib sample.
    Returns ``(kind, path, size, mtime_ns)``, the per-process cache key."""
    full, sample = file_spec("nasbench101_tfrecord"), file_spec("nasbench101_naslib")
    try:
        kind, path = "tfrecord", resolve_file(full.path, data_dir, full.source)
    except BenchmarkDataError as missing_full:
        if cache_path(FULL_KEY).is_file():
            kind, path = "cache", cache_path(FULL_KEY)
        else:
            try:
                kind, path = "naslib", resolve_file(sample.path, data_dir, sample.source)
            except BenchmarkDataError as missing_sample:
                message = f"{missing_full}\nNor is its fallback sample here:\n{missing_sample}"
                raise BenchmarkDataError(message) from None
    stat = path.stat()
    return kind, path.resolve(), stat.st_size, stat.st_mtime_ns


@lru_cache(maxsize=4)
def _load(kind: str, path: Path, size: int, mtime_ns: int) -> tuple[Columns, NASBench101Space]:
    """The table and its space, once per (file, size, mtime) and process."""
    if kind == "cache":
        cached = read_cache(FULL_KEY)
        if cached is None or cached[1].get("schema_version") != SCHEMA_VERSION:
            raise BenchmarkDataError(f"{path}: unreadable or outdated cache; convert the tfrecord again "
                                     "with `weaknas-ray data convert nasbench101 --tfrecord PATH`")  # fmt: skip
        columns = cached[0]
    else:
        spec = file_spec("nasbench101_tfrecord" if kind == "tfrecord" else "nasbench101_naslib")
        key = FULL_KEY if kind == "tfrecord" else cache_key("nasbench101-naslib", path)
        convert = convert_tfrecord if kind == "tfrecord" else convert_naslib_json
        rows = spec.rows if kind == "tfrecord" else None  # the sample's 500 records merge into fewer cells
        columns = cached_table(key, path, convert, schema_version=SCHEMA_VERSION, expected_sha256=spec.sha256,
                               rows=rows, how_to_get=spec.source)  # fmt: skip
    for column in columns.values():
        column.setflags(write=False)
    return columns, NASBench101Space(columns["hash"], columns["matrix"], columns["ops"], columns["params_m"])


def load_benchmark(dataset: str = "cifar10", data_dir: str | os.PathLike | None = None, noisy: bool = False) -> Benchmark:
    """NAS-Bench-101 on CIFAR-10: search on the validation accuracy (mean over the 3 training repeats),
    report the test accuracy, cost = training time in seconds.

    Loaded from the official ``nasbench_only108.tfrecord`` (converted once into the cache) or its cache.
    When neither is present, falls back with a warning to NASLib's 500-record sample
    (``naslib_zc_nasbench101_500.json``, 292 distinct cells): it has no test accuracy, so there
    ``reported`` = validation accuracy and there is no cost and no per-seed data.

    Args:
        dataset: only ``"cifar10"``.
        data_dir: a data root searched before the default ones.
        noisy: search on one training repeat's validation accuracy per cell, drawn in
            ``oracle.for_repeat(seed)`` (official data only).

    Raises:
        ConfigError: unknown dataset, or ``noisy`` without per-seed data.
        BenchmarkDataError: no data found (the message lists the places looked in) or a bad file.
    """
    if dataset != "cifar10":
        raise ConfigError(f"benchmark.dataset: NAS-Bench-101 has only 'cifar10', got {dataset!r}")
    kind, path, size, mtime_ns = _locate(data_dir)
    columns, space = _load(kind, path, size, mtime_ns)
    test, time = columns["test_acc"], columns["train_time_s"]
    if kind == "naslib":
        warnings.warn(
            f"nasbench101: the official nasbench_only108.tfrecord was not found; using NASLib's sample {path} "
            f"({len(space)} cells) which has no test accuracy: reported = validation accuracy",
            stacklevel=2,
        )
        if noisy:
            raise ConfigError("benchmark.noisy: the NASLib NAS-Bench-101 sample has no per-seed accuracies")
    oracle = SeededTableOracle(
        columns["valid_acc"], columns["valid_acc"] if kind == "naslib" else test,
        None if kind == "naslib" else time, seed_search=columns["valid_acc_seeds"] if noisy else None,
    )  # fmt: skip
    return Benchmark("nasbench101/cifar10", space, oracle)
