"""weaknas-ray: WeakNAS ("Stronger NAS with Weaker Predictors", NeurIPS 2021) on Ray.

Importing the package is cheap: torch, Ray and OFA are imported lazily by the modules that need them.
Layers, bottom up (dependencies point down only; docs/architecture.md, checked by tests/test_layers.py):
``interfaces`` -> ``spaces`` -> ``benchmarks`` -> ``predictors`` -> ``acquisition`` -> ``engine`` ->
``config`` -> ``results`` -> ``drivers`` -> ``commands`` / ``cli`` / ``speed``.
"""

__version__ = "0.1.0"
