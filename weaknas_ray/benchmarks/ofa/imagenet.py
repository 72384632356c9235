"""ImageNet splits for the supernet evaluator: an image folder, pre-packed shards, or synthetic images.

A split is a small picklable description (sent to each evaluator actor) whose :meth:`load` returns uint8
images ``(n, r, r, 3)`` and int64 labels ``(n,)`` for the indices an actor owns. Decoding uses Pillow
(torchvision does not import beside the CPU torch wheel here): shorter side resized to ``ceil(r / 0.875)``
with bilinear filtering, then a centre crop of ``r`` px, OFA's evaluation transform. Labels are the index of
the class folder in sorted order (``n01440764`` -> 0, as OFA's training used). Normalisation happens on the
device, so host memory and transfers stay uint8.

``weaknas-ray ofa pack`` (:func:`pack_split`) decodes a folder once into ``.npy`` shards at one resolution;
loading those is a memory-mapped slice instead of a JPEG decode per image.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from weaknas_ray.exceptions import BenchmarkDataError

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
CROP_FRACTION = 0.875  # NOTE: OFA's (and the common) ImageNet evaluation crop: resize to r / 0.875, crop r
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PACK_META = "meta.json"
# NOTE: 2: decoding matches torchvision's Resize/CenterCrop arithmetic exactly (1 rounded differently).
PACK_VERSION = 2


def decode_image(path: str | os.PathLike, resolution: int) -> np.ndarray:
    """One image, resized and centre-cropped: uint8, shape ``(resolution, resolution, 3)``.

    OFA's evaluation transform without torchvision: ``Resize(ceil(r / 0.875))`` (shorter side; the longer
    one truncated, bilinear) then ``CenterCrop(r)`` (offsets rounded), with torchvision's own arithmetic.
    """
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        short = math.ceil(resolution / CROP_FRACTION)
        w, h = image.size
        size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
        image = image.resize(size, Image.BILINEAR)
        left, top = (int(round((side - resolution) / 2.0)) for side in size)
        return np.asarray(image.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


@dataclass(frozen=True)
class FolderSplit:
    """A ``<root>/<wnid>/*.JPEG`` folder (ImageNet's ``val/`` or ``train/`` after the usual class sorting).

    Raises:
        BenchmarkDataError: the folder is missing or holds no class folder with images.
    """

    root: str

    def __post_init__(self):
        if not Path(self.root).is_dir():
            raise BenchmarkDataError(f"ImageNet split folder {self.root!r} does not exist")
        if not self.labels.size:
            raise BenchmarkDataError(f"{self.root}: no images under <class>/*.JPEG (suffixes {IMAGE_SUFFIXES})")

    @cached_property
    def classes(self) -> list[str]:
        return sorted(p.name for p in Path(self.root).iterdir() if p.is_dir())

    @cached_property
    def files(self) -> list[Path]:
        return [
            f
            for c in self.classes
            for f in sorted((Path(self.root) / c).iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES
        ]

    @cached_property
    def labels(self) -> np.ndarray:
        """Class index per image, int64, shape ``(n,)``, in :attr:`files` order."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[f.parent.name] for f in self.files], dtype=np.int64)

    def __getstate__(self) -> dict:
        # NOTE: ship the root only; the actor lists the folder itself (ImageNet's train/ has 1.28 M paths).
        return {"root": self.root}

    def __len__(self) -> int:
        return len(self.files)

    def load(self, indices: np.ndarray, resolution: int, workers: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Decode images ``indices`` with ``workers`` threads (Pillow releases the GIL while decoding).

        Returns:
            ``(images uint8 (k, r, r, 3), labels int64 (k,))``.
        """
        files, labels = self.files, self.labels
        idx = np.asarray(indices, dtype=np.int64)
        images = np.empty((len(idx), resolution, resolution, 3), dtype=np.uint8)

        def one(pos: int) -> None:
            images[pos] = decode_image(files[idx[pos]], resolution)

        with ThreadPoolExecutor(max(1, workers)) as pool:
            list(pool.map(one, range(len(idx))))
        return images, labels[idx]


@dataclass(frozen=True)
class PackedSplit:
    """Shards written by :func:`pack_split`: ``images_K.npy`` (uint8 ``(m, r, r, 3)``), ``labels_K.npy``.

    Raises:
        BenchmarkDataError: missing or malformed ``meta.json``.
    """

    root: str

    def __post_init__(self):
        self.meta  # noqa: B018 - validates now, in the driver, not in the actor

    @property
    def meta(self) -> dict:
        path = Path(self.root) / PACK_META
        try:
            meta = json.loads(path.read_text())
            if meta["version"] != PACK_VERSION:
                raise ValueError(f"packed by an older weaknas-ray (version {meta['version']}, expected "
                                 f"{PACK_VERSION}); pack it again with `weaknas-ray ofa pack`")
            return meta
        except (OSError, ValueError, KeyError) as exc:
            raise BenchmarkDataError(f"packed ImageNet split {str(path)!r}: unreadable ({exc})") from exc

    def __len__(self) -> int:
        return int(sum(self.meta["shard_sizes"]))

    @property
    def labels(self) -> np.ndarray:
        return np.concatenate(
            [np.load(Path(self.root) / f"labels_{k:05d}.npy") for k in range(len(self.meta["shard_sizes"]))]
        )

    def load(self, indices: np.ndarray, resolution: int, workers: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """Slices of the memory-mapped shards (``workers`` unused: no decoding).

        Raises:
            BenchmarkDataError: the shards were packed at another resolution.
        """
        meta = self.meta
        if meta["resolution"] != resolution:
            raise BenchmarkDataError(
                f"{self.root}: packed at {meta['resolution']} px, the pool needs {resolution} px; pack again"
            )
        starts = np.cumsum([0, *meta["shard_sizes"]])
        idx = np.asarray(indices, dtype=np.int64)
        images = np.empty((len(idx), resolution, resolution, 3), dtype=np.uint8)
        shard_of = np.searchsorted(starts, idx, side="right") - 1
        for k in np.unique(shard_of):
            shard = np.load(Path(self.root) / f"images_{k:05d}.npy", mmap_mode="r")
            mine = shard_of == k
            images[mine] = shard[idx[mine] - starts[k]]
        return images, self.labels[idx]


@dataclass(frozen=True)
class SyntheticSplit:
    """Random images with random labels, ImageNet-sized, for speed benchmarks (accuracy is meaningless)."""

    size: int
    n_classes: int = 1000
    seed: int = 0

    def __len__(self) -> int:
        return self.size

    @property
    def labels(self) -> np.ndarray:
        return np.random.default_rng(self.seed).integers(0, self.n_classes, size=self.size)

    def load(self, indices: np.ndarray, resolution: int, workers: int = 4) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        rng = np.random.default_rng([self.seed, len(idx)])
        return rng.integers(0, 256, size=(len(idx), resolution, resolution, 3), dtype=np.uint8), self.labels[idx]


Split = FolderSplit | PackedSplit | SyntheticSplit


def open_split(path: str | os.PathLike) -> FolderSplit | PackedSplit:
    """A packed split when ``path`` holds ``meta.json``, else an image folder.

    Raises:
        BenchmarkDataError: ``path`` does not exist or holds no images.
    """
    root = Path(path).expanduser()
    if (root / PACK_META).is_file():
        return PackedSplit(str(root))
    return FolderSplit(str(root))


def pack_split(
    source: str | os.PathLike, dest: str | os.PathLike, resolution: int, shard_size: int = 5000, workers: int = 8
) -> Path:
    """Decode an image folder once into uint8 ``.npy`` shards at ``resolution`` (``weaknas-ray ofa pack``).

    Args:
        source: a ``<wnid>/*.JPEG`` folder.
        dest: output folder (created); gets ``images_K.npy``, ``labels_K.npy`` and ``meta.json``.
        resolution: the evaluation resolution (shards serve only that resolution).
        shard_size: images per shard (5,000 at 236 px is 835 MB).
        workers: decoding threads.

    Returns:
        ``dest``.
    """
    split = FolderSplit(str(Path(source).expanduser()))
    out = Path(dest).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    sizes = []
    for k, start in enumerate(range(0, len(split), shard_size)):
        images, labels = split.load(np.arange(start, min(start + shard_size, len(split))), resolution, workers)
        np.save(out / f"images_{k:05d}.npy", images)
        np.save(out / f"labels_{k:05d}.npy", labels)
        sizes.append(len(labels))
    meta = {
        "version": PACK_VERSION,
        "resolution": resolution,
        "shard_sizes": sizes,
        "classes": split.classes,
        "source": str(source),
    }
    (out / PACK_META).write_text(json.dumps(meta, indent=1))
    return out
