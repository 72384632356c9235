"""Resource planning of the Ray runner: how many repeat actors fit the cluster, whether (and in what
chunks) pool scoring goes out to chunk tasks, and whether ensemble members are fitted in member tasks.
Pure arithmetic over the cluster's resources."""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

from weaknas_ray.drivers.repeats import RepeatTask
from weaknas_ray.exceptions import ConfigError


class Plan(NamedTuple):
    """What :func:`plan_resources` decided: repeat ``actors``; rows per pool-scoring chunk (0: score in the
    actor); most member tasks per ensemble fit (0: fit in the actor)."""

    actors: int
    chunk_size: int
    member_tasks: int


def plan_resources(
    ray_cfg: dict[str, Any], cluster: dict[str, float], n_pool: int, tasks: list[RepeatTask], n_groups: int
) -> Plan:
    """How many repeat actors to start, the rows per pool-scoring chunk and the member tasks per fit.

    An actor blocked on its chunk tasks keeps its CPUs, so chunks can only use CPUs no actor holds:
    automatic chunking (``ray.chunk_size: null``) happens only when at least two chunk tasks' worth of CPUs
    stay free after one actor per group of repeats (few repeats on many CPUs, where it pays), with chunks
    sized for those free CPUs; never for repeats on GPUs (they score on their own GPU) or when no method
    scores the pool. A forced ``chunk_size`` keeps ``cpus_per_chunk`` free, fewer actors if need be.

    Member tasks (``ray.member_tasks: null``) follow the same rule on the same free CPUs (the fit comes
    before the scoring, so they do not compete): one task per member, at most one per free
    ``cpus_per_chunk``, when the widest scoring method's ensemble has E >= 2 members, repeats run one per
    actor (``repeats_per_actor`` 1: a group fits its repeats as one batched model) and both the actor and
    the tasks fit on one thread (where members fitted apart equal the in-actor fit bit for bit); never for
    repeats on GPUs. ``member_tasks: N`` forces at most N tasks (keeping ``cpus_per_chunk`` free); 0 never.

    Raises:
        ConfigError: too few CPUs or GPUs for one repeat actor; member tasks forced for GPU repeats.
    """
    from weaknas_ray.drivers.ray_scoring import choose_chunk_size
    from weaknas_ray.engine import method_class

    cpus, per_repeat, per_chunk = float(cluster.get("CPU", 0)), ray_cfg["cpus_per_repeat"], ray_cfg["cpus_per_chunk"]
    slots = int(cpus // per_repeat)
    if ray_cfg["num_gpus_per_repeat"]:
        gpus = float(cluster.get("GPU", 0))
        slots = min(slots, int(gpus // ray_cfg["num_gpus_per_repeat"]))
        if slots < 1:
            raise ConfigError(f"ray.num_gpus_per_repeat: {ray_cfg['num_gpus_per_repeat']:g} GPUs per repeat but the cluster has {gpus:g}")
    if ray_cfg["max_workers"] is not None:
        slots = min(slots, ray_cfg["max_workers"])
    actors = min(slots, n_groups)
    scoring = [t for t in tasks if method_class(t.method).scores_pool]
    setting, chunk = ray_cfg["chunk_size"], 0
    free = cpus - actors * per_repeat
    widest = max((_ensemble_size(t) for t in scoring), default=1)
    spare = not ray_cfg["num_gpus_per_repeat"] and free >= 2 * per_chunk
    if scoring and (setting is not None or spare):
        chunk = choose_chunk_size(n_pool, widest, free / per_chunk, setting)
    members = _member_tasks(ray_cfg, widest if scoring else 1, free, spare)
    if chunk or (members and ray_cfg["member_tasks"]):
        actors = min(actors, int((cpus - per_chunk) // per_repeat))
    if actors < 1:
        raise ConfigError(
            f"ray.cpus_per_repeat: the cluster has {cpus:g} CPUs, too few for one repeat actor "
            f"({per_repeat:g} CPUs)" + (f" plus chunk tasks ({per_chunk:g} CPUs)" if chunk else "")
        )
    return Plan(actors, chunk, members)


def _member_tasks(ray_cfg: dict[str, Any], widest: int, free: float, spare: bool) -> int:
    """Most member tasks per fit (see :func:`plan_resources`); 0 fits in the actor."""
    setting = ray_cfg["member_tasks"]
    if setting and ray_cfg["num_gpus_per_repeat"]:
        raise ConfigError(
            f"ray.member_tasks: {setting} forced, but repeats run on GPUs (ray.num_gpus_per_repeat: "
            f"{ray_cfg['num_gpus_per_repeat']:g}), where one batched fit is cheapest; set it to null or 0"
        )
    if setting is not None:
        parts = min(int(setting), widest)
    else:
        one_thread = int(ray_cfg["cpus_per_repeat"]) <= 1 and int(ray_cfg["cpus_per_chunk"]) <= 1
        auto = spare and one_thread and ray_cfg["repeats_per_actor"] == 1
        parts = min(widest, int(free // ray_cfg["cpus_per_chunk"])) if auto else 0
    return parts if parts >= 2 else 0


def _ensemble_size(task: RepeatTask) -> int:
    """E of a task's method: its ``n_members`` setting, else the constructor's default, else 1."""
    from weaknas_ray.engine import method_class

    param = inspect.signature(method_class(task.method).__init__).parameters.get("n_members")
    return int(task.settings.get("n_members", 1 if param is None else param.default))
