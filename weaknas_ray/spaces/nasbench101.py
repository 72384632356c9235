"""NAS-Bench-101: cells as (upper-triangular adjacency of at most 7 nodes, op list), their canonical
hash and the method's 45-feature encoding. The CIFAR-10 table and its oracle are loaded by
:mod:`weaknas_ray.benchmarks.nasbench101`.

Op ids (the method's): input 0, conv1x1 1, conv3x3 2, maxpool3x3 3, output 4. A cell is pruned as
NAS-Bench-101 does (nodes not on an input->output path are removed) and identified by NAS-Bench-101's
``hash_module`` of the pruned graph, so isomorphic cells are one architecture. Stored cells keep the
pruned graph in the top-left corner of a 7x7 matrix, ops padded with -1.
"""

from __future__ import annotations

import hashlib
from functools import cached_property

import numpy as np

from weaknas_ray.exceptions import UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace

OPS = ("input", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output")
INPUT, CONV1X1, CONV3X3, MAXPOOL3X3, OUTPUT = range(len(OPS))
MAX_VERTICES = 7
MAX_EDGES = 9
# NOTE: hash_module labels ops by their index in NAS-Bench-101's config['available_ops']
# (conv3x3, conv1x1, maxpool3x3), input -1 and output -2; changing this changes every hash.
HASH_LABELS = {INPUT: -1, CONV3X3: 0, CONV1X1: 1, MAXPOOL3X3: 2, OUTPUT: -2}
# NOTE: mutations tried before falling back to the nearest pool cell; in the full pool nearly every valid
# mutation is in the pool, so this only bounds the time spent on sparse pools (about 0.3 ms a try).
MUTATION_TRIES = 100


def hash_module(matrix: np.ndarray, labels: list[int]) -> str:
    """NAS-Bench-101's graph-invariant MD5 hash (``nasbench/lib/graph_util.py``): per-vertex hashes of
    (out-degree, in-degree, label) refined ``n`` times with the sorted hashes of in- and out-neighbours.

    Args:
        matrix: adjacency, shape ``(n, n)``.
        labels: one int label per vertex (see :data:`HASH_LABELS`).

    Returns:
        32 hex characters.
    """
    n = len(labels)
    md5 = lambda text: hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: E731
    hashes = [md5(str(h)) for h in zip(matrix.sum(axis=1).tolist(), matrix.sum(axis=0).tolist(), labels)]
    for _ in range(n):
        hashes = [
            md5("".join(sorted(hashes[w] for w in range(n) if matrix[w, v])) + "|"
                + "".join(sorted(hashes[w] for w in range(n) if matrix[v, w])) + "|" + hashes[v])
            for v in range(n)
        ]  # fmt: skip
    return md5(str(sorted(hashes)))


def prune(matrix: np.ndarray, ops: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]] | None:
    """Drop vertices not on a path from input to output (``ModelSpec._prune``).

    Returns:
        The pruned ``(matrix (k, k) int8, ops)``, or ``None`` when the input does not reach the output.
    """
    n = len(ops)
    reach_in, reach_out = {0}, {n - 1}
    for start, seen, forward in ((0, reach_in, True), (n - 1, reach_out, False)):
        frontier = [start]
        while frontier:
            top = frontier.pop()
            for v in range(n):
                if (matrix[top, v] if forward else matrix[v, top]) and v not in seen:
                    seen.add(v)
                    frontier.append(v)
    keep = sorted(reach_in & reach_out)
    if len(keep) < 2 or keep[0] != 0 or keep[-1] != n - 1:
        return None
    return np.ascontiguousarray(matrix[np.ix_(keep, keep)], dtype=np.int8), tuple(ops[i] for i in keep)


def canonical(matrix, ops) -> tuple[np.ndarray, tuple[int, ...], str]:
    """Check, prune and hash one cell as NAS-Bench-101 does.

    Args:
        matrix: adjacency, ``(n, n)`` with ``n <= 7``, upper-triangular, 0/1.
        ops: ``n`` op ids or NAS-Bench-101 op names, input first and output last.

    Returns:
        ``(pruned matrix (k, k) int8, pruned op ids, hash)``.

    Raises:
        UnknownArchitectureError: not a valid NAS-Bench-101 cell (the message says why).
    """
    matrix = np.asarray(matrix)
    try:
        ops = tuple(OPS.index(op) if isinstance(op, str) else int(op) for op in ops)
    except ValueError as exc:
        raise UnknownArchitectureError(f"nasbench101: unknown op in {ops!r}; ops are {OPS}") from exc
    n = len(ops)
    why = (
        f"matrix shape {matrix.shape} does not match {n} ops" if matrix.shape != (n, n)
        else f"{n} vertices, at most {MAX_VERTICES} allowed" if n > MAX_VERTICES
        else "matrix is not 0/1 upper-triangular" if np.any(np.tril(matrix) != 0) or not np.isin(matrix, (0, 1)).all()
        else "first op must be input and last op output" if n < 2 or ops[0] != INPUT or ops[-1] != OUTPUT
        else "inner ops must be conv1x1, conv3x3 or maxpool3x3" if not set(ops[1:-1]) <= {CONV1X1, CONV3X3, MAXPOOL3X3}
        else ""
    )  # fmt: skip
    pruned = None if why else prune(matrix, ops)
    if not why and pruned is None:
        why = "the input is not connected to the output"
    elif pruned is not None and pruned[0].sum() > MAX_EDGES:
        why = f"{int(pruned[0].sum())} edges after pruning, at most {MAX_EDGES} allowed"
    if why:
        raise UnknownArchitectureError(f"nasbench101: invalid cell ({why}): matrix={matrix.tolist()}, ops={ops}")
    pmatrix, pops = pruned
    return pmatrix, pops, hash_module(pmatrix, [HASH_LABELS[op] for op in pops])


