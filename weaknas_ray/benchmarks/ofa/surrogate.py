"""OFA's own accuracy predictor as a fast surrogate oracle, and its Kendall-tau check on real measurements.

The checkpoint (``ofa/acc_predictor.pth``, old ``torch.save`` format) is an MLP 128 -> 400 -> 400 -> 400 -> 1
over :func:`arch.encode_onehot` that predicts ImageNet top-1 of ``ofa_mbv3_d234_e346_k357_w1.2`` subnets as a
fraction. torch only unpickles it; inference is four numpy matmuls, so the surrogate scores a 10,000 pool
in milliseconds without torch threads.
"""

from __future__ import annotations

import ast
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from weaknas_ray.benchmarks.manifest import file_spec
from weaknas_ray.benchmarks.ofa.compat import load_tensors
from weaknas_ray.benchmarks.paths import resolve_file
from weaknas_ray.benchmarks.store import verify_checksum
from weaknas_ray.exceptions import BenchmarkDataError, UnknownArchitectureError
from weaknas_ray.interfaces import TableOracle
from weaknas_ray.spaces import ofa_arch as arch

MANIFEST_KEY = "ofa_acc_predictor"
LAYERS = ("0", "2", "4", "6")  # nn.Sequential indices of the four Linear layers
DYNAST_DIR = "ofa/dynast"
DYNAST_CONFIG, DYNAST_TOP1 = "Sub-network", "Top-1 Acc (%)"


def locate_predictor(
    predictor_path: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> Path:
    """The checkpoint: ``predictor_path`` when given (must exist), else the manifest's file in the data roots,
    checksum-verified.

    Raises:
        BenchmarkDataError: the file is missing (naming the path or every place looked in) or corrupt.
    """
    if predictor_path is not None:
        path = Path(predictor_path).expanduser()
        if not path.is_file():
            raise BenchmarkDataError(f"benchmark.predictor_path: OFA accuracy predictor {str(path)!r} does not exist")
        return path
    spec = file_spec(MANIFEST_KEY)
    path = resolve_file(spec.path, data_dir, spec.source)
    verify_checksum(path, spec.sha256, spec.source)
    return path


class AccuracyPredictor:
    """OFA's accuracy-predictor MLP with weights read from a local checkpoint.

    Args:
        path: the checkpoint (a state dict with keys ``0.weight`` .. ``6.bias``).

    Raises:
        BenchmarkDataError: unreadable file or unexpected tensors, naming ``path``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        what = "OFA's accuracy-predictor state dict"
        state = load_tensors(self.path, what)
        try:
            self.layers = [
                (state[f"{i}.weight"].numpy().T.astype(np.float32), state[f"{i}.bias"].numpy().astype(np.float32))
                for i in LAYERS
            ]
        except (KeyError, AttributeError, ValueError) as exc:
            raise BenchmarkDataError(f"{self.path}: not {what} ({exc!r})") from exc
        if self.layers[0][0].shape[0] != arch.N_ONEHOT or self.layers[-1][0].shape[1] != 1:
            raise BenchmarkDataError(
                f"{self.path}: expected an MLP {arch.N_ONEHOT} -> ... -> 1, got input {self.layers[0][0].shape[0]}, "
                f"output {self.layers[-1][0].shape[1]}"
            )

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """Predicted top-1 (fraction) of one-hot ``features`` (float32, shape ``(n, 128)``): shape ``(n,)``."""
        x = np.asarray(features, dtype=np.float32)
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                np.maximum(x, 0.0, out=x)
        return x[:, 0].astype(np.float64)

    def predict(self, configs: np.ndarray, resolution: int) -> np.ndarray:
        """Predicted top-1 in percent of canonical ``configs`` (shape ``(n, 45)``) at ``resolution``: ``(n,)``."""
        return 100.0 * self.predict_features(arch.encode_onehot(configs, resolution))


class SurrogateOracle(TableOracle):
    """The predictor's accuracy (percent) for every pool subnet, as both search and reported value.

    Args:
        predictor: the loaded :class:`AccuracyPredictor`.
        configs: the pool, shape ``(n, 45)``.
        resolution: input resolution of every pool subnet.
    """

    def __init__(self, predictor: AccuracyPredictor, configs: np.ndarray, resolution: int):
        super().__init__(predictor.predict(configs, resolution))


@dataclass(frozen=True)
class TauCheck:
    """The surrogate's rank agreement with measured top-1: Kendall's tau-b over unique subnets."""

    tau: float
    p_value: float
    n_rows: int
    n_unique: int
    files: tuple[str, ...]


def read_dynast(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """DyNAS-T's measured subnets: configs, resolutions and top-1, averaged over repeated measurements.

    Args:
        folder: the folder holding ``*.csv`` with columns ``Sub-network`` and ``Top-1 Acc (%)``.

    Returns:
        ``(configs (u, 45) int8, resolution (u,) int64, top1 (u,) float64, rows read)`` over the ``u``
        unique (subnet, resolution) pairs.

    Raises:
        BenchmarkDataError: no CSV, a missing column or an unparsable sub-network, naming the file and row.
    """
    import pandas as pd

    files = sorted(folder.glob("*.csv"))
    if not files:
        raise BenchmarkDataError(f"{folder}: no DyNAS-T *.csv files")
    keys, top1 = [], []
    for path in files:
        frame = pd.read_csv(path)
        if DYNAST_CONFIG not in frame or DYNAST_TOP1 not in frame:
            raise BenchmarkDataError(
                f"{path}: expected columns {DYNAST_CONFIG!r} and {DYNAST_TOP1!r}, found {list(frame)}"
            )
        for row, (text, acc) in enumerate(zip(frame[DYNAST_CONFIG], frame[DYNAST_TOP1])):
            try:
                spec = ast.literal_eval(text)
                keys.append((*arch.from_ofa_dict(spec).tolist(), int(spec["r"][0])))
            except (ValueError, SyntaxError, KeyError, TypeError, UnknownArchitectureError) as exc:
                raise BenchmarkDataError(f"{path}: row {row}: bad sub-network {text!r} ({exc})") from exc
            top1.append(float(acc))
    table = np.asarray(keys, dtype=np.int64)
    unique, inverse = np.unique(table, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    mean_top1 = np.bincount(inverse, weights=top1) / np.bincount(inverse)
    return unique[:, : arch.N_RAW].astype(np.int8), unique[:, arch.N_RAW], mean_top1, len(top1)


def kendall_tau_check(predictor: AccuracyPredictor, data_dir: str | os.PathLike | None = None) -> TauCheck:
    """Kendall's tau between the surrogate's predictions and DyNAS-T's measured top-1 (w1.0 supernet, 224 px,
    so agreement is partial by nature).

    Raises:
        BenchmarkDataError: the DyNAS-T files are missing or malformed.
    """
    from scipy.stats import kendalltau

    folder = resolve_file(f"{DYNAST_DIR}/LICENSE.md", data_dir).parent
    configs, resolutions, top1, n_rows = read_dynast(folder)
    predicted = np.concatenate([predictor.predict(configs[resolutions == r], int(r)) for r in np.unique(resolutions)])
    measured = np.concatenate([top1[resolutions == r] for r in np.unique(resolutions)])
    result = kendalltau(predicted, measured)
    files = tuple(p.name for p in sorted(folder.glob("*.csv")))
    return TauCheck(float(result.statistic), float(result.pvalue), n_rows, len(top1), files)
