"""The cluster recipe on one machine: two raylets (a head and a worker node, one CPU each) joined by
``weaknas-ray run --address``, running a fixed-seed EI search whose ensemble is fitted by member tasks and
scored by chunk tasks; its rows equal the in-process run's.

Cleanup: ``ray stop`` would stop every Ray instance of the machine (other runs included), so each raylet
is started with ``ray start --block`` in its own session and ended by signalling that session, then any
process left whose command line names this test's own temporary folder is ended by its pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.config import load_config, method_settings
from weaknas_ray.drivers.loop import run_repeat
from weaknas_ray.engine import make_optimizer
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces import ArraySpace, TableOracle

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"predictor": "mlp", "predictor_params": {"hidden": [16], "max_epochs": 15}, "n_members": 3}


def tiny_benchmark() -> Benchmark:
    """The run's benchmark (``benchmark.loader: tests.test_cluster:tiny_benchmark``)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    acc = X @ rng.normal(size=6) + 0.1 * rng.normal(size=400)
    return Benchmark("tiny", ArraySpace(X, name="tiny"), TableOracle(acc, acc + 1.0))


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _end(procs: list[subprocess.Popen], temp: str) -> None:
    for proc in reversed(procs):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=5)  # a raylet drains up to 30 s on SIGTERM: nothing to drain here
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):  # strays naming this test's temporary folder
        try:
            if temp.encode() in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_ei_run_with_member_tasks_on_two_raylets(tmp_path):
    temp = tempfile.mkdtemp(prefix="wnr18_", dir="/tmp")  # short: Ray's socket paths are length-limited
    gcs, *ports = _free_ports(13)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("RAY_ADDRESS", None)
    ray_bin = str(Path(sys.executable).parent / "ray")
    common = ["--block", "--num-cpus=1", "--num-gpus=0", "--disable-usage-stats", "--node-ip-address=127.0.0.1"]

    def node_ports(p):
        return [f"--node-manager-port={p[0]}", f"--object-manager-port={p[1]}", f"--dashboard-agent-listen-port={p[2]}",
                f"--dashboard-agent-grpc-port={p[3]}", f"--runtime-env-agent-port={p[4]}", f"--metrics-export-port={p[5]}"]

    head = [ray_bin, "start", "--head", f"--port={gcs}", f"--temp-dir={temp}", "--include-dashboard=false",
            *common, *node_ports(ports[:6])]
    worker = [ray_bin, "start", f"--address=127.0.0.1:{gcs}", *common, *node_ports(ports[6:12])]
    procs: list[subprocess.Popen] = []
    start = time.monotonic()
    try:
        logs = [open(tmp_path / f"raylet{i}.log", "w") for i in range(2)]
        procs.append(subprocess.Popen(head, env=env, start_new_session=True, stdout=logs[0], stderr=subprocess.STDOUT))
        time.sleep(8)
        procs.append(subprocess.Popen(worker, env=env, start_new_session=True, stdout=logs[1], stderr=subprocess.STDOUT))
        out = tmp_path / "run"
        config = tmp_path / "ei.yaml"
        config.write_text(
            "benchmark: {loader: 'tests.test_cluster:tiny_benchmark'}\n"
            "search: {methods: [weaknas-ei], repeats: 1, max_sample: 30, seed: 3}\n"
            f"methods: {{weaknas-ei: {SETTINGS!r}}}\n".replace("'", '"')
            + "ray: {member_tasks: 3, chunk_size: 128}\n"
        )
        wait_nodes = (f"import ray,time; ray.init(address='127.0.0.1:{gcs}', log_to_driver=False)\n"
                      "for _ in range(60):\n    if ray.cluster_resources().get('CPU', 0) >= 2: break\n    time.sleep(0.5)\n"
                      "assert ray.cluster_resources().get('CPU', 0) >= 2, ray.cluster_resources()")
        subprocess.run([sys.executable, "-c", wait_nodes], env=env, check=True, timeout=45, cwd=ROOT)
        run = subprocess.run(
            [sys.executable, "-m", "weaknas_ray.cli", "run", "--config", str(config), "--address", f"127.0.0.1:{gcs}",
             "--output", str(out), "--allow-loader", "tests.test_cluster:tiny_benchmark"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=90,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    finally:
        _end(procs, temp)
    assert time.monotonic() - start < 150
    got = pd.read_parquet(out / "results.parquet")
    cfg = load_config(config)
    opt = make_optimizer("weaknas-ei", tiny_benchmark().space, 30, 3, **method_settings(cfg, "weaknas-ei"))
    want = run_repeat(opt, tiny_benchmark().oracle.for_repeat(3))
    pd.testing.assert_frame_equal(got[want.columns].drop(columns=["elapsed_s"]).reset_index(drop=True),
                                  want.drop(columns=["elapsed_s"]).reset_index(drop=True))
