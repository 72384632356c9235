"""The cluster recipe on one machine: two raylets (a head and a worker node, one CPU each) joined by
``weaknas-ray run --address``, running a fixed-seed EI search whose ensemble is fitted by member tasks and
scored by chunk tasks; its rows equal the in-process run's. And node loss: the worker node's raylet is
killed mid-run, and the run still finishes every repeat on the head.

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
from contextlib import contextmanager
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


class SlowOracle(TableOracle):
    """A table oracle that sleeps ``delay`` seconds per batch: repeats last long enough to lose a node; it
    touches ``marker`` (when given) after each batch, so the test knows when the fit that follows starts."""

    def __init__(self, search, reported, delay: float, marker: str = ""):
        super().__init__(search, reported)
        self.delay, self.marker = delay, marker

    def for_repeat(self, seed):
        return SlowOracle(self.search, self.reported, self.delay, self.marker)

    def evaluate(self, indices):
        time.sleep(self.delay)
        if self.marker:
            Path(self.marker).touch()
        return super().evaluate(indices)


def slow_benchmark(delay: float = 0.5) -> Benchmark:
    """The node-loss run's benchmark (``benchmark.loader: tests.test_cluster:slow_benchmark``)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    return Benchmark("slow-tiny", ArraySpace(X, name="slow-tiny"), SlowOracle(X.sum(axis=1), X.sum(axis=1) + 1.0, delay))


def slow_tiny_benchmark(delay: float, marker: str) -> Benchmark:
    """:func:`tiny_benchmark` with a :class:`SlowOracle` (``benchmark.loader: tests.test_cluster:slow_tiny_benchmark``)."""
    bench = tiny_benchmark()
    oracle = SlowOracle(bench.oracle.search, bench.oracle.reported, delay, marker)
    return Benchmark(bench.name, bench.space, oracle)


def ei_config(folder: Path, benchmark: str, ray: str) -> Path:
    """``folder/ei.yaml``: one fixed-seed weaknas-ei repeat of 30 queries (:data:`SETTINGS`) on ``benchmark``
    with the ``ray`` settings (both YAML flow mappings' text)."""
    path = folder / "ei.yaml"
    path.write_text(
        f"benchmark: {benchmark}\n"
        "search: {methods: [weaknas-ei], repeats: 1, max_sample: 30, seed: 3}\n"
        f"methods: {{weaknas-ei: {SETTINGS!r}}}\n".replace("'", '"') + f"ray: {{{ray}}}\n"
    )
    return path


def assert_rows_of_a_local_run(out: Path, config: Path) -> None:
    """The rows the run in ``out`` wrote equal those of the in-process run of its ``ei_config``."""
    got = pd.read_parquet(out / "results.parquet")
    cfg = load_config(config)
    opt = make_optimizer("weaknas-ei", tiny_benchmark().space, 30, 3, **method_settings(cfg, "weaknas-ei"))
    want = run_repeat(opt, tiny_benchmark().oracle.for_repeat(3))
    pd.testing.assert_frame_equal(got[want.columns].drop(columns=["elapsed_s"]).reset_index(drop=True),
                                  want.drop(columns=["elapsed_s"]).reset_index(drop=True))


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


@contextmanager
def _two_raylets(tmp_path: Path, prefix: str):
    """A head and a worker raylet of one CPU each, ended (with their strays) on exit; waits until both
    CPUs show.

    Yields:
        The GCS port, the environment of processes joining it, the worker node's node-manager port.
    """
    temp = tempfile.mkdtemp(prefix=prefix, dir="/tmp")  # short: Ray's socket paths are length-limited
    procs: list[subprocess.Popen] = []
    try:
        yield _start_two_raylets(tmp_path, temp, procs)
    finally:
        _end(procs, temp)


def _start_two_raylets(tmp_path: Path, temp: str, procs: list[subprocess.Popen]) -> tuple[int, dict, int]:
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
    logs = [open(tmp_path / f"raylet{i}.log", "w") for i in range(2)]
    procs.append(subprocess.Popen(head, env=env, start_new_session=True, stdout=logs[0], stderr=subprocess.STDOUT))
    time.sleep(8)
    procs.append(subprocess.Popen(worker, env=env, start_new_session=True, stdout=logs[1], stderr=subprocess.STDOUT))
    wait_nodes = (f"import ray,time; ray.init(address='127.0.0.1:{gcs}', log_to_driver=False)\n"
                  "for _ in range(60):\n    if ray.cluster_resources().get('CPU', 0) >= 2: break\n    time.sleep(0.5)\n"
                  "assert ray.cluster_resources().get('CPU', 0) >= 2, ray.cluster_resources()")
    subprocess.run([sys.executable, "-c", wait_nodes], env=env, check=True, timeout=45, cwd=ROOT)
    return gcs, env, ports[6]


