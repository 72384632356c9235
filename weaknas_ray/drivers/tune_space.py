"""Ray Tune search spaces -> weaknas-ray search spaces.

A Tune user describes NAS-Bench-201 as six categorical domains over op names, e.g.
``{"e1_0": tune.choice(["nor_conv_3x3", "skip_connect"]), ...}``. WeakNAS needs a finite pool with a
feature row per architecture, so such a dict becomes a :class:`SubsetSpace`: the architectures of a base
space (NAS-Bench-201 by default) whose every field lies in the allowed choices. Engine indices are
positions in that subset; ``members`` maps them back to the base space's own index, which is what a
trainable looks up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from weaknas_ray.exceptions import ConfigError, UnknownArchitectureError
from weaknas_ray.interfaces import SearchSpace


class SubsetSpace(SearchSpace):
    """The architectures ``members`` of ``base``, re-indexed ``0..len(members)-1``.

    Decoded forms (``decode``, ``arch_str``, ``params``) are the base space's; ``index_of`` returns the
    position in the subset.

    Args:
        base: the full space.
        members: sorted, distinct base indices, shape ``(m,)``.
        choices: the allowed values per field (``param_choices`` of the subset).
    """

    def __init__(self, base: SearchSpace, members: np.ndarray, choices: dict[str, list]):
        self.base = base
        self.members = np.asarray(members, dtype=np.int64)
        self.choices = choices
        self.name = f"{base.name}[subset of {self.members.size}]"
        self._features = np.ascontiguousarray(base.features[self.members])

    @property
    def features(self) -> np.ndarray:
        return self._features

    def decode(self, index: int) -> Any:
        return self.base.decode(self.base_index(index))

    def arch_str(self, index: int) -> str:
        return self.base.arch_str(self.base_index(index))

    def params(self, index: int) -> dict[str, Any]:
        return self.base.params(self.base_index(index))

    def param_choices(self) -> dict[str, list]:
        return self.choices

    def describe(self, indices: np.ndarray) -> dict[str, list]:
        return self.base.describe(self.members[self.check_indices(indices)])

    def base_index(self, index: int) -> int:
        """The base space's index of subset architecture ``index``."""
        return int(self.members[self.check_indices(index)[0]])

    def local_index(self, base_index: int) -> int:
        """The subset position of base architecture ``base_index``.

        Raises:
            UnknownArchitectureError: the architecture is outside the allowed choices.
        """
        pos = int(np.searchsorted(self.members, base_index))
        if pos >= self.members.size or self.members[pos] != base_index:
            raise UnknownArchitectureError(
                f"{self.name}: architecture {base_index} ({self.base.arch_str(base_index)}) is outside the "
                f"allowed choices {self.choices}"
            )
        return pos

    def index_of(self, arch: Any) -> int:
        return self.local_index(self.base.index_of(arch))

    def mutate(self, index: int, rng: np.random.Generator) -> int:
        """The base space's mutation; a mutant outside the allowed choices is replaced by :meth:`nearest`
        (a subset architecture with the fewest changes)."""
        child = self.base.mutate(self.base_index(index), rng)
        pos = int(np.searchsorted(self.members, child))
        return pos if pos < self.members.size and self.members[pos] == child else self.nearest(index, rng)


def domain_choices(domains: dict[str, Any], full: dict[str, list]) -> dict[str, list]:
    """The allowed values per field of a Tune ``param_space``-style dict.

    Args:
        domains: field -> ``tune.choice([...])``, or a constant (one allowed value). Fields left out
            allow every value.
        full: every field's values (the base space's ``param_choices``).

    Returns:
        field -> allowed values, in the order of ``full``.

    Raises:
        ConfigError: an unknown field, a domain that is not categorical, a value not in ``full``, or an
            empty choice; the message names the field.
    """
    from ray.tune.search.sample import Categorical, Domain

    unknown = sorted(set(domains) - set(full))
    if unknown:
        raise ConfigError(f"tune search space: unknown key(s) {unknown}; the space's keys are {list(full)}")
    allowed = {}
    for key, values in full.items():
        domain = domains.get(key, values)
        if isinstance(domain, Categorical):
            picked = list(domain.categories)
        elif isinstance(domain, Domain):
            raise ConfigError(
                f"tune search space: key {key!r} has a {type(domain).__name__} domain; only categorical "
                f"domains (tune.choice over {values}) or constants describe an architecture"
            )
        else:
            picked = list(domain) if isinstance(domain, (list, tuple)) else [domain]
        bad = [value for value in picked if value not in values]
        if bad or not picked:
            raise ConfigError(f"tune search space: key {key!r} allows {picked}; choose a non-empty subset of {values}")
        allowed[key] = [value for value in values if value in picked]
    return allowed


def space_from_domains(domains: dict[str, Any], base: SearchSpace) -> SearchSpace:
    """``base`` restricted to the architectures a dict of Tune domains allows (``base`` itself when the
    dict allows everything).

    Args:
        domains: see :func:`domain_choices`.
        base: a space with ``param_choices`` (e.g. NAS-Bench-201).

    Raises:
        ConfigError: ``base`` has no named fields, or a domain is invalid (see :func:`domain_choices`).
    """
    full = base.param_choices()
    if full is None:
        raise ConfigError(f"tune search space: the space {base.name!r} has no named categorical fields; pass the space object")
    allowed = domain_choices(domains, full)
    if allowed == full:
        return base
    keep = [i for i in range(len(base)) if all(value in allowed[key] for key, value in base.params(i).items() if key in allowed)]
    return SubsetSpace(base, np.asarray(keep, dtype=np.int64), allowed)


def full_domains(space: SearchSpace) -> dict[str, Any]:
    """``tune.choice`` over every value of every field of ``space``: the ``param_space`` of Tune's own
    random search over the same architectures."""
    from ray import tune

    choices = space.param_choices()
    if choices is None:
        raise ConfigError(f"tune search space: the space {space.name!r} has no named categorical fields")
    return {key: tune.choice(values) for key, values in choices.items()}
