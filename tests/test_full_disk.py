"""A full disk at each write of a run: one line naming the file, exit 2, the finished repeats kept; once
space is freed, rerunning the same command finishes every repeat and loses none.

First the disk is "full" for one file name at a time: its rename (or, for the lock, its link) into place
fails with ENOSPC, which is where every write of a run ends (``records.atomic_write``). Then, where the
test may mount one, a real 1 MB tmpfs is filled to within a few pages.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.cli import main
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces import ArraySpace, TableOracle

REPEATS, MAX_SAMPLE = 4, 20


@pytest.fixture
def disk(monkeypatch):
    """``disk["full"] = NAME`` makes writes of files called NAME fail with ENOSPC; ``None`` frees space."""
    state = {"full": None}

    def failing(real):
        def place(src, dst, *args, **kwargs):
            if Path(dst).name == state["full"]:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
            return real(src, dst, *args, **kwargs)

        return place

    monkeypatch.setattr(os, "replace", failing(os.replace))
    monkeypatch.setattr(os, "link", failing(os.link))
    return state


@pytest.fixture
def run(ray_session, tmp_path, monkeypatch):
    """``run(OUT)``: ``weaknas-ray run`` of 4 random repeats on a small fake pool into OUT (the benchmark
    loader is patched)."""
    from weaknas_ray.drivers import ray_runner

    X = np.random.default_rng(0).normal(size=(200, 4))
    bench = Benchmark("fake", ArraySpace(X, name="fake"), TableOracle(X.sum(axis=1), X.sum(axis=1) + 1.0))
    monkeypatch.setattr(ray_runner, "load_configured_benchmark", lambda *_: bench)
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: full-disk\nbenchmark: {loader: 'unused:loader'}\n"
        f"search: {{methods: [random], repeats: {REPEATS}, max_sample: {MAX_SAMPLE}}}\n"
    )
    return lambda out: main(["run", "--config", str(config), "--output", str(out), "--no-progress"])


def finished_files(out: Path) -> dict[str, bytes]:
    """The repeat files ``checksums.json`` records (those of finished repeats)."""
    index = out / "repeats" / "checksums.json"
    names = [name for files in json.loads(index.read_text()).values() for name in files] if index.is_file() else []
    return {name: (out / "repeats" / name).read_bytes() for name in names}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["random__r0002.parquet", "checksums.json", ".lock", "results.parquet", "summary.json", "curves.png",
             "search_dynamics.png"],
)
def test_a_full_disk_is_one_line_keeps_finished_repeats_and_the_resume_completes(run, disk, tmp_path, capsys, name):
    out = tmp_path / "run"
    disk["full"] = name
    assert run(out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("weaknas-ray run: error: cannot write ") and f"{name} (No space left on device)" in err[-1]
    assert "Traceback" not in "\n".join(err) and not (out / ".lock").exists()
    kept = finished_files(out)
    if name.startswith("random__r"):  # the repeats in flight were finished and saved
        assert f"{len(kept)} finished repeat(s) kept in {out}: free space, then rerun the same command" in err[-1]
        assert name not in kept and len(kept) >= 1
    elif name in ("results.parquet", "summary.json", "curves.png", "search_dynamics.png"):
        assert len(kept) == REPEATS and f"free space, then run `weaknas-ray report {out}`" in err[-1]
    disk["full"] = None  # space freed
    assert_resume_completes(run, out, kept)


def assert_resume_completes(run, out: Path, kept: dict[str, bytes]) -> None:
    """Rerunning finishes every repeat, keeps the ``kept`` files as they were, leaves no temporary file."""
    assert run(out) == 0
    results = pd.read_parquet(out / "results.parquet")
    counts = results.groupby("repeat")["query"].nunique()
    assert counts.index.tolist() == list(range(REPEATS)) and (counts == MAX_SAMPLE).all()
    assert finished_files(out).items() >= kept.items()  # the finished repeats were kept as they were
    for figure in ("summary.json", "curves.png", "search_dynamics.png"):
        assert (out / figure).is_file()
    assert not list(out.rglob(".*.tmp"))


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs at ``tmp_path/disk``; the test is skipped where this process may not mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(disk: Path, free: int) -> Path:
    """Fill ``disk`` to within ``free`` bytes with one file; deleting it frees the space."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_CREAT | os.O_WRONLY)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - free))
    finally:
        os.close(fd)
    return filler


@pytest.mark.slow
@pytest.mark.parametrize("free_kb", [0, 40])  # the lock; a repeat mid-run
def test_a_really_full_disk_stops_the_run_in_one_line_and_the_resume_completes(run, small_disk, capsys, free_kb):
    """A real full disk (a tmpfs): wherever the space runs out (the lock, config.yaml, a repeat, the
    index, a merged table, a figure), one line naming the file, exit 2, no empty lock or half file left;
    after the space is freed the same command finishes every repeat."""
    out = small_disk / "run"
    filler = fill(small_disk, free_kb * 1024)
    assert run(out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("weaknas-ray run: error: cannot write ") and "(No space left on device)" in err[-1], err
    assert "Traceback" not in "\n".join(err) and not (out / ".lock").exists()
    assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size == 0]  # no empty or half-made file
    kept = finished_files(out) if out.is_dir() else {}
    filler.unlink()
    assert_resume_completes(run, out, kept)