def _run_command(config: Path, gcs: int, out: Path, loader: str, *more: str) -> list[str]:
    """``weaknas-ray run`` of ``config`` on the cluster, allowed this module's ``loader``."""
    return [sys.executable, "-m", "weaknas_ray.cli", "run", *more, "--config", str(config), "--address",
            f"127.0.0.1:{gcs}", "--output", str(out), "--allow-loader", f"tests.test_cluster:{loader}"]


@pytest.mark.slow
def test_ei_run_with_member_tasks_on_two_raylets(tmp_path):
    start = time.monotonic()
    with _two_raylets(tmp_path, "wnr18_") as (gcs, env, _):
        out = tmp_path / "run"
        config = ei_config(tmp_path, "{loader: 'tests.test_cluster:tiny_benchmark'}", "member_tasks: 3, chunk_size: 128")
        run = subprocess.run(
            _run_command(config, gcs, out, "tiny_benchmark"), env=env, cwd=ROOT, capture_output=True, text=True, timeout=90,
        )
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert time.monotonic() - start < 150
    assert_rows_of_a_local_run(out, config)


def _raylet_pid(node_manager_port: int) -> int:
    """The pid of the raylet listening on ``node_manager_port`` (this test's own worker node)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"/raylet") and f"--node_manager_port={node_manager_port}".encode() in args:
            return int(cmdline.parent.name)
    raise AssertionError(f"no raylet with --node_manager_port={node_manager_port}")


def _kill_worker_node_when(command: list[str], env: dict, worker_port: int, ready, within: float) -> tuple[int, str]:
    """Start ``command``; SIGKILL the worker node's raylet once ``ready()`` (within 60 s, the run still
    going); fail unless the run then ends within ``within`` s. Returns its exit status and output."""
    run = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not ready():
            assert run.poll() is None and time.monotonic() < deadline, "the run ended or stalled before the kill"
            time.sleep(0.1)
        os.kill(_raylet_pid(worker_port), signal.SIGKILL)
        try:
            output, _ = run.communicate(timeout=within)
        except subprocess.TimeoutExpired:
            os.killpg(run.pid, signal.SIGKILL)
            output, _ = run.communicate()
            pytest.fail(f"the run still ran {within:g} s after the worker node died:\n" + output[-3000:])
    finally:  # a failed check above must not leave the run behind
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    return run.returncode, output


@pytest.mark.slow
def test_run_finishes_every_repeat_after_a_worker_node_dies(tmp_path):
    """SIGKILL the worker node's raylet while both nodes run repeats. The repeat lost with it
    is retried on the head (whose CPU the surviving actor holds), and the run ends with every repeat
    instead of waiting forever for a CPU for a replacement actor."""
    start = time.monotonic()
    with _two_raylets(tmp_path, "wnr14_") as (gcs, env, worker_port):
        out = tmp_path / "run"
        config = tmp_path / "random.yaml"
        config.write_text(
            "benchmark: {loader: 'tests.test_cluster:slow_benchmark', delay: 0.5}\n"
            "search: {methods: [random], repeats: 8, max_sample: 40, seed: 0}\n"
        )
        code, output = _kill_worker_node_when(
            _run_command(config, gcs, out, "slow_benchmark", "--no-progress"), env, worker_port,
            lambda: list(out.glob("repeats/*__r????.parquet")), within=60,  # both actors busy with their second repeats
        )
    assert code == 0, output[-3000:]
    assert "failed, attempt 1 of 2" in output and "; retrying" in output, output[-3000:]
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results["repeat"].unique()) == list(range(8)) and len(results) == 8 * 40
    assert time.monotonic() - start < 120


@pytest.mark.slow
@pytest.mark.parametrize("tasks", ["member_tasks: 3, chunk_size: 128", "chunk_size: 128, member_tasks: 0"])
def test_an_ei_run_whose_task_node_dies_finishes_with_the_rows_of_a_local_run(tmp_path, tasks):
    """SIGKILL the worker node's raylet as the EI ensemble's first fit starts. Whichever node the repeat's
    actor was on, the member and chunk tasks then find no free CPU (the actor holds the head's), so after
    ray.task_timeout_s the repeat fits and scores in its actor: the run finishes, with the rows of a local
    run, instead of waiting forever."""
    start = time.monotonic()
    with _two_raylets(tmp_path, "wnr26_") as (gcs, env, worker_port):
        out, marker = tmp_path / "run", tmp_path / "evaluated"
        bench = f"{{loader: 'tests.test_cluster:slow_tiny_benchmark', delay: 1.0, marker: '{marker}'}}"
        config = ei_config(tmp_path, bench, f"{tasks}, task_timeout_s: 5")
        code, output = _kill_worker_node_when(
            _run_command(config, gcs, out, "slow_tiny_benchmark", "--no-progress"), env, worker_port,
            marker.exists, within=90,  # the first batch is evaluated: the ensemble's fit starts
        )
    assert code == 0, output[-3000:]
    assert "fitted and scored in its own actor instead" in output, output[-3000:]
    assert_rows_of_a_local_run(out, config)
    assert time.monotonic() - start < 180
