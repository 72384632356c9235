"""``weaknas-ray run`` / ``report`` end to end: config errors, kill-and-resume, a two-node cluster.

The subprocess runs load a fake benchmark from this module (``benchmark.loader``), so ``tests/`` is put
on ``PYTHONPATH`` for them and for their Ray workers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.cli import main
from weaknas_ray.interfaces import Benchmark
from weaknas_ray.spaces import ArraySpace, TableOracle

ROOT = Path(__file__).resolve().parents[1]
# NOTE: 4 batches of 10 at 0.4 s each: a repeat lasts long enough to kill the run between repeats.
DELAY_S = 0.4


class SlowOracle(TableOracle):
    """A table oracle that sleeps ``delay`` seconds per batch, like a slow real evaluation."""

    def __init__(self, values: np.ndarray, delay: float):
        super().__init__(values, values + 1.0)
        self.delay = delay

    def evaluate(self, indices):
        time.sleep(self.delay)
        return super().evaluate(indices)


def slow_benchmark(n: int = 200, delay: float = 0.0, seed: int = 0) -> Benchmark:
    """The loader the subprocess configs name: ``test_cli_run:slow_benchmark``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return Benchmark("slow-fake", ArraySpace(X, name="slow-fake"), SlowOracle(X.sum(axis=1), delay))


