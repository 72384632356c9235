"""The contract every search space obeys, parametrised over NAS-Bench-201, NAS-Bench-101 (a pool of a
few cells), OFA MobileNetV3 (a small pool), a Tune-domain subset of NAS-Bench-201, typed parameters and a
sampled Tune space: features shape and dtype, the
``arch_str`` / ``decode`` / ``params`` / ``describe`` round trips, mutate / nearest staying in the pool, and
neighbours being the nearest other architectures.
Built from the spaces' arithmetic alone: no benchmark file is needed."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from weaknas_ray.interfaces import SearchSpace
from weaknas_ray.spaces import nasbench101 as nb101
from weaknas_ray.spaces.nasbench201 import EDGES, OPS, NASBench201Space
from weaknas_ray.spaces.ofa_mbv3 import OFAMobileNetV3Space


def nb201() -> SearchSpace:
    return NASBench201Space(np.array(list(itertools.product(range(len(OPS)), repeat=len(EDGES)))))


def nb101_cells() -> SearchSpace:
    """Every 4-vertex diamond and chain cell over the three NAS-Bench-101 ops (canonical, deduplicated)."""
    diamond = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    chain = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    cells = {}
    for matrix in (diamond, chain):
        for a, b in itertools.product((nb101.CONV1X1, nb101.CONV3X3, nb101.MAXPOOL3X3), repeat=2):
            pruned, ops, digest = nb101.canonical(matrix, [nb101.INPUT, a, b, nb101.OUTPUT])
            cells[digest] = nb101.pad_cell(pruned, ops)
    hashes = sorted(cells)
    return nb101.NASBench101Space(np.array(hashes), np.stack([cells[h][0] for h in hashes]),
                                  np.stack([cells[h][1] for h in hashes]))


def ofa() -> SearchSpace:
    from weaknas_ray.benchmarks.ofa.pool import build_pool

    return OFAMobileNetV3Space(build_pool(40, 200.0, 900.0, 224, 0), resolution=224)


def tune_domains() -> SearchSpace:
    pytest.importorskip("ray.tune")
    from ray import tune

    from weaknas_ray.drivers.tune_space import space_from_domains

    return space_from_domains({"e1_0": tune.choice(["nor_conv_3x3", "skip_connect"]), "e3_2": "none"}, nb201())


def typed_params() -> SearchSpace:
    """Every kind of typed parameter, enumerated (HPOLib's shape)."""
    from weaknas_ray.spaces.param_space import ParamSpace
    from weaknas_ray.spaces.params import categorical, integer, ordinal

    return ParamSpace([categorical("act", ["relu", "tanh"]), ordinal("lr", [1e-4, 1e-3, 1e-2]),
                       ordinal("size", ["s", "m", "l"]), integer("layers", 1, 3)])  # fmt: skip


def tune_sampled() -> SearchSpace:
    """A sampled pool over Tune's continuous domains, nested keys and a numeric choice."""
    pytest.importorskip("ray.tune")
    from ray import tune

    from weaknas_ray.drivers.tune_space import TuneSpace

    return TuneSpace({"lr": tune.loguniform(1e-4, 1e-1), "opt": {"m": tune.uniform(0.0, 0.9)},
                      "batch": tune.choice([16, 32, 64, 128]), "seed": 3}, pool_size=60, seed=0)  # fmt: skip


SPACES = {"nasbench201": nb201, "nasbench101": nb101_cells, "ofa_mbv3": ofa, "tune-domains": tune_domains,
          "typed-params": typed_params, "tune-sampled": tune_sampled}


@pytest.fixture(scope="module", params=sorted(SPACES))
def space(request) -> SearchSpace:
    return SPACES[request.param]()


def sample(space: SearchSpace) -> np.ndarray:
    return np.unique(np.random.default_rng(0).integers(0, len(space), size=min(len(space), 12)))


def test_features_are_a_float32_row_per_architecture(space):
    X = space.features
    assert X.dtype == np.float32 and X.ndim == 2 and X.flags.c_contiguous
    assert X.shape[0] == len(space) > 1 and np.isfinite(X).all()
    assert len(np.unique(X, axis=0)) == len(space)  # the encoding tells architectures apart


def test_arch_str_decode_and_params_round_trip(space):
    choices = space.param_choices()
    for i in sample(space):
        i = int(i)
        assert space.index_of(space.arch_str(i)) == i
        params = space.params(i)
        assert isinstance(params, dict) and params
        if choices:
            assert set(params) == set(choices) and all(params[k] in choices[k] for k in choices)
        assert space.index_of(space.decode(i)) == i


def test_describe_gives_one_entry_per_index(space):
    idx = sample(space)
    for column, values in space.describe(idx).items():
        assert len(values) == len(idx), column


def test_mutate_and_nearest_stay_in_the_pool(space):
    rng = np.random.default_rng(1)
    for i in sample(space):
        for move in (space.mutate, space.nearest):
            j = move(int(i), rng)
            assert isinstance(j, int) and 0 <= j < len(space) and j != int(i)


def test_neighbours_are_the_nearest_other_architectures(space):
    """``neighbours`` (WeakNAS's local stall escape, and ``nearest``): sorted, in the pool, never the
    architecture itself, and ``nearest`` draws from them."""
    rng = np.random.default_rng(2)
    for i in sample(space):
        near = space.neighbours(int(i))
        assert near.dtype == np.int64 and near.size and int(i) not in near
        assert np.all(np.diff(near) > 0) and 0 <= near.min() and near.max() < len(space)
        assert space.nearest(int(i), rng) in near


@pytest.mark.parametrize("method", ["tpe", "gp"])
def test_optuna_peers_search_every_space_by_its_parameters(space, method):
    """TPE and GP run on every family: their suggestions land on pool architectures (the closest one where
    a suggestion names none), each told that architecture's value, and every query is distinct."""
    from weaknas_ray.engine import make_optimizer

    values = np.random.default_rng(3).normal(size=len(space))
    opt = make_optimizer(method, space, min(14, len(space) - 1), 0)
    while not opt.finished:
        batch = opt.ask()
        opt.tell(batch, values[batch])
    told = opt.history.indices
    assert len(told) == len(set(told)) == opt.max_sample
    for trial in opt._study.trials:
        assert trial.value == values[opt._index(trial.params)]
