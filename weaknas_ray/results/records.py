"""The output folder of a run: per-repeat parquet files written atomically, resume, merged tables.

Layout (the output folder contract, docs/output.md)::

    DIR/config.yaml            the resolved config
    DIR/meta.json              benchmark name, pool size, optimum (for report without the benchmark)
    DIR/repeats/<method>__r<repeat>.parquet       one per finished repeat (its presence = finished)
    DIR/repeats/<method>__r<repeat>.final.parquet the last predictor's top-1, evaluated (predictor methods)
    DIR/results.parquet        all finished repeats, one row per query (merged at the end of a run)
    DIR/final_top1.parquet     all final top-1 rows (not queries)
    DIR/failures.json          repeats that failed after their retries, with seed and error

Every file is written to a temporary name in the same folder and renamed into place, so a kill leaves
either the old file or the new one, never half of one. A per-repeat file that cannot be read anyway
(disk trouble, a hand edit) is renamed to ``*.corrupt`` on resume, with a warning, and its repeat runs again.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from weaknas_ray.config import RESUMABLE_KEYS, diff, dump_yaml, load_config
from weaknas_ray.exceptions import ConfigError, RunStateError

# NOTE: sorting keys of merged tables: stable order whatever order repeats finished in.
ORDER = ["method", "repeat", "query"]
ROWS_GLOB, FINAL_GLOB = "*__r????.parquet", "*.final.parquet"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; output files get the usual permissions
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_UMASK = os.umask(0)
os.umask(_UMASK)


def write_parquet(path: Path, frame: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


class RunStore:
    """Reads and writes one run's output folder.

    Args:
        root: the output folder (created on :meth:`prepare`).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.repeats_dir = self.root / "repeats"

    def prepare(self, config: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Create the folder and save ``config`` (and ``meta``), refusing a folder holding another run.

        Keys in :data:`~weaknas_ray.config.RESUMABLE_KEYS` (Ray resources, output, repeats) may differ.

        Raises:
            ConfigError: the saved ``config.yaml`` differs; the message lists the differing keys.
        """
        saved = self.root / "config.yaml"
        if saved.is_file():
            changed = diff(self.load_config(), config, ignore=RESUMABLE_KEYS)
            if changed:
                raise ConfigError(
                    f"output folder {str(self.root)!r} holds a run with a different config; refusing to mix "
                    "results. Differing keys (saved -> new):\n  " + "\n  ".join(changed)
                    + "\nUse another --output, or delete the folder to start over."
                )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            write_text(saved, dump_yaml(config))
            if meta is not None:
                write_text(self.root / "meta.json", json.dumps(meta, indent=2))
        except OSError as exc:
            raise ConfigError(f"output: cannot write the output folder {str(self.root)!r} ({exc})") from exc

    def load_config(self) -> dict[str, Any]:
        """The saved resolved config, merged over today's base settings (a folder written before a key
        existed gets that key's default) and validated.

        Raises:
            RunStateError: the folder holds no ``config.yaml`` (not a run's output folder).
        """
        path = self.root / "config.yaml"
        if not path.is_file():
            raise RunStateError(f"{str(self.root)!r} is not a run's output folder (no config.yaml in it)")
        return load_config(path)

    def load_meta(self) -> dict[str, Any]:
        path = self.root / "meta.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RunStateError(f"{path}: unreadable ({exc}); rerun the search with this --output to rewrite it") from exc

    def finished(self) -> set[tuple[str, int]]:
        """``(method, repeat)`` of every repeat whose rows are saved and readable; an unreadable file
        (with its final top-1) is renamed to ``*.corrupt`` with a warning, so that repeat runs again."""
        import pyarrow.parquet as pq

        done = set()
        for path in sorted(self.repeats_dir.glob(ROWS_GLOB)):
            try:
                pq.read_metadata(path)
            except (OSError, ValueError) as exc:
                for bad in (path, path.with_suffix(".final.parquet")):
                    if bad.exists():
                        bad.replace(bad.with_name(bad.name + ".corrupt"))
                print(f"warning: {path} is unreadable ({exc}); renamed to {path.name}.corrupt, "
                      "its repeat runs again", file=sys.stderr)
                continue
            method, _, repeat = path.stem.rpartition("__r")
            done.add((method, int(repeat)))
        return done

    def write_repeat(self, method: str, repeat: int, rows: pd.DataFrame, final_top1: pd.DataFrame | None) -> None:
        """Save one finished repeat (final top-1 first: the rows file marks the repeat as finished)."""
        stem = f"{method}__r{repeat:04d}"
        if final_top1 is not None:
            write_parquet(self.repeats_dir / f"{stem}.final.parquet", final_top1)
        write_parquet(self.repeats_dir / f"{stem}.parquet", rows)

    def merge(self) -> None:
        """Rewrite ``results.parquet`` and ``final_top1.parquet`` from the per-repeat files (once per run
        and by ``report``: merging after every repeat would cost quadratic time over 100s of repeats)."""
        for name, pattern in (("results", ROWS_GLOB), ("final_top1", FINAL_GLOB)):
            frame = _concat(sorted(self.repeats_dir.glob(pattern)))
            if frame is not None:
                write_parquet(self.root / f"{name}.parquet", frame)

    def results(self) -> pd.DataFrame:
        """All saved query rows, sorted by method, repeat and query.

        Raises:
            ConfigError: the folder holds no finished repeat.
        """
        frame = _concat(sorted(self.repeats_dir.glob(ROWS_GLOB)))
        if frame is None:
            raise ConfigError(f"{str(self.root)!r} holds no finished repeat (no repeats/*.parquet)")
        return frame

    def final_top1(self) -> pd.DataFrame | None:
        """All saved final top-1 rows, or ``None`` when no method had a predictor."""
        return _concat(sorted(self.repeats_dir.glob(FINAL_GLOB)))

    def write_failures(self, failures: list[dict[str, Any]]) -> None:
        """Save (or, when empty, remove) ``failures.json``."""
        path = self.root / "failures.json"
        if failures:
            write_text(path, json.dumps(failures, indent=2))
        else:
            path.unlink(missing_ok=True)


def _concat(paths: list[Path]) -> pd.DataFrame | None:
    if not paths:
        return None
    frames = []
    for path in paths:
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError) as exc:
            raise RunStateError(
                f"{path}: unreadable ({exc}); rerun the search with this --output to recompute that repeat"
            ) from exc
    frame = pd.concat(frames, ignore_index=True)
    keys = [k for k in ORDER if k in frame.columns]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)
