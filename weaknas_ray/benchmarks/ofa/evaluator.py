"""The supernet oracle: Ray evaluator actors measuring ImageNet top-1 / top-5 of OFA subnets.

Each actor holds the supernet on its device (a GPU share when Ray gives it one, else the CPU), the fixed
batch-norm calibration images and its own shard of the validation images, all decoded once at start.
A query activates the subnet, extracts it (``get_active_subnet``), recalibrates its batch-norm statistics
on the calibration images (OFA's ``set_running_statistics``; published: 2,000 training images, batch 200)
and counts correct top-1 / top-5 predictions on the shard. The oracle sends every query to every actor and
merges the counts, so the accuracy is over the whole validation set whatever the number of actors.
Calibration images get the evaluation transform (resize, centre crop), not OFA's random training crops, so
a query's result does not depend on the actor or the run.

Memory: an actor keeps its images as uint8, ``r * r * 3`` bytes each (167 kB at 236 px): the 2,000
calibration images (334 MB, on the device) and ``50,000 / n_evaluators`` validation images (pinned host
memory; 8.3 GB in all).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from weaknas_ray.benchmarks.ofa.compat import build_supernet, check_weights, ofa_modules
from weaknas_ray.benchmarks.ofa.imagenet import MEAN, STD, Split, open_split
from weaknas_ray.exceptions import BenchmarkDataError, ConfigError
from weaknas_ray.interfaces import Evaluation, Oracle
from weaknas_ray.spaces import ofa_arch as arch


def normalise(images, device):
    """uint8 NHWC images (host or device tensor) -> normalised float NCHW on ``device`` (channels-last strides)."""
    import torch

    x = images.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (MEAN, STD))
    return x.sub_(mean).div_(std)


def extract_subnet(net, config: np.ndarray):
    """The standalone MobileNetV3 of canonical ``config`` (shape ``(45,)``) with the supernet's weights."""
    spec = arch.to_ofa_dict(config, 0)
    net.set_active_subnet(ks=spec["ks"], e=spec["e"], d=spec["d"])
    return net.get_active_subnet(preserve_weight=True)


def recalibrate(subnet, images, batch: int):
    """``subnet`` with batch-norm statistics re-estimated on uint8 ``images`` ``(c, r, r, 3)`` in batches of
    ``batch`` (OFA's ``set_running_statistics``), in eval mode."""
    device = next(subnet.parameters()).device
    batches = ((normalise(images[i : i + batch], device), None) for i in range(0, len(images), batch))
    ofa_modules().set_running_statistics(subnet, batches)
    return subnet.eval()


