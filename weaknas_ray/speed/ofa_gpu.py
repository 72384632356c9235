"""Several OFA evaluator actors sharing one GPU: images/s per actor and in total versus one actor.

Each configuration starts ``k`` :class:`~weaknas_ray.benchmarks.ofa.evaluator.SubnetEvaluator` actors with ``1/k`` GPU
each (a random supernet, synthetic ImageNet-sized images: speed only), splits the validation images among
them as the supernet oracle does, evaluates a warm-up subnet, then times ``--subnets`` subnets from the
published pool. Throughput counts validation images only; the batch-norm recalibration each actor repeats
per query is reported beside it (it is the part that does not shrink with more actors). ``--quick`` runs
tiny sizes on CPU in about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

# NOTE: --quick sizes: tiny images and shards so the CPU run takes about a minute on 2 cores.
QUICK = {"resolution": 64, "val_images": 16, "calib_images": 8, "batch_size": 8, "calib_batch": 4, "subnets": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--actors",
        default="1,2,4",
        help="comma-separated actor counts to compare (default 1,2,4; first is the baseline)",
    )
    parser.add_argument("--resolution", type=int, default=236, help="image side in pixels (default 236, published)")
    parser.add_argument(
        "--val-images", type=int, default=10000, help="synthetic validation images split over the actors"
    )
    parser.add_argument(
        "--calib-images", type=int, default=2000, help="batch-norm calibration images per actor (published 2000)"
    )
    parser.add_argument("--batch-size", type=int, default=200, help="validation batch (default 200)")
    parser.add_argument("--calib-batch", type=int, default=200, help="calibration batch (default 200)")
    parser.add_argument("--subnets", type=int, default=3, help="timed subnets per configuration (default 3)")
    parser.add_argument("--cpus-per-actor", type=float, default=1, help="Ray CPUs (and torch threads) per actor")
    parser.add_argument("--quick", action="store_true", help=f"tiny CPU-sized run: {QUICK}")
    parser.add_argument("--json", help="also write the figures to this JSON file")


def main(args: argparse.Namespace) -> int:
    import ray
    import torch

    from weaknas_ray.benchmarks.ofa.pool import build_pool

    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    counts = [int(k) for k in str(args.actors).split(",")]
    gpus = torch.cuda.device_count()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, int(max(counts) * args.cpus_per_actor)), num_gpus=gpus,
             include_dashboard=False, log_to_driver=False)  # fmt: skip
    device = torch.cuda.get_device_name(0) if gpus else "cpu"
    # NOTE: subnets from the published pool (550..600 MFLOPs at 236 px); at other resolutions only the cost scales.
    configs = build_pool(args.subnets + 1, 550, 600, 236, seed=0)
    try:
        rows = [_measure(k, 1.0 / k if gpus else 0.0, configs, args) for k in counts]  # k actors share GPU 0
    finally:
        ray.shutdown()
    _print_table(rows, device, args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"device": device, "settings": vars(args) | {"func": None}, "rows": rows}, handle, indent=1)
    return 0


def _measure(k: int, gpus_per_actor: float, configs: np.ndarray, args: argparse.Namespace) -> dict:
    """Start ``k`` actors, warm them up on ``configs[0]``, time ``configs[1:]``, stop them."""
    import ray

    from weaknas_ray.benchmarks.ofa.evaluator import start_evaluators
    from weaknas_ray.benchmarks.ofa.imagenet import SyntheticSplit

    val, calib = SyntheticSplit(args.val_images, seed=1), SyntheticSplit(args.calib_images, seed=2)
    started = time.perf_counter()
    actors = start_evaluators(
        "random", val, np.arange(len(val)), calib, np.arange(len(calib)), args.resolution, k, gpus_per_actor,
        args.cpus_per_actor, batch_size=args.batch_size, calib_batch=args.calib_batch,
    )  # fmt: skip
    ray.get([a.evaluate.remote(configs[0]) for a in actors])  # warm-up: start, decode, kernels
    ready = time.perf_counter()
    results = [ray.get(row) for row in [[a.evaluate.remote(c) for a in actors] for c in configs[1:]]]
    wall = time.perf_counter() - ready
    for actor in actors:
        ray.kill(actor)
    # per actor: validation images over the seconds spent on them (calibration excluded)
    per_actor = [
        sum(r[a]["n"] for r in results) / sum(r[a]["seconds"] - r[a]["calib_seconds"] for r in results)
        for a in range(k)
    ]
    return {
        "actors": k, "gpus_per_actor": gpus_per_actor, "startup_s": round(ready - started, 2), "wall_s": round(wall, 3),
        "images_per_s_total": round(len(val) * (len(configs) - 1) / wall, 1),
        "images_per_s_per_actor": round(float(np.mean(per_actor)), 1),
        "calib_s_per_query": round(float(np.mean([r["calib_seconds"] for row in results for r in row])), 3),
    }  # fmt: skip


def _print_table(rows: list[dict], device: str, args: argparse.Namespace) -> None:
    print(
        f"OFA evaluator actors on {device}: {args.val_images} images at {args.resolution} px, {args.subnets} "
        f"subnets, batch {args.batch_size}, calibration {args.calib_images} images"
    )
    header = ("actors", "gpu/actor", "start s", "wall s", "img/s total", "img/s/actor", "calib s/query", "vs 1")
    print(" ".join(f"{h:>13}" for h in header))
    base = rows[0]["images_per_s_total"]
    for row in rows:
        values = (row["actors"], f"{row['gpus_per_actor']:.2f}", f"{row['startup_s']:.1f}", f"{row['wall_s']:.2f}",
                  f"{row['images_per_s_total']:.1f}", f"{row['images_per_s_per_actor']:.1f}",
                  f"{row['calib_s_per_query']:.3f}", f"{row['images_per_s_total'] / base:.2f}")  # fmt: skip
        print(" ".join(f"{v:>13}" for v in values))
