"""The output folder: atomic writes, resume bookkeeping, summary statistics and figures (no Ray)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from weaknas_ray.config import load_config
from weaknas_ray.exceptions import ConfigError, RunStateError
from weaknas_ray.results.aggregate import best_curves, markdown_table, queries_to_optimum, summarize, summary_table
from weaknas_ray.results.plots import plot_curves, plot_search_dynamics, tsne_embedding
from weaknas_ray.results.records import RunStore, atomic_write, write_text
from weaknas_ray.results.report import write_report


def rows(method: str, repeat: int, reported: list[float], arch: list[int] | None = None) -> pd.DataFrame:
    """Query rows as run_repeat labels them, batches of 2."""
    n = len(reported)
    return pd.DataFrame(
        {
            "method": method,
            "repeat": repeat,
            "seed": repeat,
            "iteration": np.arange(n) // 2,
            "query": np.arange(1, n + 1),
            "arch_index": np.arange(n) + 10 * repeat if arch is None else arch,
            "search_value": reported,
            "reported_value": reported,
            "best_search_so_far": np.maximum.accumulate(reported),
            "best_reported_so_far": np.maximum.accumulate(reported),
            "elapsed_s": 0.0,
        }
    )


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "f.txt"
    write_text(path, "old")

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_store_records_finished_repeats_and_merges_sorted(tmp_path):
    store = RunStore(tmp_path / "run")
    store.prepare(load_config(), {"benchmark": "fake"})
    store.write_repeat("random", 1, rows("random", 1, [1.0, 2.0]), None)
    final = pd.DataFrame({"method": ["weaknas"], "repeat": [0], "reported_value": [3.0], "already_queried": [False]})
    store.write_repeat("weaknas", 0, rows("weaknas", 0, [0.5, 3.0]), final)
    store.write_repeat("random", 0, rows("random", 0, [2.0, 1.0]), None)
    assert store.finished() == {("random", 0), ("random", 1), ("weaknas", 0)}
    store.merge()
    merged = pd.read_parquet(store.root / "results.parquet")
    assert merged[["method", "repeat"]].drop_duplicates().values.tolist() == [["random", 0], ["random", 1], ["weaknas", 0]]
    assert pd.read_parquet(store.root / "final_top1.parquet").shape[0] == 1
    assert store.load_meta() == {"benchmark": "fake"}


def test_a_repeat_killed_while_saving_is_not_finished(tmp_path, monkeypatch):
    """The rows file marks a repeat finished, so it is written last: a failure while saving the final
    top-1 leaves no rows file, and resume runs the repeat again instead of keeping it without its answer."""
    from weaknas_ray.results import records

    store = RunStore(tmp_path / "run")
    store.prepare(load_config())
    real = records.write_parquet

    def dies_on_final(path, frame):
        if path.name.endswith(".final.parquet"):
            raise OSError("disk full")
        real(path, frame)

    monkeypatch.setattr(records, "write_parquet", dies_on_final)
    final = pd.DataFrame({"method": ["weaknas"], "repeat": [0], "reported_value": [3.0]})
    with pytest.raises(OSError, match="disk full"):
        store.write_repeat("weaknas", 0, rows("weaknas", 0, [0.5, 3.0]), final)
    assert store.finished() == set() and not list(store.repeats_dir.glob("*.parquet"))


def test_merged_tables_sort_by_method_repeat_query_not_file_name(tmp_path):
    """File names sort ``weaknas-ei__r...`` before ``weaknas__r...`` ('-' < '_'), methods the other way
    round; rows saved out of query order come back in order."""
    store = RunStore(tmp_path / "run")
    store.prepare(load_config(), {"benchmark": "fake"})
    for method in ("weaknas-ei", "weaknas"):
        for repeat in (1, 0):
            frame = rows(method, repeat, [1.0, 2.0, 3.0, 4.0]).iloc[[2, 0, 3, 1]]
            final = pd.DataFrame({"method": [method], "repeat": [repeat], "reported_value": [1.0], "already_queried": [True]})
            store.write_repeat(method, repeat, frame, final)
    want = [[m, r, q] for m in ("weaknas", "weaknas-ei") for r in (0, 1) for q in (1, 2, 3, 4)]
    assert store.results()[["method", "repeat", "query"]].values.tolist() == want
    assert store.final_top1()[["method", "repeat"]].values.tolist() == [["weaknas", 0], ["weaknas", 1], ["weaknas-ei", 0], ["weaknas-ei", 1]]
    store.merge()
    merged = pd.read_parquet(store.root / "results.parquet")
    assert merged[["method", "repeat", "query"]].values.tolist() == want
    assert merged.index.tolist() == list(range(16))


def test_unreadable_files_are_named_and_a_corrupt_repeat_runs_again(tmp_path, capsys):
    store = RunStore(tmp_path / "run")
    with pytest.raises(RunStateError, match="not a run's output folder"):
        store.load_config()
    store.prepare(load_config(), {"benchmark": "fake"})
    store.write_repeat("random", 0, rows("random", 0, [1.0, 2.0]), None)
    final = pd.DataFrame({"method": ["weaknas"], "repeat": [0], "reported_value": [3.0], "already_queried": [False]})
    store.write_repeat("weaknas", 0, rows("weaknas", 0, [0.5, 3.0]), final)
    bad = store.repeats_dir / "weaknas__r0000.parquet"
    with open(bad, "r+b") as f:
        f.truncate(50)
    with pytest.raises(RunStateError, match="weaknas__r0000.parquet: unreadable"):
        store.results()
    assert store.finished() == {("random", 0)}  # the resume check sets it aside: that repeat runs again
    assert "weaknas__r0000.parquet does not match its recorded checksum" in capsys.readouterr().err
    assert sorted(p.name for p in store.repeats_dir.iterdir()) == [
        "checksums.json", "random__r0000.parquet", "weaknas__r0000.final.parquet.corrupt", "weaknas__r0000.parquet.corrupt"
    ]
    assert store.results()["method"].unique().tolist() == ["random"]
    assert oct(bad.with_name("random__r0000.parquet").stat().st_mode & 0o777) != oct(0o600)
    (store.root / "meta.json").write_text("{broken")
    with pytest.raises(RunStateError, match="meta.json: unreadable"):
        store.load_meta()
    with pytest.raises(ConfigError, match="cannot write the output folder"):
        RunStore(store.root / "meta.json" / "sub").prepare(load_config())


def saved_run(tmp_path) -> RunStore:
    """A folder with two finished weaknas repeats (rows and final top-1 each)."""
    store = RunStore(tmp_path / "run")
    store.prepare(load_config(), {"benchmark": "fake"})
    for r in (0, 1):
        final = pd.DataFrame({"method": ["weaknas"], "repeat": [r], "reported_value": [3.0], "already_queried": [False]})
        store.write_repeat("weaknas", r, rows("weaknas", r, [0.5, 88.825]), final)
    return store


@pytest.mark.parametrize("damage", ["truncate-final", "delete-final", "flip-rows", "flip-final", "unrecorded"])
def test_a_damaged_missing_or_edited_repeat_file_is_set_aside_on_resume_and_report(tmp_path, capsys, damage):
    store = saved_run(tmp_path)
    target = store.repeats_dir / ("weaknas__r0001.parquet" if "rows" in damage else "weaknas__r0001.final.parquet")
    if damage == "truncate-final":
        target.write_bytes(target.read_bytes()[:40])
    elif damage == "delete-final":
        target.unlink()
    elif damage == "unrecorded":  # a run killed between saving the files and recording them
        index = json.loads((store.repeats_dir / "checksums.json").read_text())
        del index["weaknas__r0001"]
        (store.repeats_dir / "checksums.json").write_text(json.dumps(index))
    else:  # one bit: still a readable parquet file, with another value
        data = bytearray(target.read_bytes())
        offset = data.index(np.float64(88.825 if "rows" in damage else 3.0).tobytes())
        data[offset + 6] ^= 0x01
        target.write_bytes(bytes(data))
    summary = write_report(store, dynamics=False)  # report sets it aside too, and reports the rest
    assert "weaknas__r0001" in capsys.readouterr().err
    assert summary["methods"]["weaknas"]["repeats"] == 1
    assert set(store.final_top1()["repeat"]) == {0} and set(store.results()["repeat"]) == {0}
    assert store.finished() == {("weaknas", 0)}  # so a resume runs repeat 1 again
    assert not (store.repeats_dir / "weaknas__r0001.parquet").exists()


def test_a_folder_written_without_checksums_still_resumes(tmp_path):
    store = saved_run(tmp_path)
    (store.repeats_dir / "checksums.json").unlink()
    assert store.finished() == {("weaknas", 0), ("weaknas", 1)}
    assert len(store.results()) == 4


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a mapping"])
def test_a_damaged_checksum_index_costs_no_result_and_is_rebuilt(tmp_path, capsys, damage):
    store = saved_run(tmp_path)
    index = store.repeats_dir / "checksums.json"
    recorded = json.loads(index.read_text())
    index.write_text({"empty": "", "truncated": index.read_text()[:30], "not a mapping": "[1, 2]"}[damage])
    bad = store.repeats_dir / "weaknas__r0001.final.parquet"
    bad.write_bytes(bad.read_bytes()[:40])  # a damaged file is still found, by reading it
    assert store.finished() == {("weaknas", 0)}
    err = capsys.readouterr().err
    assert "checksums.json is unreadable" in err and "index rebuilt" in err
    assert "weaknas__r0001.parquet: weaknas__r0001.final.parquet is unreadable" in err
    assert json.loads(index.read_text()) == {"weaknas__r0000": recorded["weaknas__r0000"]}
    assert (store.repeats_dir / "checksums.json.corrupt").is_file()
    store.write_repeat("weaknas", 1, rows("weaknas", 1, [0.5, 1.0]), None)  # the resume runs the lost one
    assert store.finished() == {("weaknas", 0), ("weaknas", 1)}
    index.write_text("")  # damaged while a run saves a repeat: the others stay recorded
    store.write_repeat("weaknas", 2, rows("weaknas", 2, [0.5]), None)
    assert store.finished() == {("weaknas", 0), ("weaknas", 1), ("weaknas", 2)}


def test_without_checksums_only_files_holding_their_repeat_count(tmp_path, capsys):
    store = saved_run(tmp_path)
    (store.repeats_dir / "checksums.json").unlink()
    rows("weaknas", 0, [1.0, 2.0]).to_parquet(store.repeats_dir / "weaknas__r0001.parquet")  # another repeat's rows
    pd.DataFrame({"query": [1]}).to_parquet(store.repeats_dir / "weaknas__r0002.parquet")  # not a repeat's rows
    assert store.finished() == {("weaknas", 0)}
    err = capsys.readouterr().err
    assert "weaknas__r0001.parquet holds rows of another repeat" in err
    assert "weaknas__r0002.parquet lacks the column(s) method, repeat, seed, arch_index, reported_value" in err
    store.write_repeat("weaknas", 3, rows("weaknas", 3, [0.5]), None)  # the rebuilt index keeps repeat 0
    assert store.finished() == {("weaknas", 0), ("weaknas", 3)}


def test_repeats_without_a_config_are_refused(tmp_path):
    store = saved_run(tmp_path)
    (store.root / "config.yaml").unlink()
    with pytest.raises(RunStateError, match="holds repeat files but no config.yaml"):
        store.prepare(load_config(overrides={"search.seed": 5}))
    assert not (store.root / "config.yaml").exists()


def test_the_output_folder_lock_refuses_a_second_writer_and_goes_stale(tmp_path, capsys):
    import socket
    import subprocess
    import sys

    store = RunStore(tmp_path / "run")
    with store.lock():
        with pytest.raises(RunStateError, match=rf"in use by pid {os.getpid()} on host {socket.gethostname()}"):
            with RunStore(tmp_path / "run").lock():
                pass
    assert not (store.root / ".lock").exists()  # released
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (store.root / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))
    with store.lock():
        assert json.loads((store.root / ".lock").read_text())["pid"] == os.getpid()
    assert f"stale lock of pid {int(dead.stdout)}" in capsys.readouterr().err

    for damaged in ("", '{"pid": 12', "\x00\x00", json.dumps({"host": socket.gethostname()})):
        (store.root / ".lock").write_text(damaged)  # an older version's or a damaged disk's lock
        with store.lock():
            assert json.loads((store.root / ".lock").read_text())["pid"] == os.getpid()
        assert "a lock naming no process (empty or damaged) taken over" in capsys.readouterr().err
    (store.root / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(RunStateError, match="in use by pid 1 on host elsewhere"):
        with store.lock():
            pass
    assert (store.root / ".lock").is_file()  # another host's lock is left alone


def test_a_merge_that_cannot_write_is_one_line_and_keeps_the_repeats(tmp_path, capsys, monkeypatch):
    from weaknas_ray.cli import main

    store = saved_run(tmp_path)
    files = sorted(p.name for p in store.repeats_dir.iterdir())

    def disk_full(frame, path, **_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    assert main(["report", str(store.root), "--no-dynamics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"weaknas-ray report: error: cannot write {store.root / 'results'}.parquet (No space left on "
                          f"device); the repeat files in {store.repeats_dir} are kept")
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in store.repeats_dir.iterdir()) == files


def test_a_resume_after_a_changed_default_is_refused_naming_the_key(tmp_path, monkeypatch):
    from weaknas_ray.config import resolve_defaults
    from weaknas_ray.engine.baselines import RandomSearch

    config = resolve_defaults(load_config(overrides={"search.methods": ["weaknas", "random"]}))
    assert config["methods"]["random"]["batch_size"] == 10 and config["methods"]["weaknas"]["predictor_params"]["lr"] == 0.001
    store = RunStore(tmp_path)
    store.prepare(config)
    assert store.load_config() == config  # saved resolved
    store.prepare(load_config(overrides={"search.methods": ["weaknas", "random"]}))  # same: resumes
    defaults = list(RandomSearch.__init__.__defaults__)
    monkeypatch.setattr(RandomSearch.__init__, "__defaults__", tuple(7 if d == 10 else d for d in defaults))
    with pytest.raises(ConfigError, match="methods.random.batch_size: 10 -> 7"):  # an upgrade changed a default
        store.prepare(load_config(overrides={"search.methods": ["weaknas", "random"]}))


def test_mlp_dtype_resolves_to_auto_but_float32_for_the_published_loop(tmp_path):
    """``auto`` is what config.yaml saves (the machine decides at run time); weaknas-published pins the
    paper's float32 for the MLP only, also under predictor_params of its own; a changed dtype is refused."""
    from weaknas_ray.config import resolve_defaults

    methods = {"search.methods": ["weaknas", "weaknas-published", "weaknas-ei"]}
    resolved = resolve_defaults(load_config(overrides=methods))["methods"]
    dtypes = {m: resolved[m]["predictor_params"].get("dtype") for m in methods["search.methods"] if "predictor_params" in resolved[m]}
    assert dtypes == {"weaknas": "auto", "weaknas-published": "float32", "weaknas-ei": "auto"}
    own = resolve_defaults(load_config(overrides={**methods, "methods.weaknas-published.predictor_params": {"hidden": [8]}}))
    assert own["methods"]["weaknas-published"]["predictor_params"]["dtype"] == "float32"
    trees = resolve_defaults(load_config(overrides={**methods, "methods.weaknas-published.predictor": "gbt"}))
    assert "dtype" not in trees["methods"]["weaknas-published"]["predictor_params"]
    store = RunStore(tmp_path)
    store.prepare(load_config(overrides=methods))
    with pytest.raises(ConfigError, match="methods.weaknas-ei.predictor_params.dtype: 'auto' -> 'float32'"):
        store.prepare(load_config(overrides={**methods, "methods.weaknas-ei.predictor_params": {"dtype": "float32"}}))


