"""The supernet oracle on CPU: a random supernet, a tiny image folder written here, Ray evaluator actors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from weaknas_ray.benchmarks.ofa.imagenet import FolderSplit, PackedSplit, open_split, pack_split
from weaknas_ray.exceptions import BenchmarkDataError

pytest.importorskip("ofa")
RES = 64  # NOTE: tiny images keep a CPU query under a second; OFA's networks take any resolution
TINY = {
    "oracle": "supernet", "pool_size": 12, "flops_min": 0, "flops_max": 1e4, "resolution": RES,
    "weights": "random", "n_evaluators": 2, "num_gpus_per_evaluator": 0.5, "num_cpus_per_evaluator": 0.5,
    "calib_images": 4, "calib_batch": 2, "batch_size": 4, "workers": 1,
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory) -> Path:
    """``train/`` and ``val/`` with 2 classes x 3 JPEGs of random pixels and odd sizes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for wnid in ("n01440764", "n01443537"):
            (root / split / wnid).mkdir(parents=True)
            for k in range(3):
                pixels = rng.integers(0, 256, size=(50 + 7 * k, 80, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / wnid / f"{wnid}_{k}.JPEG")
    return root


def test_decoding_follows_torchvisions_resize_and_center_crop(tmp_path):
    """OFA evaluates with torchvision's Resize(ceil(64 / 0.875) = 74) and CenterCrop(64): an 80 x 57 image
    becomes int(74 * 80 / 57) = 103 x 74, cropped at round(39 / 2) = 20 (round half to even), round(10 / 2) = 5."""
    from PIL import Image

    from weaknas_ray.benchmarks.ofa.imagenet import decode_image

    pixels = np.random.default_rng(1).integers(0, 256, size=(57, 80, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    expected = np.asarray(Image.fromarray(pixels).resize((103, 74), Image.BILINEAR).crop((20, 5, 84, 69)))
    np.testing.assert_array_equal(decode_image(tmp_path / "a.png", 64), expected)


def test_folder_and_packed_shards_agree(tiny_imagenet, tmp_path):
    folder = open_split(tiny_imagenet / "val")
    assert isinstance(folder, FolderSplit) and len(folder) == 6
    assert len(pickle.dumps(folder)) < 300 and pickle.loads(pickle.dumps(folder)).files == folder.files
    np.testing.assert_array_equal(folder.labels, [0, 0, 0, 1, 1, 1])
    packed = open_split(pack_split(tiny_imagenet / "val", tmp_path / "packed", RES, shard_size=4, workers=1))
    assert isinstance(packed, PackedSplit) and len(packed) == 6
    idx = np.array([5, 0, 3])
    (a, la), (b, lb) = folder.load(idx, RES, workers=2), packed.load(idx, RES)
    assert a.shape == (3, RES, RES, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    with pytest.raises(BenchmarkDataError, match="packed at 64 px"):
        packed.load(idx, 96)
    with pytest.raises(BenchmarkDataError, match="does not exist"):
        open_split(tmp_path / "missing")


def test_supernet_oracle_merges_shards_like_one_evaluator(ray_session, tiny_imagenet):
    from weaknas_ray.benchmarks.ofa.evaluator import SubnetEvaluator
    from weaknas_ray.benchmarks.registry import load_benchmark

    bench = load_benchmark("ofa_mbv3", imagenet=tiny_imagenet, **TINY)
    assert bench.name == "ofa_mbv3/supernet"
    result = bench.oracle.evaluate(np.array([0, 5]))
    oracle = bench.oracle
    assert ray_session.available_resources().get("GPU", 0) <= 1.0  # two actors hold half a GPU each
    single = SubnetEvaluator("random", oracle.val, oracle.val_indices, oracle.calib, oracle.calib_indices, RES,
                             batch_size=4, calib_batch=2, workers=1)  # fmt: skip
    for i, top1 in zip((0, 5), result.search):
        counts = single.evaluate(bench.space.configs[i])
        assert counts["n"] == 6 and counts["device"] == "cpu"
        assert top1 == pytest.approx(100.0 * counts["correct1"] / 6)
    assert (result.extra["top5"] >= result.search).all()
    np.testing.assert_array_equal(result.search, result.reported)
    assert (result.cost > 0).all()
    oracle.shutdown()


def test_merge_counts_weighs_shards_by_their_images(ray_session):
    """Counts add up over shards of unequal size (a random supernet gets nothing right on the tiny folder,
    so stand-in actors give the counts here)."""
    import ray

    from weaknas_ray.benchmarks.ofa.evaluator import merge_counts

    @ray.remote(num_cpus=0)
    class Shard:
        def __init__(self, n, right):
            self.n, self.right = n, right

        def evaluate(self, config):
            hits = self.right[int(config[0])]
            return {"n": self.n, "correct1": hits, "correct5": min(self.n, hits + 1), "seconds": 0.1 * self.n}

    actors = [Shard.remote(10, [10, 0]), Shard.remote(30, [0, 30])]
    top1, top5, seconds = merge_counts(actors, np.array([[0], [1]], dtype=np.int8))
    np.testing.assert_allclose(top1, [25.0, 75.0])  # a mean of shard percentages would give 50 and 50
    np.testing.assert_allclose(top5, [27.5, 77.5])
    np.testing.assert_allclose(seconds, [3.0, 3.0])


def test_supernet_config_runs_end_to_end(ray_session, tiny_imagenet, tmp_path):
    import pandas as pd

    from weaknas_ray.benchmarks.registry import load_configured_benchmark
    from weaknas_ray.config import load_config
    from weaknas_ray.drivers.ray_runner import run_search

    root = Path(__file__).resolve().parents[1]
    overrides = {f"benchmark.{key}": value for key, value in TINY.items()}
    overrides.update({
        "benchmark.imagenet": str(tiny_imagenet), "output": str(tmp_path / "run"), "search.methods": ["weaknas-published"],
        "search.repeats": 1, "search.max_sample": 4, "search.init_sample": 2, "search.sample_each_iter": 2,
        "search.top_start": 4, "search.top_end": 4, "ray.cpus_per_repeat": 1,
        "methods.weaknas-published.predictor_params": {"n_rounds": 5, "max_depth": 3},
    })  # fmt: skip
    config = load_config(root / "configs" / "ofa_mbv3_supernet.yaml", overrides)
    bench = load_configured_benchmark(config)
    try:
        outcome = run_search(config, benchmark=bench, progress=False, echo=lambda *a: None)
    finally:
        bench.oracle.shutdown()  # the evaluators hold CPU and GPU shares of the session's Ray
    assert not outcome.failures
    rows = pd.read_parquet(tmp_path / "run" / "results.parquet")
    assert len(rows) == 4 and rows["reported_value"].between(0, 100).all()
    assert rows["flops_m"].notna().all() and rows["arch"].str.endswith(f"r={RES}").all()
    assert (rows["top5"] >= rows["reported_value"]).all()
    final = pd.read_parquet(tmp_path / "run" / "final_top1.parquet")
    # the answer exported from the run is recalibrated with the run's own settings (4 images, batch 2)
    from weaknas_ray.cli import main

    common = ["--weights", "random", "--calib", str(tiny_imagenet / "train")]
    assert main(["ofa", "export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "a"), *common]) == 0
    argv = ["ofa", "export", "--arch", final["arch"].iloc[0], "--out", str(tmp_path / "b"), "--calib-images", "4",
            "--calib-batch", "2", *common]  # fmt: skip
    assert main(argv) == 0
    import json

    import torch

    assert json.loads((tmp_path / "a" / "subnet.json").read_text())["arch"] == final["arch"].iloc[0]
    a, b = (torch.load(tmp_path / d / "subnet.pth", weights_only=True) for d in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_supernet_oracle_names_missing_paths(tiny_imagenet, tmp_path):
    from weaknas_ray.benchmarks.registry import load_benchmark

    options = {**TINY, "pool_size": 4}
    with pytest.raises(BenchmarkDataError, match="benchmark.weights"):
        load_benchmark("ofa_mbv3", **{**options, "weights": None}, imagenet=tiny_imagenet)
    with pytest.raises(BenchmarkDataError, match="benchmark.imagenet"):
        load_benchmark("ofa_mbv3", **options)
    with pytest.raises(BenchmarkDataError, match=str(tmp_path / "val")):
        load_benchmark("ofa_mbv3", **options, imagenet=tmp_path)


def test_export_loads_back_into_ofa(tiny_imagenet, tmp_path):
    import json

    import torch

    from weaknas_ray.benchmarks.ofa.compat import build_supernet, ofa_modules
    from weaknas_ray.cli import main
    from weaknas_ray.spaces import ofa_arch as arch

    row = arch.sample_configs(np.random.default_rng(7), 1)[0]
    text = arch.format_arch_str(row, RES)
    argv = ["ofa", "export", "--arch", text, "--out", str(tmp_path / "out"), "--weights", "random",
            "--calib", str(tiny_imagenet / "train"), "--calib-images", "4", "--calib-batch", "2"]  # fmt: skip
    assert main(argv) == 0
    spec = json.loads((tmp_path / "out" / "subnet.json").read_text())
    assert spec["arch"] == text and spec["r"] == [RES]
    supernet = build_supernet("random")
    supernet.set_active_subnet(**spec)  # the JSON is set_active_subnet's keywords as it is
    assert supernet.runtime_depth == spec["d"]
    plain = supernet.get_active_subnet(preserve_weight=True)
    rebuilt = ofa_modules().MobileNetV3.build_from_config(json.loads((tmp_path / "out" / "net.config").read_text()))
    state = torch.load(tmp_path / "out" / "subnet.pth", weights_only=True)
    rebuilt.load_state_dict(state)
    assert rebuilt.config == plain.config
    calibrated = {k: v for k, v in state.items() if k.endswith("running_mean")}
    assert any(not torch.equal(v, plain.state_dict()[k]) for k, v in calibrated.items())  # batch norm recalibrated
    assert rebuilt.eval()(torch.zeros(1, 3, RES, RES)).shape == (1, 1000)
    # another draw of calibration images, or other batches (OFA averages per-batch variances), gives other statistics
    for flag, value in (("--data-seed", "1"), ("--calib-batch", "4")):
        assert main([*argv, "--out", str(tmp_path / flag), flag, value]) == 0
        other = torch.load(tmp_path / flag / "subnet.pth", weights_only=True)
        stat = "running_mean" if flag == "--data-seed" else "running_var"
        assert any(not torch.equal(v, other[k]) for k, v in state.items() if k.endswith(stat)), flag
