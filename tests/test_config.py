"""Config loading: defaults, files, overrides, and the documented errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from weaknas_ray.config import (
    BASE,
    QUICK_DEFAULT,
    SHARED_SETTINGS,
    diff,
    dump_yaml,
    load_config,
    method_settings,
    read_yaml,
    set_key,
)
from weaknas_ray.exceptions import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# the runner's YAML files (tune_* and ofa_* belong to other pieces)
RUNNER_CONFIGS = sorted(p for p in CONFIGS.glob("nb*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_no_file_is_quick_default_over_base():
    config = load_config()
    assert set(config) == set(BASE)
    assert config["search"]["methods"] == QUICK_DEFAULT["search"]["methods"]
    assert config["search"]["init_sample"] == BASE["search"]["init_sample"]
    assert config["methods"]["weaknas"]["predictor_params"] == {"hidden": [256, 256]}


def test_quick_file_equals_embedded_default():
    assert load_config(CONFIGS / "nb201_quick.yaml") == load_config()


def test_a_shipped_config_runs_by_name(tmp_path, monkeypatch, capsys):
    from weaknas_ray.cli import main
    from weaknas_ray.config import shipped_configs

    shipped = shipped_configs()
    assert set(shipped) == {p.stem for p in CONFIGS.glob("*.yaml")}
    assert all(description and "\n" not in description for _, description in shipped.values())
    monkeypatch.chdir(tmp_path)  # names resolve anywhere, not only from the checkout
    assert load_config("nb201_quick") == load_config("nb201_quick.yaml") == load_config()
    (tmp_path / "nb201_quick.yaml").write_text("name: mine\n")  # an existing path wins over a name
    assert load_config("nb201_quick.yaml")["name"] == "mine"
    with pytest.raises(ConfigError, match="no shipped config has that name.*nb201_quick"):
        load_config("nb201_quik")
    assert main(["configs"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == list(shipped)
    assert main(["configs", "tune_nasbench201"]) == 0 and "tune:" in capsys.readouterr().out


@pytest.mark.parametrize("path", RUNNER_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_match_method_signatures(path):
    config = load_config(path)
    for method in config["search"]["methods"]:
        method_settings(config, method)


def test_published_configs_use_published_settings():
    nb101 = load_config(CONFIGS / "nb101_uniform.yaml")["search"]
    assert (nb101["init_sample"], nb101["sample_each_iter"], nb101["max_sample"], nb101["repeats"]) == (100, 10, 1000, 100)
    assert (nb101["top_start"], nb101["top_end"]) == (100, 100)
    ei = load_config(CONFIGS / "nb201_cifar100_ei.yaml")
    assert ei["methods"]["weaknas-ei"]["n_members"] == 5 and ei["benchmark"]["dataset"] == "cifar100"


@pytest.mark.parametrize("name", ["nb101_uniform", "nb101_ei", *(f"nb201_{d}_{v}" for d in ("cifar10", "cifar100", "imagenet16") for v in ("uniform", "ei"))])
def test_published_configs_z_score_by_the_pool(name):
    """The published commands z-score targets by the whole pool's statistics, as the published code does."""
    config = load_config(CONFIGS / f"{name}.yaml")
    (method,) = config["search"]["methods"]
    assert config["methods"][method]["target_scaling"] == "pool"


def test_file_merges_over_base_and_benchmark_section_replaces(tmp_path):
    config = load_config(write(tmp_path, "benchmark: {name: nasbench101}\nsearch: {repeats: 7}\n"))
    assert config["benchmark"] == {"name": "nasbench101"}
    assert config["search"]["repeats"] == 7 and config["search"]["max_sample"] == BASE["search"]["max_sample"]


def test_overrides_apply_last_and_skip_none():
    config = load_config(overrides={"search.repeats": 2, "ray.address": None, "methods.random.batch_size": 5})
    assert config["search"]["repeats"] == 2
    assert config["ray"]["address"] is None
    assert config["methods"]["random"] == {"batch_size": 5}


def test_overrides_win_over_the_file_and_none_keeps_its_value(tmp_path):
    path = write(tmp_path, "search: {repeats: 7, max_sample: 40}\n")
    config = load_config(path, overrides={"search.repeats": 2, "search.max_sample": None})
    assert config["search"]["repeats"] == 2 and config["search"]["max_sample"] == 40


@pytest.mark.parametrize("stop", [True, False, "reported", "search"])
def test_stop_at_optimum_takes_either_optimum(stop):
    assert load_config(overrides={"search.stop_at_optimum": stop})["search"]["stop_at_optimum"] == stop