def test_store_refuses_a_different_config_with_a_diff(tmp_path):
    store = RunStore(tmp_path)
    store.prepare(load_config())
    store.prepare(load_config(overrides={"ray.num_cpus": 1, "search.repeats": 9}))  # results unchanged: allowed
    with pytest.raises(ConfigError) as err:
        store.prepare(load_config(overrides={"search.max_sample": 60, "search.seed": 3}))
    assert "search.max_sample: 100 -> 60" in str(err.value) and "search.seed: 0 -> 3" in str(err.value)


def test_empty_store_and_failures_file(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ConfigError, match="holds no finished repeat"):
        store.results()
    store.write_failures([{"method": "random", "repeat": 0, "seed": 0, "error": "boom"}])
    assert json.loads((tmp_path / "failures.json").read_text())[0]["error"] == "boom"
    store.write_failures([])
    assert not (tmp_path / "failures.json").exists()


def test_best_curves_carry_an_early_stop_forward():
    frame = pd.concat([rows("m", 0, [1.0, 5.0]), rows("m", 1, [2.0, 1.0, 3.0, 0.0])])
    curves = best_curves(frame, 4)
    np.testing.assert_array_equal(curves, [[1, 5, 5, 5], [2, 2, 3, 3]])


def test_summary_checkpoints_and_queries_to_optimum():
    values = np.linspace(0, 1, 20)
    frame = pd.concat(
        [rows("a", 0, list(values), arch=list(range(20))), rows("a", 1, list(values[::-1]), arch=list(range(19, -1, -1)))]
    )
    frame["flops_m"] = frame["arch_index"] * 10.0  # a space's own column
    final = pd.DataFrame({"method": ["a", "a"], "repeat": [0, 1], "reported_value": [1.0, 0.5], "already_queried": [True, False]})
    summary = summarize(frame, final, max_sample=20, optimum_indices=[19], optimum_reported=1.0,
                        search_optimum_indices=[18, 3])
    s = summary["methods"]["a"]
    assert s["repeats"] == 2 and s["seeds"] == [0, 1]
    assert set(s["best_reported_at"]) == {"10", "20"}
    assert s["best_reported_at"]["10"]["mean"] == pytest.approx((values[9] + 1.0) / 2)
    assert s["best_reported_at"]["20"] == {"mean": 1.0, "std": 0.0}
    assert s["queries_to_optimum"] == {"mean": 10.5, "median": 10.5, "share_found": 1.0}
    assert s["queries_to_search_optimum"] == {"mean": 3.0, "median": 3.0, "share_found": 1.0}  # 4th and 2nd query
    assert "reported optimum: found, q mean/med" in summary_table(summary)
    assert "100%, 3.0 / 3" in summary_table(summary) and "100%, 10.5 / 10.5" in summary_table(summary)
    assert s["final_top1"]["reported"]["mean"] == 0.75 and s["final_top1"]["share_already_queried"] == 0.5
    np.testing.assert_array_equal(queries_to_optimum(frame, [999]), [np.nan, np.nan])
    assert summary["per_repeat"] == [
        {"method": "a", "repeat": r, "seed": r, "best_reported": 1.0, "query": q, "arch": "19", "flops_m": 190.0,
         "final_top1_reported": f}
        for r, q, f in ((0, 20, 1.0), (1, 1, 0.5))
    ]
    table = summary_table(summary)
    assert "best per repeat" in table and "flops_m" in table and "190.0" in table


