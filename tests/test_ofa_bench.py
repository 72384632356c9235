"""``weaknas-ray bench ofa-gpu --quick`` on CPU, in a fresh process (it starts its own Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("ofa")


def test_ofa_gpu_bench_quick_runs_on_cpu(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "CUDA_VISIBLE_DEVICES": ""}
    argv = [
        sys.executable,
        "-m",
        "weaknas_ray.cli",
        "bench",
        "ofa-gpu",
        "--quick",
        "--actors",
        "1,2",
        "--json",
        str(out),
    ]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and [r["actors"] for r in report["rows"]] == [1, 2]
    for row in report["rows"]:
        assert row["images_per_s_total"] > 0 and row["images_per_s_per_actor"] > 0 and row["gpus_per_actor"] == 0
    assert "img/s total" in done.stdout
