"""Where benchmark files and their derived caches live.

Benchmark files are never committed. A root the user names is the only one used: ``--data-dir``, else
``$WEAKNAS_DATA`` (a file missing there is an error, never a silent fallback to other data). Without
either, each file is looked for, in order, under the project's ``benchmarks_data/`` and
``../shared/benchmarks_data`` beside the checkout. Derived caches go to ``$WEAKNAS_CACHE`` or the project's ``benchmarks_data/cache/`` (git-ignored).
"""

from __future__ import annotations

import os
from pathlib import Path

from weaknas_ray.exceptions import BenchmarkDataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_DATA = PROJECT_ROOT / "benchmarks_data"
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "benchmarks_data"


def candidate_roots(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The data roots to search, in order, each with the reason it is searched: only the user's root when
    one is named (``data_dir``, else ``$WEAKNAS_DATA``), else the project's and the shared folder.

    Args:
        data_dir: the user's ``--data-dir``; must exist when given (a typo must not fall back silently).

    Returns:
        ``[(label, path), ...]``, e.g. ``[("$WEAKNAS_DATA", Path(...))]``.

    Raises:
        BenchmarkDataError: the named root is not a directory.
    """
    for label, value in (("--data-dir", data_dir), ("$WEAKNAS_DATA", os.environ.get("WEAKNAS_DATA") or None)):
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise BenchmarkDataError(f"{label} {str(path)!r} is not a directory")
            return [(label, path)]
    return [("project benchmarks_data/", PROJECT_DATA), ("../shared/benchmarks_data beside the checkout", SHARED_DATA)]


def resolve_data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The first existing data root that holds at least one benchmark folder or file.

    Args:
        data_dir: the user's ``--data-dir`` (the only root searched when given).

    Raises:
        BenchmarkDataError: no root holds any data; the message lists every place looked in.
    """
    roots = candidate_roots(data_dir)
    for _, root in roots:
        if root.is_dir() and any(p.name != "cache" and not p.name.endswith(".json") for p in root.iterdir()):
            return root
    raise BenchmarkDataError("no benchmark data found; looked in:\n" + _listing(roots))


def resolve_file(
    relpath: str, data_dir: str | os.PathLike | None = None, how_to_get: str = ""
) -> Path:
    """The first existing ``root / relpath`` over :func:`candidate_roots`.

    Args:
        relpath: path inside a data root, e.g. ``"nasbench201/nb201_200ep.csv"``.
        data_dir: the user's ``--data-dir`` (the only root searched when given).
        how_to_get: where the file comes from, appended to the error.

    Raises:
        BenchmarkDataError: the file is in none of the roots; the message lists every place looked in.
    """
    roots = candidate_roots(data_dir)
    for _, root in roots:
        path = root / relpath
        if path.is_file():
            return path
    hint = f"\nGet it from: {how_to_get}" if how_to_get else ""
    raise BenchmarkDataError(
        f"benchmark file {relpath!r} not found; looked in:\n{_listing(roots, relpath)}\n"
        f"Put it under one of these folders (or pass --data-dir / set $WEAKNAS_DATA).{hint}"
    )


def cache_dir() -> Path:
    """The folder for derived caches (created on demand): ``$WEAKNAS_CACHE`` or ``benchmarks_data/cache``."""
    path = Path(os.environ["WEAKNAS_CACHE"]).expanduser() if os.environ.get("WEAKNAS_CACHE") else PROJECT_DATA / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _listing(roots: list[tuple[str, Path]], relpath: str = "") -> str:
    return "\n".join(f"  - {root / relpath if relpath else root}  ({label})" for label, root in roots)
