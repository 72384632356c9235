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


class _Dim:
    """One searched parameter: its kind (``cat``, ``int``, ``float``), range and scale, its finite values
    where it has them, and its encoding (one-hot, or one column in [0, 1], log-scaled where the domain
    is logarithmic, through the normal CDF for ``randn``)."""

    def __init__(self, path: tuple[str, ...], domain: Any):
        from ray.tune.search.sample import Categorical, Float, Integer, LogUniform, Normal, Quantized

        self.path, self.domain, self.name = path, domain, ".".join(map(str, path))
        sampler = domain.get_sampler()
        self.q = sampler.q if isinstance(sampler, Quantized) else None
        base = sampler.sampler if isinstance(sampler, Quantized) else sampler
        self.log = isinstance(base, LogUniform)
        self.normal = (base.mean, base.sd) if isinstance(base, Normal) else None
        if isinstance(domain, Categorical):
            self.kind, self.categories = "cat", list(domain.categories)
            if not self.categories:
                raise ConfigError(f"tune search space: {self.name} is an empty choice")
        elif isinstance(domain, (Integer, Float)):
            self.kind = "int" if isinstance(domain, Integer) else "float"
            self.lower, self.upper = domain.lower, domain.upper
        else:
            raise ConfigError(f"tune search space: {self.name} has an unsupported {type(domain).__name__} domain")

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "cat" else 1

    def values(self) -> np.ndarray | None:
        """Every raw value (category position, or number), where finitely many; else ``None``."""
        if self.kind == "cat":
            return np.arange(len(self.categories), dtype=np.float64)
        if self.normal is not None:
            return None
        if self.q is not None:
            low, high = np.ceil(self.lower / self.q), np.floor(self.upper / self.q)
            return np.arange(low, high + 1) * self.q if high - low < POOL_SIZE else None
        if self.kind == "int":  # randint's upper bound is exclusive
            return np.arange(self.lower, self.upper, dtype=np.float64) if self.upper - self.lower <= POOL_SIZE else None
        return None

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "cat":
            return rng.integers(len(self.categories), size=n).astype(np.float64)
        return np.atleast_1d(np.asarray(self.domain.sample(size=n, random_state=rng), dtype=np.float64))

    def raw(self, value: Any) -> float:
        """The raw value of a user's value (a category's position)."""
        if self.kind == "cat":
            for position, category in enumerate(self.categories):
                if category == value:
                    return float(position)
            raise UnknownArchitectureError(f"{self.name}: {value!r} is not one of {self.categories}")
        return float(value)

    def value(self, raw: float) -> Any:
        """The trial config's value of a raw value."""
        if self.kind == "cat":
            return self.categories[int(raw)]
        return int(raw) if self.kind == "int" else float(raw)

    def encode(self, raw: np.ndarray) -> np.ndarray:
        """Feature columns ``(n, width)`` of raw values ``(n,)``."""
        if self.kind == "cat":
            return np.eye(len(self.categories), dtype=np.float32)[raw.astype(np.int64)]
        if self.normal is not None:
            from scipy.special import ndtr

            return ndtr((raw - self.normal[0]) / self.normal[1])[:, None].astype(np.float32)
        low, high, x = float(self.lower), float(self.upper), raw
        if self.log:
            low, high, x = np.log(low), np.log(high), np.log(np.maximum(raw, 1e-300))
        span = high - low if high > low else 1.0
        return np.clip((x - low) / span, 0.0, 1.0)[:, None].astype(np.float32)


