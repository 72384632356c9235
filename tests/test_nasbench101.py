"""NAS-Bench-101: pruning and canonical hash, the 45-feature encoding, mutation, the tfrecord converter on
a file written here in the official format, and the NASLib 500-record sample."""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import struct

import numpy as np
import pytest

from weaknas_ray.benchmarks import store
from weaknas_ray.benchmarks import nasbench101 as nb101_data
from weaknas_ray.benchmarks.convert import nasbench101 as nb101_convert
from weaknas_ray.benchmarks.convert.tfrecord import crc32c, masked_crc32c, parse_model_metrics
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError, UnknownArchitectureError
from weaknas_ray.spaces import nasbench101 as nb101

C1, C3, MP = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
DIAMOND = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])


# ---- a writer of the official format, independent of the reader under test ----
def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >> 7 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def model_metrics(valid: float, test: float, time: float, params: int) -> bytes:
    """A ModelMetrics protobuf with an initial and a final EvaluationData entry."""
    def evaluation(epoch, train_time, acc_v, acc_t):
        fields = [(1, epoch), (2, train_time), (3, 1.0), (4, acc_v), (5, acc_t)]
        body = b"".join(varint(n << 3 | 1) + struct.pack("<d", v) for n, v in fields)
        path = b"/ckpt/model.ckpt"
        return body + varint(6 << 3 | 2) + varint(len(path)) + path

    entries = [evaluation(0.0, 0.0, 0.1, 0.1), evaluation(108.0, time, valid, test)]
    body = b"".join(varint(1 << 3 | 2) + varint(len(e)) + e for e in entries)
    return body + varint(2 << 3) + varint(params) + varint(3 << 3 | 1) + struct.pack("<d", time + 5)


