"""WeakNAS through Ray Tune on a real training task: a small torch MLP on scikit-learn's digits dataset
(1,797 8 x 8 images, shipped with scikit-learn, no download), its width, depth, learning rate,
activation and dropout searched by :class:`~weaknas_ray.drivers.tune_searcher.WeakNASSearcher` (its
defaults) against Optuna's TPE (``OptunaSearch``) and Tune's random search (``BasicVariantGenerator``) at
the same trial budget.

Run::

    python -m weaknas_ray.examples.digits --trials 40 --seeds 0 1 2 3 4 5 6 7 8 9 --epochs 15

It prints, per method, the best validation accuracy reached after each number of trials (mean, median and
worst seed; trials in the order they were started) and the test accuracy of the best trial. The data
split is fixed (seed 0): 1,078 training, 359 validation and 360 test images; ``seed`` seeds the searcher,
the random search and each trial's weight initialisation.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

# NOTE: small enough for a CI run in seconds, wide enough that the choices matter.
DEFAULTS: dict[str, Any] = {"trials": 40, "seeds": [0, 1, 2], "epochs": 15, "cpus_per_trial": 1.0}
METHODS = ("weaknas", "optuna", "random")
ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")


def param_space(epochs: int, seed: int = 0) -> dict[str, Any]:
    """The searched space plus the constants each trial gets."""
    from ray import tune

    return {
        "width": tune.lograndint(8, 257),  # Optuna takes no stepped log integers
        "depth": tune.randint(1, 5),
        "lr": tune.loguniform(1e-4, 3e-1),
        "activation": tune.choice(list(ACTIVATIONS)),
        "dropout": tune.uniform(0.0, 0.6),
        "epochs": epochs,
        "seed": seed,
    }


def load_split() -> dict[str, np.ndarray]:
    """The fixed digits split (60 / 20 / 20 %, stratified, seed 0), features scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_train, X_rest, y_train, y_rest = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    X_val, X_test, y_val, y_test = train_test_split(X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    return {"X_train": X_train, "y_train": y_train, "X_val": X_val, "y_val": y_val, "X_test": X_test, "y_test": y_test}


def build(config: dict[str, Any]):
    """The MLP a config describes: ``depth`` hidden layers of ``width`` units, each activation + dropout."""
    import torch.nn as nn

    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}[config["activation"]]
    layers, width_in = [], 64
    for _ in range(int(config["depth"])):
        layers += [nn.Linear(width_in, int(config["width"])), act(), nn.Dropout(float(config["dropout"]))]
        width_in = int(config["width"])
    return nn.Sequential(*layers, nn.Linear(width_in, 10))


def train_digits(config: dict[str, Any]) -> None:
    """Tune function trainable: Adam, batches of 64, ``epochs`` epochs; reports ``val_acc`` and
    ``test_acc`` (percent) after every epoch."""
    import torch
    from ray import tune

    torch.set_num_threads(1)
    torch.manual_seed(int(config.get("seed", 0)))
    data = {k: torch.from_numpy(v) for k, v in load_split().items()}
    model = build(config)
    opt = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    loss_fn = torch.nn.CrossEntropyLoss()
    n = data["X_train"].shape[0]
    for _ in range(int(config["epochs"])):
        model.train()
        for batch in torch.randperm(n).split(64):
            opt.zero_grad()
            loss_fn(model(data["X_train"][batch]), data["y_train"][batch]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = {f"{part}_acc": 100.0 * float((model(data[f"X_{part}"]).argmax(1) == data[f"y_{part}"]).float().mean())
                   for part in ("val", "test")}  # fmt: skip
        tune.report(acc)


def run_one(method: str, trials: int, seed: int, epochs: int, storage: str, cpus_per_trial: float = 1.0,
            searcher_settings: dict | None = None) -> list[dict[str, float]]:
    """One Tuner run of ``trials`` trials; the trials' final metrics in the order they were started.

    Args:
        method: one of :data:`METHODS`: ``"weaknas"`` (WeakNASSearcher with its defaults, updated by
            ``searcher_settings``), ``"optuna"`` (``OptunaSearch``, TPE seeded by ``seed``) or ``"random"``
            (Tune's ``BasicVariantGenerator``).
    """
    from ray import tune

    num_samples = trials
    if method == "weaknas":
        from weaknas_ray.drivers.tune_searcher import WeakNASSearcher

        search_alg, num_samples = WeakNASSearcher(max_sample=trials, seed=seed, **(searcher_settings or {})), -1
    elif method == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=seed))
    elif method == "random":
        search_alg = tune.search.BasicVariantGenerator(random_state=seed)
    else:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    tuner = tune.Tuner(
        tune.with_resources(train_digits, {"cpu": cpus_per_trial}),
        param_space=param_space(epochs, seed),
        tune_config=tune.TuneConfig(metric="val_acc", mode="max", search_alg=search_alg, num_samples=num_samples,
                                    reuse_actors=True),  # fmt: skip
        run_config=tune.RunConfig(name=f"digits-{method}-{seed}", storage_path=storage, verbose=0),
    )
    results = tuner.fit()
    ordered = sorted(results, key=lambda r: r.metrics.get("trial_id", ""))
    ordered = sorted(ordered, key=lambda r: _trial_number(r.path))
    return [{"val_acc": r.metrics.get("val_acc", float("nan")), "test_acc": r.metrics.get("test_acc", float("nan"))}
            for r in ordered]  # fmt: skip


