#!/usr/bin/env python
"""Run a WeakNAS search: ``python run_search.py [--config FILE] [overrides]`` (same as ``weaknas-ray run``)."""

import sys

from weaknas_ray.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