def frame(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


def record(matrix, ops, epochs, valid, test, time, params) -> bytes:
    adjacency = "".join(str(v) for v in np.asarray(matrix).reshape(-1))
    *_, digest = nb101.canonical(matrix, ops)
    metrics = base64.b64encode(model_metrics(valid, test, time, params)).decode()
    return json.dumps([digest, epochs, adjacency, ",".join(ops), metrics]).encode()


CELLS = [  # (matrix, ops, 3 x (valid, test, time), params)
    (DIAMOND, ["input", C3, MP, "output"], [(0.90, 0.89, 100.0), (0.92, 0.91, 110.0), (0.94, 0.93, 120.0)], 2_000_000),
    (np.triu(np.ones((3, 3), int), 1) * [[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", C1, "output"],
     [(0.80, 0.79, 50.0), (0.82, 0.81, 60.0), (0.84, 0.83, 70.0)], 1_000_000),
]


@pytest.fixture
def tfrecord(tmp_path):
    records = [record(m, o, 108, *r, p) for m, o, reps, p in CELLS for r in reps]
    records.insert(1, record(*CELLS[0][:2], 36, 0.5, 0.5, 10.0, 2_000_000))  # another epoch budget: skipped
    path = tmp_path / "nasbench_only108.tfrecord"
    path.write_bytes(b"".join(frame(r) for r in records))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WEAKNAS_CACHE", str(tmp_path / "cache"))
    nb101_data._load.cache_clear()
    yield tmp_path / "cache"
    nb101_data._load.cache_clear()


@pytest.fixture(scope="module")
def sample(shared_data):
    with pytest.warns(UserWarning, match="no test accuracy"):
        return nb101_data.load_benchmark(data_dir=shared_data)


def test_crc32c_known_vector():
    assert crc32c(b"123456789") == 0xE3069283


def test_hash_equal_for_isomorphic_cells():
    *_, a = nb101.canonical(DIAMOND, ["input", C3, MP, "output"])
    *_, b = nb101.canonical(DIAMOND, ["input", MP, C3, "output"])  # branches swapped
    matrix5 = np.zeros((5, 5), int)
    matrix5[:3, :3], matrix5[1, 4], matrix5[2, 4], matrix5[0, 3] = DIAMOND[:3, :3], 1, 1, 1
    *_, c = nb101.canonical(matrix5, ["input", C3, MP, C1, "output"])  # vertex 3 is a dead end: pruned
    assert a == b == c
    chain = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    *_, d = nb101.canonical(chain, ["input", C3, MP, "output"])
    *_, e = nb101.canonical(chain, ["input", MP, C3, "output"])
    assert len({a, d, e}) == 3  # order matters in a chain; op change matters
    assert nb101.canonical(DIAMOND, [0, 2, 3, 4])[2] == a  # op ids and names agree


@pytest.mark.parametrize(
    "matrix, ops, why",
    [
        (DIAMOND.T, ["input", C3, MP, "output"], "upper-triangular"),
        (np.zeros((3, 3), int), ["input", C3, "output"], "not connected"),
        (DIAMOND, ["input", C3, MP, C1], "last op output"),
        (DIAMOND, ["input", "conv5x5", MP, "output"], "unknown op"),
        (np.triu(np.ones((7, 7), int), 1), ["input"] + [C3] * 5 + ["output"], "21 edges after pruning"),
        (np.eye(8, k=1, dtype=int), ["input"] + [C3] * 6 + ["output"], "8 vertices, at most 7"),
    ],
)
def test_invalid_cells_are_rejected(matrix, ops, why):
    with pytest.raises(UnknownArchitectureError, match=why):
        nb101.canonical(matrix, ops)


def test_encoding_of_a_small_cell():
    matrix, ops, _ = nb101.canonical(DIAMOND, ["input", C3, MP, "output"])
    padded, padded_ops = nb101.pad_cell(matrix, ops)
    feats = nb101.encode(padded[None], padded_ops[None])[0]
    expected = [1, 0, 1, 0, 0]  # column 1: edge 0->1, op conv3x3
    expected += [1, 0, 0, 0, 1, 0]  # column 2: edges 0->2, 1->2; op maxpool
    expected += [0, 1, 1, 0, 0, 0, 1]  # column 3: edges 1->3, 2->3; op output
    expected += [0] * (45 - len(expected))  # columns 4..6: beyond the 4-vertex cell
    assert feats.shape == (45,) and feats.dtype == np.float32
    np.testing.assert_array_equal(feats, expected)


def test_encoding_one_hot_covers_every_op():
    """A 5-vertex chain through conv1x1, maxpool3x3 and conv3x3: each column's op one-hot over (conv1x1,
    conv3x3, maxpool3x3, output)."""
    chain = np.eye(5, k=1, dtype=int)
    padded, padded_ops = nb101.pad_cell(*nb101.canonical(chain, ["input", C1, MP, C3, "output"])[:2])
    feats = nb101.encode(padded[None], padded_ops[None])[0]
    expected = [1] + [1, 0, 0, 0]  # column 1: edge 0->1; conv1x1
    expected += [0, 1] + [0, 0, 1, 0]  # column 2: edge 1->2; maxpool3x3
    expected += [0, 0, 1] + [0, 1, 0, 0]  # column 3: edge 2->3; conv3x3
    expected += [0, 0, 0, 1] + [0, 0, 0, 1]  # column 4: edge 3->4; output
    expected += [0] * (45 - len(expected))
    np.testing.assert_array_equal(feats, expected)


def test_sample_round_trips_and_encoding(sample):
    space = sample.space
    assert sample.name == "nasbench101/cifar10" and len(space) == 292
    assert space.features.shape == (292, 45) and space.features.dtype == np.float32
    assert len(np.unique(space.features, axis=0)) == len(space)  # distinct cells encode distinctly
    for i in range(len(space)):
        assert space.index_of(space.decode(i)) == i
        assert space.index_of(space.arch_str(i)) == i
        assert space.index_of(space.hashes[i]) == i


def test_converted_rows_are_sorted_by_hash(shared_data):
    """A cell's index is its rank by canonical hash, whatever the record order of the source file."""
    columns = nb101_convert.convert_naslib_json(shared_data / "nasbench101" / "naslib_zc_nasbench101_500.json")
    hashes = columns["hash"].tolist()
    assert len(hashes) == 292 and hashes == sorted(hashes)


def test_sample_isomorphic_records_share_parameters(shared_data):
    """In the real sample, records that hash alike are one network: the same parameter count up to 1%
    (NAS-Bench-101 splits channels in vertex order, so isomorphic orderings may differ by a few hundred
    weights), and at most 3 distinct validation accuracies (one per training repeat)."""
    raw = json.loads((shared_data / "nasbench101" / "naslib_zc_nasbench101_500.json").read_text())
    groups = collections.defaultdict(list)
    for key, rec in raw["nasbench101"]["cifar10"].items():
        values = [int(v) for v in key.strip("()").split(",")]
        *_, digest = nb101.canonical(np.reshape(values[:49], (7, 7)), [nb101_convert.NASLIB_OPS[v] for v in values[49:]])
        groups[digest].append((rec["params"], rec["val_accuracy"]))
    assert len(groups) == 292 and max(len(g) for g in groups.values()) > 1
    for members in groups.values():
        params = [p for p, _ in members]
        assert max(params) / min(params) < 1.01
        assert len({v for _, v in members}) <= 3


def test_sample_oracle_reports_validation(sample):
    result = sample.oracle.evaluate(np.arange(5))
    np.testing.assert_array_equal(result.search, result.reported)
    assert result.cost is None
    assert 94.0 < sample.oracle.optimum[0] < 95.0


def test_mutate_lands_in_pool_and_is_reproducible(sample):
    space = sample.space
    children = [space.mutate(i, np.random.default_rng(i)) for i in range(0, 292, 7)]
    assert children == [space.mutate(i, np.random.default_rng(i)) for i in range(0, 292, 7)]
    assert all(0 <= c < len(space) and c != i for c, i in zip(children, range(0, 292, 7)))


def test_mutate_in_a_dense_pool_is_one_nasbench_step(monkeypatch):
    """In a dense pool a mutation is found by NAS-Bench-101's step, without the nearest-cell fallback."""
    base = nb101.canonical(DIAMOND, ["input", C3, MP, "output"])
    cells = {base[2]: base[:2]}
    rng = np.random.default_rng(0)
    while len(cells) < 400:  # random valid cells around the diamond
        matrix = np.triu(rng.integers(0, 2, (5, 5)), 1)
        try:
            m, o, h = nb101.canonical(matrix, [0, *rng.integers(1, 4, 3), 4])
        except UnknownArchitectureError:
            continue
        cells[h] = (m, o)
    hashes = sorted(cells)
    padded = [nb101.pad_cell(*cells[h]) for h in hashes]
    space = nb101.NASBench101Space(np.array(hashes), np.stack([p[0] for p in padded]), np.stack([p[1] for p in padded]))
    monkeypatch.setattr(nb101.NASBench101Space, "features", property(lambda self: pytest.fail("fallback used")))
    i = space.index_of(base[2])
    children = {space.mutate(i, np.random.default_rng(seed)) for seed in range(4)}
    assert i not in children and len(children) > 1


def test_tfrecord_converter(tfrecord):
    columns = nb101_convert.convert_tfrecord(tfrecord, verify_data_crc=True)
    assert len(columns["hash"]) == 2
    row = {h.decode(): r for r, h in enumerate(columns["hash"])}[nb101.canonical(*CELLS[0][:2])[2]]
    np.testing.assert_allclose(columns["valid_acc_seeds"][row], [90, 92, 94])
    assert columns["valid_acc"][row] == pytest.approx(92.0)
    assert columns["test_acc"][row] == pytest.approx(91.0)
    assert columns["train_time_s"][row] == pytest.approx(110.0)
    assert columns["params_m"][row] == pytest.approx(2.0)
    np.testing.assert_array_equal(columns["ops"][row], [0, 2, 3, 4, -1, -1, -1])


def test_parse_model_metrics():
    metrics = parse_model_metrics(model_metrics(0.9, 0.8, 12.5, 1234))
    assert metrics["trainable_parameters"] == 1234 and metrics["total_time"] == 17.5
    assert metrics["evaluation_data"][-1]["test_accuracy"] == 0.8
    assert metrics["evaluation_data"][-1]["checkpoint_path"] == "/ckpt/model.ckpt"


def test_converted_cache_is_loaded_without_the_tfrecord(tfrecord, cache, tmp_path):
    written = nb101_data.convert_tfrecord_to_cache(tfrecord, verify_checksum=False)
    assert written.parent == cache
    tfrecord.unlink()
    bench = nb101_data.load_benchmark(data_dir=tmp_path)
    assert len(bench.space) == 2
    assert sorted(bench.oracle.reported.round(6)) == [81.0, 91.0]
    assert bench.oracle.cost is not None
    noisy = nb101_data.load_benchmark(data_dir=tmp_path, noisy=True).oracle.for_repeat(1)
    assert all(v in (80, 82, 84, 90, 92, 94) for v in noisy.search.round(6))
    assert bench.oracle.for_repeat(1) is bench.oracle  # without noisy: the mean labels in every repeat


def test_outdated_converted_cache_is_refused(tfrecord, cache, tmp_path):
    """A cache written by another converter version is not loaded: the error says to convert again."""
    nb101_data.convert_tfrecord_to_cache(tfrecord, verify_checksum=False)
    tfrecord.unlink()
    columns, meta = store.read_cache(nb101_data.FULL_KEY)
    store.write_cache(nb101_data.FULL_KEY, columns, {**meta, "schema_version": nb101_convert.SCHEMA_VERSION - 1})
    with pytest.raises(BenchmarkDataError, match="outdated cache"):
        nb101_data.load_benchmark(data_dir=tmp_path)


def test_tfrecord_checksum_is_checked(tfrecord, cache):
    with pytest.raises(BenchmarkDataError, match="checksum mismatch"):
        nb101_data.convert_tfrecord_to_cache(tfrecord)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:-7], "truncated record"),
        (lambda b: b[:3] + b"\xff" + b[4:], "corrupt record length"),
        (lambda b: b[:20] + b"X" + b[21:], "corrupt record data"),
    ],
)
def test_damaged_tfrecord(tfrecord, damage, message):
    tfrecord.write_bytes(damage(tfrecord.read_bytes()))
    with pytest.raises(BenchmarkDataError, match=message) as info:
        nb101_convert.convert_tfrecord(tfrecord, verify_data_crc=True)
    assert str(tfrecord) in str(info.value)


