"""Once-for-All MobileNetV3 (``ofa_mbv3_d234_e346_k357_w1.2``) pieces behind the ``ofa_mbv3`` benchmark.

The arithmetic of subnets (configs, analytic FLOPs, encodings) is :mod:`weaknas_ray.spaces.ofa_arch`;
the loader is :mod:`weaknas_ray.benchmarks.ofa_mbv3`. Here ``pool`` needs numpy only; ``compat`` is the one
place that imports the ``ofa`` package; ``surrogate``, ``imagenet``, ``evaluator`` and ``export`` import
torch (and Ray) lazily inside their functions or at module import, never from ``weaknas_ray`` itself.
"""
