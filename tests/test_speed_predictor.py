"""``weaknas-ray bench predictor --quick --roofline-only`` with a narrow MLP, in a fresh process (it sets torch's
thread count for the whole process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

PHASES = ["train E=1, 200 rows", "train E=5, 200 rows", "predict E=5, 1024 rows"]


def test_predictor_bench_prints_the_dtype_choice_and_a_roofline_per_phase_and_dtype():
    argv = [sys.executable, "-m", "weaknas_ray.cli", "bench", "predictor", "--quick", "--threads", "1", "--hidden", "32",
            "--roofline-only"]
    done = subprocess.run(argv, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert re.search(r"^dtype auto -> (float32|bfloat16): auto: bfloat16 matmul \S+x float32's on this CPU", done.stdout, re.M)
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["phase", "dtype"])
    assert lines[header].split()[2:] == ["time", "GFLOP/s", "matmul", "memory", "least", "share"]
    rows = lines[header + 1 : header + 7]
    assert [(row[2:26].strip(), row[26:].split()[0]) for row in rows] == [(p, d) for d in ("float32", "bfloat16") for p in PHASES]
    shares = [float(row.split()[-1].rstrip("%")) / 100 for row in rows]
    assert all(0 < share <= 1.5 for share in shares), rows
    ratios = lines[header + 7]
    assert ratios.startswith("  bfloat16 / float32: ") and all(f"{p}: speed " in ratios for p in PHASES)
