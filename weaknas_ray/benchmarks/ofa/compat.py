"""The one place that imports the ``ofa`` package, working around its import-time dependencies.

``ofa.utils`` imports ``ofa.utils.my_dataloader``, whose random-resize-crop module needs torchvision (it does
not import beside the CPU torch wheel here, and this project does not depend on it). Only OFA's training
pipeline uses those classes, so a stand-in module is registered before the network classes are imported.
``ofa_net(pretrained=True)`` downloads weights; :func:`build_supernet` loads them from a local path instead.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

from weaknas_ray.exceptions import BenchmarkDataError

STANDIN = "ofa.utils.my_dataloader"
# The searched supernet: ofa_mbv3_d234_e346_k357_w1.2.
SUPERNET_KWARGS = {"ks_list": [3, 5, 7], "expand_ratio_list": [3, 4, 6], "depth_list": [2, 3, 4], "width_mult": 1.2}


def load_tensors(path: Path, what: str) -> dict:
    """``torch.load(path, weights_only=True)`` on CPU; a BenchmarkDataError naming ``path`` and ``what`` it
    should be when the file is unreadable, truncated or holds more than tensors (torch's own message then
    suggests ``weights_only=False``, which would run code from the file: never do that here)."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise BenchmarkDataError(f"{path}: not {what} (not a plain tensor file; corrupt, or not a checkpoint)") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchmarkDataError(f"{path}: not {what} ({reason})") from None


def _register_standin() -> None:
    """Put an empty ``ofa.utils.my_dataloader`` in ``sys.modules`` unless the real one already imported."""
    if STANDIN in sys.modules:
        return
    module = types.ModuleType(STANDIN, "weaknas-ray stand-in: OFA's data loaders need torchvision, unused here.")
    module.__all__ = []
    sys.modules[STANDIN] = module


def ofa_modules() -> types.SimpleNamespace:
    """The OFA classes and helpers this project uses, imported behind the stand-in.

    Returns:
        Namespace with ``OFAMobileNetV3``, ``MobileNetV3`` (standalone subnets), ``count_net_flops`` and
        ``set_running_statistics``.
    """
    _register_standin()
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3
    from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics
    from ofa.imagenet_classification.networks import MobileNetV3
    from ofa.utils import count_net_flops

    return types.SimpleNamespace(
        OFAMobileNetV3=OFAMobileNetV3,
        MobileNetV3=MobileNetV3,
        count_net_flops=count_net_flops,
        set_running_statistics=set_running_statistics,
    )


def check_weights(weights: str | os.PathLike | None) -> str:
    """``weights`` as a string, checked at once (in the driver, not later in an actor).

    Raises:
        BenchmarkDataError: ``None``, or a path that does not exist.
    """
    if weights is None:
        raise BenchmarkDataError(
            "benchmark.weights: the supernet oracle needs the ofa_mbv3_d234_e346_k357_w1.2 checkpoint path "
            "(or 'random' for a randomly initialised supernet in tests)"
        )
    if str(weights) != "random" and not Path(weights).expanduser().is_file():
        raise BenchmarkDataError(f"benchmark.weights: supernet checkpoint {str(weights)!r} does not exist")
    return str(weights)


def build_supernet(weights: str | os.PathLike | None, init_seed: int = 0):
    """The OFA MobileNetV3 w1.2 supernet on CPU, in eval mode.

    Args:
        weights: path to a checkpoint (``ofa_mbv3_d234_e346_k357_w1.2`` as OFA publishes it: a dict with
            ``state_dict``, or a bare state dict), or ``"random"`` for a randomly initialised supernet
            (tests and speed benchmarks).
        init_seed: seed of the random initialisation (torch's RNG is forked for it: global state is kept).

    Raises:
        BenchmarkDataError: ``weights`` is ``None``, missing, or not a checkpoint of this supernet.
    """
    import torch

    weights = check_weights(weights)
    net_cls = ofa_modules().OFAMobileNetV3
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed)
            net = net_cls(**SUPERNET_KWARGS)
        return net.eval()
    path = Path(weights).expanduser()
    net = net_cls(**SUPERNET_KWARGS)
    what = "a checkpoint of ofa_mbv3_d234_e346_k357_w1.2"
    state = load_tensors(path, what)
    try:
        net.load_state_dict(state.get("state_dict", state))
    except (RuntimeError, KeyError, ValueError, AssertionError, AttributeError) as exc:
        raise BenchmarkDataError(f"{path}: not {what} ({exc!r})") from exc
    return net.eval()
