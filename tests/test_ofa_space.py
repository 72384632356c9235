"""The ofa_mbv3 space, its surrogate oracle from OFA's real accuracy predictor, and the Kendall-tau check."""

from __future__ import annotations

import numpy as np
import pytest

from weaknas_ray.benchmarks.registry import load_benchmark
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError, UnknownArchitectureError
from weaknas_ray.spaces import ofa_arch as arch
from weaknas_ray.spaces.ofa_mbv3 import OFAMobileNetV3Space


@pytest.fixture(scope="module")
def predictor(shared_data):
    from weaknas_ray.benchmarks.ofa.surrogate import AccuracyPredictor, locate_predictor

    return AccuracyPredictor(locate_predictor(data_dir=shared_data))


def test_space_lookups_round_trip():
    space = OFAMobileNetV3Space(arch.sample_configs(np.random.default_rng(0), 40), resolution=224, encoding="onehot")
    assert space.features.shape == (40, 128) and space.features.dtype == np.float32
    for i in (0, 17, 39):
        assert space.index_of(space.arch_str(i)) == i
        assert space.index_of(space.decode(i)) == i
        assert space.index_of(space.configs[i]) == i
    assert space.mutate(5, np.random.default_rng(1)) != 5
    flops = space.describe(np.array([3, 4]))["flops_m"]
    assert flops == pytest.approx(arch.FlopsTable(224)(space.configs[[3, 4]]), abs=1e-3)
    with pytest.raises(UnknownArchitectureError, match="not in the pool"):
        space.index_of(arch.sample_configs(np.random.default_rng(9), 1)[0])
    with pytest.raises(UnknownArchitectureError, match="r=224"):
        space.index_of(space.arch_str(0).replace("r=224", "r=236"))


def test_surrogate_oracle_is_the_checkpoint_prediction(shared_data, predictor):
    bench = load_benchmark("ofa_mbv3", pool_size=200, data_dir=shared_data)
    assert bench.name == "ofa_mbv3/predictor" and len(bench.space) == 200
    result = bench.oracle.evaluate(np.array([0, 199]))
    expected = predictor.predict(bench.space.configs[[0, 199]], 236)
    np.testing.assert_allclose(result.search, expected)
    np.testing.assert_allclose(result.reported, expected)
    # the README: the largest subnet is predicted about 0.836, the smallest about 0.77
    extremes = arch.canonical(np.array([[7] * 20 + [6] * 20 + [4] * 5, [3] * 40 + [2] * 5]))
    largest, smallest = predictor.predict(extremes, 224)
    assert 83.0 < largest < 84.0 and 76.5 < smallest < 78.5
    assert bench.oracle.optimum[0] == pytest.approx(bench.oracle.evaluate(np.arange(200)).search.max())


def test_load_benchmark_errors(tmp_path):
    with pytest.raises(ConfigError, match="oracle"):
        load_benchmark("ofa_mbv3", oracle="table")
    with pytest.raises(ConfigError, match="need oracle: supernet"):
        load_benchmark("ofa_mbv3", pool_size=10, weights="x.pth")
    missing = tmp_path / "nope.pth"
    with pytest.raises(BenchmarkDataError, match=str(missing)):
        load_benchmark("ofa_mbv3", pool_size=10, predictor_path=missing)
    with pytest.raises(BenchmarkDataError, match="nope.pth"):
        load_benchmark("ofa_mbv3", oracle="supernet", pool_size=10, weights=missing, imagenet=tmp_path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(BenchmarkDataError, match="garbage.pth: not OFA's accuracy-predictor state dict"):
        load_benchmark("ofa_mbv3", pool_size=10, predictor_path=garbage)


def test_surrogate_ranks_dynast_measurements(shared_data, predictor, capsys):
    from weaknas_ray.benchmarks.ofa.surrogate import kendall_tau_check
    from weaknas_ray.cli import main

    check = kendall_tau_check(predictor, shared_data)
    assert check.n_rows == 2373 and check.n_unique < check.n_rows
    assert check.tau > 0.5
    assert main(["ofa", "check-surrogate", "--data-dir", str(shared_data)]) == 0
    assert f"Kendall tau {check.tau:.4f}" in capsys.readouterr().out


def test_space_refuses_bad_pools_and_lookups():
    configs = arch.sample_configs(np.random.default_rng(0), 5)
    with pytest.raises(UnknownArchitectureError, match="the pool repeats a subnet \\(1 repeats\\)"):
        OFAMobileNetV3Space(np.concatenate([configs, configs[:1]]))
    with pytest.raises(ConfigError, match="benchmark.encoding: unknown encoding 'bits'"):
        OFAMobileNetV3Space(configs, encoding="bits")
    space = OFAMobileNetV3Space(configs, resolution=224)
    with pytest.raises(UnknownArchitectureError, match="resolution \\[236\\] but the pool is at 224 px"):
        space.index_of({**space.decode(2), "r": [236]})
    assert space.index_of({k: v for k, v in space.decode(2).items() if k != "r"}) == 2


def test_raw_rows_are_looked_up_whatever_their_inactive_blocks_hold():
    configs = arch.sample_configs(np.random.default_rng(0), 30)
    i = int(np.flatnonzero((configs[:, arch.D_COLS] < 4).any(axis=1))[0])
    junk = configs[i].copy()
    inactive = ~arch.active_mask(junk[None])[0]
    junk[arch.KS_COLS][inactive], junk[arch.E_COLS][inactive] = 7, 6
    assert (junk != configs[i]).any() and OFAMobileNetV3Space(configs).index_of(junk) == i


def test_mutation_takes_a_nearest_pool_neighbour_uniformly():
    base = arch.sample_configs(np.random.default_rng(0), 1)[0]
    a, b = np.flatnonzero(base[arch.KS_COLS])[:2]  # two active blocks' kernel sizes

    def other_kernel(row, *blocks):
        row = row.copy()
        row[list(blocks)] = [3 if row[k] != 3 else 5 for k in blocks]
        return row

    space = OFAMobileNetV3Space(np.stack([base, other_kernel(base, a), other_kernel(base, b), other_kernel(base, a, b)]))
    rng = np.random.default_rng(0)
    assert {space.mutate(0, rng) for _ in range(50)} == {1, 2}  # one change away, never the two-change row


def test_pool_seed_changes_the_pool(shared_data):
    a, b = (load_benchmark("ofa_mbv3", pool_size=50, seed=s, data_dir=shared_data).space.configs for s in (0, 1))
    assert len({r.tobytes() for r in a} & {r.tobytes() for r in b}) == 0