def test_figures_and_cached_embedding(tmp_path):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 4)).astype(np.float32)
    emb = tsne_embedding(features, tmp_path / "cache")
    assert emb.shape == (60, 2) and len(list((tmp_path / "cache").glob("tsne_*.npy"))) == 1
    np.testing.assert_array_equal(tsne_embedding(features, tmp_path / "cache"), emb)  # read back from the cache
    frame = pd.concat([rows("weaknas", 0, list(rng.random(8))), rows("random", 0, list(rng.random(8)))])
    assert plot_curves({"": (frame, 8)}, tmp_path / "c.png", optimum=1.0, log_x=True).stat().st_size > 0
    one = frame[frame["method"] == "weaknas"]
    assert plot_search_dynamics(emb, rng.random(60), one, tmp_path / "d.png", "t").stat().st_size > 0


def test_compared_runs_end_at_their_own_budgets(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    drawn = {}
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **_: drawn.update(
        {line.get_label(): len(line.get_xdata()) for line in fig.axes[0].lines}))
    short, long = rows("weaknas", 0, [0.1, 0.2, 0.3]), rows("weaknas", 0, [0.1] * 8)
    plot_curves({"a: ": (short, 5), "b: ": (long, 8)}, tmp_path / "c.png", optimum=1.0)
    assert drawn == {"a: weaknas (1 repeat)": 5, "b: weaknas (1 repeat)": 8, "global optimum 1.00": 2}


