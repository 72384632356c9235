"""``weaknas-ray configs [NAME]``: the shipped run configs, or one of them as YAML to copy and edit."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    text = "list the shipped configs (any of them runs as `weaknas-ray run --config NAME`), or print one"
    parser = sub.add_parser("configs", help=text, description=text)
    parser.add_argument("name", nargs="?", help="print this config's YAML (e.g. to save and edit a copy)")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from weaknas_ray.config import resolve_config, shipped_configs

    if args.name:
        print(resolve_config(args.name).read_text(), end="")
        return 0
    shipped = shipped_configs()
    width = max(map(len, shipped))
    for name, (_, description) in shipped.items():
        print(f"{name:{width}}  {description}")
    return 0
