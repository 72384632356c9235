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
``*.corrupt`` on resume and on report, with a warning, and the repeat runs again. Where ``checksums.json``
is missing (a folder written before checksums were recorded) or damaged, each repeat's files are checked
for readability and content on their own and the index is rebuilt from those that pass.

Every write goes through :func:`atomic_write`, which turns an OS error (a full disk) into one
:class:`~weaknas_ray.exceptions.OutputWriteError` naming the file.
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
from weaknas_ray.exceptions import ConfigError, OutputWriteError, RunStateError

# NOTE: sorting keys of merged tables: stable order whatever order repeats finished in.
ORDER = ["method", "repeat", "query"]
ROWS_GLOB, FINAL_GLOB = "*__r????.parquet", "*.final.parquet"
INDEX, LOCK = "checksums.json", ".lock"
# NOTE: what a repeat's files must hold to be a result (checked where no checksum can vouch for them).
ROW_COLUMNS = ("method", "repeat", "seed", "query", "arch_index", "reported_value")
FINAL_COLUMNS = ("method", "repeat", "reported_value")


def atomic_write(path: Path, write: Callable[[Path], None], place: Callable[[str, Path], None] | None = None) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then ``place`` it onto ``path`` (default
    ``os.replace``, a rename; ``os.link`` creates ``path`` only where none exists). Every file of a run is
    written here, so that a kill leaves the old file or the new one and an OS error (a full disk) is one
    line naming the file.

    Raises:
        OutputWriteError: the folder, the temporary file or the rename failed (not ``FileExistsError``
            of a ``place`` that refuses to replace: that is the caller's answer).
    """
    tmp, placing = None, False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; output files get the usual permissions
        write(Path(tmp))
        placing = True
        (place or os.replace)(tmp, path)
    except OSError as exc:
        if placing and isinstance(exc, FileExistsError):
            raise
        # NOTE: the errno's own words: pyarrow's strerror is "Error writing bytes to file. Detail: [errno 28] ..."
        raise OutputWriteError(path, os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


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


def check_output_path(output: str | os.PathLike) -> None:
    """Refuse, before any work, an output folder the OS would refuse only later (after the benchmark loaded,
    Ray started and ``config.yaml`` was written): one that names a file, cannot be created or written,
    has a name or a length over the file system's limits, or cannot be encoded in its encoding (a
    non-UTF-8 byte of a command line arrives as a lone surrogate, which Ray cannot encode). Nothing is
    left behind: writability is probed by creating and removing an empty folder.

    Raises:
        ConfigError: ``output: 'PATH' <the problem>``.
    """
    text = os.fspath(output)

    def refuse(problem: str):
        shown = text if len(text) <= 200 else f"{text[:120]}...{text[-60:]}"  # still one readable line
        raise ConfigError(f"output: {shown!r} {problem}")

    encoding = sys.getfilesystemencoding()
    try:
        text.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start:exc.end]
        try:  # a byte of the command line that was not valid in the encoding: Python kept it as a surrogate
            what = f"the byte(s) {os.fsencode(bad)!r} (not valid {encoding})"
        except UnicodeEncodeError:
            what = repr(bad)
        refuse(f"cannot be encoded in the file system's encoding ({encoding}): {what} at position {exc.start}; "
               "choose a name without it")
    absolute = Path(os.path.abspath(text))
    existing = next(p for p in (absolute, *absolute.parents) if os.path.exists(p))  # never raises: too long is False
    name_max, path_max = _limit(existing, "PC_NAME_MAX", 255), _limit(existing, "PC_PATH_MAX", 4096)
    for part in absolute.relative_to(existing).parts:
        if len(os.fsencode(part)) > name_max:
            refuse(f"has a name of {len(os.fsencode(part))} bytes ({part[:20]}...), over the file system's "
                   f"limit of {name_max}; choose a shorter name")
    if len(os.fsencode(absolute)) >= path_max:
        refuse(f"is {len(os.fsencode(absolute))} bytes long as an absolute path, over the limit of {path_max - 1}; "
               "choose a shorter path")
    if not existing.is_dir():
        refuse("is a file, not a folder; choose another --output" if existing == absolute
               else f"cannot be created: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".weaknas-probe-", dir=existing))
    except OSError as exc:
        refuse(f"cannot be created or written: {exc.strerror or exc} in {existing}; choose a writable place")


def _limit(path: Path, name: str, default: int) -> int:
    """A file-system limit (``os.pathconf``) at ``path``, ``default`` where the system does not say."""
    try:
        limit = os.pathconf(path, name)
    except (OSError, ValueError):
        return default
    return limit if limit > 0 else default  # -1: no fixed limit


def _holder(path: Path) -> tuple[int | None, str]:
    """``(pid, host)`` a lock file names; ``(None, "?")`` when it is empty, damaged or already gone."""
    try:
        holder = json.loads(path.read_text())
        return int(holder["pid"]), str(holder["host"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, "?"


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
        again. Without a usable ``checksums.json`` (none yet, or damaged) each repeat's files are checked on
        their own and the index is rebuilt from those that pass: a damaged index costs no result."""
        index = self._read_index()
        done, changed = set(), index is None
        rebuilt: dict[str, dict[str, str]] = {}
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
            if index is None:  # the index is rebuilt from these (with one, _check has hashed them)
                rebuilt[stem] = self._digests(stem)
        if changed and (done or index is not None):
            write_text(self.repeats_dir / INDEX, json.dumps(rebuilt if index is None else index, indent=1))
        return done

    def _read_index(self) -> dict[str, dict[str, str]] | None:
        """``checksums.json`` (``{stem: {file name: sha256}}``); ``None`` in a folder written without one
        and when it is unreadable (it is then set aside as ``*.corrupt``, with a warning)."""
        path = self.repeats_dir / INDEX
        if not path.is_file():
            return None
        try:
            index = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            index = exc
        if not isinstance(index, dict) or not all(isinstance(v, dict) for v in index.values()):
            print(f"warning: {path} is unreadable ({str(index)[:80]}); set aside as *.corrupt, each repeat's files "
                  "are checked on their own and the index rebuilt", file=sys.stderr)
            path.replace(path.with_name(path.name + ".corrupt"))
            return None
        return index

    def _check(self, stem: str, index: dict[str, dict[str, str]] | None) -> str | None:
        """Why the repeat ``stem`` cannot be trusted, or ``None``."""
        if index is None:  # no checksums to compare: readable files of this repeat are all that can be checked
            return self._readable(stem)
        if stem not in index:
            return f"not recorded in {INDEX} (a run killed while saving it, or a file added by hand)"
        for name, digest in index[stem].items():
            path = self.repeats_dir / name
            if not path.is_file():
                return f"{name} is missing"
            if sha256(path) != digest:
                return f"{name} does not match its recorded checksum (damaged or edited)"
        return None

    def _readable(self, stem: str) -> str | None:
        """Why the files of repeat ``stem`` are not a readable repeat of that name (parquet with the
        columns a result needs, naming that method and repeat), or ``None``."""
        import pyarrow.parquet as pq

        method, _, repeat = stem.rpartition("__r")
        for path, needed in ((self.repeats_dir / f"{stem}.parquet", ROW_COLUMNS),
                             (self.repeats_dir / f"{stem}.final.parquet", FINAL_COLUMNS)):
            if path.name.endswith(".final.parquet") and not path.exists():
                continue  # methods without a predictor have none
            try:
                table = pq.read_table(path)
            except (OSError, ValueError) as exc:
                return f"{path.name} is unreadable ({exc})"
            missing = [c for c in needed if c not in table.column_names]
            if missing:
                return f"{path.name} lacks the column(s) {', '.join(missing)}"
            named = {(m, int(r)) for m, r in zip(table.column("method").to_pylist(), table.column("repeat").to_pylist())}
            if named - {(method, int(repeat))}:
                return f"{path.name} holds rows of another repeat ({sorted(named)[0]})"
        return None

    def _digests(self, stem: str) -> dict[str, str]:
        """``{file name: sha256}`` of repeat ``stem``'s files (its entry in ``checksums.json``)."""
        names = [f"{stem}.final.parquet", f"{stem}.parquet"]
        return {name: sha256(self.repeats_dir / name) for name in names if (self.repeats_dir / name).is_file()}

    def write_repeat(self, method: str, repeat: int, rows: pd.DataFrame, final_top1: pd.DataFrame | None) -> None:
        """Save one finished repeat: its files, then their checksums (the entry marks it as finished).

        Raises:
            OutputWriteError: a file could not be written; the repeat is not finished (a resume runs it).
        """
        stem = f"{method}__r{repeat:04d}"
        if self._read_index() is None:  # none yet, or damaged since the run began: rebuilt from the other
            self.finished()  # repeats' files first, so none of them is lost
        if final_top1 is not None:
            write_parquet(self.repeats_dir / f"{stem}.final.parquet", final_top1)
        write_parquet(self.repeats_dir / f"{stem}.parquet", rows)
        index = self._read_index() or {}
        index[stem] = self._digests(stem)
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
        lock whose process is gone (same host, pid not running) is stale and taken over with a warning, as
        is one that names no process (empty or damaged: only an older version or a damaged disk leaves one,
        since the lock is written whole under a temporary name and then linked into place).

        Raises:
            RunStateError: another live process (or one on another host) holds the folder.
            OutputWriteError: the lock cannot be written (disk full, read-only folder).
        """
        path = self.root / LOCK
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(3):
            try:
                atomic_write(path, lambda tmp: tmp.write_text(json.dumps(me)), place=os.link)
                break
            except FileExistsError:
                pid, host = _holder(path)
                if pid is None:
                    print(f"warning: {path}: a lock naming no process (empty or damaged) taken over", file=sys.stderr)
                elif host == me["host"] and not _alive(pid):
                    print(f"warning: {path}: stale lock of pid {pid} (no longer running) taken over", file=sys.stderr)
                else:
                    raise RunStateError(
                        f"output folder {str(self.root)!r} is in use by pid {pid} on host {host} ({path}); wait "
                        f"for that run to end, or delete {path} if it is no longer running"
                    ) from None
                path.unlink(missing_ok=True)
        else:
            raise RunStateError(f"output folder {str(self.root)!r}: {path} was taken by another run as this one "
                                "took over a stale lock; wait for that run to end")
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    @contextlib.contextmanager
    def reporting(self) -> Iterator[None]:
        """Around writing the merged tables, summary and figures: a write that fails (disk full) says that
        the repeat files are kept and how to redraw the rest."""
        try:
            yield
        except OutputWriteError as exc:
            exc.fix = (f"the repeat files in {self.repeats_dir} are kept: free space, then run "
                       f"`weaknas-ray report {self.root}`")
            raise

    def merge(self) -> None:
        """Rewrite ``results.parquet`` and ``final_top1.parquet`` from the per-repeat files (once per run
        and by ``report``: merging after every repeat would cost quadratic time over 100s of repeats)."""
        self.finished()  # sets aside damaged repeats first
        for name, pattern in (("results", ROWS_GLOB), ("final_top1", FINAL_GLOB)):
            frame = _concat(self._paths(pattern))
            if frame is None:
                continue
            with self.reporting():
                write_parquet(self.root / f"{name}.parquet", frame)

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