def _trial_number(path: str) -> int:
    """The start order Tune puts in a trial folder's name (``train_digits_<id>_<n>_...``)."""
    import os

    parts = os.path.basename(path).split("_")
    return next((int(p) for p in parts[3:] if p.isdigit()), 0)


def best_so_far(rows: list[dict[str, float]]) -> np.ndarray:
    """Best validation accuracy after each trial (NaN results count as 0)."""
    return np.maximum.accumulate(np.nan_to_num([r["val_acc"] for r in rows], nan=0.0))


def _settings(text: str) -> dict[str, Any]:
    """``--searcher-settings``: a YAML mapping (safe_load)."""
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{sample_each_iter: 2}}', got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    import os
    import tempfile
    import time

    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=DEFAULTS["trials"])
    parser.add_argument("--seeds", type=int, nargs="+", default=DEFAULTS["seeds"])
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument("--cpus-per-trial", type=float, default=DEFAULTS["cpus_per_trial"])
    parser.add_argument("--num-cpus", type=int, default=None)
    parser.add_argument("--storage", default=None, help="Tune storage folder (default: a temporary one)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--searcher-settings", type=_settings, default={}, metavar="YAML",
                        help="WeakNASSearcher settings over its defaults, e.g. '{sample_each_iter: 2}'")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    storage = args.storage or tempfile.mkdtemp(prefix="digits-")
    curves: dict[str, list[np.ndarray]] = {m: [] for m in args.methods}
    tests: dict[str, list[float]] = {m: [] for m in args.methods}
    for seed in args.seeds:
        for method in curves:
            start = time.time()
            rows = run_one(method, args.trials, seed, args.epochs, storage, args.cpus_per_trial, args.searcher_settings)
            curves[method].append(best_so_far(rows))
            tests[method].append(max(rows, key=lambda r: np.nan_to_num(r["val_acc"]))["test_acc"])
            print(f"seed {seed} {method}: best val_acc {curves[method][-1][-1]:.2f} in {len(rows)} trials "
                  f"({time.time() - start:.0f} s)", flush=True)  # fmt: skip
    marks = sorted({m for m in (5, 10, 20, 30, 40, args.trials) if m <= args.trials})
    print("\nbest val_acc (%) after N trials: mean / median / worst seed over seeds " + " ".join(map(str, args.seeds)))
    print("| method | " + " | ".join(str(m) for m in marks) + " | test acc of best |")
    print("| --- " * (len(marks) + 2) + "|")
    for method, runs in curves.items():
        at = [np.array([r[m - 1] for r in runs]) for m in marks]
        cells = [f"{a.mean():.2f} / {np.median(a):.2f} / {a.min():.2f}" for a in at]
        print(f"| {method} | " + " | ".join(cells) + f" | {np.mean(tests[method]):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
