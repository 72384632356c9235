"""The data layer: where files are looked for, checksums, schema errors, the columnar cache."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from weaknas_ray.benchmarks import paths, store
from weaknas_ray.benchmarks import nasbench201 as nb201_data
from weaknas_ray.benchmarks.convert import nasbench201 as nb201_convert
from weaknas_ray.benchmarks.manifest import file_spec, load_manifest
from weaknas_ray.exceptions import BenchmarkDataError
from weaknas_ray.spaces import nasbench201 as nb201

HEADER = (
    "index,arch_str,cifar10_valid_valid_acc,cifar10_valid_valid_acc_seed0,cifar10_valid_valid_acc_seed1,"
    "cifar10_valid_valid_acc_seed2,cifar10_valid_test_acc,cifar10_test_acc,cifar100_valid_acc,cifar100_valid_acc_seed0,"
    "cifar100_valid_acc_seed1,cifar100_valid_acc_seed2,cifar100_test_acc,imagenet16_120_valid_acc,"
    "imagenet16_120_valid_acc_seed0,imagenet16_120_valid_acc_seed1,imagenet16_120_valid_acc_seed2,"
    "imagenet16_120_test_acc,cifar10_valid_train_time_s,params_mb"
)
ARCH = "|none~0|+|skip_connect~0|nor_conv_1x1~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"


def tiny_csv(path, rows=2, header=HEADER, arch=ARCH):
    """A small NAS-Bench-201-format table (synthetic values): row i is ``ARCH`` with edge 0 set to op i,
    or ``arch`` verbatim when another string is given."""
    values = ",".join(["50.0"] * 3 + [""] + ["50.0"] * 12 + ["1000", "0.5"])  # cifar10 seed2 empty
    lines = [header]
    for i in range(rows):
        cell = arch if arch != ARCH else nb201.format_arch_str((i % 5, *nb201.parse_arch_str(ARCH)[1:]))
        lines.append(f"{i},{cell},{values}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def roots(tmp_path, monkeypatch):
    """Isolated data roots: user, project and shared folders under tmp_path, no $WEAKNAS_DATA, cache in tmp."""
    monkeypatch.setattr(paths, "PROJECT_DATA", tmp_path / "project")
    monkeypatch.setattr(paths, "SHARED_DATA", tmp_path / "shared")
    monkeypatch.delenv("WEAKNAS_DATA", raising=False)
    monkeypatch.setenv("WEAKNAS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in ("project", "shared", "env", "cli", "xdg/weaknas-ray"):
        (tmp_path / name).mkdir(parents=True)
    return tmp_path


def test_resolution_order(roots, monkeypatch):
    rel = "nasbench201/x.csv"
    for name in ("shared", "project", "xdg/weaknas-ray", "env", "cli"):
        (roots / name / rel).parent.mkdir(parents=True)
        (roots / name / rel).write_text(name)
    assert paths.resolve_file(rel).read_text() == "xdg/weaknas-ray"
    (roots / "xdg/weaknas-ray" / rel).unlink()
    assert paths.resolve_file(rel).read_text() == "project"
    (roots / "project" / rel).unlink()
    assert paths.resolve_file(rel).read_text() == "shared"
    monkeypatch.setenv("WEAKNAS_DATA", str(roots / "env"))
    assert paths.resolve_file(rel).read_text() == "env"
    assert paths.resolve_file(rel, roots / "cli").read_text() == "cli"
    assert paths.resolve_data_root(roots / "cli") == roots / "cli"


def test_missing_file_lists_every_place(roots):
    with pytest.raises(BenchmarkDataError) as info:
        paths.resolve_file("nasbench201/nb201_200ep.csv", how_to_get="the maintainers")
    message = str(info.value)
    for name, label in (("xdg/weaknas-ray", "user data folder"), ("project", "checkout"), ("shared", "shared")):
        assert str(roots / name / "nasbench201" / "nb201_200ep.csv") in message and label in message
    assert "the maintainers" in message


@pytest.mark.parametrize("named", ["cli", "env"])
def test_a_root_the_user_names_is_used_alone_or_refused(roots, monkeypatch, named):
    """An empty or missing --data-dir / $WEAKNAS_DATA never falls back to other data without a word."""
    rel = "nasbench201/x.csv"
    (roots / "project" / rel).parent.mkdir(parents=True)
    (roots / "project" / rel).write_text("project")
    label = "--data-dir" if named == "cli" else "$WEAKNAS_DATA"
    data_dir = roots / "cli" if named == "cli" else None
    if named == "env":
        monkeypatch.setenv("WEAKNAS_DATA", str(roots / "env"))
    with pytest.raises(BenchmarkDataError) as info:
        paths.resolve_file(rel, data_dir)
    assert f"{roots / named / rel}  ({label})" in str(info.value) and "project" not in str(info.value)
    with pytest.raises(BenchmarkDataError, match="no benchmark data found"):
        paths.resolve_data_root(data_dir)
    missing = roots / "nope"
    if named == "env":
        monkeypatch.setenv("WEAKNAS_DATA", str(missing))
    with pytest.raises(BenchmarkDataError, match=f"{re.escape(label)} '{re.escape(str(missing))}' is not a directory"):
        paths.candidate_roots(missing if named == "cli" else None)


def test_xdg_folders(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "d"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    monkeypatch.delenv("WEAKNAS_CACHE")
    assert paths.user_data_dir() == tmp_path / "d" / "weaknas-ray"
    assert paths.cache_dir() == tmp_path / "c" / "weaknas-ray" and paths.cache_dir().is_dir()
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG rule: only absolute paths count
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.user_data_dir() == tmp_path / "home" / ".local" / "share" / "weaknas-ray"
    assert paths.cache_dir(create=False) == tmp_path / "home" / ".cache" / "weaknas-ray"


def data_cli(*argv: str) -> int:
    from weaknas_ray.cli import main

    return main(["data", *argv])


def test_data_add_checks_sha256_then_copies_or_links(roots, nb201_root, capsys):
    real = nb201_root / "nasbench201" / "nb201_200ep.csv"
    target = roots / "xdg" / "weaknas-ray" / "nasbench201" / "nb201_200ep.csv"
    assert data_cli("add", str(real), "--link") == 0 and target.is_symlink() and target.resolve() == real.resolve()
    assert data_cli("add", str(real)) == 0 and "already in place" in capsys.readouterr().out
    target.unlink()
    assert data_cli("add", str(real)) == 0 and target.is_file() and not target.is_symlink()
    assert paths.resolve_file("nasbench201/nb201_200ep.csv") == target
    other = tiny_csv(roots / "other.csv")
    assert data_cli("add", str(other)) == 2
    assert "not the checksum of any benchmark file" in capsys.readouterr().err


def test_data_list_prints_roots_and_cache(roots, capsys):
    """Every root searched and the cache folder; a named --data-dir is the only root."""
    assert data_cli("list") == 0
    out = capsys.readouterr().out
    for place in ("xdg/weaknas-ray", "project", "shared", "cache"):
        assert str(roots / place) in out
    assert data_cli("list", "--data-dir", str(roots / "cli")) == 0
    out = capsys.readouterr().out
    assert str(roots / "cli") in out and str(roots / "project") not in out


def test_manifest_lists_the_known_files():
    files = load_manifest()
    assert {"nasbench201", "nasbench101_tfrecord", "nasbench101_naslib"} <= set(files)
    assert file_spec("nasbench201").rows == 15625
    with pytest.raises(BenchmarkDataError, match="no entry 'nope'"):
        file_spec("nope")


def test_wrong_checksum_names_file(roots):
    path = tiny_csv(roots / "cli" / "nasbench201" / "nb201_200ep.csv")
    nb201_data._load_table.cache_clear()
    with pytest.raises(BenchmarkDataError, match="checksum mismatch") as info:
        nb201_data.load_benchmark("cifar10", data_dir=roots / "cli")
    assert str(path) in str(info.value)


def convert(path, rows=None):
    return store.cached_table(
        store.cache_key("t", path), path, nb201_convert.convert_csv, schema_version=1, expected_sha256=None, rows=rows
    )


def test_convert_and_cache_round_trip(roots):
    path = tiny_csv(roots / "t.csv", rows=3)
    fresh = convert(path, rows=3)
    assert fresh["ops"].shape == (3, 6) and np.isnan(fresh["cifar10_valid_valid_acc_seed2"]).all()
    assert store.cache_path(store.cache_key("t", path)).is_file()
    cached = convert(path, rows=3)
    for name in fresh:
        np.testing.assert_array_equal(fresh[name], cached[name])


def test_changed_source_rebuilds_cache(roots):
    path = tiny_csv(roots / "t.csv", rows=2)
    assert len(convert(path)["ops"]) == 2
    tiny_csv(path, rows=4)
    assert len(convert(path)["ops"]) == 4


def test_corrupt_cache_is_rebuilt_with_warning(roots):
    path = tiny_csv(roots / "t.csv")
    convert(path)
    store.cache_path(store.cache_key("t", path)).write_bytes(b"PK\x03\x04 truncated")
    with pytest.warns(UserWarning, match="unreadable cache"):
        assert len(convert(path)["ops"]) == 2


@pytest.mark.parametrize(
    "header, arch, expected_rows, message",
    [
        (HEADER.replace("cifar100_test_acc", "c100"), ARCH, None, "missing column"),
        (HEADER, ARCH, 5, "has 2 rows, expected 5"),
        (HEADER, "|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|", None, "row 0: nasbench201: cannot parse"),
        (HEADER, ARCH.replace("none~2", "none~7"), None, "cannot parse"),
    ],
)
def test_schema_errors_name_file_and_problem(roots, header, arch, expected_rows, message):
    path = tiny_csv(roots / "bad.csv", rows=2, header=header, arch=arch)
    with pytest.raises(BenchmarkDataError, match=message) as info:
        convert(path, rows=expected_rows)
    assert str(path) in str(info.value)


def test_truncated_and_non_numeric_rows(roots):
    path = tiny_csv(roots / "bad.csv", rows=2)
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:-1] + [text[-1][:40]]) + "\n")  # last row cut mid-line
    with pytest.raises(BenchmarkDataError, match="empty value") as info:
        convert(path)
    assert str(path) in str(info.value)
    path.write_text("\n".join(text[:-1] + [text[-1].replace("50.0", "abc", 1)]) + "\n")
    with pytest.raises(BenchmarkDataError, match="not a number"):
        convert(path)


def test_index_must_be_in_order(roots):
    path = tiny_csv(roots / "bad.csv", rows=2)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n")
    with pytest.raises(BenchmarkDataError, match="'index' is not 0..1"):
        convert(path)


def test_cli_data_list_and_check(shared_data, capsys):
    from weaknas_ray.cli import main

    assert main(["data", "list", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^nasbench201 +nasbench201 +found +15625 ", out, re.M)
    assert re.search(r"^nasbench101_tfrecord +nasbench101 +missing ", out, re.M) and "storage.googleapis.com" in out
    assert main(["data", "check", "--data-dir", str(shared_data)]) == 0
    out = capsys.readouterr().out
    assert "nasbench201/cifar10: 15,625 cells; optimum cifar10-valid valid 91.61, cifar10 test 94.37" in out
    assert "nasbench201/cifar100: 15,625 cells; optimum valid 73.49, test 73.51" in out
    assert "nasbench201/ImageNet16-120: 15,625 cells; optimum valid 46.73, test 47.31" in out
    assert "nasbench101/cifar10: 292 cells" in out and "no test accuracy" in out


def test_missing_source_and_warnings_are_one_line_messages(tmp_path, capsys):
    import warnings

    from weaknas_ray.cli import main

    missing = tmp_path / "nasbench_only108.tfrecord"
    with pytest.raises(BenchmarkDataError, match=f"{missing}: no such file; get it from https://"):
        store.cached_table("x", missing, convert, schema_version=1, how_to_get="https://example")
    assert main(["data", "convert", "nasbench101", "--tfrecord", str(missing)]) == 2
    assert f"weaknas-ray data: error: {missing}: no such file" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as patch:  # a warning during a command: one plain line on stderr
        from weaknas_ray.commands import data as data_command

        patch.setattr(data_command, "list_files", lambda args: warnings.warn("fallback in use", stacklevel=1) or 0)
        assert main(["data", "list"]) == 0
    err = capsys.readouterr().err
    assert err == "weaknas-ray data: warning: fallback in use\n"


def test_cli_data_list_flags_corrupt_file(roots, capsys):
    from weaknas_ray.cli import main

    tiny_csv(roots / "cli" / "nasbench201" / "nb201_200ep.csv")
    assert main(["data", "list", "--data-dir", str(roots / "cli")]) == 1
    assert re.search(r"^nasbench201 +nasbench201 +corrupt ", capsys.readouterr().out, re.M)


def test_touched_source_reuses_cache_after_hashing(roots, monkeypatch):
    path = tiny_csv(roots / "t.csv")
    first = convert(path)
    os.utime(path, ns=(1, 1))  # same content, new mtime: hashed again, not reconverted

    def refuse(_):
        raise AssertionError("reconverted an unchanged file")

    again = store.cached_table(store.cache_key("t", path), path, refuse, schema_version=1)
    np.testing.assert_array_equal(first["ops"], again["ops"])
    monkeypatch.setattr(store, "sha256_file", refuse)  # re-stamped: the next load does not hash again
    store.cached_table(store.cache_key("t", path), path, refuse, schema_version=1)


def counting(build):
    """``build`` wrapped to count its calls (``.calls``)."""

    def wrapped(path):
        wrapped.calls += 1
        return build(path)

    wrapped.calls = 0
    return wrapped


def test_cache_of_another_schema_version_is_rebuilt(roots):
    path = tiny_csv(roots / "t.csv")
    build = counting(nb201_convert.convert_csv)
    key = store.cache_key("t", path)
    store.cached_table(key, path, build, schema_version=1)
    store.cached_table(key, path, build, schema_version=1)
    assert build.calls == 1  # same version, same file: the cache is used
    store.cached_table(key, path, build, schema_version=2)
    assert build.calls == 2  # file untouched, but the converter's version changed
    store.cached_table(key, path, build, schema_version=2)
    assert build.calls == 2


def test_same_size_new_content_and_mtime_is_rebuilt(roots):
    path = tiny_csv(roots / "t.csv")
    build = counting(nb201_convert.convert_csv)
    key = store.cache_key("t", path)
    before = store.cached_table(key, path, build, schema_version=1)
    assert before["cifar10_test_acc"].tolist() == [50.0, 50.0]
    size = path.stat().st_size
    path.write_text(path.read_text().replace("50.0", "51.0"))  # same length, other values
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9, path.stat().st_mtime_ns + 10**9))  # mtime surely differs
    assert path.stat().st_size == size
    after = store.cached_table(key, path, build, schema_version=1)
    assert build.calls == 2
    assert after["cifar10_test_acc"].tolist() == [51.0, 51.0]


def test_cache_built_without_a_checksum_still_checks_one_given_later(roots):
    path = tiny_csv(roots / "t.csv")
    key = store.cache_key("t", path)
    store.cached_table(key, path, nb201_convert.convert_csv, schema_version=1, expected_sha256=None)
    with pytest.raises(BenchmarkDataError, match="checksum mismatch") as info:
        store.cached_table(key, path, nb201_convert.convert_csv, schema_version=1, expected_sha256="0" * 64)
    assert str(path) in str(info.value)
    good = store.sha256_file(path)  # the right checksum is accepted from the same cache
    store.cached_table(key, path, nb201_convert.convert_csv, schema_version=1, expected_sha256=good)


def test_repeated_architecture_is_a_schema_error(roots):
    path = tiny_csv(roots / "bad.csv", rows=6)  # row 5 is row 0's cell again
    with pytest.raises(BenchmarkDataError, match="repeats an architecture") as info:
        convert(path)
    assert str(path) in str(info.value)


def test_only_the_third_seed_column_may_be_empty(roots):
    """Cells have 2 or 3 training seeds: an empty seed2 is a 2-seed cell, an empty seed1 a broken file."""
    path = tiny_csv(roots / "bad.csv", rows=2)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",50.0,50.0,50.0,,", ",50.0,50.0,,,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BenchmarkDataError, match="'cifar10_valid_valid_acc_seed1' has 1 empty value"):
        convert(path)


def test_empty_text_value_is_a_schema_error(roots):
    path = roots / "t.csv"
    path.write_text("name,x\na,1\n,2\n")
    with pytest.raises(BenchmarkDataError, match="column 'name' has empty value"):
        store.read_csv_columns(path, numeric=["x"], text=["name"])


def test_columns_of_different_lengths_are_rejected(roots):
    with pytest.raises(BenchmarkDataError, match="column 'b' has 3 rows, expected 2"):
        store.check_rows(roots / "t.csv", {"a": np.zeros(2), "b": np.zeros(3)}, None)


def test_cache_built_without_a_row_count_still_checks_one_given_later(roots):
    path = tiny_csv(roots / "t.csv", rows=2)
    convert(path)
    with pytest.raises(BenchmarkDataError, match="has 2 rows, expected 5"):
        convert(path, rows=5)


def test_tables_in_different_roots_keep_separate_caches(roots):
    first, second = tiny_csv(roots / "a" / "t.csv", rows=2), tiny_csv(roots / "b" / "t.csv", rows=3)
    convert(first)
    convert(second)
    paths_ = {store.cache_path(store.cache_key("t", p)) for p in (first, second)}
    assert len(paths_) == 2 and all(p.is_file() for p in paths_)
    assert store.cache_key("t", os.path.relpath(first)) == store.cache_key("t", first)  # one key per file


def test_a_manifest_named_by_the_environment_replaces_the_shipped_one(roots, synthetic_nb201, monkeypatch, capsys):
    """The synthetic NAS-Bench-201 table (official format, made-up numbers) is refused against the shipped
    manifest, as any other file would be, and passes only through the manifest ``$WEAKNAS_MANIFEST`` names,
    which ``data list`` then shows."""
    from weaknas_ray.cli import main

    root, manifest = synthetic_nb201
    assert (root / "nasbench201" / "nb201_200ep.csv").read_text().split("\n", 1)[0] == HEADER
    monkeypatch.delenv("WEAKNAS_MANIFEST", raising=False)
    nb201_data._load_table.cache_clear()  # the session may have loaded it already, under the other manifest
    with pytest.raises(BenchmarkDataError, match="checksum mismatch"):
        nb201_data.load_table(root)
    assert main(["data", "list", "--data-dir", str(root)]) == 1
    assert "manifest:" not in capsys.readouterr().out
    monkeypatch.setenv("WEAKNAS_MANIFEST", str(manifest))
    assert len(nb201_data.load_table(root)["ops"]) == 15625
    assert main(["data", "list", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"manifest: {manifest}  ($WEAKNAS_MANIFEST" in out
    assert re.search(r"^nasbench201 +nasbench201 +found +15625 ", out, re.M)


def test_synthetic_table_has_the_real_files_columns(shared_data, synthetic_nb201):
    real = (shared_data / "nasbench201" / "nb201_200ep.csv").open().readline()
    assert (synthetic_nb201[0] / "nasbench201" / "nb201_200ep.csv").open().readline() == real == HEADER + "\n"