class TuneSpace(SearchSpace):
    """A pool of candidates over any Tune ``param_space``: every combination where the searched
    parameters are finite and have at most ``pool_size`` combinations, else ``pool_size`` seeded draws
    from the domains (duplicates dropped), extendable by :meth:`extend`. Constants pass through to every
    config. Row ``i`` of ``features`` encodes candidate ``i`` (see ``_Dim``).

    Args:
        param_space: Tune's nested dict of domains and constants.
        pool_size: the most candidates enumerated, and the number drawn when sampling.
        seed: seed of the draws.

    Raises:
        ConfigError: no searched parameter, ``grid_search``, ``sample_from`` or an unsupported domain.
    """

    # NOTE: a user's own trainable gets exactly its param_space: no arch_index/arch keys beside it.
    extra_keys = False

    def __init__(self, param_space: dict[str, Any], pool_size: int = POOL_SIZE, seed: int = 0):
        domains, self.constants = split_param_space(param_space)
        if not domains:
            raise ConfigError("tune search space: no searched parameter (tune.choice, tune.uniform, ...) in param_space")
        if int(pool_size) < 1:
            raise ConfigError(f"tune search space: pool_size must be at least 1, got {pool_size}")
        self.dims = [_Dim(path, domain) for path, domain in domains.items()]
        self.pool_size, self.seed = int(pool_size), int(seed)
        grids = [dim.values() for dim in self.dims]
        size = float(np.prod([len(g) for g in grids], dtype=np.float64)) if all(g is not None for g in grids) else np.inf
        self.enumerated = size <= self.pool_size
        self._raw = np.empty((0, len(self.dims)))
        self._rows: dict[tuple, int] = {}
        self._features = np.empty((0, sum(dim.width for dim in self.dims)), dtype=np.float32)
        if self.enumerated:
            mesh = np.meshgrid(*grids, indexing="ij")
            self._append(np.stack([m.reshape(-1) for m in mesh], axis=1))
        else:
            self.extend(self.pool_size)
        self.name = f"tune[{len(self.dims)} parameters, {'all' if self.enumerated else 'sampled'} {len(self)}]"

    @property
    def features(self) -> np.ndarray:
        return self._features

    def extend(self, n: int) -> int:
        """Draw ``n`` more candidates (seeded by the pool's size), keeping the new distinct ones; returns
        how many were added (none for an enumerated pool, which holds every candidate)."""
        if self.enumerated or n <= 0:
            return 0
        rng = np.random.default_rng([self.seed, len(self._raw)])
        return self._append(np.stack([dim.sample(int(n), rng) for dim in self.dims], axis=1))

    def add(self, config: dict[str, Any]) -> int:
        """The index of a user's config (e.g. a ``points_to_evaluate`` entry), appended when new."""
        before = len(self)
        self._append(self._raw_row(config)[None, :], check=True)
        return self._rows[tuple(self._raw_row(config))] if len(self) == before else len(self) - 1

    def _raw_row(self, config: dict[str, Any]) -> np.ndarray:
        row = []
        for dim in self.dims:
            node = config
            for key in dim.path:
                if not isinstance(node, dict) or key not in node:
                    raise UnknownArchitectureError(f"tune search space: config {config!r} has no value for {dim.name}")
                node = node[key]
            row.append(dim.raw(node))
        return np.asarray(row, dtype=np.float64)

    def _append(self, raw: np.ndarray, check: bool = False) -> int:
        keep = []
        for row in raw:
            key = tuple(row.tolist())
            if key not in self._rows:
                if check and self.enumerated:
                    raise UnknownArchitectureError(f"{self.name}: {self._config(row)} is outside the search space")
                self._rows[key] = len(self._raw) + len(keep)
                keep.append(row)
        if keep:
            new = np.asarray(keep)
            self._raw = np.concatenate([self._raw, new])
            columns = [dim.encode(new[:, j]) for j, dim in enumerate(self.dims)]
            self._features = np.ascontiguousarray(np.concatenate([self._features, np.concatenate(columns, axis=1)]))
        return len(keep)

    def _config(self, row: np.ndarray) -> dict[str, Any]:
        return merge_config(self.constants, {dim.path: dim.value(raw) for dim, raw in zip(self.dims, row)})

    def params(self, index: int) -> dict[str, Any]:
        """The trial config: the constants with every searched value set."""
        return self._config(self._raw[self.check_indices(index)[0]])

    def decode(self, index: int) -> dict[str, Any]:
        return {dim.name: dim.value(raw) for dim, raw in zip(self.dims, self._raw[self.check_indices(index)[0]])}

    def arch_str(self, index: int) -> str:
        return ",".join(f"{key}={value!r}" for key, value in self.decode(index).items())

    def index_of(self, arch: Any) -> int:
        """The index of a config (nested like ``param_space``, or flat by dotted name) or an ``arch_str``."""
        if isinstance(arch, str):
            for index in range(len(self)):
                if self.arch_str(index) == arch:
                    return index
            raise UnknownArchitectureError(f"{self.name}: no candidate {arch!r}")
        if isinstance(arch, dict) and all(dim.name in arch for dim in self.dims):
            arch = merge_config({}, {dim.path: arch[dim.name] for dim in self.dims})
        key = tuple(self._raw_row(arch).tolist())
        if key not in self._rows:
            raise UnknownArchitectureError(f"{self.name}: {arch!r} is not in the candidate pool")
        return self._rows[key]

    def param_choices(self) -> dict[str, list] | None:
        """Every value per parameter, for an enumerated pool of top-level parameters (TPE needs it)."""
        if not self.enumerated or any(len(dim.path) > 1 for dim in self.dims):
            return None
        return {dim.name: [dim.value(raw) for raw in dim.values()] for dim in self.dims}


def space_from_param_space(
    param_space: dict[str, Any], base: SearchSpace | None, base_loader, pool_size: int = POOL_SIZE, seed: int = 0,
) -> tuple[SearchSpace, dict[str, Any]]:  # fmt: skip
    """The search space of a Tune ``param_space`` and the constants to add to each config.

    A dict of ``tune.choice`` domains over the fields of ``base`` (or, without ``base``, over NAS-Bench-201's
    edges ``e1_0`` .. ``e3_2``: ``base_loader()`` loads it) restricts that space (:func:`space_from_domains`);
    any other space becomes a :class:`TuneSpace`. Constants (keys with no domain) pass through.
    """
    from ray.tune.search.sample import Categorical

    from weaknas_ray.spaces.nasbench201 import PARAM_NAMES

    domains, constants = split_param_space(param_space)
    top = {path[0]: domain for path, domain in domains.items() if len(path) == 1}
    nb201 = bool(domains) and len(top) == len(domains) and set(top) <= set(PARAM_NAMES) and all(
        isinstance(domain, Categorical) for domain in top.values())
    if base is None and not nb201:
        space = TuneSpace(param_space, pool_size, seed)
        return space, {}
    base = base if base is not None else base_loader()
    fields = base.param_choices() or {}
    named = {".".join(path): domain for path, domain in domains.items()}
    fixed = {key: value for key, value in constants.items() if key in fields}
    rest = {key: value for key, value in constants.items() if key not in fields}
    return space_from_domains({**named, **fixed}, base), rest
