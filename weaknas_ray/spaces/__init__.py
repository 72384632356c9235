"""Search spaces: architecture arithmetic only (encodings, hashing, decoding, mutation).

The interfaces (``SearchSpace``, ``Oracle``, ...) live in :mod:`weaknas_ray.interfaces` and are handed on
here for convenience; loading a benchmark's data is :mod:`weaknas_ray.benchmarks`' job.
"""

from weaknas_ray.interfaces import Evaluation, Oracle, SearchSpace, TableOracle
from weaknas_ray.spaces.array import ArraySpace

__all__ = ["ArraySpace", "Evaluation", "Oracle", "SearchSpace", "TableOracle"]