@pytest.mark.parametrize("wire, bits", [(1, 64), (5, 32)])
def test_truncated_fixed_width_field(wire, bits):
    key = bytes([3 << 3 | wire])  # field 3 (total_time), one byte short
    with pytest.raises(ValueError, match=f"truncated {bits}-bit field 3"):
        parse_model_metrics(key + b"\x00" * (bits // 8 - 1))


def test_wrong_record_format(tmp_path):
    path = tmp_path / "x.tfrecord"
    path.write_bytes(frame(b'{"not": "a list"}'))
    with pytest.raises(BenchmarkDataError, match="record 0 is not a NAS-Bench-101 record"):
        nb101_convert.convert_tfrecord(path)


def test_bad_sample_file(tmp_path, cache):
    bad = tmp_path / "data" / "nasbench101" / "naslib_zc_nasbench101_500.json"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"nasbench101": {"cifar10": {"(0, 1)": {"val_accuracy": 1}}}}')
    with pytest.raises(BenchmarkDataError, match="entry '\\(0, 1\\)'...: 2 entries, expected 56"):
        nb101_convert.convert_naslib_json(bad)
    with pytest.raises(BenchmarkDataError, match="checksum mismatch"):
        nb101_data.load_benchmark(data_dir=tmp_path / "data")
    bad.write_text("{not json")
    with pytest.raises(BenchmarkDataError, match="not a NASLib"):
        nb101_convert.convert_naslib_json(bad)


def test_dataset_and_noisy_options(shared_data, cache):
    with pytest.raises(ConfigError, match="only 'cifar10'"):
        nb101_data.load_benchmark("cifar100")
    with pytest.warns(UserWarning), pytest.raises(ConfigError, match="per-seed"):
        nb101_data.load_benchmark(data_dir=shared_data, noisy=True)
    assert store.cache_path(nb101_data.FULL_KEY).parent == cache


def test_cli_convert(tfrecord, cache, capsys):
    from weaknas_ray.cli import main

    assert main(["data", "convert", "nasbench101", "--tfrecord", str(tfrecord), "--no-checksum", "--verify-crc"]) == 0
    assert str(cache / f"{nb101_data.FULL_KEY}.npz") in capsys.readouterr().out
    assert main(["data", "convert", "nasbench101", "--tfrecord", str(tfrecord)]) == 2  # not the official file
    assert "checksum mismatch" in capsys.readouterr().err


@pytest.mark.parametrize("arch", [42, "not a cell", "0/0 input,output", (DIAMOND, ["input", C1, C1, "output"], 1)])
def test_index_of_rejects_unknown_forms(sample, arch):
    with pytest.raises(UnknownArchitectureError, match="nasbench101"):
        sample.space.index_of(arch)


def test_hash_invariant_under_random_topological_relabelling():
    """Any relabelling of a cell's vertices that keeps it upper-triangular hashes the same (checked on
    random valid 7-vertex cells); changing one inner op changes the hash."""
    rng = np.random.default_rng(7)
    checked = 0
    while checked < 30:
        matrix = np.triu(rng.integers(0, 2, (7, 7)), 1)
        ops = [0, *rng.integers(1, 4, 5), 4]
        try:
            pruned, pops, digest = nb101.canonical(matrix, ops)
        except UnknownArchitectureError:
            continue
        k = len(pops)
        order, remaining = [0], set(range(1, k))  # random topological order of the pruned DAG
        while remaining:
            ready = [v for v in sorted(remaining) if all(u in order for u in np.flatnonzero(pruned[:, v]))]
            order.append(int(rng.choice(ready)))
            remaining.discard(order[-1])
        relabelled = pruned[np.ix_(order, order)]
        assert nb101.canonical(relabelled, [pops[v] for v in order])[2] == digest
        if k > 2:  # another op on vertex 1 changes the label multiset, which isomorphism preserves
            changed = list(pops)
            changed[1] = 1 + changed[1] % 3
            assert nb101.canonical(pruned, changed)[2] != digest
        checked += 1



def _reference_hash(matrix: np.ndarray, ops: list[str]) -> str:
    """NAS-Bench-101's ``ModelSpec.hash_spec``, transcribed from ``nasbench/lib/model_spec.py`` and
    ``graph_util.hash_module``: labels index config['available_ops'] = (conv3x3, conv1x1, maxpool3x3),
    input -1, output -2; per-vertex md5 of (out-degree, in-degree, label), refined once per vertex."""
    available = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]
    labeling = [-1] + [available.index(op) for op in ops[1:-1]] + [-2]
    vertices = np.shape(matrix)[0]
    hashes = [hashlib.md5(str(h).encode("utf-8")).hexdigest()
              for h in zip(np.sum(matrix, axis=1).tolist(), np.sum(matrix, axis=0).tolist(), labeling)]
    for _ in range(vertices):
        new_hashes = []
        for v in range(vertices):
            in_neighbors = [hashes[w] for w in range(vertices) if matrix[w, v]]
            out_neighbors = [hashes[w] for w in range(vertices) if matrix[v, w]]
            text = "".join(sorted(in_neighbors)) + "|" + "".join(sorted(out_neighbors)) + "|" + hashes[v]
            new_hashes.append(hashlib.md5(text.encode("utf-8")).hexdigest())
        hashes = new_hashes
    return hashlib.md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