class SubnetEvaluator:
    """Evaluates subnets of one supernet on one validation shard (the body of a Ray actor).

    Args:
        weights: supernet checkpoint path, or ``"random"`` (see :func:`compat.build_supernet`).
        val: the validation split; ``val_indices`` (int64 ``(m,)``) are this actor's images.
        calib: the split the calibration images come from; ``calib_indices`` (``(c,)``) are the same for
            every actor so that all shards see the same recalibrated subnet.
        resolution: evaluation resolution (pixels).
        batch_size: validation batch.
        calib_batch: calibration batch (the statistics are averaged per batch, as OFA does).
        workers: decoding threads at start.
        num_threads: torch CPU threads (Ray sets OMP threads to the actor's CPUs; set it deliberately).
        init_seed: seed of a ``"random"`` supernet.
    """

    def __init__(
        self,
        weights: str,
        val: Split,
        val_indices: np.ndarray,
        calib: Split,
        calib_indices: np.ndarray,
        resolution: int,
        batch_size: int = 200,
        calib_batch: int = 200,
        workers: int = 4,
        num_threads: int = 1,
        init_seed: int = 0,
    ):
        import torch

        torch.set_num_threads(max(1, int(num_threads)))
        self.torch = torch
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.resolution, self.batch_size, self.calib_batch = int(resolution), int(batch_size), int(calib_batch)
        self.net = build_supernet(weights, init_seed).to(self.device)
        calib_images, _ = calib.load(calib_indices, self.resolution, workers)
        self.calib_images = torch.from_numpy(calib_images).to(self.device)
        images, labels = val.load(val_indices, self.resolution, workers)
        self.val_images = torch.from_numpy(images)
        self.val_labels = torch.from_numpy(labels).to(self.device)
        if self.device.type == "cuda":
            self.val_images = self.val_images.pin_memory()

    def subnet(self, config: np.ndarray):
        """The standalone subnet of ``config`` (shape ``(45,)``) with recalibrated batch-norm, in eval mode."""
        return recalibrate(extract_subnet(self.net, config), self.calib_images, self.calib_batch)

    def _clock(self) -> float:
        """``time.perf_counter()`` once the device has finished the queued work."""
        if self.device.type == "cuda":
            self.torch.cuda.synchronize()
        return time.perf_counter()

    def evaluate(self, config: np.ndarray) -> dict[str, Any]:
        """Correct top-1 / top-5 counts of ``config`` on this actor's shard.

        Returns:
            ``{"correct1", "correct5", "n", "seconds", "calib_seconds", "device"}``: ``seconds`` in all,
            ``calib_seconds`` of it spent extracting the subnet and recalibrating batch norm.
        """
        torch = self.torch
        start = time.perf_counter()
        subnet = self.subnet(config)
        calibrated = self._clock()
        correct1 = correct5 = 0
        with torch.inference_mode():
            for i in range(0, len(self.val_images), self.batch_size):
                top5 = subnet(normalise(self.val_images[i : i + self.batch_size], self.device)).topk(5, dim=1).indices
                hits = top5 == self.val_labels[i : i + self.batch_size, None]
                correct1 += int(hits[:, 0].sum())
                correct5 += int(hits.any(dim=1).sum())
        end = self._clock()
        return {
            "correct1": correct1, "correct5": correct5, "n": len(self.val_images), "seconds": end - start,
            "calib_seconds": calibrated - start, "device": str(self.device),
        }  # fmt: skip


