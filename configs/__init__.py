"""The shipped run configs, installed as the package ``weaknas_ray.configs`` (see setup.py).

``weaknas-ray configs`` lists them; ``--config NAME`` (file name without ``.yaml``) runs one.
"""