def test_boundary_values_are_accepted(tmp_path):
    """The documented ranges are closed where they say so: top_decay 1 (constant top-N), init_sample equal
    to max_sample (one iteration), one whole GPU per repeat."""
    text = "search: {top_decay: 1, init_sample: 20, max_sample: 20}\nray: {num_gpus_per_repeat: 1}\n"
    config = load_config(write(tmp_path, text))
    assert (config["search"]["top_decay"], config["search"]["init_sample"], config["ray"]["num_gpus_per_repeat"]) == (1, 20, 1)


def test_loaded_configs_share_no_state():
    """Changing one loaded config (as the runner and the CLI do) changes neither the defaults nor a later load."""
    first = load_config()
    first["methods"]["weaknas"]["predictor_params"]["hidden"].append(512)
    first["search"]["methods"].append("regularized-evolution")
    assert load_config() == load_config(CONFIGS / "nb201_quick.yaml")
    assert load_config()["methods"]["weaknas"]["predictor_params"] == {"hidden": [256, 256]}
    assert QUICK_DEFAULT["search"]["methods"] == ["weaknas", "random"]


@pytest.mark.parametrize(
    "text, key",
    [
        ("bogus: 1\n", "bogus: unknown"),
        ("search: {repeatz: 3}\n", "search.repeatz: unknown key"),
        ("ray: {cpus: 3}\n", "ray.cpus: unknown key"),
        ("search: {repeats: '3'}\n", "search.repeats: expected int, got str"),
        ("search: {repeats: true}\n", "search.repeats: expected int, got bool"),
        ("search: {repeats: 0}\n", "search.repeats: expected >= 1"),
        ("search: {top_decay: 1.5}\n", "search.top_decay: expected in (0, 1]"),
        ("search: {top_decay: 0}\n", "search.top_decay: expected in (0, 1]"),
        ("search: {seed: -1}\n", "search.seed: expected 0..4294967295"),
        ("search: {top_start: 100, top_end: 101}\n", "search.top_end: 101 exceeds search.top_start (100)"),
        ("ray: {chunk_size: -1}\n", "ray.chunk_size: expected >= 0"),
        ("ray: {object_store_memory: 1000000}\n", "ray.object_store_memory: expected >= 81788928"),
        ("search: {max_sample: 5}\n", "search.init_sample: 10 exceeds search.max_sample (5)"),
        ("search: {top_start: 50, top_end: 60}\n", "search.top_end: 60 exceeds search.top_start (50)"),
        ("search: {methods: [weaknas, bogus]}\n", "search.methods: unknown method 'bogus'"),
        ("search: {methods: []}\n", "search.methods: expected a non-empty list"),
        ("search: {methods: [random, random]}\n", "search.methods: expected a non-empty list of distinct"),
        ("methods: {bogus: {}}\n", "methods.bogus: unknown method"),
        ("methods: {random: 3}\n", "methods.random: expected a mapping"),
        ("benchmark: {name: nasbench999}\n", "benchmark.name: unknown benchmark 'nasbench999'"),
        ("benchmark: {dataset: cifar10}\n", "benchmark: give exactly one of 'name'"),
        ("benchmark: {loader: nocolon}\n", "benchmark.loader: expected 'module:function'"),
        ("ray: {num_gpus_per_repeat: 1.5}\n", "ray.num_gpus_per_repeat: expected 0..1 or a whole number"),
        ("ray: {cpus_per_repeat: 0}\n", "ray.cpus_per_repeat: expected > 0"),
        ("output: null\n", "output: must be set"),
        ("search: 3\n", "search: expected a mapping"),
        ("search: {stop_at_optimum: test}\n", "search.stop_at_optimum: expected true, false, reported or search, got 'test'"),
        ("search: {stop_at_optimum: 1}\n", "search.stop_at_optimum: expected bool or str, got int"),
        ("search: {methods: [[weaknas]]}\n", "search.methods: expected a non-empty list of distinct method names"),
        ("search: {seed: 18446744073709551616}\n", "search.seed: expected 0..4294967295"),
        ("search: {seed: 4294967295, repeats: 2}\n", "search.seed: repeat r uses seed 4294967295 + r, beyond"),
        ("search: {sample_each_iter: 1000000000}\n", "search.sample_each_iter: 1000000000 exceeds search.max_sample"),
        ("search: {top_decay: .nan}\n", "search.top_decay: expected a finite number, got nan"),
        ("ray: {address: garbage}\n", "ray.address: expected 'auto', HOST:PORT or ray://HOST:PORT"),
        ("ray: {address: '127.0.0.1:99999'}\n", "ray.address: expected 'auto', HOST:PORT"),
        ("ray: {connect_timeout_s: 0}\n", "ray.connect_timeout_s: expected > 0"),
        ("methods: {weaknas-ei: {calibration: .nan}}\n", "methods.weaknas-ei.calibration: expected a finite number, got nan"),
        ("methods: {weaknas: {predictor_params: {alpha: .inf}}}\n",
         "methods.weaknas.predictor_params.alpha: expected a finite number, got inf"),
        ("methods: {weaknas: {predictor_params: {hidden: [16, .nan]}}}\n",
         "methods.weaknas.predictor_params.hidden[1]: expected a finite number, got nan"),
        ("benchmark: {name: nasbench201, scale: -.inf}\n", "benchmark.scale: expected a finite number, got -inf"),
        ("output: ''\n", "output: expected a non-empty path"),
    ],
)
def test_malformed_configs_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert key in str(err.value)


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"c\.yaml:2:8: not valid YAML: found character '\\t'") as err:
        load_config(write(tmp_path, "search:\n  seed:\t3\n"))
    assert "\n" not in str(err.value)  # one line: file, line and column, not PyYAML's excerpt
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match=f"config file '{tmp_path}' is a directory, not a YAML file"):
        load_config(tmp_path)
    (tmp_path / "model.bin").write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="model.bin' is not a text"):
        load_config(tmp_path / "model.bin")


