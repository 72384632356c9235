"""NAS-Bench-201: encodings both ways, the oracles against the published optima, noisy labels, caching."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from weaknas_ray.benchmarks import nasbench201 as nb201_data
from weaknas_ray.benchmarks.convert import nasbench201 as nb201_convert
from weaknas_ray.benchmarks.registry import load_benchmark as load_by_name
from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError
from weaknas_ray.spaces import nasbench201 as nb201

EXPECTED_OPTIMA = {  # (search, reported), from the shared data README
    "cifar10": (91.6067, 94.3733),
    "cifar100": (73.4933, 73.5133),
    "ImageNet16-120": (46.7333, 47.3111),
}


@pytest.fixture(scope="module")
def bench(shared_data):
    return nb201_data.load_benchmark("cifar10", data_dir=shared_data)


def synthetic_space() -> nb201.NASBench201Space:
    """All 15,625 cells in a shuffled order, no data needed."""
    cells = np.array(list(itertools.product(range(5), repeat=6)), dtype=np.int8)
    return nb201.NASBench201Space(cells[np.random.default_rng(0).permutation(len(cells))])


def test_arch_str_round_trip_every_cell():
    space = synthetic_space()
    for index in range(0, len(space), 97):
        text = space.arch_str(index)
        assert nb201.format_arch_str(nb201.parse_arch_str(text)) == text
        assert space.index_of(text) == index
        assert space.index_of(space.decode(index)) == index
        assert space.index_of(space.params(index)) == index


def test_features_are_one_hot_in_edge_order():
    space = synthetic_space()
    feats = space.features
    assert feats.shape == (15625, 30) and feats.dtype == np.float32
    np.testing.assert_array_equal(feats.reshape(-1, 6, 5).sum(axis=2), 1)
    index = space.index_of("|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|")
    assert np.flatnonzero(feats[index]).tolist() == [0, 6, 12, 18, 24, 25]


def test_param_choices_and_params_keys():
    space = synthetic_space()
    choices = space.param_choices()
    assert list(choices) == ["e1_0", "e2_0", "e2_1", "e3_0", "e3_1", "e3_2"]
    assert all(ops == list(nb201.OPS) for ops in choices.values())
    params = space.params(0)
    assert list(params) == list(choices) and all(v in nb201.OPS for v in params.values())


def test_mutate_changes_exactly_one_edge():
    space = synthetic_space()
    rng = np.random.default_rng(1)
    for index in rng.integers(0, len(space), 50):
        child = space.mutate(int(index), rng)
        diff = np.array(space.decode(child)) != np.array(space.decode(int(index)))
        assert diff.sum() == 1


def test_mutate_in_a_partial_table_stays_in_it():
    """A table of half the cells, in random order (a user's partial CSV): a mutant outside it becomes a
    nearest pool cell, never an error; a mutant inside it is kept, with the same draws as in the full table."""
    full = synthetic_space()
    half = len(full) // 2
    part = nb201.NASBench201Space(full.ops[:half])
    kept = tried = 0
    for index in range(0, half, 78):
        tried += 1
        child = part.mutate(index, np.random.default_rng(index))
        assert 0 <= child < half and child != index
        changes = (part.ops[child] != part.ops[index]).sum()
        distance = (part.ops != part.ops[index]).sum(axis=1)
        distance[index] = 99
        assert changes == distance.min()
        full_child = full.mutate(index, np.random.default_rng(index))
        if full_child < half:
            assert child == full_child
            kept += 1
    assert 0 < kept < tried, "the sample should mix kept mutants and stand-ins"


@pytest.mark.parametrize(
    "bad", ["|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|", "|none~0|+|none~0|", "garbage", (1, 2, 3), (0, 0, 0, 0, 0, 9)]
)
def test_index_of_rejects_bad_architectures(bad):
    with pytest.raises(UnknownArchitectureError, match="nasbench201"):
        synthetic_space().index_of(bad)


@pytest.mark.parametrize("dataset", list(EXPECTED_OPTIMA))
def test_optima_match_published_table(shared_data, dataset):
    bench = nb201_data.load_benchmark(dataset, data_dir=shared_data)
    assert bench.name == f"nasbench201/{dataset}"
    search, reported = bench.oracle.optimum
    assert (round(search, 4), round(reported, 4)) == EXPECTED_OPTIMA[dataset]


def test_cifar10_oracle_and_space(bench):
    assert len(bench.space) == 15625
    assert 6111 in bench.oracle.optimum_indices.tolist()
    result = bench.oracle.evaluate(np.array([0, 6111]))
    assert result.search[0] == pytest.approx(81.982667)
    assert result.reported[1] == pytest.approx(94.373333)
    assert result.cost[0] == pytest.approx(1444.2186)
    assert bench.space.arch_str(0) == "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert bench.space.describe(np.array([0]))["params_mb"] == [pytest.approx(0.129306)]


def test_registry_dispatch(nb201_root):
    assert load_by_name("nasbench201", dataset="cifar100", data_dir=nb201_root).name == "nasbench201/cifar100"


def test_noisy_oracle_draws_one_available_seed(nb201_root):
    bench = nb201_data.load_benchmark("cifar10", data_dir=nb201_root, noisy=True)
    table = nb201_data.load_table(nb201_root)
    seeds = np.stack([table[c] for c in nb201_convert.seed_columns("cifar10_valid_valid_acc")], axis=1)
    first, again, other = (bench.oracle.for_repeat(s).search for s in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert np.all(np.isclose(first[:, None], seeds).any(axis=1))  # one of that cell's own seeds
    assert not np.isnan(first).any()
    two_seed = np.isnan(seeds[:, 2])
    assert two_seed.sum() == 7456
    # every available seed is drawn about equally often (cells whose 3 seeds differ)
    distinct = ~two_seed & (seeds[:, 0] != seeds[:, 1]) & (seeds[:, 1] != seeds[:, 2]) & (seeds[:, 0] != seeds[:, 2])
    shares = (first[distinct, None] == seeds[distinct]).mean(axis=0)
    assert np.all(np.abs(shares - 1 / 3) < 0.03), shares
    np.testing.assert_array_equal(bench.oracle.for_repeat(3).reported, bench.oracle.reported)
    plain = nb201_data.load_benchmark("cifar10", data_dir=nb201_root).oracle
    assert plain.for_repeat(3) is plain


def test_repeated_and_cached_loads_are_fast_and_equal(nb201_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WEAKNAS_CACHE", str(tmp_path))
    nb201_data._load_table.cache_clear()
    fresh = nb201_data.load_table(nb201_root)  # converts the CSV into tmp_path
    nb201_data._load_table.cache_clear()
    start = time.perf_counter()
    cached = nb201_data.load_table(nb201_root)  # from the columnar cache
    elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"cached load took {elapsed:.3f}s"
    assert fresh.keys() == cached.keys()
    for name in fresh:
        np.testing.assert_array_equal(fresh[name], cached[name])
    assert nb201_data.load_table(nb201_root) is cached  # per-process cache


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="ImageNet16-120"):
        nb201_data.load_benchmark("imagenet")


def test_mutate_in_the_full_table_never_falls_back(monkeypatch):
    """Every one-edge mutant is in the full table, so mutate returns it, index 0 included, never a
    nearest-cell stand-in."""
    space = synthetic_space()
    monkeypatch.setattr(space, "nearest", lambda *args: pytest.fail("nearest-cell fallback used in the full table"))
    neighbours = np.flatnonzero((space.ops != space.ops[0]).sum(axis=1) == 1)  # the 24 cells one edge from cell 0
    assert len(neighbours) == 24
    children = [space.mutate(int(index), np.random.default_rng(seed)) for index in neighbours for seed in range(10)]
    assert 0 in children


def test_space_rejects_op_ids_out_of_range():
    for bad in (-1, len(nb201.OPS)):
        with pytest.raises(ValueError, match="op ids"):
            nb201.NASBench201Space(np.full((1, 6), bad))


def test_table_columns_are_read_only(nb201_root):
    table = nb201_data.load_table(nb201_root)
    assert table and not any(column.flags.writeable for column in table.values())
    assert not nb201_data.load_benchmark("cifar10", data_dir=nb201_root).space.features.flags.writeable


def test_changed_file_is_not_served_from_the_per_process_cache(nb201_root, tmp_path, monkeypatch):
    """The per-process cache is keyed by the file's size and mtime: a file changed after a load is checked
    again (here: its checksum no longer matches), not answered from memory."""
    import shutil

    from weaknas_ray.exceptions import BenchmarkDataError

    monkeypatch.setenv("WEAKNAS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "data" / "nasbench201" / "nb201_200ep.csv"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(nb201_root / "nasbench201" / "nb201_200ep.csv", copy)
    assert len(nb201_data.load_table(tmp_path / "data")["ops"]) == 15625
    with open(copy, "a") as handle:
        handle.write("\n")
    with pytest.raises(BenchmarkDataError, match="checksum mismatch"):
        nb201_data.load_table(tmp_path / "data")


def test_noisy_draw_is_uniform_over_each_cells_available_seeds():
    """Cells missing one of 3 seeds (NaN, in any position) draw each of their 2 seeds about half the time;
    reported values and costs are the mean-label oracle's."""
    from weaknas_ray.benchmarks.tabular import SeededTableOracle

    patterns = np.array([[1.0, 2.0, np.nan], [np.nan, 2.0, 3.0], [1.0, np.nan, 3.0]])
    seeds = np.tile(patterns, (10000, 1))
    n = len(seeds)
    oracle = SeededTableOracle(np.nanmean(seeds, axis=1), np.arange(n, dtype=float), np.full(n, 7.0), seed_search=seeds)
    drawn = oracle.for_repeat(0)
    for p, row in enumerate(patterns):
        got = drawn.search[p::3]
        available = row[~np.isnan(row)]
        shares = np.array([(got == v).mean() for v in available])
        assert shares.sum() == 1.0 and np.all(np.abs(shares - 0.5) < 0.02), (row, shares)
    np.testing.assert_array_equal(drawn.reported, oracle.reported)
    np.testing.assert_array_equal(drawn.cost, oracle.cost)
    with pytest.raises(ValueError, match="seed_search has 2 rows"):
        SeededTableOracle(np.zeros(3), np.zeros(3), seed_search=np.zeros((2, 3)))


def test_mutate_picks_edge_and_new_op_uniformly():
    """One edge chosen uniformly, changed to one of the 4 other ops uniformly (shift 1..4 mod 5)."""
    space = synthetic_space()
    rng = np.random.default_rng(0)
    edges, shifts = [], []
    for index in rng.integers(0, len(space), 6000):
        parent = np.array(space.decode(int(index)))
        child = np.array(space.decode(space.mutate(int(index), rng)))
        (edge,) = np.flatnonzero(child != parent)
        edges.append(edge)
        shifts.append((child[edge] - parent[edge]) % 5)
    assert np.all(np.abs(np.bincount(edges, minlength=6) / 6000 - 1 / 6) < 0.02)
    assert np.all(np.abs(np.bincount(shifts, minlength=5)[1:] / 6000 - 1 / 4) < 0.02)
