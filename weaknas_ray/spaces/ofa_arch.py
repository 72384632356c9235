"""OFA MobileNetV3 subnet configurations as integer arrays, their analytic FLOPs and their encodings.

A subnet of ``ofa_mbv3_d234_e346_k357`` is 20 kernel sizes, 20 expand ratios (5 stages x 4 blocks) and 5
stage depths, plus the input resolution. Here a batch of subnets is an int8 array of shape ``(n, 45)``:
columns 0..19 kernel sizes, 20..39 expand ratios, 40..44 depths. Blocks beyond a stage's depth are inactive
and stored as 0 (the canonical form: two configs differing only in inactive blocks are the same network).

FLOPs are the multiply-accumulates OFA's own counter (``ofa.utils.count_net_flops`` on
``get_active_subnet()``) reports: every convolution and the classifier, no biases, activations, batch-norm
or SE products. They are a per-block lookup table summed over active blocks, so a million candidates cost
one gather, never a forward pass.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from weaknas_ray.exceptions import UnknownArchitectureError

KS_CHOICES = (3, 5, 7)
E_CHOICES = (3, 4, 6)
D_CHOICES = (2, 3, 4)
N_STAGES = 5
MAX_DEPTH = 4
N_BLOCKS = N_STAGES * MAX_DEPTH
N_RAW = 2 * N_BLOCKS + N_STAGES  # 45 integers
KS_COLS = slice(0, N_BLOCKS)
E_COLS = slice(N_BLOCKS, 2 * N_BLOCKS)
D_COLS = slice(2 * N_BLOCKS, N_RAW)

# MobileNetV3 as OFA builds it (ofa_mbv3.py): base widths of first conv, first block, 5 stages, final
# expand and feature mix; stage strides and squeeze-excite flags; 1000 ImageNet classes.
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_STRIDES = (2, 2, 2, 1, 2)
STAGE_SE = (False, True, False, True, True)
N_CLASSES = 1000
CHANNEL_DIVISIBLE = 8  # NOTE: MyNetwork.CHANNEL_DIVISIBLE in OFA
SE_REDUCTION = 4  # NOTE: SEModule.REDUCTION in OFA
# OFA's accuracy predictor buckets the resolution as (r - 112) // 16 into 8 slots: 112..239 px.
R_MIN, R_BUCKET, N_R_BUCKETS = 112, 16, 8
N_ONEHOT = 3 * N_BLOCKS + 3 * N_BLOCKS + N_R_BUCKETS  # 128


def make_divisible(value: float, divisor: int = CHANNEL_DIVISIBLE) -> int:
    """OFA's (and TF-slim's) channel rounding: nearest multiple of ``divisor``, never 10 % below ``value``."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


def stage_widths(width_mult: float = 1.2) -> list[int]:
    """The 9 channel widths of :data:`BASE_WIDTHS` scaled by ``width_mult`` (w1.2: 24, 24, 32, 48, ...)."""
    return [make_divisible(w * width_mult) for w in BASE_WIDTHS]


def canonical(configs: np.ndarray) -> np.ndarray:
    """``configs`` with inactive blocks zeroed: shape ``(n, 45)`` int8, a copy."""
    out = np.array(configs, dtype=np.int8, ndmin=2)
    inactive = ~active_mask(out)
    out[:, KS_COLS][inactive] = 0
    out[:, E_COLS][inactive] = 0
    return out


def active_mask(configs: np.ndarray) -> np.ndarray:
    """Which blocks run: bool, shape ``(n, 20)``, block ``4 * s + j`` active when ``j < d[s]``."""
    depths = np.asarray(configs)[:, D_COLS].astype(np.int64)
    return (np.arange(MAX_DEPTH)[None, None, :] < depths[:, :, None]).reshape(-1, N_BLOCKS)