def _layout() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Feature positions of the encoding: for column ``c``, ``c`` edge entries then 4 op entries."""
    edge_columns, edge_rows, edge_targets, op_columns, pos = [], [], [], [], 0
    for c in range(1, MAX_VERTICES):
        edge_columns += range(pos, pos + c)
        edge_rows += range(c)
        edge_targets += [c] * c
        op_columns.append(pos + c)
        pos += c + OUTPUT  # OUTPUT == 4 op choices
    return tuple(np.array(a) for a in (edge_columns, edge_rows, edge_targets, op_columns))


_EDGE_COLUMNS, _EDGE_ROWS, _EDGE_TARGETS, _OP_COLUMNS = _layout()
N_FEATURES = 45


def encode(matrices: np.ndarray, ops: np.ndarray) -> np.ndarray:
    """The method's 45-feature encoding: for each column ``c = 1..6``, the entries ``matrix[0..c-1, c]``
    followed by a one-hot of op ``c`` over (conv1x1, conv3x3, maxpool3x3, output).

    Args:
        matrices: pruned graphs in the top-left corner, int, shape ``(n, 7, 7)``.
        ops: op ids, shape ``(n, 7)``, -1 beyond a cell's size (so smaller cells encode as zeros there).

    Returns:
        float32, shape ``(n, 45)``.
    """
    n = len(ops)
    feats = np.zeros((n, N_FEATURES), dtype=np.float32)
    feats[:, _EDGE_COLUMNS] = matrices[:, _EDGE_ROWS, _EDGE_TARGETS]
    valid = ops[:, 1:] >= CONV1X1  # (n, 6); -1 padding encodes as zeros
    cells, vertex = np.nonzero(valid)
    feats[cells, _OP_COLUMNS[vertex] + ops[:, 1:][valid] - CONV1X1] = 1.0
    return feats


def pad_cell(matrix: np.ndarray, ops: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One pruned cell in the stored layout: ``(7, 7)`` int8 matrix, ``(7,)`` int8 ops padded with -1."""
    k = len(ops)
    padded = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
    padded[:k, :k] = matrix
    return padded, np.array(list(ops) + [-1] * (MAX_VERTICES - k), dtype=np.int8)


