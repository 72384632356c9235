"""OFA MobileNetV3 configs: analytic FLOPs against OFA's own counter, encodings against OFA's, pool."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from weaknas_ray.benchmarks.ofa import pool
from weaknas_ray.benchmarks.ofa.pool import build_pool
from weaknas_ray.benchmarks.store import read_cache, write_cache
from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError
from weaknas_ray.spaces import ofa_arch as arch


@pytest.fixture(scope="module")
def ofa():
    pytest.importorskip("ofa")
    from weaknas_ray.benchmarks.ofa.compat import ofa_modules

    return ofa_modules()


def _extremes() -> np.ndarray:
    largest = arch.canonical(np.array([7] * 20 + [6] * 20 + [4] * 5))
    smallest = arch.canonical(np.array([3] * 20 + [3] * 20 + [2] * 5))
    return np.concatenate([largest, smallest])


def test_flops_match_ofa_counter(ofa):
    net = ofa.OFAMobileNetV3(ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4], width_mult=1.2)
    configs = np.concatenate([_extremes(), arch.sample_configs(np.random.default_rng(1), 1)])
    # NOTE: 161 px is odd: checks the stride-2 'same' padding rounding (ceil) of every stage.
    for resolution, rows in ((236, configs), (161, configs[2:])):
        for row, expected in zip(rows, arch.FlopsTable(resolution)(rows)):
            spec = arch.to_ofa_dict(row, resolution)
            net.set_active_subnet(ks=spec["ks"], e=spec["e"], d=spec["d"])
            counted = ofa.count_net_flops(net.get_active_subnet(), (1, 3, resolution, resolution)) / 1e6
            assert counted == pytest.approx(expected, abs=1e-3)  # OFA sums in float32


def test_flops_match_dynast_macs():
    # DyNAS-T's first measured w1.0 subnet at 224 px reports 255,502,624 MACs.
    spec = {"ks": [5, 7, 5, 5, 3, 3, 3, 7, 5, 5, 3, 7, 7, 3, 3, 3, 5, 5, 5, 5],
            "e": [4, 3, 4, 4, 4, 6, 3, 4, 4, 3, 4, 3, 3, 6, 6, 6, 4, 3, 4, 4], "d": [2, 3, 2, 4, 3]}  # fmt: skip
    assert arch.FlopsTable(224, 1.0)(arch.from_ofa_dict(spec))[0] * 1e6 == pytest.approx(255502624, abs=1)


@pytest.fixture(scope="module")
def ofa_tutorial(ofa):
    path = Path(importlib.util.find_spec("ofa").origin).parent / "tutorial" / "accuracy_predictor.py"
    spec = importlib.util.spec_from_file_location("ofa_tutorial_accuracy_predictor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # by path: ofa.tutorial's __init__ imports torchvision helpers
    return module


# NOTE: every bucket edge and middle that matters: the first and last resolution of a 16-px bucket.
@pytest.mark.parametrize("resolution", [112, 120, 127, 128, 143, 160, 175, 192, 200, 224, 236, 239])
def test_onehot_matches_ofa_spec2feats(ofa_tutorial, resolution):
    configs = np.concatenate([_extremes(), arch.sample_configs(np.random.default_rng(2), 5)])
    ours = arch.encode_onehot(configs, resolution)
    for row, feats in zip(configs, ours):
        spec_ = arch.to_ofa_dict(row, resolution)
        expected = ofa_tutorial.AccuracyPredictor.spec2feats(spec_["ks"], spec_["e"], spec_["d"], resolution).numpy()
        np.testing.assert_array_equal(feats, expected)


def test_canonical_round_trips_and_checks():
    configs = arch.sample_configs(np.random.default_rng(3), 50)
    assert (arch.check_configs(configs) == configs).all()
    for row in configs[:10]:
        assert (arch.parse_config(arch.format_config(row)) == row).all()
        assert (arch.from_ofa_dict(arch.to_ofa_dict(row, 224)) == row).all()
    assert arch.encode_raw(configs).shape == (50, 45)
    bad = configs[0].copy()
    bad[0] = 4
    with pytest.raises(UnknownArchitectureError, match="kernel size 4"):
        arch.check_configs(bad)
    inactive = configs[configs[:, 40] == 2][0].copy()
    inactive[3] = 3  # block 3 of stage 0 is beyond depth 2
    with pytest.raises(UnknownArchitectureError, match="inactive"):
        arch.check_configs(inactive)
    with pytest.raises(UnknownArchitectureError, match="range"):
        arch.encode_onehot(configs, 240)


def test_pool_is_unique_inside_window_and_seeded():
    pool = build_pool(300, 550, 600, 236, seed=4)
    flops = arch.FlopsTable(236)(pool)
    assert pool.shape == (300, 45) and len(np.unique(pool, axis=0)) == 300
    assert flops.min() >= 550 and flops.max() <= 600
    assert (build_pool(300, 550, 600, 236, seed=4) == pool).all()
    assert not (build_pool(300, 550, 600, 236, seed=5) == pool).all()
    with pytest.raises(ConfigError, match="flops_min"):
        build_pool(10, 600, 550, 236, seed=0)


def test_pool_is_the_first_in_window_draws_of_the_seeded_sampler():
    first = arch.sample_configs(np.random.default_rng(3), pool.BATCH)
    flops = arch.FlopsTable(236)(first)
    np.testing.assert_array_equal(build_pool(50, 550, 600, 236, seed=3), first[(flops >= 550) & (flops <= 600)][:50])
    several = build_pool(6000, 550, 600, 236, seed=3)  # about 4,000 per batch: the second batch is fresh draws
    assert len(np.unique(several, axis=0)) == 6000


def test_pool_arguments_and_impossible_windows_are_refused(monkeypatch):
    with pytest.raises(ConfigError, match="pool_size >= 1"):
        build_pool(0, 550, 600, 236, seed=0)
    monkeypatch.setattr(pool, "MAX_DRAWS", 2 * pool.BATCH)
    with pytest.raises(ConfigError, match=r"only 0 unique subnets with 555.5..555.5 MFLOPs .* widen the FLOPs window"):
        build_pool(1, 555.5, 555.5, 236, seed=0)  # equal bounds are a window, if an empty one


def test_cached_pool_is_keyed_by_seed_and_rebuilt_when_malformed(tmp_path, monkeypatch):
    monkeypatch.setenv("WEAKNAS_CACHE", str(tmp_path))
    a, b = pool.cached_pool(20, 550, 600, 236, seed=0), pool.cached_pool(20, 550, 600, 236, seed=1)
    assert not (a == b).all() and len(list(tmp_path.glob("*.npz"))) == 2
    (path,) = tmp_path.glob("*_s0.npz")
    write_cache(path.stem, {"configs": a[:5]}, {})
    np.testing.assert_array_equal(pool.cached_pool(20, 550, 600, 236, seed=0), a)
    np.testing.assert_array_equal(read_cache(path.stem)[0]["configs"], a)  # and the cache is whole again