def test_set_key_rejects_unknown_paths_but_opens_methods_and_benchmark():
    config = load_config()
    set_key(config, "benchmark.noisy", True)
    set_key(config, "methods.weaknas.n_members", 3)
    assert config["benchmark"]["noisy"] is True and config["methods"]["weaknas"]["n_members"] == 3
    with pytest.raises(ConfigError, match="search.nope: unknown key"):
        set_key(config, "search.nope", 1)
    with pytest.raises(ConfigError, match="search.repeats: is a value, not a section"):
        set_key(config, "search.repeats.x", 1)


def test_method_settings_pass_shared_keys_the_constructor_accepts():
    config = load_config(overrides={"methods.weaknas.n_members": 2})
    weaknas = method_settings(config, "weaknas")
    assert weaknas["init_sample"] == 10 and weaknas["n_members"] == 2 and weaknas["predictor"] == "mlp"
    assert "init_sample" not in method_settings(config, "random")
    assert "top_start" not in weaknas and config["search"]["top_start"] is None  # null: the method's own
    config["search"]["top_start"] = config["search"]["top_end"] = 50  # weaknas-ei passes them on to weaknas
    config["search"]["top_decay"] = 0.9
    assert "sample_each_iter" not in weaknas  # null: each predictor's batch (weaknas.default_batch)
    config["search"]["sample_each_iter"] = 10
    assert method_settings(config, "weaknas-ei") == {k: config["search"][k] for k in SHARED_SETTINGS}
    config["methods"]["weaknas"] = {"init_sample": 20}  # methods.<method> wins over the shared search key
    assert method_settings(config, "weaknas")["init_sample"] == 20
    config["methods"]["weaknas-ei"] = {"predictor_paramz": {}}
    with pytest.raises(ConfigError, match=r"methods.weaknas-ei.predictor_paramz: not a setting .*'predictor_params'"):
        method_settings(config, "weaknas-ei")
    config["methods"]["random"] = {"bogus": 1}
    with pytest.raises(ConfigError, match=r"methods.random.bogus: not a setting of method 'random'"):
        method_settings(config, "random")


def test_diff_lists_changed_keys_and_honours_ignore():
    old = load_config()
    new = load_config(overrides={"search.max_sample": 50, "ray.num_cpus": 1, "output": "elsewhere"})
    assert diff(old, new) == ["output: 'outputs/default' -> 'elsewhere'", "ray.num_cpus: None -> 1", "search.max_sample: 100 -> 50"]
    assert diff(old, new, ignore=("ray.", "output")) == ["search.max_sample: 100 -> 50"]


def test_dump_round_trips(tmp_path):
    config = load_config()
    path = tmp_path / "config.yaml"
    path.write_text(dump_yaml(config))
    assert read_yaml(path) == config


def test_the_stall_rule_is_switched_off_by_null():
    """``stall_patience: null`` is the documented "no stall rule" and passes the config checker; 0 does not."""
    from weaknas_ray.commands.run import parse_set

    config = load_config(overrides=parse_set(["methods.weaknas.stall_patience=null", "search.max_sample=50"]))
    assert method_settings(config, "weaknas")["stall_patience"] is None and config["search"]["max_sample"] == 50
    with pytest.raises(ConfigError, match="methods.weaknas.stall_patience: expected an integer >= 1, got 0"):
        method_settings(load_config(overrides={"methods.weaknas.stall_patience": 0}), "weaknas")