def test_write_report_from_the_folder_alone(tmp_path):
    store = RunStore(tmp_path)
    store.prepare(load_config(overrides={"search.max_sample": 20}), {"benchmark": "fake", "optimum": {"reported": 1.0}, "optimum_indices": [3]})
    store.write_repeat("random", 0, rows("random", 0, [0.1, 1.0, 0.2]), None)
    summary = write_report(store, dynamics=False)
    assert summary["methods"]["random"]["queries_to_optimum"]["share_found"] == 0.0
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "curves.png").is_file()


def test_summary_says_which_dtype_each_mlp_runs_in_and_why(tmp_path):
    from weaknas_ray.drivers.repeats import check_methods, predictor_dtypes
    from weaknas_ray.interfaces import Benchmark
    from weaknas_ray.spaces import ArraySpace, TableOracle

    acc = np.linspace(0.0, 1.0, 50)
    bench = Benchmark("fake", ArraySpace((np.arange(50)[:, None] % [2, 3, 5] == 0).astype(np.float32), name="fake"),
                      TableOracle(acc, acc))
    config = load_config(overrides={"search.methods": ["weaknas", "weaknas-ei", "random"], "search.max_sample": 20,
                                    "methods.weaknas": {"predictor": "mlp", "predictor_params": {"dtype": "bfloat16"}}})
    dtypes = predictor_dtypes(check_methods(config, bench))
    assert dtypes["weaknas"] == {"dtype": "bfloat16", "reason": "set explicitly"} and set(dtypes) == {"weaknas", "weaknas-ei"}
    assert dtypes["weaknas-ei"]["dtype"] in ("float32", "bfloat16") and dtypes["weaknas-ei"]["reason"].startswith("auto: ")
    store = RunStore(tmp_path)
    store.prepare(config, {"benchmark": "fake", "predictor_dtype": dtypes})
    store.write_repeat("weaknas", 0, rows("weaknas", 0, [0.1, 0.4]), None)
    summary = write_report(store, dynamics=False)
    assert summary["predictor_dtype"] == dtypes
    assert "note: weaknas predictor in bfloat16 (set explicitly)" in summary_table(summary).splitlines()