def test_hash_is_nasbench101s_own():
    """The canonical hash is NAS-Bench-101's (what its tfrecord keys cells by), not merely an isomorphism
    invariant: the README's Inception-like cell and random valid cells hash as the reference does."""
    inception = np.array([[0, 1, 1, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 1, 0, 0],
                          [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0]])
    cells = [(inception, ["input", C1, C3, C3, C3, MP, "output"])]
    rng = np.random.default_rng(3)
    while len(cells) < 20:
        matrix = np.triu(rng.integers(0, 2, (7, 7)), 1)
        ops = ["input", *(nb101.OPS[v] for v in rng.integers(1, 4, 5)), "output"]
        try:
            nb101.canonical(matrix, ops)
        except UnknownArchitectureError:
            continue
        cells.append((matrix, ops))
    for matrix, ops in cells:
        pruned, pops, digest = nb101.canonical(matrix, ops)
        assert digest == _reference_hash(pruned, [nb101.OPS[op] for op in pops])


def test_mutate_changes_inner_ops_only_and_each_of_them(monkeypatch):
    """In the pool of every 7-vertex chain (all 3^5 inner-op choices), a mutation without edge flips is an op
    change: it touches inner vertices only (1..5, never input or output), and each of them over a few seeds."""
    import itertools

    chain = np.eye(7, k=1, dtype=int)
    cells = [nb101.canonical(chain, [0, *inner, 4]) for inner in itertools.product((1, 2, 3), repeat=5)]
    space = nb101.NASBench101Space(np.array([h for *_, h in cells]), np.stack([m for m, *_ in cells]),
                                   np.stack([np.array(o, dtype=np.int8) for _, o, _ in cells]))  # fmt: skip
    monkeypatch.setattr(space, "nearest", lambda *args: -1)  # no stand-ins: only real mutations count
    changed = set()
    for seed in range(40):
        child = space.mutate(0, np.random.default_rng(seed))
        if child >= 0:
            changed |= set(np.flatnonzero(space.ops[child] != space.ops[0]).tolist())
    assert changed == {1, 2, 3, 4, 5}
