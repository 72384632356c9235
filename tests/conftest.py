"""Shared fixtures: one Ray instance per test session, the real benchmark data where present, and a synthetic
NAS-Bench-201 table in the official format where it is not."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks_data"


@pytest.fixture(scope="session", autouse=True)
def _fresh_cache(tmp_path_factory):
    """Every session converts the benchmark files itself into its own cache folder (tests may narrow it
    further), so a cache left by other code on this machine can neither hide a bug nor break a test."""
    old = os.environ.get("WEAKNAS_CACHE")
    os.environ["WEAKNAS_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("WEAKNAS_CACHE")
    else:
        os.environ["WEAKNAS_CACHE"] = old


NB201_FILE = "nasbench201/nb201_200ep.csv"


def _real_data_root() -> Path:
    """``$WEAKNAS_DATA``, else ``../shared/benchmarks_data`` beside the checkout (it may not exist)."""
    return Path(os.environ.get("WEAKNAS_DATA", SHARED_DATA))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data beside the checkout (``../shared/benchmarks_data``); skips where absent.
    For tests that check the real numbers; a test that needs only *a* NAS-Bench-201 table takes ``nb201_root``."""
    root = _real_data_root()
    if not (root / NB201_FILE).is_file():
        pytest.skip(f"real benchmark data not found at {root}")
    return root


@pytest.fixture(scope="session")
def synthetic_nb201(tmp_path_factory) -> tuple[Path, Path]:
    """``(data root, manifest)``: a temporary root holding :func:`write_synthetic_nb201`'s table, and a copy of
    the shipped manifest that lists that file's sha256 (for ``$WEAKNAS_MANIFEST``)."""
    from weaknas_ray.benchmarks.manifest import MANIFEST_PATH
    from weaknas_ray.benchmarks.store import sha256_file

    root = tmp_path_factory.mktemp("nb201_synthetic")
    table = write_synthetic_nb201(root / NB201_FILE)
    manifest = json.loads(MANIFEST_PATH.read_text())
    manifest["files"]["nasbench201"].update(
        sha256=sha256_file(table), source="synthetic test table: tests/conftest.py write_synthetic_nb201"
    )
    manifest_file = tmp_path_factory.mktemp("nb201_manifest") / "manifest.json"
    manifest_file.write_text(json.dumps(manifest, indent=1))
    return root, manifest_file


@pytest.fixture(scope="session")
def nb201_root(request):
    """A data root holding ``nasbench201/nb201_200ep.csv``: the real data where present (as ``shared_data``),
    else the ``synthetic_nb201`` root.

    The synthetic table passes the loader's checks the sanctioned way: the manifest copy that lists its
    sha256 is named by ``$WEAKNAS_MANIFEST`` for the rest of the session (subprocesses inherit it). The
    shipped manifest and the checks are untouched: a file other than the one the manifest in use lists
    is still refused.
    """
    root = _real_data_root()
    if (root / NB201_FILE).is_file():
        yield root
        return
    from weaknas_ray.benchmarks.manifest import MANIFEST_ENV

    root, manifest = request.getfixturevalue("synthetic_nb201")
    old = os.environ.get(MANIFEST_ENV)
    os.environ[MANIFEST_ENV] = str(manifest)
    yield root
    if old is None:
        os.environ.pop(MANIFEST_ENV)
    else:
        os.environ[MANIFEST_ENV] = old


NB201_DATASETS = ("cifar10_valid_valid_acc", "cifar100_valid_acc", "imagenet16_120_valid_acc")
NB201_TWO_SEED_CELLS = 7456  # as in the real table: these cells have an empty third seed column


def write_synthetic_nb201(path: Path) -> Path:
    """All 15,625 NAS-Bench-201 cells in the official format of ``nb201_200ep.csv`` (the columns, their
    order and ``%.6f`` numbers as ``../shared/benchmarks_data/README.md`` lists them), with made-up numbers.

    The index order is a fixed shuffle (as in the real file, not the product order). Accuracies are a fixed
    function of the cell: a per-edge, per-op score, chance level for cells whose output is not connected to
    the input, and seed noise; 7,456 cells have only 2 training seeds (the third seed column empty), each mean
    column is the mean of its available seeds. Deterministic for a given numpy.
    """
    from weaknas_ray.spaces.nasbench201 import EDGES, OPS, format_arch_str

    rng = np.random.default_rng(201)
    n_ops, n_edges = len(OPS), len(EDGES)
    ops = np.array(list(itertools.product(range(n_ops), repeat=n_edges)), dtype=np.int8)
    ops = ops[rng.permutation(len(ops))]
    n = len(ops)
    prior = np.array([0.0, 0.4, 0.7, 1.0, 0.3])  # none, skip, conv 1x1, conv 3x3, avg pool
    weight = prior[None, :] * rng.uniform(0.6, 1.4, size=(n_edges, n_ops))
    quality = weight[np.arange(n_edges), ops].sum(axis=1) / weight.max(axis=1).sum()
    live = ops != 0
    node1 = live[:, 0]
    node2 = live[:, 1] | (live[:, 2] & node1)
    connected = live[:, 3] | (live[:, 4] & node1) | (live[:, 5] & node2)
    two_seed = np.zeros(n, dtype=bool)
    two_seed[rng.choice(n, NB201_TWO_SEED_CELLS, replace=False)] = True

    columns: dict[str, np.ndarray] = {"index": np.arange(n), "arch_str": np.array([format_arch_str(c) for c in ops])}
    shapes = {"cifar10_valid_valid_acc": (55.0, 37.0, 10.0), "cifar100_valid_acc": (25.0, 48.0, 1.0),
              "imagenet16_120_valid_acc": (12.0, 35.0, 0.833333)}  # fmt: skip
    for search in NB201_DATASETS:
        low, span, chance = shapes[search]
        mean = np.where(connected, low + span * quality + rng.normal(0, 0.8, n), chance)
        seeds = np.round(mean[:, None] + np.where(connected, 1.0, 0.0)[:, None] * rng.normal(0, 0.4, (n, 3)), 6)
        seeds[two_seed, 2] = np.nan
        columns[search] = np.round(np.nanmean(seeds, axis=1), 6)
        for s in range(3):
            columns[f"{search}_seed{s}"] = seeds[:, s]
        test = np.round(columns[search] + np.where(connected, rng.normal(0.3, 0.3, n), 0.0), 6)
        if search == "cifar10_valid_valid_acc":
            columns["cifar10_valid_test_acc"] = test
            columns["cifar10_test_acc"] = np.round(test + np.where(connected, 2.5, 0.0), 6)
        else:
            columns[search.replace("_valid_acc", "_test_acc")] = test
    convs = (ops == 2).sum(axis=1) + 3 * (ops == 3).sum(axis=1)
    columns["cifar10_valid_train_time_s"] = np.round(1000 + 120 * convs + rng.uniform(0, 200, n), 6)
    columns["params_mb"] = np.round(0.073306 + 0.0516 * convs, 6)

    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(columns).to_csv(path, index=False, float_format="%.6f")
    return path


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance shared by every Ray test of the session: 2 CPUs, a small object store, and
    2 logical GPUs so GPU scheduling (fractional ``num_gpus`` actors) is testable on a CPU-only machine."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            num_gpus=2,
            object_store_memory=300 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()
