"""NAS-Bench-101's file formats -> the columns the benchmark caches: the official
``nasbench_only108.tfrecord`` (records read by :mod:`weaknas_ray.benchmarks.convert.tfrecord`) and NASLib's
``zc_nasbench101.json`` sample. One row per cell, sorted by its hash (:func:`~weaknas_ray.spaces.nasbench101.canonical`)."""

from __future__ import annotations

import base64
import binascii
import json
import math
from pathlib import Path

import numpy as np

from weaknas_ray.benchmarks.convert.tfrecord import parse_model_metrics, read_records
from weaknas_ray.benchmarks.store import Columns
from weaknas_ray.exceptions import BenchmarkDataError, UnknownArchitectureError
from weaknas_ray.spaces.nasbench101 import MAX_VERTICES, OPS, canonical, pad_cell

NB101_REPEATS = 3  # training repeats per cell in the official file
NASLIB_OPS = ("input", "output", "maxpool3x3", "conv1x1-bn-relu", "conv3x3-bn-relu")  # NASLib's op ids
# NOTE: bump when the cached columns change, so old caches are rebuilt.
SCHEMA_VERSION = 1


def _columns(cells: dict[str, dict], repeats: int) -> Columns:
    """Per-hash records -> the cache columns, sorted by hash; per-repeat lists padded with NaN."""
    hashes = sorted(cells)
    padded = [pad_cell(cells[h]["matrix"], cells[h]["ops"]) for h in hashes]

    def per_repeat(name: str) -> np.ndarray:
        out = np.full((len(hashes), repeats), np.nan)
        for row, h in enumerate(hashes):
            values = cells[h][name][:repeats]
            out[row, : len(values)] = values
        return out

    valid, test, time = per_repeat("valid"), per_repeat("test"), per_repeat("time")
    return {
        "hash": np.array(hashes, dtype="S32"),
        "matrix": np.stack([m for m, _ in padded]) if padded else np.zeros((0, MAX_VERTICES, MAX_VERTICES), np.int8),
        "ops": np.stack([o for _, o in padded]) if padded else np.zeros((0, MAX_VERTICES), np.int8),
        "valid_acc_seeds": valid,
        "valid_acc": np.nanmean(valid, axis=1),
        "test_acc": np.nanmean(test, axis=1) if np.isfinite(test).any() else test[:, 0],
        "train_time_s": np.nanmean(time, axis=1) if np.isfinite(time).any() else time[:, 0],
        "params_m": np.array([cells[h]["params_m"] for h in hashes], dtype=np.float64),
    }


def convert_tfrecord(path: Path, epochs: int = 108, verify_data_crc: bool = False) -> Columns:
    """The official ``nasbench_only108.tfrecord`` (or ``nasbench_full``, filtered to ``epochs``) -> cache
    columns: one row per cell with its 3 training repeats' final validation / test accuracy (percent) and
    training time, their means, and the trainable parameters (millions).

    Raises:
        BenchmarkDataError: bad framing, or a record that is not ``[hash, epochs, adjacency, ops, metrics]``.
    """
    cells: dict[str, dict] = {}
    for number, data in enumerate(read_records(path, verify_data_crc)):
        try:
            module_hash, record_epochs, raw_adjacency, raw_operations, raw_metrics = json.loads(data.decode("utf-8"))
            if record_epochs != epochs:
                continue
            dim = math.isqrt(len(raw_adjacency))
            matrix = np.array([int(ch) for ch in raw_adjacency], dtype=np.int8).reshape(dim, dim)
            ops = tuple(OPS.index(op) for op in raw_operations.split(","))
            metrics = parse_model_metrics(base64.b64decode(raw_metrics, validate=True))
            final = metrics["evaluation_data"][-1]
            cell = cells.setdefault(module_hash, {"matrix": matrix, "ops": ops, "valid": [], "test": [], "time": [],
                                                  "params_m": metrics["trainable_parameters"] / 1e6})  # fmt: skip
            cell["valid"].append(100.0 * final["validation_accuracy"])
            cell["test"].append(100.0 * final["test_accuracy"])
            cell["time"].append(final["training_time"])
        except (ValueError, TypeError, KeyError, IndexError, binascii.Error) as exc:
            raise BenchmarkDataError(
                f"{path}: record {number} is not a NAS-Bench-101 record "
                f"[hash, epochs, adjacency, ops, metrics] ({exc!r})"
            ) from exc
    if not cells:
        raise BenchmarkDataError(f"{path}: no records with {epochs} epochs")
    return _columns(cells, repeats=NB101_REPEATS)


def convert_naslib_json(path: Path) -> Columns:
    """NASLib's ``zc_nasbench101.json`` sample -> cache columns. Its keys are unpruned 7-vertex cells
    (49 adjacency entries row by row, then 7 op ids in NASLib's order input, output, maxpool3x3, conv1x1,
    conv3x3) and its ``val_accuracy`` is one training repeat's; isomorphic records are merged into one cell
    whose validation accuracy is the mean over its records. No test accuracy or time (NaN).

    Raises:
        BenchmarkDataError: not JSON, wrong structure, or an invalid cell.
    """
    try:
        records = json.loads(Path(path).read_text())["nasbench101"]["cifar10"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise BenchmarkDataError(
            f"{path}: not a NASLib zc_nasbench101 JSON ({{'nasbench101': {{'cifar10': ...}}}}): {exc!r}"
        ) from exc
    cells: dict[str, dict] = {}
    for key, record in records.items():
        try:
            values = [int(v) for v in key.strip("()").split(",")]
            if len(values) != MAX_VERTICES * MAX_VERTICES + MAX_VERTICES:
                raise ValueError(f"{len(values)} entries, expected 56")
            matrix = np.array(values[: MAX_VERTICES**2]).reshape(MAX_VERTICES, MAX_VERTICES)
            matrix, ops, digest = canonical(matrix, [NASLIB_OPS[v] for v in values[MAX_VERTICES**2 :]])
            cell = cells.setdefault(digest, {"matrix": matrix, "ops": ops, "valid": [], "test": [], "time": [],
                                             "params_m": float(record["params"])})  # fmt: skip
            cell["valid"].append(float(record["val_accuracy"]))
        except (ValueError, KeyError, TypeError, IndexError, UnknownArchitectureError) as exc:
            raise BenchmarkDataError(f"{path}: entry {key[:40]!r}...: {exc}") from exc
    # NOTE: a cell appears up to ~55 times in the sample; the mean over its records stands in for the mean over seeds.
    columns = _columns(cells, repeats=max(len(c["valid"]) for c in cells.values()))
    columns["valid_acc_seeds"] = np.full((len(cells), NB101_REPEATS), np.nan)  # records are not seeds
    return columns
