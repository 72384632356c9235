"""Search spaces: pools of architectures, their encodings and their oracles."""

from weaknas_ray.spaces.base import ArraySpace, Evaluation, Oracle, SearchSpace, TableOracle

__all__ = ["ArraySpace", "Evaluation", "Oracle", "SearchSpace", "TableOracle"]