class NASBench101Space(SearchSpace):
    """A pool of NAS-Bench-101 cells (all 423,624, or a sample), one canonical cell per index.

    Args:
        hashes: canonical hash per cell, shape ``(n,)`` (str or bytes; kept as 32-byte ASCII).
        matrices: pruned adjacency in the top-left corner, shape ``(n, 7, 7)``.
        ops: op ids, shape ``(n, 7)``, -1 padded.
        params_m: optional trainable parameters (millions) per cell, shape ``(n,)``.
    """

    name = "nasbench101"

    def __init__(self, hashes: np.ndarray, matrices: np.ndarray, ops: np.ndarray, params_m: np.ndarray | None = None):
        self.hashes = np.asarray(hashes).astype("S32")
        self.matrices = np.asarray(matrices, dtype=np.int8)
        self.ops = np.asarray(ops, dtype=np.int8)
        self.params_m = params_m
        n = len(self.hashes)
        if self.matrices.shape != (n, MAX_VERTICES, MAX_VERTICES) or self.ops.shape != (n, MAX_VERTICES):
            raise ValueError(f"expected matrices (n, 7, 7) and ops (n, 7) for n={n} hashes, got "
                             f"{self.matrices.shape} and {self.ops.shape}")  # fmt: skip

    @cached_property
    def features(self) -> np.ndarray:
        """The 45-feature encoding of :func:`encode`, float32 ``(n, 45)``."""
        feats = encode(self.matrices, self.ops)
        feats.setflags(write=False)
        return feats

    @cached_property
    def _by_hash(self) -> dict[bytes, int]:
        return dict(zip(self.hashes.tolist(), range(len(self.hashes))))

    def __len__(self) -> int:
        return len(self.hashes)

    def decode(self, index: int) -> tuple[np.ndarray, tuple[str, ...]]:
        """The pruned cell at ``index``: ``(matrix (k, k) int8, k op names)``."""
        i = int(self.check_indices(index)[0])
        k = int((self.ops[i] >= 0).sum())
        return self.matrices[i, :k, :k].copy(), tuple(OPS[op] for op in self.ops[i, :k])

    def arch_str(self, index: int) -> str:
        """``"<matrix rows joined by '/'> <op names joined by ','>"``, e.g.
        ``"011/001/000 input,conv3x3-bn-relu,output"``; :meth:`index_of` parses it back."""
        matrix, ops = self.decode(index)
        return "/".join("".join(map(str, row)) for row in matrix.tolist()) + " " + ",".join(ops)

    def index_of(self, arch) -> int:
        """Index of a cell given as ``(matrix, ops)`` (ops as ids or names; any isomorphic, unpruned form),
        an :meth:`arch_str` string, or a canonical hash (str or bytes).

        Raises:
            UnknownArchitectureError: invalid cell, or a valid cell that is not in this pool.
        """
        if isinstance(arch, bytes):
            arch = arch.decode("ascii", errors="replace")
        if isinstance(arch, str):
            if arch.encode("ascii", errors="replace") in self._by_hash:
                return self._by_hash[arch.encode("ascii", errors="replace")]
            try:
                rows, names = arch.split(" ")
                arch = ([[int(ch) for ch in row] for row in rows.split("/")], names.split(","))
            except ValueError as exc:
                raise UnknownArchitectureError(
                    f"nasbench101: {arch!r} is neither a hash in the pool nor 'ROWS OPS' "
                    "like '011/001/000 input,conv3x3-bn-relu,output'"
                ) from exc
        try:
            matrix, ops = arch
        except (TypeError, ValueError):
            raise UnknownArchitectureError(f"nasbench101: expected (matrix, ops), a hash or an arch string, got {arch!r}") from None
        *_, digest = canonical(matrix, ops)
        if digest.encode() not in self._by_hash:
            raise UnknownArchitectureError(f"nasbench101: valid cell {digest} is not in this pool of {len(self)} cells")
        return self._by_hash[digest.encode()]

    def mutate(self, index: int, rng: np.random.Generator) -> int:
        """NAS-Bench-101's mutation (its regularised-evolution example, mutation rate 1): on the cell
        padded to 7 vertices, flip each upper-triangular edge with probability 1/7 and change each inner op
        with probability 1/5, until the result is a valid cell of the pool other than ``index``. In a sparse
        pool (e.g. the 500-cell sample) that may never happen: after :data:`MUTATION_TRIES` tries, return a
        pool cell at the smallest Hamming distance of features instead (uniformly among ties)."""
        i = int(self.check_indices(index)[0])
        k = int((self.ops[i] >= 0).sum())
        base = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        nodes = [*range(k - 1), MAX_VERTICES - 1]  # old vertex -> vertex in the 7-vertex layout
        base[np.ix_(nodes, nodes)] = self.matrices[i, :k, :k]
        base_ops = rng.choice([CONV1X1, CONV3X3, MAXPOOL3X3], size=MAX_VERTICES)  # unused vertices: random ops
        base_ops[nodes] = self.ops[i, :k]
        upper = np.triu(np.ones((MAX_VERTICES, MAX_VERTICES), dtype=bool), 1)
        for _ in range(MUTATION_TRIES):
            matrix = base ^ (upper & (rng.random(base.shape) < 1 / MAX_VERTICES))
            ops = base_ops.copy()
            for v in np.flatnonzero(rng.random(MAX_VERTICES - 2) < 1 / (MAX_VERTICES - 2)) + 1:
                ops[v] = rng.choice([op for op in (CONV1X1, CONV3X3, MAXPOOL3X3) if op != ops[v]])
            try:
                j = self.index_of((matrix, ops))
            except UnknownArchitectureError:
                continue
            if j != i:
                return j
        return self.nearest(i, rng)

    def parameter_table(self):
        """The 21 upper-triangular edges ``e<from>_<to>`` (0/1) and the 7 node ops ``op0..op6`` (op ids as
        stored, -1 for a node the cell does not have) as categorical parameters, every cell's positions."""
        from weaknas_ray.spaces.params import categorical

        rows, cols = np.triu_indices(MAX_VERTICES, k=1)
        columns = [self.matrices[:, r, c] for r, c in zip(rows, cols)] + [self.ops[:, v] for v in range(MAX_VERTICES)]
        names = [f"e{r}_{c}" for r, c in zip(rows, cols)] + [f"op{v}" for v in range(MAX_VERTICES)]
        params, raw = [], []
        for name, column in zip(names, columns):
            values = np.unique(column)
            params.append(categorical(name, [int(v) for v in values]))
            raw.append(np.searchsorted(values, column))
        return params, np.stack(raw, axis=1).astype(np.float64)

    def describe(self, indices: np.ndarray) -> dict[str, list]:
        if self.params_m is None:
            return {}
        return {"params_m": self.params_m[self.check_indices(indices)].tolist()}
