"""Typed parameters and their space: the encoding of each kind (the log rule included), enumeration order,
sampled pools, look-ups, the one-step mutations evolution uses, and the errors a bad parameter gets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError
from weaknas_ray.spaces.param_space import ParamSpace, ParamView
from weaknas_ray.spaces.params import categorical, floating, integer, ordinal


def hpo_like() -> ParamSpace:
    return ParamSpace([categorical("act", ["relu", "tanh"]), ordinal("batch", [64, 8, 32, 16]),
                       ordinal("lr", [5e-4, 1e-3, 1e-2, 1e-1]), ordinal("dropout", [0.0, 0.3, 0.6]),
                       ordinal("size", ["small", "medium", "large"])])  # fmt: skip


def test_each_kind_is_encoded_in_its_columns_and_scale():
    space = hpo_like()
    assert len(space) == 2 * 4 * 4 * 3 * 3 and space.features.shape == (len(space), 2 + 4)
    batch, lr, dropout, size = space.parameters[1:]
    assert batch.choices == (8, 16, 32, 64) and not batch.log  # sorted; spans 8x: linear
    assert lr.log and not dropout.log  # 200x: log; includes 0: linear
    assert np.allclose(batch.encode(np.arange(4))[:, 0], [0, 8 / 56, 24 / 56, 1])
    assert np.allclose(lr.encode(np.arange(4))[:, 0], np.log([5e-4, 1e-3, 1e-2, 1e-1] / np.float64(5e-4)) / np.log(200))
    assert np.allclose(size.encode(np.arange(3))[:, 0], [0, 0.5, 1])  # not numbers: by position
    assert not integer("n", 1, 9).log and integer("n", 1, 100).log and not integer("n", 1, 100, log=False).log
    assert space.features.min() == 0 and space.features.max() == 1


def test_enumeration_runs_the_first_parameter_slowest():
    space = hpo_like()
    grids = [p.choices for p in space.parameters]
    for index, combo in enumerate(itertools.islice(itertools.product(*grids), 0, None, 17)):
        assert tuple(space.decode(index * 17).values()) == combo
    assert space.index_of(space.decode(100)) == 100 and space.index_of(space.arch_str(100)) == 100
    assert space.param_choices() == {p.name: list(p.choices) for p in space.parameters}


def test_sampled_pool_is_seeded_extendable_and_finds_the_closest_candidate():
    params = [floating("lr", 1e-5, 1e-1, log=True), integer("layers", 1, 8), floating("m", 0.0, 1.0, step=0.25),
              floating("noise", normal=(0.0, 1.0))]
    space = ParamSpace(params, pool_size=40, seed=3)
    again = ParamSpace(params, pool_size=40, seed=3)
    assert not space.enumerated and len(space) == 40 and space.param_choices() is None
    assert np.array_equal(space.features, again.features)
    raw = space.raw
    assert (raw[:, 0] >= 1e-5).all() and (raw[:, 0] <= 1e-1).all() and set(raw[:, 1]) <= set(range(1, 9))
    assert set(raw[:, 2]) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    target = space.decode(7)
    assert space.closest({**target, "lr": target["lr"] * 1.0001}) == 7
    assert space.extend(5) == 5 and len(space) == 45
    new = {"lr": 0.0123, "layers": 2, "m": 0.5, "noise": 0.0}
    assert space.add(new) == 45 and space.add(new) == 45
    with pytest.raises(UnknownArchitectureError, match="lr: 2 is outside"):
        space.add({**new, "lr": 2})


def test_mutation_moves_one_parameter_one_step():
    """Evolution's mutation: another category, or the neighbouring ordinal value, never a jump."""
    space = hpo_like()
    rng = np.random.default_rng(0)
    for index in rng.integers(0, len(space), size=40):
        before, child = space.raw[index], space.raw[space.mutate(int(index), rng)]
        changed = np.flatnonzero(before != child)
        assert changed.size == 1
        if changed[0] > 0:  # an ordinal parameter: next value up or down
            assert abs(before[changed[0]] - child[changed[0]]) == 1


def test_neighbours_are_the_one_step_edits():
    space = hpo_like()
    index = space.index_of({"act": "relu", "batch": 16, "lr": 1e-3, "dropout": 0.0, "size": "large"})
    near = [space.decode(int(i)) for i in space.neighbours(index)]
    # act flips (1), batch 8 or 32 (2), lr 5e-4 or 1e-2 (2), dropout 0.3 (1), size medium (1)
    assert len(near) == 7
    assert {"act": "relu", "batch": 32, "lr": 1e-3, "dropout": 0.0, "size": "large"} in near


def test_view_of_a_categorical_space_and_of_a_space_without_parameters():
    from weaknas_ray.engine.testing import GridSpace
    from weaknas_ray.spaces import ArraySpace

    space = GridSpace({"e0": ["a", "b"], "e1": ["c", "d", "e"]})
    view = ParamView(space)
    assert all(p.kind == "categorical" for p in view.parameters)
    assert view.index(view.values(5)) == 5
    with pytest.raises(ConfigError, match="'plain' has neither typed parameters"):
        ParamView(ArraySpace(np.eye(3), name="plain"))


@pytest.mark.parametrize("make, message", [
    (lambda: categorical("a", []), "at least one choice"),
    (lambda: categorical("a", ["x", "x"]), "repeat"),
    (lambda: ordinal("a", [0.0, 1.0], log=True), "log scale needs positive numbers"),
    (lambda: integer("a", 5, 1), "low <= high"),
    (lambda: integer("a", 0, 9, log=True), "log scale needs low > 0"),
    (lambda: floating("a", 1.0, 0.5), "low <= high"),
    (lambda: floating("a", 0.0, 1.0, step=0), "step must be > 0"),
    (lambda: floating("a", normal=(0.0, 0.0)), "sd > 0"),
    (lambda: ParamSpace([categorical("a", [1]), categorical("a", [2])]), "names repeat"),
    (lambda: ParamSpace([floating("a", 0.0, 1.0)]), "no finite pool"),
])  # fmt: skip
def test_bad_parameters_are_refused_naming_the_problem(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
