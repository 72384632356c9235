"""``weaknas-ray ofa export``: which answer of a run it takes, which calibration settings reach the export,
and what ``subnet.json`` holds (no supernet weights: the weighted path is in test_ofa_supernet)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.benchmarks.ofa import export
from weaknas_ray.cli import main
from weaknas_ray.commands.ofa import _answer
from weaknas_ray.config import load_config
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError
from weaknas_ray.results.records import RunStore
from weaknas_ray.spaces import ofa_arch as arch

ARCHS = [arch.format_arch_str(row, 224) for row in arch.sample_configs(np.random.default_rng(0), 3)]


@pytest.fixture
def run(tmp_path):
    """A finished OFA run's folder: its config (calibration 4 images, batch 2, seed 3) and final answers."""
    root = tmp_path / "run"
    overrides = {"benchmark.calib_images": 4, "benchmark.calib_batch": 2, "benchmark.data_seed": 3}
    RunStore(root).prepare(load_config(None, {"benchmark": {"name": "ofa_mbv3"}, **overrides}))
    pd.DataFrame({
        "method": ["weaknas", "weaknas", "random"], "repeat": [0, 1, 0], "seed": [10, 11, 10],
        "reported_value": [80.0, 82.0, 90.0], "arch": ARCHS, "already_queried": [False, True, False],
    }).to_parquet(root / "final_top1.parquet")  # fmt: skip
    return root


def test_the_answer_is_the_best_repeat_unless_one_is_named(run):
    assert _answer(str(run), "weaknas", None) == (
        ARCHS[1], {"method": "weaknas", "repeat": 1, "seed": 11, "reported_value": 82.0}
    )
    assert _answer(str(run), "weaknas", 0)[0] == ARCHS[0]
    assert _answer(str(run), None, None)[1]["method"] == "weaknas"  # the first method with final answers
    with pytest.raises(ConfigError, match="no final answer of method 'weaknas' repeat 5"):
        _answer(str(run), "weaknas", 5)
    with pytest.raises(ConfigError, match="no final answer of method 'evolution'"):
        _answer(str(run), "evolution", None)
    with pytest.raises(BenchmarkDataError, match="cannot read final_top1.parquet"):
        _answer(str(run.parent), "weaknas", None)


def test_calibration_is_the_runs_unless_a_flag_says_otherwise(run, tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(export, "export_subnet", lambda *args, **kwargs: seen.append(kwargs) or {})
    out = ["--out", str(tmp_path / "out")]
    assert main(["ofa", "export", "--arch", ARCHS[0], *out]) == 0
    assert main(["ofa", "export", "--run", str(run), *out]) == 0
    assert main(["ofa", "export", "--run", str(run), "--calib-batch", "1", "--data-seed", "0", *out]) == 0
    calibration = [{k: s[k] for k in ("calib_images", "calib_batch", "data_seed")} for s in seen]
    assert calibration == [
        {"calib_images": 2000, "calib_batch": 200, "data_seed": 0},  # the published recalibration
        {"calib_images": 4, "calib_batch": 2, "data_seed": 3},
        {"calib_images": 4, "calib_batch": 1, "data_seed": 0},
    ]


def test_calib_without_weights_is_refused(tmp_path, capsys):
    assert main(["ofa", "export", "--arch", ARCHS[0], "--out", str(tmp_path), "--calib", str(tmp_path)]) == 2
    assert "--calib recalibrates the exported weights: give --weights too" in capsys.readouterr().err
    assert not (tmp_path / "subnet.json").exists()


def test_subnet_json_describes_the_answer_at_its_resolution(run, tmp_path):
    assert main(["ofa", "export", "--run", str(run), "--out", str(tmp_path / "out")]) == 0
    spec = json.loads((tmp_path / "out" / "subnet.json").read_text())
    row, resolution = arch.parse_arch_str(ARCHS[1])
    assert spec["arch"] == ARCHS[1] and spec["r"] == [224] and spec["supernet"] == export.SUPERNET
    assert spec["flops_m"] == pytest.approx(arch.FlopsTable(224)(row)[0], abs=1e-3)
    assert spec["flops_m"] != pytest.approx(arch.FlopsTable(236)(row)[0], abs=1e-3)
    assert {k: spec[k] for k in ("method", "repeat", "seed", "reported_value")} == {
        "method": "weaknas", "repeat": 1, "seed": 11, "reported_value": 82.0
    }
    assert arch.from_ofa_dict(spec).tolist() == row.tolist()
