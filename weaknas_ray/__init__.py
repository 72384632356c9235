"""weaknas-ray: WeakNAS ("Stronger NAS with Weaker Predictors", NeurIPS 2021) on Ray.

Importing the package is cheap: torch, Ray and OFA are imported lazily by the modules that need them.
Layers (dependencies point down only): ``spaces``/``benchmarks`` -> ``predictors`` -> ``acquisition``
-> ``engine`` -> ``drivers`` -> ``results`` / ``commands`` (CLI).
"""

__version__ = "0.1.0"
