#!/usr/bin/env bash
# Prepare, on this machine (package registries reachable), what one call of the lent GPU machine needs for
# scripts/gpu_bench.sh: its image holds CUDA torch but not Ray, OFA or jsonschema, and nothing can be fetched
# there. Ray's wheel (79 MB) is over the 64 MiB a call may carry, so its Java jars (unused) are stripped.
# Everything goes to ignored paths (.gitignore): .whl/ and outputs/device/ (a copy of the NAS-Bench-201 table).
# Usage: scripts/gpu_prepare.sh [DATA_ROOT]   (default ../shared/benchmarks_data)
set -euo pipefail
cd "$(dirname "$0")/.."
data_root=${1:-../shared/benchmarks_data}
rm -rf .whl && mkdir .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${platforms[@]}" \
  -d .whl "ray==2.60.*" "ofa==0.1.0.post202307202001" jsonschema jsonschema-specifications referencing rpds-py
python3 - .whl/ray-*.whl <<'PY'
"""Rewrite the wheel without ray/jars/ (and without their RECORD lines)."""
import os, sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as src, zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as dst:
    for item in src.infolist():
        if item.filename.startswith("ray/jars/"):
            continue
        data = src.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            data = b"".join(l for l in data.splitlines(True) if not l.startswith(b"ray/jars/"))
        dst.writestr(item, data)
os.replace(path + ".tmp", path)
PY
mkdir -p outputs/device/benchmarks_data/nasbench201
cp "$data_root/nasbench201/nb201_200ep.csv" outputs/device/benchmarks_data/nasbench201/
du -sch .whl outputs/device | tail -1
