"""Checksums, schema checks and the columnar cache every tabular benchmark loads from.

A benchmark file is converted once into ``<cache>/<key>.npz`` (uncompressed numpy columns, no pickle)
with a small JSON metadata record: the source file's size, mtime and sha256 and the converter's schema
version. Later loads check only the file's size and mtime against that record, so a cached load costs a
``stat`` plus reading the arrays; a changed file is hashed again and, when its content changed, reconverted.
In the spirit of Syne Tune's blackbox repository: a table of configurations plus arrays, queried by index.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from weaknas_ray.benchmarks.paths import cache_dir
from weaknas_ray.exceptions import BenchmarkDataError

Columns = dict[str, np.ndarray]
_META = "__meta__"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, expected: str | None, how_to_get: str = "") -> str:
    """Hash ``path`` and compare with the manifest's ``expected`` (skipped when ``None``).

    Returns:
        The file's sha256.

    Raises:
        BenchmarkDataError: the checksum differs (corrupt, truncated or another version of the file).
    """
    got = sha256_file(path)
    if expected is not None and got != expected:
        hint = f" Get the official file again from: {how_to_get}" if how_to_get else ""
        raise BenchmarkDataError(
            f"{path}: checksum mismatch (sha256 {got}, the manifest expects {expected}); the file is corrupt, "
            f"truncated or a different version.{hint}"
        )
    return got


def cache_key(name: str, source: Path) -> str:
    """A cache name unique to one source file location, e.g. ``nasbench201-3f2a9c0d1e``: tables found
    in different data roots never overwrite each other's cache."""
    return f"{name}-{hashlib.sha1(str(Path(source).resolve()).encode()).hexdigest()[:10]}"


def cache_path(key: str) -> Path:
    """Where the cache of table ``key`` lives."""
    return cache_dir() / f"{key}.npz"


def read_cache(key: str) -> tuple[Columns, dict] | None:
    """The cached columns and metadata of ``key``, or ``None`` when absent or unreadable (a broken
    cache is derived data: warn and let the caller rebuild it)."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            columns = {name: npz[name] for name in npz.files}
        meta = json.loads(str(columns.pop(_META)))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        warnings.warn(f"ignoring unreadable cache {path} ({exc}); it will be rebuilt", stacklevel=2)
        return None
    return columns, meta


def write_cache(key: str, columns: Columns, meta: dict) -> Path:
    """Write ``columns`` and ``meta`` atomically (temporary file + rename: parallel workers may race)."""
    path = cache_path(key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **columns, **{_META: np.array(json.dumps(meta))})
    os.replace(tmp, path)
    return path


def cached_table(
    key: str,
    source: Path,
    build: Callable[[Path], Columns],
    *,
    schema_version: int,
    expected_sha256: str | None = None,
    rows: int | None = None,
    how_to_get: str = "",
) -> Columns:
    """The columns of ``source``, converted by ``build`` once and read from the cache afterwards.

    Args:
        key: cache name, e.g. ``"nasbench201"``.
        source: the benchmark file.
        build: converter ``source -> {column: array of shape (rows, ...)}``; raises BenchmarkDataError on a
            bad schema.
        schema_version: the converter's version; a cache of another version is rebuilt.
        expected_sha256: the manifest's checksum of ``source`` (``None`` skips the check).
        rows: expected number of rows (``None``: not checked).
        how_to_get: where the official file comes from, for error messages.

    Raises:
        BenchmarkDataError: missing file, checksum mismatch, bad schema or wrong row count, naming ``source``.
    """
    try:
        stat = source.stat()
    except FileNotFoundError:
        raise BenchmarkDataError(f"{source}: no such file" + (f"; get it from {how_to_get}" if how_to_get else "")) from None
    cached = read_cache(key)
    meta = cached[1] if cached is not None else {}
    usable = (
        cached is not None
        and (meta.get("schema_version"), meta.get("rows")) == (schema_version, rows)
        and expected_sha256 in (None, meta.get("sha256"))
    )
    if usable and (meta.get("size"), meta.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
        return cached[0]
    digest = verify_checksum(source, expected_sha256, how_to_get)
    if usable and meta.get("sha256") == digest:  # same content, new mtime (copied or touched): re-stamp
        columns = cached[0]
    else:
        columns = build(source)
        check_rows(source, columns, rows)
    meta = {
        "key": key, "schema_version": schema_version, "rows": rows, "source": str(source),
        "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest,
    }  # fmt: skip
    write_cache(key, columns, meta)
    return columns


def check_rows(source: Path, columns: Columns, rows: int | None) -> None:
    """Every column has the same length, equal to ``rows`` when given.

    Raises:
        BenchmarkDataError: naming ``source``, the column and the lengths.
    """
    lengths = {name: len(col) for name, col in columns.items()}
    expected = rows if rows is not None else next(iter(lengths.values()), 0)
    for name, length in lengths.items():
        if length != expected:
            raise BenchmarkDataError(
                f"{source}: column {name!r} has {length} rows, expected {expected} (truncated or wrong file?)"
            )


def read_csv_columns(
    path: Path, numeric: Iterable[str], text: Iterable[str] = (), nullable: Iterable[str] = ()
) -> Columns:
    """Read and schema-check a CSV: the named columns only, numeric ones as float64 without NaN
    (except ``nullable`` ones), text ones as unicode arrays.

    Raises:
        BenchmarkDataError: unparsable file, a missing column, a non-numeric value or an unexpected NaN.
    """
    import pandas as pd

    numeric, text, nullable = list(numeric), list(text), set(nullable)
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        raise BenchmarkDataError(f"{path}: not a readable CSV ({exc})") from exc
    missing = [c for c in numeric + text if c not in frame.columns]
    if missing:
        raise BenchmarkDataError(f"{path}: wrong schema, missing column(s) {missing}; found {list(frame.columns)}")
    columns: Columns = {}
    for name in numeric:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(np.isnan(values) & frame[name].notna().to_numpy())
        if bad.size:
            value = frame[name].iloc[bad[0]]
            raise BenchmarkDataError(f"{path}: column {name!r} row {int(bad[0])}: not a number ({value!r})")
        if name not in nullable and np.isnan(values).any():
            raise BenchmarkDataError(f"{path}: column {name!r} has {int(np.isnan(values).sum())} empty value(s)")
        columns[name] = values
    for name in text:
        if frame[name].isna().any():
            raise BenchmarkDataError(f"{path}: column {name!r} has empty value(s)")
        columns[name] = frame[name].astype(str).to_numpy(dtype=str)
    return columns