def test_dynamics_figure_is_skipped_with_a_reason_when_the_benchmark_cannot_load(tmp_path):
    store = RunStore(tmp_path)
    store.prepare(load_config(overrides={"benchmark": {"loader": "no_such_module:load"}, "search.max_sample": 20}))
    store.write_repeat("weaknas", 0, rows("weaknas", 0, [0.1, 0.4]), None)
    notes = []
    write_report(store, echo=notes.append, allow_loaders=("no_such_module:load",))
    assert notes == ["search_dynamics.png skipped: could not load the benchmark: benchmark.loader: cannot import "
                     "no_such_module:load (No module named 'no_such_module')"]
    assert not (tmp_path / "search_dynamics.png").exists()


def test_folder_saved_before_a_new_key_still_loads(tmp_path):
    """A run folder written by an older version (a key missing from its config.yaml) loads with that
    key's default, so report and resume keep working after an upgrade."""
    import yaml

    from weaknas_ray.config import load_config
    from weaknas_ray.results.records import RunStore

    config = load_config(overrides={"output": str(tmp_path)})
    del config["ray"]["repeats_per_actor"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert RunStore(tmp_path).load_config()["ray"]["repeats_per_actor"] == 1


def test_summary_statistics_edge_cases():
    """Budget truncation, first hits, ties, population std, per-method finals: each a rule a reader relies on."""
    hits = [rows("m", r, [0.0] * 10, arch=[-1] * (q - 1) + [7] + [-1] * (10 - q)) for r, q in enumerate((1, 2, 9))]
    never = rows("m", 3, [0.0] * 10, arch=[-1] * 10)
    found = summarize(pd.concat([*hits, never]), None, max_sample=10, optimum_indices=[7, 8])
    assert found["methods"]["m"]["queries_to_optimum"] == {"mean": 4.0, "median": 2.0, "share_found": 0.75}
    np.testing.assert_array_equal(queries_to_optimum(rows("m", 0, [0.0] * 4, arch=[1, 8, 7, 8]), [7, 8]), [2.0])

    frame = pd.concat([rows("a", 0, [0.0, 0.0, 5.0]), rows("a", 1, [1.0, 0.5, 1.0, 9.0]), rows("b", 0, [3.0, 2.0])])
    np.testing.assert_array_equal(best_curves(frame[frame["method"] == "a"], 2), [[0, 0], [1, 1]])
    final = pd.DataFrame({"method": ["a", "a", "b"], "repeat": [0, 1, 0], "reported_value": [0.0, 1.0, 7.0],
                          "already_queried": [True, True, False]})
    summary = summarize(frame, final, max_sample=3)
    a, b = summary["methods"]["a"], summary["methods"]["b"]
    assert a["final_best_reported"] == {"mean": 3.0, "std": 2.0}  # bests 5 and 1 (the 9 is past the budget)
    assert a["final_top1"] == {"reported": {"mean": 0.5, "std": 0.5}, "share_already_queried": 1.0}
    assert b["final_top1"] == {"reported": {"mean": 7.0, "std": 0.0}, "share_already_queried": 0.0}
    assert b["final_best_reported"] == {"mean": 3.0, "std": 0.0}  # held, though the last value is 2
    tie = summarize(rows("t", 0, [1.0, 2.0, 2.0]), None, max_sample=3)["per_repeat"][0]
    assert tie["query"] == 2 and tie["arch"] == "1"


@pytest.mark.parametrize(("repeats", "listed"), [(10, True), (11, False)])
def test_the_table_lists_repeats_up_to_ten(repeats, listed):
    frame = pd.concat([rows("m", r, [float(r)]) for r in range(repeats)])
    assert ("best per repeat" in summary_table(summarize(frame, None, max_sample=1))) is listed


def test_markdown_table_lists_every_method_of_every_run_with_both_optima():
    """One row per method of each run, checkpoints within the largest budget, the best mean in bold."""
    a = summarize(pd.concat([rows("x", 0, [0.0, 1.0, 2.0]), rows("y", 0, [3.0, 0.0, 0.0], arch=[5, 6, 7])]), None, max_sample=60,
                  optimum_indices=[1], search_optimum_indices=[2])
    b = summarize(rows("z", 0, [0.5] * 3), None, max_sample=60, optimum_indices=[1])
    lines = markdown_table([a, b], [60, 60]).splitlines()
    assert lines[0] == ("| method | repeats | @50 | search optimum: found, queries mean / median | "
                        "reported optimum: found, queries mean / median | s / repeat |")
    assert lines[2] == "| `x` | 1 | 2.00 +/- 0.00 | 100%, 3.0 / 3 | 100%, 2.0 / 2 | 0.0 |"
    assert lines[3] == "| `y` | 1 | **3.00 +/- 0.00** | 0%, - / - | 0%, - / - | 0.0 |"
    assert lines[4] == "| `z` | 1 | 0.50 +/- 0.00 | n/a | 100%, 2.0 / 2 | 0.0 |"


def test_tables_show_tiny_losses_with_significant_digits():
    """A naval-propulsion loss of about 1e-6 reads as a number, not as -0.000."""
    from weaknas_ray.results.aggregate import _value

    assert (_value(-1.234e-6), _value(93.1234), _value(0.0)) == ("-1.23e-06", "93.123", "0.000")


def test_report_draws_a_run_saved_in_parts_as_one(tmp_path):
    """Folders holding different methods at one budget (a comparison run in parts) are drawn as one run,
    without folder prefixes; folders that share a method keep them."""
    from weaknas_ray.commands.report import _comparable

    def store(name, method):
        run = RunStore(tmp_path / name)
        run.prepare(load_config(overrides={"search.max_sample": 20}), {"benchmark": "fake"})
        run.write_repeat(method, 0, rows(method, 0, [0.1, 0.4]), None)
        run.merge()
        return run

    peers, weaknas, again = store("peers", "random"), store("weaknas", "weaknas"), store("again", "random")
    whole = _comparable([peers, weaknas])
    assert list(whole) == [""] and sorted(whole[""][0]["method"].unique()) == ["random", "weaknas"]
    assert list(_comparable([peers, again])) == ["peers: ", "again: "]


def test_a_method_keeps_its_colour_across_figures_and_runs_differ_by_dash(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    drawn = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, path, **_: drawn.append(
        {line.get_label(): (line.get_color(), line.get_linestyle()) for line in fig.axes[0].lines[:-1]}))
    tpe, weak, mine = rows("tpe", 0, [0.1, 0.2]), rows("weaknas", 0, [0.3, 0.4]), rows("my-method", 0, [0.2, 0.2])
    plot_curves({"": (pd.concat([tpe, weak, mine]), 2)}, tmp_path / "a.png", optimum=1.0)
    plot_curves({"": (pd.concat([weak, tpe]), 2)}, tmp_path / "b.png", optimum=1.0)  # other order, other figure
    plot_curves({"x: ": (weak, 2), "y: ": (weak, 2)}, tmp_path / "c.png", optimum=1.0)
    first, second, runs = drawn
    assert first["tpe (1 repeat)"] == second["tpe (1 repeat)"] and first["weaknas (1 repeat)"] == second["weaknas (1 repeat)"]
    assert len({colour for colour, _ in first.values()}) == 3  # a method outside the registry takes a free colour
    assert runs["x: weaknas (1 repeat)"][0] == runs["y: weaknas (1 repeat)"][0]
    assert runs["x: weaknas (1 repeat)"][1] != runs["y: weaknas (1 repeat)"][1]
