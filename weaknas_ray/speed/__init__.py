"""Speed benchmarks (``weaknas-ray bench NAME``): each prints ratios measured side by side in one run.

Not to be confused with :mod:`weaknas_ray.benchmarks`, the benchmark data (NAS-Bench-201, ...)."""
