"""``weaknas-ray ofa pack|export|check-surrogate``: OFA MobileNetV3 data packing, answer export, surrogate check."""

from __future__ import annotations

import argparse
import json

from weaknas_ray.exceptions import ConfigError

# NOTE: the published batch-norm recalibration (2,000 training images in batches of 200); an exported
# subnet must be recalibrated exactly as the run measured it, so --run takes the run's own values.
CALIB = {"calib_images": 2000, "calib_batch": 200, "data_seed": 0}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ofa", help="OFA MobileNetV3: pack ImageNet, export a subnet, check the surrogate")
    tools = parser.add_subparsers(dest="tool", required=True, metavar="TOOL")

    pack = tools.add_parser("pack", help="decode an ImageNet split folder once into uint8 .npy shards")
    pack.add_argument("source", help="a <wnid>/*.JPEG folder, e.g. imagenet/val")
    pack.add_argument("dest", help="output folder; point benchmark.imagenet at its parent (holding val/ and train/)")
    pack.add_argument("--resolution", type=int, default=236, help="evaluation resolution (default 236)")
    pack.add_argument("--shard-size", type=int, default=5000, help="images per shard (default 5000)")
    pack.add_argument("--workers", type=int, default=8, help="decoding threads (default 8)")
    pack.set_defaults(func=_pack)

    export = tools.add_parser("export", help="write a subnet as OFA JSON config (and standalone state dict)")
    which = export.add_mutually_exclusive_group(required=True)
    which.add_argument("--arch", help="a subnet string 'ks=...|e=...|d=...|r=236' (a result row's arch)")
    which.add_argument("--run", help="a run's output folder: export a repeat's final answer (final_top1.parquet)")
    export.add_argument("--method", help="with --run: the method (default: the run's first method with final answers)")
    export.add_argument("--repeat", type=int, help="with --run: the repeat (default: the best answer)")
    export.add_argument("--out", required=True, help="output folder")
    export.add_argument("--weights", help="supernet checkpoint: also write subnet.pth and net.config")
    export.add_argument(
        "--calib", help="with --weights: a train split folder (or packed shards) to recalibrate batch norm"
    )
    for flag, text in (("--calib-images", "calibration images"), ("--calib-batch", "calibration batch"),
                       ("--data-seed", "seed of the calibration draw")):
        key = flag[2:].replace("-", "_")
        export.add_argument(flag, type=int, help=f"{text} (default: the --run's benchmark.{key}, else {CALIB[key]})")
    export.set_defaults(func=_export)

    check = tools.add_parser("check-surrogate", help="Kendall tau of OFA's accuracy predictor vs DyNAS-T measurements")
    check.add_argument("--data-dir", help="data root holding ofa/acc_predictor.pth and ofa/dynast/")
    check.add_argument("--predictor-path", help="explicit accuracy-predictor checkpoint")
    check.set_defaults(func=_check)


def _pack(args: argparse.Namespace) -> int:
    from weaknas_ray.benchmarks.ofa.imagenet import pack_split

    out = pack_split(args.source, args.dest, args.resolution, args.shard_size, args.workers)
    print(f"packed {args.source} at {args.resolution} px into {out}")
    return 0


def _answer(run: str, method: str | None, repeat: int | None) -> tuple[str, dict]:
    """The arch string and record of a run's final answer (best reported value unless ``repeat`` is given) of
    ``method`` (``None``: the first method with final answers, in the run's method order).

    Raises:
        ConfigError: no final answers of ``method`` (or that repeat) in the run.
    """
    import pandas as pd

    from weaknas_ray.exceptions import BenchmarkDataError

    try:
        frame = pd.read_parquet(f"{run}/final_top1.parquet")
    except (OSError, ValueError) as exc:
        raise BenchmarkDataError(f"--run {run}: cannot read final_top1.parquet ({exc})") from exc
    method = method or (str(frame["method"].iloc[0]) if len(frame) else "weaknas")
    rows = frame[(frame["method"] == method) & ((frame["repeat"] == repeat) if repeat is not None else True)]
    if rows.empty:
        raise ConfigError(
            f"--run {run}: no final answer of method {method!r}" + (f" repeat {repeat}" if repeat is not None else "")
        )
    best = rows.loc[rows["reported_value"].idxmax()]
    extra = {
        "method": method,
        "repeat": int(best["repeat"]),
        "seed": int(best["seed"]),
        "reported_value": float(best["reported_value"]),
    }
    return str(best["arch"]), extra


def _export(args: argparse.Namespace) -> int:
    from weaknas_ray.benchmarks.ofa.export import export_subnet
    from weaknas_ray.benchmarks.ofa.imagenet import open_split
    from weaknas_ray.spaces.ofa_arch import parse_arch_str

    text, extra = (args.arch, {}) if args.arch else _answer(args.run, args.method, args.repeat)
    if args.calib and not args.weights:
        raise ConfigError("--calib recalibrates the exported weights: give --weights too")
    config, resolution = parse_arch_str(text)
    calib = dict(CALIB)
    if args.run:
        from weaknas_ray.results.records import RunStore

        ran = RunStore(args.run).load_config()["benchmark"]
        calib.update({k: ran[k] for k in CALIB if ran.get(k) is not None})
    calib.update({k: getattr(args, k) for k in CALIB if getattr(args, k) is not None})
    paths = export_subnet(
        config, resolution, args.out, weights=args.weights, calib=open_split(args.calib) if args.calib else None,
        extra=extra, **calib,
    )
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=1))
    return 0


def _check(args: argparse.Namespace) -> int:
    from weaknas_ray.benchmarks.ofa.surrogate import AccuracyPredictor, kendall_tau_check, locate_predictor

    result = kendall_tau_check(AccuracyPredictor(locate_predictor(args.predictor_path, args.data_dir)), args.data_dir)
    print(
        f"Kendall tau {result.tau:.4f} (p = {result.p_value:.2g}) between OFA's accuracy predictor and measured "
        f"top-1 of {result.n_unique} unique subnets ({result.n_rows} rows, w1.0 supernet, 224 px) in "
        f"{', '.join(result.files)}"
    )
    return 0