def write_config(path: Path, output: Path, repeats: int, delay: float) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            name: cli-fake
            benchmark: {{loader: "test_cli_run:slow_benchmark", n: 200, delay: {delay}}}
            search: {{methods: [random], repeats: {repeats}, max_sample: 40}}
            ray: {{num_cpus: 2}}
            output: {output}
            """
        )
    )
    return path


ALLOW = ("--allow-loader", "test_cli_run:slow_benchmark")


def env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]),
            "RAY_AUTH_MODE": "disabled"}


def launch(*args: str) -> subprocess.Popen:
    """``python run_search.py ARGS`` in its own process group (so the whole run can be killed)."""
    return subprocess.Popen(
        [sys.executable, "run_search.py", "--no-progress", *ALLOW, *args], cwd=ROOT, env=env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def test_malformed_config_exits_2_naming_the_key(tmp_path, capsys, nb201_root, monkeypatch):
    monkeypatch.setenv("WEAKNAS_DATA", str(nb201_root))  # method settings are checked against a loaded benchmark
    bad = tmp_path / "bad.yaml"
    bad.write_text("search: {max_sample: 5, init_sample: 10}\n")
    assert main(["run", "--config", str(bad)]) == 2
    assert "search.init_sample: 10 exceeds search.max_sample (5)" in capsys.readouterr().err
    assert main(["run", "--repeats", "0", "--output", str(tmp_path / "o")]) == 2
    assert "search.repeats: expected >= 1, got 0" in capsys.readouterr().err
    assert main(["run", "--set", "search.bogus=1"]) == 2
    assert "search.bogus: unknown key" in capsys.readouterr().err
    assert main(["run", "--set", "novalue"]) == 2
    assert "--set: expected KEY=VALUE" in capsys.readouterr().err
    for setting, message in [
        ("methods.weaknas.keep_old=some", "methods.weaknas.keep_old: unknown 'some'"),
        ("methods.weaknas.predictor_params.widht=3", "methods.weaknas.predictor_params.widht: not a setting of"),
        ("methods.weaknas.predictor_params.hidden=big", "methods.weaknas.predictor_params.hidden: expected a list"),
        ("methods.weaknas.predictor=mlpp", "methods.weaknas.predictor: unknown predictor 'mlpp'"),
        ("methods.random.batch_size=-3", "methods.random.batch_size: expected an integer >= 1, got -3"),
        ("benchmark.datset=cifar100", "benchmark.datset: not a setting of benchmark 'nasbench201'"),
        ("benchmark.noisy=often", "benchmark.noisy: expected bool, got str 'often'"),
        ("search.max_sample=99999", "search.max_sample: 99999 exceeds the pool of 15625"),
    ]:  # checked before the output folder is written or Ray starts
        assert main(["run", "--output", str(tmp_path / "o"), "--set", setting]) == 2
        assert message in capsys.readouterr().err
        assert not (tmp_path / "o").exists()
    assert main(["run", "--output", str(tmp_path / "o"), "--data-dir", str(tmp_path / "nope")]) == 2
    assert f"--data-dir {str(tmp_path / 'nope')!r} is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["a file", "under a file", "under /proc", "name too long", "path too long", "not utf-8"])
def test_an_output_path_the_os_refuses_is_one_line_before_any_work(tmp_path, capsys, monkeypatch, case):
    from weaknas_ray.drivers import ray_runner

    monkeypatch.setattr(ray_runner, "load_configured_benchmark", lambda *_: pytest.fail("work started"))
    (tmp_path / "file").write_text("mine")
    output, problem = {
        "a file": (tmp_path / "file", "is a file, not a folder"),
        "under a file": (tmp_path / "file" / "run", f"cannot be created: {tmp_path / 'file'} is a file"),
        "under /proc": (Path("/proc/weaknas-nonexistent/run"), "cannot be created or written"),
        "name too long": (tmp_path / ("n" * 256), "has a name of 256 bytes"),
        "path too long": (tmp_path / "/".join(["d" * 200] * 21), "over the limit of 4095"),
        "not utf-8": (tmp_path / os.fsdecode(b"run-\xff"), "cannot be encoded in the file system's encoding"),
    }[case]
    assert main(["run", "--output", str(output), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("weaknas-ray run: error: output: '") and problem in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"] and (tmp_path / "file").read_text() == "mine"


@pytest.mark.parametrize("setting", ["methods.tpe.batch_size=5", "methods.tpe={batch_size: 5}", "methods={tpe: {}}"])
def test_a_set_of_a_method_the_run_does_not_list_is_refused(tmp_path, capsys, monkeypatch, setting):
    from weaknas_ray.drivers import ray_runner

    monkeypatch.setattr(ray_runner, "load_configured_benchmark", lambda *_: pytest.fail("work started"))
    args = ["run", "--output", str(tmp_path / "o"), "--methods", "random", "--set", setting]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == (f"weaknas-ray run: error: --set {setting.partition('=')[0]}: method 'tpe' is not run "
                   "(search.methods: random); add it to --methods, or drop the setting\n")
    assert not (tmp_path / "o").exists()


def test_tune_resume_with_no_experiment_in_the_folder_is_one_line(tmp_path, capsys):
    args = ["tune", "--output", str(tmp_path / "typo"), "--set", "tune.resume=true"]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"weaknas-ray tune: error: tune.resume: {tmp_path / 'typo'} holds no Tune experiment to resume; check "
        "--output (or name), or drop tune.resume=true to start a new experiment there\n"
    )
    assert not (tmp_path / "typo").exists()


def test_interrupted_run_says_what_is_kept(tmp_path, capsys, monkeypatch):
    from weaknas_ray.drivers import ray_runner

    def interrupted(config, **_):
        ray_runner.RunStore(config["output"]).write_repeat("random", 0, pd.DataFrame({"query": [1]}), None)
        raise KeyboardInterrupt

    monkeypatch.setattr(ray_runner, "run_search", interrupted)
    assert main(["run", "--output", str(tmp_path / "o")]) == 130
    assert f"interrupted: 1 finished repeat(s) kept in {tmp_path / 'o'}; rerun the same command" in capsys.readouterr().err


def wait_for_repeats(proc: subprocess.Popen, out: Path, n: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while len(list((out / "repeats").glob("*.parquet"))) < n:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else "timeout"
        time.sleep(0.05)


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    """What `timeout`, Slurm and Kubernetes send: one line saying what is kept, exit 143, the lock released."""
    out = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", out, repeats=12, delay=DELAY_S)
    proc = launch("--config", str(config))
    wait_for_repeats(proc, out, 1)
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, f"exit {proc.returncode}: {text}"
    assert "terminated (SIGTERM): " in text and "finished repeat(s) kept in" in text
    assert "Stack trace" not in text and "Traceback" not in text and "SIGTERM received" not in text, text
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_kill_and_resume_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "run"
    repeats = 6
    config = write_config(tmp_path / "c.yaml", out, repeats=repeats, delay=DELAY_S)
    proc = launch("--config", str(config))
    wait_for_repeats(proc, out, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p.name: p.read_bytes() for p in (out / "repeats").glob("*.parquet")}
    assert 2 <= len(before) < repeats
    text = finish(launch("--config", str(config)))
    assert f"{len(before)} repeats already done, {repeats - len(before)} to run" in text
    for name, data in before.items():  # finished repeats were kept as they were
        assert (out / "repeats" / name).read_bytes() == data
    results = pd.read_parquet(out / "results.parquet")
    counts = results.groupby("repeat")["query"].agg(["count", "nunique"])
    assert counts.index.tolist() == list(range(repeats)) and (counts["count"] == 40).all() and (counts["nunique"] == 40).all()
    for name in ("config.yaml", "summary.json", "curves.png", "meta.json"):
        assert (out / name).is_file()
    # a different config on the same folder is refused with the differing key
    other = subprocess.run(
        [sys.executable, "run_search.py", *ALLOW, "--config", str(config), "--max-sample", "30"], cwd=ROOT, env=env(),
        capture_output=True, text=True,
    )
    assert other.returncode == 2 and "search.max_sample: 40 -> 30" in other.stderr
    # report redraws from the folder and compares two runs
    table = tmp_path / "table.md"
    assert main(["report", str(out), str(out), "--no-dynamics", "--compare", str(tmp_path / "cmp.png"),
                 "--markdown", str(table)]) == 0
    assert (tmp_path / "cmp.png").is_file()
    lines = table.read_text().splitlines()
    assert lines[0].startswith("| method | repeats | search optimum") and len(lines) == 4  # random, once per folder


CLUSTER_SCRIPT = """
import subprocess, sys
from ray.cluster_utils import Cluster

cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
cluster.add_node(num_cpus=1)
cluster.wait_for_nodes()
try:
    run = subprocess.run([sys.executable, "run_search.py", "--no-progress", "--allow-loader",
                          "test_cli_run:slow_benchmark", "--config", sys.argv[1],
                          "--address", cluster.address], capture_output=True, text=True, timeout=150)
    print(run.stdout, run.stderr)
    sys.exit(run.returncode)
finally:
    cluster.shutdown()
"""


@pytest.mark.slow
def test_two_node_cluster_runs_through_address(tmp_path):
    out = tmp_path / "cluster"
    config = write_config(tmp_path / "c.yaml", out, repeats=2, delay=0.0)
    run = subprocess.run([sys.executable, "-c", CLUSTER_SCRIPT, str(config)], cwd=ROOT, env=env(),
                         capture_output=True, text=True, timeout=200)
    assert run.returncode == 0, run.stdout + run.stderr
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results["repeat"].unique()) == [0, 1] and len(results) == 80


def test_sigterm_is_told_from_ctrl_c_also_when_ray_retypes_the_interrupt():
    """Ray re-raises an interrupt caught while its driver waits as a plain KeyboardInterrupt: the
    SIGTERM handler's record still tells it from Ctrl-C."""
    script = (
        "import os, signal\n"
        "from weaknas_ray.exceptions import interrupt_on_sigterm, terminated_by\n"
        "print(terminated_by(KeyboardInterrupt()))\n"
        "interrupt_on_sigterm()\n"
        "try:\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "    except KeyboardInterrupt:\n"
        "        raise KeyboardInterrupt  # what Ray's check_signals does\n"
        "except KeyboardInterrupt as exc:\n"
        "    print(type(exc).__name__, terminated_by(exc))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split("\n")[:2] == ["False", "KeyboardInterrupt True"]
