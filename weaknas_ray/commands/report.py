"""``weaknas-ray report DIR [DIR ...]``: redraw summary and figures from saved runs, and compare runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from weaknas_ray.commands.run import add_allow_loader


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="redraw summary.json and plots of saved runs; compare several runs")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="output folders of runs")
    parser.add_argument("--log-x", action="store_true", help="logarithmic query axis in curves.png")
    parser.add_argument("--no-dynamics", action="store_true", help="skip search_dynamics.png (t-SNE)")
    parser.add_argument("--compare", metavar="FILE",
                        help="with several DIRs: where the comparison figure goes (default: comparison.png "
                             "in the current folder)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write one Markdown table of every method of the DIRs (the results pages' tables)")
    add_allow_loader(parser)
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from weaknas_ray.results.aggregate import markdown_table, summary_table
    from weaknas_ray.results.plots import plot_curves
    from weaknas_ray.results.records import RunStore, write_text
    from weaknas_ray.results.report import write_report

    stores = [RunStore(d) for d in args.dirs]
    summaries = []
    for store in stores:
        summaries.append(write_report(store, log_x=args.log_x, dynamics=not args.no_dynamics,
                                      allow_loaders=tuple(args.allow_loader)))
        print(f"== {store.root} ({summaries[-1]['benchmark']})\n{summary_table(summaries[-1])}")
    if args.markdown:
        table = markdown_table(summaries, [s.load_config()["search"]["max_sample"] for s in stores])
        write_text(Path(args.markdown), table + "\n")
        print(f"Markdown table written to {args.markdown}")
    if len(stores) > 1:
        args.compare = args.compare or "comparison.png"
        runs = _comparable(stores)
        optima = {(s.load_meta().get("optimum") or {}).get("reported") for s in stores}
        optimum = optima.pop() if len(optima) == 1 else None  # one line only when all runs share it
        kinds = {s.load_meta().get("regret", "difference") for s in stores}
        regret_kind = "log" if kinds == {"log"} and optimum is not None else "difference"
        print(f"comparison written to {plot_curves(runs, Path(args.compare), optimum, args.log_x, regret_kind)}")
    elif args.compare:
        print(f"--compare {args.compare}: one run given, nothing to compare (its own curves.png is redrawn)")
    return 0


def _comparable(stores) -> dict:
    """The runs of :func:`~weaknas_ray.results.plots.plot_curves`: one unprefixed run where the folders hold
    different methods at one budget (rows of one comparison run in parts), else one per folder, its
    methods prefixed by the folder's name."""
    import pandas as pd

    parts = [(s.root.name, s.results(), s.load_config()["search"]["max_sample"]) for s in stores]
    methods = [m for _, results, _ in parts for m in results["method"].unique()]
    if len(set(methods)) == len(methods) and len({budget for *_, budget in parts}) == 1:
        return {"": (pd.concat([results for _, results, _ in parts], ignore_index=True), parts[0][2])}
    return {f"{name}: ": (results, budget) for name, results, budget in parts}