def sample_configs(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` canonical configs drawn as OFA's ``sample_active_subnet`` does (each kernel size, expand ratio
    and depth uniform and independent), from ``rng`` instead of Python's global ``random``.

    Returns:
        int8 array, shape ``(n, 45)``.
    """
    ks = np.asarray(KS_CHOICES, dtype=np.int8)[rng.integers(0, 3, size=(n, N_BLOCKS))]
    es = np.asarray(E_CHOICES, dtype=np.int8)[rng.integers(0, 3, size=(n, N_BLOCKS))]
    ds = np.asarray(D_CHOICES, dtype=np.int8)[rng.integers(0, 3, size=(n, N_STAGES))]
    return canonical(np.concatenate([ks, es, ds], axis=1))


def check_configs(configs: np.ndarray) -> np.ndarray:
    """``configs`` checked to be canonical subnet configs of this space.

    Args:
        configs: shape ``(n, 45)`` (or ``(45,)``), integers.

    Returns:
        int8 array, shape ``(n, 45)``.

    Raises:
        UnknownArchitectureError: wrong shape, a value outside the choices, or a non-zero inactive block.
    """
    arr = np.array(configs, ndmin=2)
    if arr.ndim != 2 or arr.shape[1] != N_RAW:
        raise UnknownArchitectureError(
            f"ofa_mbv3: a config has {N_RAW} integers (20 ks, 20 e, 5 d), got shape {arr.shape}"
        )
    arr = arr.astype(np.int8)
    for cols, choices, what in (
        (D_COLS, D_CHOICES, "depth"),
        (KS_COLS, KS_CHOICES, "kernel size"),
        (E_COLS, E_CHOICES, "expand ratio"),
    ):
        values = arr[:, cols]
        allowed = np.isin(values, choices)
        if cols is not D_COLS:
            mask = active_mask(arr)
            allowed = np.where(mask, allowed, values == 0)
        if not allowed.all():
            row, col = map(int, np.argwhere(~allowed)[0])
            raise UnknownArchitectureError(
                f"ofa_mbv3: config {row} has {what} {int(values[row, col])} at position {col}; active blocks take "
                f"{choices}, inactive blocks (beyond the stage depth) must be 0"
            )
    return arr


def from_ofa_dict(arch: dict[str, Any]) -> np.ndarray:
    """An OFA config dict (``{"ks": [20], "e": [20], "d": [5], ...}``) -> canonical int8 row, shape ``(45,)``.

    Raises:
        UnknownArchitectureError: missing keys, wrong lengths or values outside the choices.
    """
    try:
        ks, es, ds = (list(arch[key]) for key in ("ks", "e", "d"))
    except (KeyError, TypeError) as exc:
        raise UnknownArchitectureError(f"ofa_mbv3: an OFA config needs lists 'ks', 'e', 'd'; got {arch!r}") from exc
    if (len(ks), len(es), len(ds)) != (N_BLOCKS, N_BLOCKS, N_STAGES):
        raise UnknownArchitectureError(f"ofa_mbv3: expected 20 ks, 20 e, 5 d; got {len(ks)}, {len(es)}, {len(ds)}")
    row = np.array([(v or 0) for v in ks + es] + ds, dtype=np.int64)
    if not np.isin(row[D_COLS], D_CHOICES).all():
        raise UnknownArchitectureError(f"ofa_mbv3: depths {ds} outside {D_CHOICES}")
    return check_configs(canonical(row))[0]


def to_ofa_dict(config: np.ndarray, resolution: int) -> dict[str, Any]:
    """A canonical row -> the dict ``OFAMobileNetV3.set_active_subnet(**d)`` takes, plus ``"r": [res]``.

    Inactive blocks carry the smallest choice (OFA ignores them; its own sampler fills them with any value),
    so every list entry is a valid int for tools that expect one.
    """
    row = check_configs(config)[0].tolist()
    ks = [k or KS_CHOICES[0] for k in row[KS_COLS]]
    es = [e or E_CHOICES[0] for e in row[E_COLS]]
    return {"ks": ks, "e": es, "d": row[D_COLS], "r": [int(resolution)]}


def format_config(config: np.ndarray) -> str:
    """A canonical row -> ``"ks=357.35..|e=...|d=43342"``: per stage the active blocks' digits."""
    row = np.asarray(config).astype(int)
    depths = row[D_COLS]

    def stages(values: np.ndarray) -> str:
        return ".".join("".join(map(str, values[4 * s : 4 * s + d])) for s, d in enumerate(depths))

    return f"ks={stages(row[KS_COLS])}|e={stages(row[E_COLS])}|d={''.join(map(str, depths))}"


# NOTE: a valid subnet, shown in parse errors.
EXAMPLE = "ks=35.357.3577.77.53|e=46.364.3466.66.43|d=23422"


def parse_config(text: str) -> np.ndarray:
    """Inverse of :func:`format_config`.

    Raises:
        UnknownArchitectureError: malformed string.
    """
    try:
        fields = dict(part.split("=", 1) for part in text.strip().split("|"))
        depths = [int(c) for c in fields["d"]]
        row = np.zeros(N_RAW, dtype=np.int64)
        row[D_COLS] = depths
        for cols, key in ((KS_COLS, "ks"), (E_COLS, "e")):
            per_stage = fields[key].split(".")
            if len(per_stage) != N_STAGES or [len(p) for p in per_stage] != depths:
                raise ValueError(f"{key} does not give one digit per active block of depths {depths}")
            for s, digits in enumerate(per_stage):
                row[cols.start + 4 * s : cols.start + 4 * s + len(digits)] = [int(c) for c in digits]
    except (ValueError, KeyError) as exc:
        raise UnknownArchitectureError(
            f"ofa_mbv3: cannot parse config string {text!r} ({exc}); expected kernel sizes and expand ratios "
            f"per active block, stages joined by '.', then the 5 depths, e.g. {EXAMPLE!r}"
        ) from exc
    return check_configs(row)[0]


def format_arch_str(config: np.ndarray, resolution: int) -> str:
    """A subnet at a resolution as one string: :func:`format_config` plus ``"|r=<resolution>"``."""
    return f"{format_config(config)}|r={int(resolution)}"


def parse_arch_str(text: str) -> tuple[np.ndarray, int]:
    """Inverse of :func:`format_arch_str`: ``(canonical row (45,), resolution)``.

    Raises:
        UnknownArchitectureError: malformed string.
    """
    config, _, res = text.strip().rpartition("|r=")
    if not config or not res.isdigit():
        raise UnknownArchitectureError(f"ofa_mbv3: {text!r} is not a subnet string ('ks=...|e=...|d=...|r=<px>')")
    return parse_config(config), int(res)


class FlopsTable:
    """Analytic MFLOPs (multiply-accumulates / 1e6, as OFA counts them) of subnets at one resolution.

    Args:
        resolution: input image side in pixels.
        width_mult: supernet width multiplier (1.2 for the searched supernet, 1.0 for DyNAS-T's).
    """

    def __init__(self, resolution: int, width_mult: float = 1.2):
        self.resolution = int(resolution)
        widths = stage_widths(width_mult)
        side = math.ceil(self.resolution / 2)  # first conv, stride 2, 'same' padding
        # first conv (3 -> w0, 3x3), first block (depthwise 3x3 + pointwise w0 -> w1, expand 1)
        fixed = 3 * widths[0] * 9 * side**2 + widths[0] * 9 * side**2 + widths[0] * widths[1] * side**2
        # table[block, kernel choice, expand choice]: MACs of that block when active
        self.table = np.zeros((N_BLOCKS, len(KS_CHOICES), len(E_CHOICES)), dtype=np.float64)
        in_ch = widths[1]
        for stage, (out_ch, stride, use_se) in enumerate(zip(widths[2:7], STAGE_STRIDES, STAGE_SE)):
            for j in range(MAX_DEPTH):
                out_side = math.ceil(side / stride) if j == 0 else side
                block_in = in_ch if j == 0 else out_ch
                for ei, e in enumerate(E_CHOICES):
                    mid = make_divisible(round(block_in * e))
                    se = 2 * mid * make_divisible(mid // SE_REDUCTION) if use_se else 0
                    pointwise = block_in * mid * side**2 + mid * out_ch * out_side**2 + se
                    for ki, k in enumerate(KS_CHOICES):
                        self.table[stage * MAX_DEPTH + j, ki, ei] = pointwise + mid * k * k * out_side**2
                side = out_side
            in_ch = out_ch
        fixed += widths[6] * widths[7] * side**2 + widths[7] * widths[8] + widths[8] * N_CLASSES
        self.fixed = float(fixed)

    def __call__(self, configs: np.ndarray) -> np.ndarray:
        """MFLOPs of canonical ``configs`` (shape ``(n, 45)``): float64, shape ``(n,)``."""
        arr = np.asarray(configs, dtype=np.int64).reshape(-1, N_RAW)
        ks, es = arr[:, KS_COLS], arr[:, E_COLS]
        ki = np.searchsorted(KS_CHOICES, np.where(ks == 0, KS_CHOICES[0], ks))
        ei = np.searchsorted(E_CHOICES, np.where(es == 0, E_CHOICES[0], es))
        per_block = self.table[np.arange(N_BLOCKS)[None, :], ki, ei]
        return (self.fixed + (per_block * active_mask(arr)).sum(axis=1)) / 1e6


def encode_raw(configs: np.ndarray) -> np.ndarray:
    """The method's raw encoding: the 45 integers as float32, shape ``(n, 45)`` (inactive blocks 0)."""
    return np.asarray(configs, dtype=np.float32).reshape(-1, N_RAW)


def encode_onehot(configs: np.ndarray, resolution: int) -> np.ndarray:
    """OFA's accuracy-predictor encoding (``AccuracyPredictor.spec2feats``): per block a one-hot of the
    kernel size (60), then of the expand ratio (60), inactive blocks all-zero, then the resolution bucket (8).

    Returns:
        float32, shape ``(n, 128)``.
    """
    arr = np.asarray(configs, dtype=np.int64).reshape(-1, N_RAW)
    if not R_MIN <= resolution < R_MIN + R_BUCKET * N_R_BUCKETS:
        raise UnknownArchitectureError(
            f"ofa_mbv3: resolution {resolution} is outside the accuracy predictor's range "
            f"{R_MIN}..{R_MIN + R_BUCKET * N_R_BUCKETS - 1}"
        )
    out = np.zeros((arr.shape[0], N_ONEHOT), dtype=np.float32)
    rows = np.arange(arr.shape[0])[:, None]
    blocks = np.arange(N_BLOCKS)[None, :]
    for offset, values, choices in ((0, arr[:, KS_COLS], KS_CHOICES), (3 * N_BLOCKS, arr[:, E_COLS], E_CHOICES)):
        idx = np.searchsorted(choices, np.where(values == 0, choices[0], values))
        out[rows, offset + 3 * blocks + idx] = values != 0
    out[:, 6 * N_BLOCKS + (resolution - R_MIN) // R_BUCKET] = 1.0
    return out
