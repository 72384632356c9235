"""Once-for-All MobileNetV3 (``ofa_mbv3_d234_e346_k357_w1.2``) pieces behind the ``ofa_mbv3`` benchmark.

``arch`` (subnet configs, analytic FLOPs, encodings) and ``pool`` need numpy only; ``compat`` is the one
place that imports the ``ofa`` package; ``surrogate``, ``imagenet``, ``evaluator`` and ``export`` import
torch (and Ray) lazily inside their functions or at module import, never from ``weaknas_ray`` itself.
"""
