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
from weaknas_ray.spaces.param_space import ParamSpace
from weaknas_ray.spaces.params import Param, categorical, floating, integer, ordinal


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


# ----- any Tune search space -------------------------------------------------------------------

# NOTE: the published MobileNet search samples 10,000 subnets; a sampled pool has this size by default.
POOL_SIZE = 10_000


def split_param_space(param_space: dict[str, Any], prefix: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """``(domains, constants)``: the searched leaves of a Tune ``param_space`` by key path (a tuple), and
    everything else as a nested dict passed to every trial untouched.

    Raises:
        ConfigError: a ``grid_search`` or ``sample_from`` leaf (named by its path), which no pool of
            independent candidates can express.
    """
    from ray.tune.search.sample import Domain, Function

    domains: dict[tuple[str, ...], Any] = {}
    constants: dict[str, Any] = {}
    for key, value in param_space.items():
        path = (*prefix, key)
        where = ".".join(map(str, path))
        if isinstance(value, dict) and set(value) == {"grid_search"}:
            raise ConfigError(f"tune search space: {where} is a grid_search; WeakNASSearcher samples candidates "
                              "from a pool, so give tune.choice(...) instead")
        if isinstance(value, Function):
            raise ConfigError(f"tune search space: {where} is a sample_from; WeakNASSearcher needs a domain it can "
                              "encode for its predictor (choice, randint, uniform, loguniform, randn, ...)")
        if isinstance(value, dict):
            inner, fixed = split_param_space(value, path)
            domains.update(inner)
            if fixed or not inner:
                constants[key] = fixed
        elif isinstance(value, Domain):
            domains[path] = value
        else:
            constants[key] = value
    return domains, constants


def merge_config(constants: dict[str, Any], values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    """A deep copy of ``constants`` with each key path of ``values`` set."""
    import copy

    config = copy.deepcopy(constants)
    for path, value in values.items():
        node = config
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return config


# NOTE: how a numeric tune.choice of more than two values is encoded: as an ordered (ordinal) parameter,
# Syne Tune's advice, or as the user wrote it ("categorical": one-hot, every pair equally far apart).
NUMERIC_CHOICES = ("ordinal", "categorical")


def param_from_domain(name: str, domain: Any, numeric_choices: str = "ordinal") -> Param:
    """The typed parameter of one Tune domain: ``choice`` -> categorical (ordinal for more than two distinct
    numbers, unless ``numeric_choices="categorical"``), ``randint`` / ``qrandint`` / ``lograndint`` -> integer
    (Tune's upper bound exclusive, a quantized one inclusive), ``uniform`` / ``quniform`` / ``loguniform`` /
    ``qloguniform`` -> float, ``randn`` -> float with a normal prior.

    Raises:
        ConfigError: an empty choice or an unsupported domain, naming the parameter.
    """
    from ray.tune.search.sample import Categorical, Float, Integer, LogUniform, Normal, Quantized

    sampler = domain.get_sampler()
    q = sampler.q if isinstance(sampler, Quantized) else None
    base = sampler.sampler if isinstance(sampler, Quantized) else sampler
    log = True if isinstance(base, LogUniform) else None
    if isinstance(domain, Categorical):
        categories = list(domain.categories)
        if not categories:
            raise ConfigError(f"tune search space: {name} is an empty choice")
        numbers = all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in categories)
        if numeric_choices == "ordinal" and numbers and len(set(categories)) > 2:
            return ordinal(name, categories)
        return categorical(name, categories)
    if isinstance(domain, Integer):
        return integer(name, int(domain.lower), int(domain.upper) - (0 if q else 1), log=log, step=int(q or 1))
    if isinstance(domain, Float):
        if isinstance(base, Normal):
            return floating(name, normal=(base.mean, base.sd), step=q)
        return floating(name, domain.lower, domain.upper, log=bool(log), step=q)
    raise ConfigError(f"tune search space: {name} has an unsupported {type(domain).__name__} domain")


class TuneSpace(ParamSpace):
    """A pool of candidates over any Tune ``param_space``: the typed parameters of its domains
    (:func:`param_from_domain`) in a :class:`~weaknas_ray.spaces.param_space.ParamSpace`, every combination when
    finite and at most ``pool_size``, else ``pool_size`` seeded draws, extendable by :meth:`extend`. Parameter
    names are the dotted key paths; constants pass through to every config.

    Args:
        param_space: Tune's nested dict of domains and constants.
        pool_size: the most candidates enumerated, and the number drawn when sampling.
        seed: seed of the draws.
        numeric_choices: ``"ordinal"`` (default) or ``"categorical"``, see :data:`NUMERIC_CHOICES`.

    Raises:
        ConfigError: no searched parameter, ``grid_search``, ``sample_from`` or an unsupported domain.
    """

    # NOTE: a user's own trainable gets exactly its param_space: no arch_index/arch keys beside it.
    extra_keys = False

    def __init__(self, param_space: dict[str, Any], pool_size: int = POOL_SIZE, seed: int = 0,
                 numeric_choices: str = "ordinal"):  # fmt: skip
        domains, self.constants = split_param_space(param_space)
        if not domains:
            raise ConfigError("tune search space: no searched parameter (tune.choice, tune.uniform, ...) in param_space")
        if numeric_choices not in NUMERIC_CHOICES:
            raise ConfigError(f"tune search space: numeric_choices must be one of {NUMERIC_CHOICES}, got {numeric_choices!r}")
        if int(pool_size) < 1:
            raise ConfigError(f"tune search space: pool_size must be at least 1, got {pool_size}")
        self.paths = list(domains)
        params = [param_from_domain(".".join(map(str, path)), domain, numeric_choices) for path, domain in domains.items()]
        super().__init__(params, pool_size=pool_size, seed=seed)
        self.name = f"tune[{len(params)} parameters, {'all' if self.enumerated else 'sampled'} {len(self)}]"

    def _flat(self, config: dict[str, Any]) -> dict[str, Any]:
        """A config nested like ``param_space`` (or already flat by dotted name) -> ``{dotted name: value}``."""
        if all(p.name in config for p in self.parameters):
            return {p.name: config[p.name] for p in self.parameters}
        flat = {}
        for path, param in zip(self.paths, self.parameters):
            node = config
            for key in path:
                if not isinstance(node, dict) or key not in node:
                    raise UnknownArchitectureError(f"tune search space: config {config!r} has no value for {param.name}")
                node = node[key]
            flat[param.name] = node
        return flat

    def add(self, config: dict[str, Any]) -> int:
        """The index of a user's config (e.g. a ``points_to_evaluate`` entry), appended when new."""
        return super().add(self._flat(config))

    def params(self, index: int) -> dict[str, Any]:
        """The trial config: the constants with every searched value set."""
        return merge_config(self.constants, dict(zip(self.paths, self.decode(index).values())))

    def index_of(self, arch: Any) -> int:
        """The index of a config (nested like ``param_space``, or flat by dotted name) or an ``arch_str``."""
        return super().index_of(arch if isinstance(arch, str) else self._flat(arch))

    def param_choices(self) -> dict[str, list] | None:
        """Every value per parameter, for an enumerated pool of top-level parameters."""
        return None if any(len(path) > 1 for path in self.paths) else super().param_choices()


def space_from_param_space(
    param_space: dict[str, Any], base: SearchSpace | None, base_loader, pool_size: int = POOL_SIZE, seed: int = 0,
    numeric_choices: str = "ordinal",
) -> tuple[SearchSpace, dict[str, Any]]:  # fmt: skip
    """The search space of a Tune ``param_space`` and the constants to add to each config.

    A dict of ``tune.choice`` domains over the fields of ``base`` (or, without ``base``, over NAS-Bench-201's
    edges ``e1_0`` .. ``e3_2``: ``base_loader()`` loads it) restricts that space (:func:`space_from_domains`);
    any other space becomes a :class:`TuneSpace` (``pool_size``, ``seed`` and ``numeric_choices`` are its
    arguments). Constants (keys with no domain) pass through.
    """
    from ray.tune.search.sample import Categorical

    from weaknas_ray.spaces.nasbench201 import PARAM_NAMES

    domains, constants = split_param_space(param_space)
    top = {path[0]: domain for path, domain in domains.items() if len(path) == 1}
    nb201 = bool(domains) and len(top) == len(domains) and set(top) <= set(PARAM_NAMES) and all(
        isinstance(domain, Categorical) for domain in top.values())
    if base is None and not nb201:
        space = TuneSpace(param_space, pool_size, seed, numeric_choices)
        return space, {}
    base = base if base is not None else base_loader()
    fields = base.param_choices() or {}
    named = {".".join(path): domain for path, domain in domains.items()}
    fixed = {key: value for key, value in constants.items() if key in fields}
    rest = {key: value for key, value in constants.items() if key not in fields}
    return space_from_domains({**named, **fixed}, base), rest
