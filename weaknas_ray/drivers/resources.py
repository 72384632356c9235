"""Resource planning of the Ray runner: how many repeat actors fit the cluster, and whether (and in
what chunks) pool scoring goes out to chunk tasks. Pure arithmetic over the cluster's resources."""

from __future__ import annotations

import inspect
from typing import Any

from weaknas_ray.drivers.repeats import RepeatTask
from weaknas_ray.exceptions import ConfigError


def plan_resources(
    ray_cfg: dict[str, Any], cluster: dict[str, float], n_pool: int, tasks: list[RepeatTask], n_groups: int
) -> tuple[int, int]:
    """How many repeat actors to start, and the rows per pool-scoring chunk (0: score in the actor).

    An actor blocked on its chunk tasks keeps its CPUs, so chunks can only use CPUs no actor holds:
    automatic chunking (``ray.chunk_size: null``) happens only when at least two chunk tasks' worth of CPUs
    stay free after one actor per group of repeats (few repeats on many CPUs, where it pays), with chunks
    sized for those free CPUs; never for repeats on GPUs (they score on their own GPU) or when no method
    scores the pool. A forced ``chunk_size`` keeps ``cpus_per_chunk`` free, fewer actors if need be.

    Raises:
        ConfigError: too few CPUs or GPUs for one repeat actor.
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
    if scoring and (setting is not None or (not ray_cfg["num_gpus_per_repeat"] and free >= 2 * per_chunk)):
        chunk = choose_chunk_size(n_pool, max(_ensemble_size(t) for t in scoring), free / per_chunk, setting)
    if chunk:
        actors = min(actors, int((cpus - per_chunk) // per_repeat))
    if actors < 1:
        raise ConfigError(
            f"ray.cpus_per_repeat: the cluster has {cpus:g} CPUs, too few for one repeat actor "
            f"({per_repeat:g} CPUs)" + (f" plus chunk tasks ({per_chunk:g} CPUs)" if chunk else "")
        )
    return actors, chunk


def _ensemble_size(task: RepeatTask) -> int:
    """E of a task's method: its ``n_members`` setting, else the constructor's default, else 1."""
    from weaknas_ray.engine import method_class

    param = inspect.signature(method_class(task.method).__init__).parameters.get("n_members")
    return int(task.settings.get("n_members", 1 if param is None else param.default))
