"""Where benchmark files and their derived caches live.

Benchmark files are never shipped. A root the user names is the only one used: ``--data-dir``, else
``$WEAKNAS_DATA`` (a file missing there is an error, never a silent fallback to other data). Without
either, each file is looked for, in order, under the per-user data folder (``$XDG_DATA_HOME/weaknas-ray``,
by default ``~/.local/share/weaknas-ray``; ``weaknas-ray data add`` puts files there), and, when the
package runs from a source checkout, the checkout's ``benchmarks_data/`` and ``../shared/benchmarks_data``
beside it. Derived caches go to ``$WEAKNAS_CACHE`` or the per-user cache folder
(``$XDG_CACHE_HOME/weaknas-ray``, by default ``~/.cache/weaknas-ray``).
"""

from __future__ import annotations

import os
from pathlib import Path

from weaknas_ray.exceptions import BenchmarkDataError

APP = "weaknas-ray"


def _checkout_root() -> Path | None:
    """The source checkout this package runs from (editable install or ``PYTHONPATH``), else ``None``."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "setup.cfg").is_file() and (root / "benchmarks_data").is_dir() else None


CHECKOUT_ROOT = _checkout_root()
# NOTE: None in an installed wheel: only a checkout has these two roots.
PROJECT_DATA = CHECKOUT_ROOT / "benchmarks_data" if CHECKOUT_ROOT else None
SHARED_DATA = CHECKOUT_ROOT.parent / "shared" / "benchmarks_data" if CHECKOUT_ROOT else None


def _xdg(variable: str, fallback: str) -> Path:
    """``$variable/weaknas-ray``, or ``~/fallback/weaknas-ray`` when the variable is unset or relative
    (the XDG base-directory rule)."""
    base = os.environ.get(variable, "")
    return (Path(base) if os.path.isabs(base) else Path.home() / fallback) / APP


def user_data_dir() -> Path:
    """The per-user data folder: ``$XDG_DATA_HOME/weaknas-ray`` or ``~/.local/share/weaknas-ray``."""
    return _xdg("XDG_DATA_HOME", ".local/share")


def candidate_roots(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The data roots to search, in order, each with the reason it is searched: only the user's root when
    one is named (``data_dir``, else ``$WEAKNAS_DATA``), else the user data folder, then the checkout's folders.

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
    roots = [("user data folder", user_data_dir())]
    if PROJECT_DATA is not None:
        roots.append(("checkout benchmarks_data/", PROJECT_DATA))
    if SHARED_DATA is not None:
        roots.append(("../shared/benchmarks_data beside the checkout", SHARED_DATA))
    return roots


def resolve_data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The first existing data root that holds at least one benchmark folder (e.g. ``nasbench201/``).

    Args:
        data_dir: the user's ``--data-dir`` (the only root searched when given).

    Raises:
        BenchmarkDataError: no root holds any data; the message lists every place looked in.
    """
    roots = candidate_roots(data_dir)
    for _, root in roots:
        if root.is_dir() and any(p.is_dir() and p.name != "cache" for p in root.iterdir()):
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


def cache_dir(create: bool = True) -> Path:
    """The folder for derived caches: ``$WEAKNAS_CACHE``, else ``$XDG_CACHE_HOME/weaknas-ray`` or
    ``~/.cache/weaknas-ray``; created unless ``create`` is false."""
    env = os.environ.get("WEAKNAS_CACHE")
    path = Path(env).expanduser() if env else _xdg("XDG_CACHE_HOME", ".cache")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _listing(roots: list[tuple[str, Path]], relpath: str = "") -> str:
    return "\n".join(f"  - {root / relpath if relpath else root}  ({label})" for label, root in roots)
