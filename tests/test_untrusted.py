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
