"""The output folder of a run: per-repeat parquet files written atomically, resume, merged tables.

Layout (the output folder contract, docs/output.md)::

    DIR/config.yaml            the resolved config
    DIR/meta.json              benchmark name, pool size, optimum (for report without the benchmark)
    DIR/repeats/<method>__r<repeat>.parquet       one per finished repeat (its presence = finished)
    DIR/repeats/<method>__r<repeat>.final.parquet the last predictor's top-1, evaluated (predictor methods)
    DIR/results.parquet        all finished repeats, one row per query (merged at the end of a run)
    DIR/final_top1.parquet     all final top-1 rows (not queries)
    DIR/repeats/checksums.json  per finished repeat: its files and their SHA-256 (written last: an entry
                                here = the repeat is finished)
    DIR/failures.json          repeats that failed after their retries, with seed and error
    DIR/.lock                  pid and host of the run writing the folder (removed when it ends)

Every file is written to a temporary name in the same folder and renamed into place, so a kill leaves
either the old file or the new one, never half of one. A repeat whose files are missing, unreadable or
differ from their recorded checksum (disk trouble, a hand edit, a flipped bit) has them renamed to
``*.corrupt`` on resume and on report, with a warning, and the repeat runs again. A folder written before
checksums were recorded (no ``checksums.json``) is checked for readability only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from weaknas_ray.config import RESUMABLE_KEYS, diff, dump_yaml, load_config, resolve_defaults
from weaknas_ray.exceptions import ConfigError, RunStateError

# NOTE: sorting keys of merged tables: stable order whatever order repeats finished in.
ORDER = ["method", "repeat", "query"]
ROWS_GLOB, FINAL_GLOB = "*__r????.parquet", "*.final.parquet"
INDEX, LOCK = "checksums.json", ".lock"


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


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class RunStore:
    """Reads and writes one run's output folder.

    Args:
        root: the output folder (created on :meth:`prepare`).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.repeats_dir = self.root / "repeats"

    def prepare(self, config: dict[str, Any], meta: dict[str, Any] | None = None) -> None:
        """Create the folder and save ``config`` (resolved: see :func:`~weaknas_ray.config.resolve_defaults`)
        and ``meta``, refusing a folder holding another run.

        Keys in :data:`~weaknas_ray.config.RESUMABLE_KEYS` (Ray resources, output, repeats) may differ.

        Raises:
            ConfigError: the saved ``config.yaml`` differs; the message lists the differing keys.
        """
        saved, config = self.root / "config.yaml", resolve_defaults(config)
        if not saved.is_file() and self.repeats_dir.is_dir() and any(self.repeats_dir.glob("*.parquet*")):
            raise RunStateError(
                f"output folder {str(self.root)!r} holds repeat files but no config.yaml, so the settings and "
                "seeds they were run with are unknown; refusing to add to them. Restore its config.yaml, or use "
                "another --output (or delete the folder) to start over."
            )
        if saved.is_file():
            # NOTE: a folder saved before defaults were resolved gets today's: it resumes as it did then
            changed = diff(resolve_defaults(self.load_config()), config, ignore=RESUMABLE_KEYS)
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
        """``(method, repeat)`` of every repeat whose files are saved, readable and match their recorded
        checksums; a repeat failing that has its files renamed to ``*.corrupt`` with a warning, so it runs
        again."""
        index = self._read_index()
        done, changed = set(), False
        for path in sorted(self.repeats_dir.glob(ROWS_GLOB)):
            stem = path.name.removesuffix(".parquet")
            problem = self._check(stem, index)
            if problem is not None:
                for bad in (path, path.with_suffix(".final.parquet")):
                    if bad.exists():
                        bad.replace(bad.with_name(bad.name + ".corrupt"))
                changed = index is not None and index.pop(stem, None) is not None or changed
                print(f"warning: {path}: {problem}; set aside as *.corrupt, its repeat runs again", file=sys.stderr)
                continue
            method, _, repeat = stem.rpartition("__r")
            done.add((method, int(repeat)))
        if changed:
            write_text(self.repeats_dir / INDEX, json.dumps(index, indent=1))
        return done

    def _read_index(self) -> dict[str, dict[str, str]] | None:
        """``checksums.json`` (``{stem: {file name: sha256}}``); ``None`` in a folder written without one,
        ``{}`` (every repeat unverified) when it is unreadable."""
        path = self.repeats_dir / INDEX
        if not path.is_file():
            return None
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            index = exc
        if not isinstance(index, dict):
            print(f"warning: {path} is unreadable ({index}); no repeat can be verified", file=sys.stderr)
            path.replace(path.with_name(path.name + ".corrupt"))
            return {}
        return index

    def _check(self, stem: str, index: dict[str, dict[str, str]] | None) -> str | None:
        """Why the repeat ``stem`` cannot be trusted, or ``None``."""
        import pyarrow.parquet as pq

        if index is None:  # written without checksums: readable is all that can be checked
            try:
                pq.read_metadata(self.repeats_dir / f"{stem}.parquet")
            except (OSError, ValueError) as exc:
                return f"unreadable ({exc})"
            return None
        if stem not in index:
            return f"not recorded in {INDEX} (a run killed while saving it, or a file added by hand)"
        for name, digest in index[stem].items():
            path = self.repeats_dir / name
            if not path.is_file():
                return f"{name} is missing"
            if sha256(path) != digest:
                return f"{name} does not match its recorded checksum (damaged or edited)"
        return None

    def write_repeat(self, method: str, repeat: int, rows: pd.DataFrame, final_top1: pd.DataFrame | None) -> None:
        """Save one finished repeat: its files, then their checksums (the entry marks it as finished)."""
        stem = f"{method}__r{repeat:04d}"
        paths = [self.repeats_dir / f"{stem}.parquet"]
        if final_top1 is not None:
            paths.append(self.repeats_dir / f"{stem}.final.parquet")
            write_parquet(paths[-1], final_top1)
        write_parquet(paths[0], rows)
        index = self._read_index() or {}
        index[stem] = {path.name: sha256(path) for path in paths}
        write_text(self.repeats_dir / INDEX, json.dumps(index, indent=1))

    def _paths(self, pattern: str) -> list[Path]:
        """The repeat files matching ``pattern`` that belong to finished repeats (recorded ones when the
        folder has checksums: a final top-1 whose rows were never saved is not a result)."""
        index = self._read_index()
        paths = sorted(self.repeats_dir.glob(pattern))
        if index is None:
            return paths
        recorded = {name for files in index.values() for name in files}
        return [path for path in paths if path.name in recorded]

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``DIR/.lock`` while writing the folder: a second run on it is refused, naming the holder. A
        lock whose process is gone (same host, pid not running) is stale and taken over with a warning.

        Raises:
            RunStateError: another live process (or one on another host) holds the folder.
        """
        path = self.root / LOCK
        self.root.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    holder = json.loads(path.read_text())
                    pid, host = int(holder["pid"]), str(holder["host"])
                except (OSError, ValueError, KeyError, TypeError):
                    pid, host = None, "?"
                if host == me["host"] and pid is not None and not _alive(pid):
                    print(f"warning: {path}: stale lock of pid {pid} (no longer running) taken over", file=sys.stderr)
                    path.unlink(missing_ok=True)
                    continue
                raise RunStateError(
                    f"output folder {str(self.root)!r} is in use by pid {pid} on host {host} ({path}); wait for "
                    f"that run to end, or delete {path} if it is no longer running"
                ) from None
            with os.fdopen(fd, "w") as handle:
                json.dump(me, handle)
            break
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def merge(self) -> None:
        """Rewrite ``results.parquet`` and ``final_top1.parquet`` from the per-repeat files (once per run
        and by ``report``: merging after every repeat would cost quadratic time over 100s of repeats)."""
        self.finished()  # sets aside damaged repeats first
        for name, pattern in (("results", ROWS_GLOB), ("final_top1", FINAL_GLOB)):
            frame = _concat(self._paths(pattern))
            if frame is None:
                continue
            try:
                write_parquet(self.root / f"{name}.parquet", frame)
            except OSError as exc:
                raise RunStateError(
                    f"cannot write {self.root / name}.parquet ({exc.strerror or exc}); the repeat files in "
                    f"{self.repeats_dir} are kept: free space, then run `weaknas-ray report {self.root}`"
                ) from None

    def results(self) -> pd.DataFrame:
        """All saved query rows, sorted by method, repeat and query.

        Raises:
            ConfigError: the folder holds no finished repeat.
        """
        frame = _concat(self._paths(ROWS_GLOB))
        if frame is None:
            raise ConfigError(f"{str(self.root)!r} holds no finished repeat (no repeats/*.parquet)")
        return frame

    def final_top1(self) -> pd.DataFrame | None:
        """All saved final top-1 rows, or ``None`` when no method had a predictor."""
        return _concat(self._paths(FINAL_GLOB))

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