def split_indices(
    n_val: int, n_train: int, calib_images: int, val_limit: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The validation images used and the calibration images, both drawn once from ``default_rng(seed)``.

    Returns:
        ``(val int64 (min(val_limit, n_val),) sorted, calib int64 (min(calib_images, n_train),) sorted)``.
    """
    rng = np.random.default_rng(seed)
    calib = np.sort(rng.choice(n_train, size=min(calib_images, n_train), replace=False))
    val = (
        np.arange(n_val) if val_limit is None else np.sort(rng.choice(n_val, size=min(val_limit, n_val), replace=False))
    )
    return val.astype(np.int64), calib.astype(np.int64)


class SupernetOracle(Oracle):
    """ImageNet top-1 (percent) of pool subnets, measured by ``n_evaluators`` Ray actors on shards.

    ``search`` and ``reported`` are both the validation top-1 (ImageNet's labelled evaluation set), ``cost``
    the slowest actor's seconds, and ``extra["top5"]`` the top-5 (a ``top5`` result column).
    Actors start at the first query, or when the oracle is pickled (so every repeat actor that receives a
    copy shares the same evaluators instead of starting its own).

    Args:
        configs: the pool, int8 ``(n, 45)``.
        resolution: evaluation resolution.
        weights: supernet checkpoint path (``"random"``: random initialisation, for tests and benches).
        imagenet: root holding ``val/`` and ``train/`` (image folders or ``weaknas-ray ofa pack`` shards).
        n_evaluators: actors; each gets ``1 / n_evaluators`` of the validation images.
        num_gpus_per_evaluator: Ray GPUs per actor (fractions share a GPU); ``None``: ``1 / n_evaluators``
            when the cluster has a GPU, else 0 (CPU).
        num_cpus_per_evaluator: Ray CPUs per actor, also its torch threads.
        calib_images: calibration images from ``train/`` (published: 2,000).
        calib_batch: calibration batch (published: 200).
        batch_size: validation batch.
        val_limit: evaluate on this many validation images drawn once (``None``: all).
        data_seed: seed of the calibration (and ``val_limit``) draws.
        workers: decoding threads per actor at start.
        init_seed: seed of a random supernet.

    Raises:
        BenchmarkDataError: missing weights or ImageNet folders, naming the path.
        ConfigError: ``n_evaluators < 1``.
    """

    def __init__(
        self,
        configs: np.ndarray,
        resolution: int,
        weights: str | os.PathLike | None = None,
        imagenet: str | os.PathLike | None = None,
        n_evaluators: int = 1,
        num_gpus_per_evaluator: float | None = None,
        num_cpus_per_evaluator: float = 1,
        calib_images: int = 2000,
        calib_batch: int = 200,
        batch_size: int = 200,
        val_limit: int | None = None,
        data_seed: int = 0,
        workers: int = 4,
        init_seed: int = 0,
    ):
        if int(n_evaluators) < 1:
            raise ConfigError(f"benchmark.n_evaluators: need at least 1, got {n_evaluators}")
        self.weights = check_weights(weights)
        if imagenet is None:
            raise BenchmarkDataError(
                "benchmark.imagenet: the supernet oracle needs the ImageNet root (with val/ and train/)"
            )
        root = os.path.expanduser(imagenet)
        self.val, self.calib = open_split(os.path.join(root, "val")), open_split(os.path.join(root, "train"))
        self.configs = np.asarray(configs, dtype=np.int8)
        self.resolution = int(resolution)
        self.n_evaluators = int(n_evaluators)
        self.num_gpus_per_evaluator = num_gpus_per_evaluator
        self.num_cpus_per_evaluator = float(num_cpus_per_evaluator)
        self.val_indices, self.calib_indices = split_indices(
            len(self.val), len(self.calib), calib_images, val_limit, data_seed
        )
        self.settings = {
            "batch_size": batch_size,
            "calib_batch": calib_batch,
            "workers": workers,
            "init_seed": init_seed,
        }
        self.actors: list | None = None

    def _start(self) -> list:
        if self.actors is None:
            self.actors = start_evaluators(
                self.weights, self.val, self.val_indices, self.calib, self.calib_indices, self.resolution,
                self.n_evaluators, self.num_gpus_per_evaluator, self.num_cpus_per_evaluator, **self.settings,
            )  # fmt: skip
        return self.actors

    def __getstate__(self) -> dict:
        self._start()
        return self.__dict__.copy()

    def evaluate(self, indices: np.ndarray) -> Evaluation:
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        top1, top5, cost = merge_counts(self._start(), self.configs[idx])
        return Evaluation(top1, top1.copy(), cost, extra={"top5": top5})

    def shutdown(self) -> None:
        """Stop the evaluator actors (they also stop with the Ray session)."""
        import ray

        for actor in self.actors or []:
            ray.kill(actor)
        self.actors = None


def start_evaluators(
    weights: str, val: Split, val_indices: np.ndarray, calib: Split, calib_indices: np.ndarray, resolution: int,
    n_evaluators: int, num_gpus: float | None, num_cpus: float, **settings: Any,
) -> list:  # fmt: skip
    """``n_evaluators`` :class:`SubnetEvaluator` actors, actor ``a`` owning ``val_indices[a::n]``.

    Returns:
        The actor handles, in shard order.
    """
    import ray

    if num_gpus is None:
        gpus = ray.cluster_resources().get("GPU", 0.0) if ray.is_initialized() else 0.0
        num_gpus = min(1.0, gpus / n_evaluators) if gpus else 0.0
    remote = ray.remote(SubnetEvaluator).options(num_cpus=num_cpus, num_gpus=num_gpus)
    threads = max(1, int(num_cpus))
    return [
        remote.remote(
            weights,
            val,
            val_indices[a::n_evaluators],
            calib,
            calib_indices,
            resolution,
            num_threads=threads,
            **settings,
        )
        for a in range(n_evaluators)
    ]


def merge_counts(actors: list, configs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every config on every actor (all submitted at once, so actors work in parallel), counts merged.

    Args:
        actors: evaluator handles.
        configs: int8 ``(q, 45)``.

    Returns:
        ``(top1 %, top5 %, slowest actor's seconds)``, each float64 ``(q,)``.
    """
    import ray

    refs = [[actor.evaluate.remote(config) for actor in actors] for config in configs]
    results = [ray.get(row) for row in refs]
    n = np.array([sum(r["n"] for r in row) for row in results], dtype=np.float64)
    if (n == 0).any():
        raise BenchmarkDataError("supernet oracle: the validation shards hold no images")
    top1 = 100.0 * np.array([sum(r["correct1"] for r in row) for row in results]) / n
    top5 = 100.0 * np.array([sum(r["correct5"] for r in row) for row in results]) / n
    return top1, top5, np.array([max(r["seconds"] for r in row) for row in results])
