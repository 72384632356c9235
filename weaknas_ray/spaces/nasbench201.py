"""NAS-Bench-201 (NATS-Bench topology space): 15,625 cells, 6 edges x 5 ops.

A cell is 6 op ids, one per edge in the order (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2), each in
``OPS``. The architecture index is the benchmark's own index (row of ``nb201_200ep.csv``). Features are the
method's one-hot encoding: 6 edges x 5 ops flattened, 30 float32 columns. The table and its oracles are
loaded by :mod:`weaknas_ray.benchmarks.nasbench201`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from weaknas_ray.exceptions import UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), the official string's order
PARAM_NAMES = tuple(f"e{to}_{src}" for to, src in EDGES)
N_CELLS = len(OPS) ** len(EDGES)


def parse_arch_str(text: str) -> tuple[int, ...]:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> 6 op ids in edge order.

    Raises:
        UnknownArchitectureError: malformed string or unknown op.
    """
    try:
        nodes = [[tok.split("~") for tok in part.strip("|").split("|")] for part in text.split("+")]
        edges = [(to, int(src), op) for to, node in enumerate(nodes, start=1) for op, src in node]
        if [(to, src) for to, src, _ in edges] != list(EDGES):
            raise ValueError("edges are not (1<-0),(2<-0),(2<-1),(3<-0),(3<-1),(3<-2)")
        return tuple(OPS.index(op) for _, _, op in edges)
    except ValueError as exc:
        raise UnknownArchitectureError(
            f"nasbench201: cannot parse arch string {text!r} ({exc}); ops are {OPS}"
        ) from exc


def format_arch_str(ops: tuple[int, ...]) -> str:
    """6 op ids in edge order -> the official NAS-Bench-201 string."""
    names = iter(f"{OPS[op]}~{src}" for op, (_, src) in zip(ops, EDGES))
    return "+".join("|" + "|".join(next(names) for _ in range(to)) + "|" for to in (1, 2, 3))


class NASBench201Space(SearchSpace):
    """The 15,625 NAS-Bench-201 cells, indexed as in the benchmark.

    Args:
        ops: op ids per cell, shape ``(n, 6)``, edge order of :data:`EDGES`, values index :data:`OPS`.
        params_mb: optional parameter count (millions) per cell, shape ``(n,)``, shown by :meth:`describe`.
    """

    name = "nasbench201"

    def __init__(self, ops: np.ndarray, params_mb: np.ndarray | None = None):
        self.ops = np.asarray(ops, dtype=np.int8)
        if self.ops.ndim != 2 or self.ops.shape[1] != len(EDGES) or self.ops.min() < 0 or self.ops.max() >= len(OPS):
            raise ValueError(f"ops must be (n, {len(EDGES)}) op ids in 0..{len(OPS) - 1}, got shape {self.ops.shape}")
        self.params_mb = params_mb
        # NOTE: a cell's base-5 code indexes this lookup table (-1: not in the pool); 5**6 entries.
        self._by_code = np.full(N_CELLS, -1, dtype=np.int64)
        self._by_code[self._codes(self.ops)] = np.arange(len(self.ops))

    @staticmethod
    def _codes(ops: np.ndarray) -> np.ndarray:
        return ops.astype(np.int64) @ (len(OPS) ** np.arange(len(EDGES)))

    @cached_property
    def features(self) -> np.ndarray:
        """One-hot per edge, flattened: float32 ``(n, 30)``; column ``5 * edge + op``."""
        onehot = np.eye(len(OPS), dtype=np.float32)[self.ops].reshape(len(self.ops), -1)
        onehot.setflags(write=False)
        return onehot

    def __len__(self) -> int:
        return len(self.ops)

    def decode(self, index: int) -> tuple[int, ...]:
        """The cell at ``index`` as 6 op ids in edge order."""
        return tuple(int(op) for op in self.ops[self.check_indices(index)[0]])

    def arch_str(self, index: int) -> str:
        return format_arch_str(self.decode(index))

    def index_of(self, arch: Any) -> int:
        """Index of an arch string, a 6-tuple of op ids or a :meth:`params` dict.

        Raises:
            UnknownArchitectureError: malformed or not in the pool.
        """
        if isinstance(arch, str):
            ops = parse_arch_str(arch)
        elif isinstance(arch, dict):
            try:
                ops = tuple(OPS.index(arch[name]) for name in PARAM_NAMES)
            except (KeyError, ValueError) as exc:
                raise UnknownArchitectureError(
                    f"nasbench201: params {arch!r} need keys {PARAM_NAMES} with values in {OPS}"
                ) from exc
        else:
            ops = tuple(np.asarray(arch).reshape(-1).tolist())
        if len(ops) != len(EDGES) or not all(isinstance(op, int) and 0 <= op < len(OPS) for op in ops):
            raise UnknownArchitectureError(f"nasbench201: expected 6 op ids in 0..{len(OPS) - 1}, got {arch!r}")
        index = int(self._by_code[self._codes(np.asarray([ops]))[0]])
        if index < 0:
            raise UnknownArchitectureError(f"nasbench201: {format_arch_str(ops)} is not in this pool")
        return index

    def param_choices(self) -> dict[str, list[str]]:
        """Edge name (``e<to>_<from>``, edge order) -> the 5 op names."""
        return {name: list(OPS) for name in PARAM_NAMES}

    def params(self, index: int) -> dict[str, str]:
        return {name: OPS[op] for name, op in zip(PARAM_NAMES, self.decode(index))}

    def mutate(self, index: int, rng: np.random.Generator) -> int:
        """One edge, chosen uniformly, changed to one of the 4 other ops (uniformly). In a partial table
        (fewer than 15,625 rows) a mutant outside it is replaced by :meth:`nearest`."""
        ops = list(self.decode(index))
        edge = int(rng.integers(len(EDGES)))
        ops[edge] = (ops[edge] + int(rng.integers(1, len(OPS)))) % len(OPS)
        child = int(self._by_code[self._codes(np.asarray([ops]))[0]])
        return child if child >= 0 else self.nearest(index, rng)

    def describe(self, indices: np.ndarray) -> dict[str, list]:
        if self.params_mb is None:
            return {}
        return {"params_mb": self.params_mb[self.check_indices(indices)].tolist()}
