"""Once-for-All MobileNetV3 (``ofa_mbv3_d234_e346_k357_w1.2``): a pool of subnets as a search space.

Architecture ``i`` is row ``i`` of the pool; features are the method's raw 45 integers or OFA's 128-wide
one-hot (:mod:`weaknas_ray.spaces.ofa_arch`). The pool and the oracles are built by
:mod:`weaknas_ray.benchmarks.ofa_mbv3`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace
from weaknas_ray.spaces import ofa_arch as arch

ENCODINGS = ("raw", "onehot")


class OFAMobileNetV3Space(SearchSpace):
    """A pool of canonical OFA MobileNetV3 subnets at one resolution.

    Args:
        configs: canonical configs, int8, shape ``(n, 45)`` (see :mod:`weaknas_ray.spaces.ofa_arch`), unique.
        resolution: input resolution of every subnet (pixels).
        encoding: ``"raw"`` (45 integers) or ``"onehot"`` (OFA's 128 features).
        width_mult: the supernet's width multiplier (FLOPs depend on it).
    """

    name = "ofa_mbv3"

    def __init__(self, configs: np.ndarray, resolution: int = 236, encoding: str = "raw", width_mult: float = 1.2):
        if encoding not in ENCODINGS:
            raise ConfigError(f"benchmark.encoding: unknown encoding {encoding!r}; choose one of {list(ENCODINGS)}")
        self.configs = arch.check_configs(configs)
        self.resolution = int(resolution)
        self.encoding = encoding
        self.flops_m = arch.FlopsTable(self.resolution, width_mult)(self.configs)
        self._rows = {row.tobytes(): i for i, row in enumerate(self.configs)}
        if len(self._rows) != len(self.configs):
            raise UnknownArchitectureError(
                f"ofa_mbv3: the pool repeats a subnet ({len(self.configs) - len(self._rows)} repeats)"
            )

    @cached_property
    def features(self) -> np.ndarray:
        if self.encoding == "raw":
            return np.ascontiguousarray(arch.encode_raw(self.configs))
        return arch.encode_onehot(self.configs, self.resolution)

    def decode(self, index: int) -> dict[str, Any]:
        """The subnet as OFA's ``set_active_subnet`` keywords plus ``"r": [resolution]``."""
        return arch.to_ofa_dict(self.configs[self.check_indices(index)[0]], self.resolution)

    def arch_str(self, index: int) -> str:
        return arch.format_arch_str(self.configs[self.check_indices(index)[0]], self.resolution)

    def index_of(self, arch_: Any) -> int:
        """The pool index of an OFA dict, an ``arch_str`` or a raw row of 45 integers.

        Raises:
            UnknownArchitectureError: malformed, another resolution, or not in the pool.
        """
        if isinstance(arch_, str):
            row, res = arch.parse_arch_str(arch_)
            if res != self.resolution:
                raise UnknownArchitectureError(f"ofa_mbv3: {arch_!r} is at r={res}, the pool at r={self.resolution}")
        elif isinstance(arch_, dict):
            if "r" in arch_ and int(arch_["r"][0]) != self.resolution:
                raise UnknownArchitectureError(
                    f"ofa_mbv3: resolution {arch_['r']} but the pool is at {self.resolution} px"
                )
            row = arch.from_ofa_dict(arch_)
        else:
            row = arch.check_configs(arch.canonical(np.asarray(arch_)))[0]
        try:
            return self._rows[row.tobytes()]
        except KeyError:
            raise UnknownArchitectureError(
                f"ofa_mbv3: subnet {arch.format_config(row)} is not in the pool of {len(self)}"
            ) from None

    def params(self, index: int) -> dict[str, Any]:
        return self.decode(index)

    def parameter_table(self):
        """The 45 genes as ordinal parameters (kernel sizes ``ks0..ks19`` and expand ratios ``e0..e19``,
        0 for an inactive block; depths ``d0..d4``), every subnet's positions among their values."""
        from weaknas_ray.spaces.params import ordinal

        choices = [(0, *arch.KS_CHOICES)] * arch.N_BLOCKS + [(0, *arch.E_CHOICES)] * arch.N_BLOCKS + [arch.D_CHOICES] * arch.N_STAGES
        names = [f"ks{b}" for b in range(arch.N_BLOCKS)] + [f"e{b}" for b in range(arch.N_BLOCKS)] + [f"d{s}" for s in range(arch.N_STAGES)]
        raw = np.stack([np.searchsorted(values, self.configs[:, j]) for j, values in enumerate(choices)], axis=1)
        return [ordinal(name, values) for name, values in zip(names, choices)], raw.astype(np.float64)

    def distances(self, index: int) -> np.ndarray:
        """The number of raw integers in which each pool subnet differs from ``index``'s. A single-gene
        mutation of a subnet is almost never in a random pool of 10,000, so the pool's own nearest subnets
        (:meth:`neighbours`) stand in for it (in :meth:`mutate` and WeakNAS's local stall escape)."""
        return (self.configs != self.configs[index]).sum(axis=1)

    def describe(self, indices: np.ndarray) -> dict[str, list]:
        """``flops_m``: MFLOPs (multiply-accumulates, as OFA counts them) of each subnet."""
        return {"flops_m": self.flops_m[self.check_indices(indices)].round(3).tolist()}
