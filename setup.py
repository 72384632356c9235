"""Build script. The metadata lives in setup.cfg; this file only maps the top-level ``configs/`` folder
onto the package ``weaknas_ray.configs``, so the shipped configs stay where a checkout's users look for
them and still go into the wheel (read with ``importlib.resources``)."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["weaknas_ray", "weaknas_ray.*"]), "weaknas_ray.configs"],
    package_dir={"weaknas_ray.configs": "configs"},
)
