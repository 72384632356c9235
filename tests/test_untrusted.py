"""Input a user did not write or did not mean: a config (or a results folder someone sent) must not run
code, and every bad setting is refused in one line naming the key or path before any work starts."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from weaknas_ray.cli import main
from weaknas_ray.config import load_config
from weaknas_ray.results.records import RunStore
from weaknas_ray.results.report import write_report


def not_a_benchmark(n: int = 3):
    """A loader the tests allow, returning the wrong thing."""
    return list(range(n))


def evil_config(tmp_path: Path, loader: str = "os:system") -> Path:
    mark = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(textwrap.dedent(f"""\
        benchmark: {{loader: "{loader}", command: "touch {mark}"}}
        search: {{methods: [random], repeats: 1, max_sample: 10}}
        output: {tmp_path / 'out'}
        """))
    return path


def test_a_config_loader_is_never_imported_unless_allowed(tmp_path, capsys):
    config = evil_config(tmp_path)
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "benchmark.loader: 'os:system' is not an allowed loader" in err and "--allow-loader os:system" in err
    assert len(err.strip().splitlines()) == 1
    # allowed, it still must be a Python function (os.system is a builtin), checked before it is called
    assert main(["run", "--config", str(config), "--allow-loader", "os:system"]) == 2
    assert "benchmark.loader: os:system is a builtin_function_or_method, not a Python function" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "out").exists()


def test_an_allowed_loader_must_return_a_benchmark(tmp_path, capsys):
    config = evil_config(tmp_path, "test_untrusted:not_a_benchmark")
    config.write_text(config.read_text().replace(f'command: "touch {tmp_path / "pwned"}"', "n: 2"))
    assert main(["run", "--config", str(config), "--allow-loader", "test_untrusted:not_a_benchmark"]) == 2
    assert "benchmark: loader test_untrusted:not_a_benchmark returned a list, not a Benchmark" in capsys.readouterr().err


def test_report_on_a_received_folder_does_not_import_its_loader(tmp_path, capsys):
    from test_results import rows

    store = RunStore(tmp_path / "received")
    store.prepare(load_config(evil_config(tmp_path)))
    store.write_repeat("random", 0, rows("random", 0, [0.1, 0.5]), None)
    assert main(["report", str(store.root)]) == 0
    out = capsys.readouterr().out
    assert "search_dynamics.png skipped: could not load the benchmark: benchmark.loader: 'os:system' is not an allowed" in out
    assert not (tmp_path / "pwned").exists()
    notes = []  # the library call refuses it the same way
    write_report(store, echo=notes.append)
    assert "is not an allowed loader" in notes[0] and not (tmp_path / "pwned").exists()


def test_python_tags_in_set_are_a_one_line_error(tmp_path, capsys):
    assert main(["run", "--output", str(tmp_path / "o"), "--set", "name=!!python/object/apply:os.system ['true']"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("weaknas-ray run: error: --set name: not a plain YAML value: could not determine a constructor")
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(Exception, match="not a plain YAML value"):
        from weaknas_ray.commands.run import parse_set

        parse_set(["x=!!python/name:os.system"])


def fake_config(tmp_path: Path, methods: str = "[random]") -> Path:
    path = tmp_path / "fake.yaml"
    path.write_text(textwrap.dedent(f"""\
        benchmark: {{loader: "test_cli_run:slow_benchmark", n: 200}}
        search: {{methods: {methods}, repeats: 1, max_sample: 20}}
        methods: {{weaknas: {{predictor_params: {{hidden: [16]}}}}}}
        output: {tmp_path / 'out'}
        """))
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "methods.weaknas.n_members=3"], "--set methods.weaknas.n_members: method 'weaknas' is not run"),
        (["--set", "methods.weaknas.predictor_params.tol=.nan"], "methods.weaknas.predictor_params.tol: expected a finite"),
        (["--address", "garbage"], "ray.address: expected 'auto', HOST:PORT or ray://HOST:PORT"),
        (["--seed", str(2**70)], "search.seed: expected 0..4294967295"),
        (["--output", ""], "output: expected a non-empty path"),
        (["--set", "search.sample_each_iter=1000000000"], "search.sample_each_iter: 1000000000 exceeds search.max_sample"),
    ],
    ids=["set-of-an-unlisted-method", "nan", "address", "seed", "empty-output", "absurd-size"],
)
def test_bad_input_is_one_line_before_anything_is_written(tmp_path, capsys, args, message):
    """A --set of a method the run does not list is refused; a dead address fails in bounded time."""
    config = fake_config(tmp_path)
    assert main(["run", "--config", str(config), "--allow-loader", "test_cli_run:slow_benchmark", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_a_config_files_settings_of_an_unlisted_method_are_checked_too(tmp_path, capsys):
    config = fake_config(tmp_path)
    config.write_text(config.read_text().replace("hidden: [16]}", "hidden: [16]}, n_members: 0"))
    assert main(["run", "--config", str(config), "--allow-loader", "test_cli_run:slow_benchmark"]) == 2
    err = capsys.readouterr().err
    assert "methods.weaknas.n_members: expected an integer >= 1, got 0" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_dead_address_fails_in_bounded_time_before_anything_is_written(tmp_path):
    """A fresh process (in this one, the tests' Ray is already up and would be used instead)."""
    import subprocess
    import sys
    import time

    from test_cli_run import ALLOW, ROOT, env

    start = time.monotonic()
    run = subprocess.run(
        [sys.executable, "run_search.py", *ALLOW, "--config", str(fake_config(tmp_path)), "--address", "127.0.0.1:1",
         "--set", "ray.connect_timeout_s=2"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 2 and time.monotonic() - start < 60, run.stderr
    assert "ray.address: no Ray cluster answers at 127.0.0.1:1 within 2 s" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tmp_path / "out").exists()


def test_a_cuda_predictor_without_cuda_is_refused_in_the_driver(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    config = fake_config(tmp_path, "[weaknas]")
    args = ["run", "--config", str(config), "--allow-loader", "test_cli_run:slow_benchmark"]
    assert main([*args, "--set", "methods.weaknas.predictor_params.device=cuda"]) == 2
    assert ("methods.weaknas.predictor_params.device: 'cuda', but ray.num_gpus_per_repeat is 0 and this machine has "
            "no CUDA GPU") in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_tune_refuses_a_metric_the_trainable_does_not_report(capsys):
    assert main(["tune", "--set", "tune.metric=bogus"]) == 2
    assert "tune.metric: expected one of ['search_value', 'reported_value', 'val_acc', 'test_acc'], got 'bogus'" in capsys.readouterr().err
    assert main(["tune", "--set", "methods.weaknas.predictor_params.lr=.nan"]) == 2
    assert "methods.weaknas.predictor_params.lr: expected a finite number, got nan" in capsys.readouterr().err
