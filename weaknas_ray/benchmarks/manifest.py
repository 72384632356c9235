"""The benchmark-file manifest (package data ``weaknas_ray/benchmarks/manifest.json``): name, path inside
a data root, sha256, rows, origin.

The manifest is the single list of files the project knows; loaders, ``weaknas-ray data list`` and
``data check`` read it instead of hard-coding paths or checksums. ``$WEAKNAS_MANIFEST`` names another
manifest file to read instead (the test suite's synthetic NAS-Bench-201 table is sanctioned by one): files
are still checked, against the checksums that manifest lists; without it the shipped manifest is the only one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from weaknas_ray.exceptions import BenchmarkDataError

# NOTE: a Traversable, not necessarily a file on disk (importlib.resources: a wheel, a zip, a checkout).
MANIFEST_PATH = resources.files("weaknas_ray.benchmarks") / "manifest.json"
SCHEMA_VERSION = 1
MANIFEST_ENV = "WEAKNAS_MANIFEST"


@dataclass(frozen=True)
class FileSpec:
    """One benchmark file as the manifest describes it.

    ``rows`` is the number of architectures the file holds (``None`` where not a table); ``source``
    says where the official file comes from.
    """

    key: str
    path: str
    sha256: str | None
    rows: int | None
    format: str
    benchmark: str
    source: str


def manifest_path() -> Path | resources.abc.Traversable:
    """The manifest in use: the file ``$WEAKNAS_MANIFEST`` names, else the shipped one."""
    named = os.environ.get(MANIFEST_ENV)
    return Path(named).expanduser() if named else MANIFEST_PATH


def load_manifest(path: Path | resources.abc.Traversable | None = None, section: str = "files") -> dict[str, FileSpec]:
    """The manifest's files by key, in manifest order.

    Args:
        path: the manifest file; by default :func:`manifest_path`, looked up on each call (a change of
            ``$WEAKNAS_MANIFEST`` takes effect); each file is read once per process.
        section: ``"files"`` (found in the data roots) or ``"package_files"`` (inside an installed package,
            paths relative to its folder: :mod:`weaknas_ray.benchmarks.package_data`).

    Raises:
        BenchmarkDataError: the manifest is missing, not JSON, or of another schema version.
    """
    return _load_manifest(manifest_path() if path is None else path)[section]


@lru_cache(maxsize=4)
def _load_manifest(path: Path | resources.abc.Traversable) -> dict[str, dict[str, FileSpec]]:
    try:
        raw = json.loads((Path(path) if isinstance(path, str) else path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchmarkDataError(f"manifest {path}: cannot read it ({exc})") from exc
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise BenchmarkDataError(
            f"manifest {path}: schema_version {raw.get('schema_version')!r}, expected {SCHEMA_VERSION}"
        )
    try:
        return {section: {key: FileSpec(key=key, **entry) for key, entry in raw.get(section, {}).items()}
                for section in ("files", "package_files")}
    except (KeyError, TypeError) as exc:
        raise BenchmarkDataError(f"manifest {path}: malformed file entry ({exc})") from exc


def file_spec(key: str, section: str = "files") -> FileSpec:
    """The manifest entry ``key`` (e.g. ``"nasbench201"``) of ``section`` (see :func:`load_manifest`).

    Raises:
        BenchmarkDataError: no such entry.
    """
    files = load_manifest(section=section)
    if key not in files:
        raise BenchmarkDataError(f"manifest {manifest_path()}: no entry {key!r} in {section}; entries are {sorted(files)}")
    return files[key]


def package_file_spec(key: str) -> FileSpec:
    """The ``package_files`` entry ``key`` (e.g. ``"hpolib/protein_structure"``)."""
    return file_spec(key, "package_files")
