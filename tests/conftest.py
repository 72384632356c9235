"""Shared fixtures: one Ray instance per test session, the real benchmark data where present."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data beside the checkout (``../shared/benchmarks_data``); skips where absent."""
    root = Path(os.environ.get("WEAKNAS_DATA", SHARED_DATA))
    if not (root / "nasbench201" / "nb201_200ep.csv").is_file():
        pytest.skip(f"real benchmark data not found at {root}")
    return root


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
