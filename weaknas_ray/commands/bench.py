"""``weaknas-ray bench NAME``: speed benchmarks that print side-by-side ratios from one run.

Each speed-benchmark module of ``weaknas_ray.speed`` defines ``add_arguments(parser)`` and ``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

# NOTE: name -> module; modules are imported only to build their parser or to run.
BENCHES = {
    "predictor": "weaknas_ray.speed.predictor",
    "runner": "weaknas_ray.speed.runner",
    "ofa-gpu": "weaknas_ray.speed.ofa_gpu",
}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("bench", help="speed benchmarks (predictor, runner, ofa-gpu)")
    benches = parser.add_subparsers(dest="bench", required=True, metavar="NAME")
    for name, target in BENCHES.items():
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name != target:
                raise
            continue  # bench not built yet
        bench = benches.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.add_arguments(bench)
        bench.set_defaults(func=module.main)
