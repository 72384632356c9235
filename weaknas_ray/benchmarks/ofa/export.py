"""Export a found subnet: a JSON config OFA loads, and a standalone PyTorch subnet.

``subnet.json`` holds ``ks``, ``e``, ``d`` (20, 20, 5 integers) and ``r``, so
``ofa_network.set_active_subnet(**json.load(open("subnet.json")))`` activates it (the method takes
``**kwargs`` and ignores the other keys). With supernet weights, ``subnet.pth`` is the state dict of
``get_active_subnet()`` (batch norm recalibrated when calibration images are given) and ``net.config`` its
OFA network config: ``MobileNetV3.build_from_config(json.load(open("net.config")))`` rebuilds the module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from weaknas_ray.benchmarks.ofa.imagenet import Split
from weaknas_ray.spaces import ofa_arch as arch

SUPERNET = "ofa_mbv3_d234_e346_k357_w1.2"


def export_subnet(
    config: np.ndarray,
    resolution: int,
    out_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    calib: Split | None = None,
    calib_images: int = 2000,
    calib_batch: int = 200,
    data_seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``subnet.json`` and, with ``weights``, ``subnet.pth`` and ``net.config`` into ``out_dir``.

    Args:
        config: canonical subnet, shape ``(45,)``.
        resolution: its input resolution.
        out_dir: output folder (created).
        weights: supernet checkpoint (or ``"random"``); ``None`` writes the JSON config only.
        calib: split whose images recalibrate batch norm before the state dict is saved (``None``: keep the
            supernet's statistics).
        calib_images: how many calibration images, drawn from ``default_rng(data_seed)`` as the oracle does.
        calib_batch: calibration batch.
        data_seed: seed of the calibration draw.
        extra: more JSON fields (e.g. the measured accuracy).

    Returns:
        ``{"json": path, "state_dict": path, "net_config": path}`` (the last two only with ``weights``).

    Raises:
        BenchmarkDataError: the checkpoint is missing or wrong.
    """
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    row = arch.check_configs(config)[0]
    spec = arch.to_ofa_dict(row, resolution)
    record = {**spec, "arch": arch.format_arch_str(row, resolution), "supernet": SUPERNET,
              "flops_m": round(float(arch.FlopsTable(resolution)(row)[0]), 3), **(extra or {})}  # fmt: skip
    paths = {"json": out / "subnet.json"}
    paths["json"].write_text(json.dumps(record, indent=1))
    if weights is None:
        return paths
    import torch

    from weaknas_ray.benchmarks.ofa.compat import build_supernet
    from weaknas_ray.benchmarks.ofa.evaluator import extract_subnet, recalibrate, split_indices

    subnet = extract_subnet(build_supernet(weights), row)
    if calib is not None:
        _, idx = split_indices(0, len(calib), calib_images, None, data_seed)
        subnet = recalibrate(subnet, torch.from_numpy(calib.load(idx, resolution)[0]), calib_batch)
    paths["state_dict"], paths["net_config"] = out / "subnet.pth", out / "net.config"
    torch.save(subnet.state_dict(), paths["state_dict"])
    paths["net_config"].write_text(json.dumps(subnet.config, indent=1))
    return paths
