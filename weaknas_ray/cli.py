"""The ``weaknas-ray`` console entry point: one subcommand per module of ``weaknas_ray.commands``.

Each command module defines ``register(subparsers)`` (adds its parser and sets ``func``) and keeps
heavy imports inside the function it runs, so ``weaknas-ray --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from weaknas_ray.exceptions import WeakNASError

# NOTE: order is the order of `weaknas-ray --help`.
COMMANDS = ["run", "configs", "report", "data", "bench", "tune", "ofa"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="weaknas-ray", description="WeakNAS neural architecture search on Ray (run, configs, report, data, bench, tune, ofa)."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"weaknas_ray.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        # NOTE: our warnings (a fallback data file, a corrupt repeat set aside) are for the user: one line
        # each, without Python's source-line echo.
        warnings.showwarning = lambda message, category, *_, **__: print(
            f"weaknas-ray {args.command}: warning: {message}", file=sys.stderr
        )
        try:
            return int(args.func(args) or 0)
        except WeakNASError as exc:
            print(f"weaknas-ray {args.command}: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
