"""Worked examples that train real networks through Ray Tune (``python -m weaknas_ray.examples.<name>``)."""
