"""Expected improvement over an ensemble, vectorised and safe when the members agree.

WeakNAS's EI variant (weaknas-method.md, "Expected improvement, exactly"): with ``P`` the ``(E, m)``
ensemble predictions of z-scored accuracy, ``mu`` the member mean, ``sd`` the population std (ddof 0)
divided by a calibration factor (5 in the published code), and an incumbent ``y*``::

    g = (mu - y*) / sd,    EI = sd * (g * Phi(g) + phi(g))

The corrected variant uses ``y* = max(observed)``. The published code negates predictions into losses
but not the observed accuracies, so its incumbent is effectively ``y* = -min(observed)``
(``g = (min(observed) + mu) / sd``): :func:`incumbent` gives both. Ranking uses log-EI, which keeps
candidates apart where EI itself underflows to 0 (``g`` below about -38).
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcx, log_ndtr

from weaknas_ray.exceptions import ConfigError

EI_VARIANTS = ("corrected", "faithful")

_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)
# NOTE: below this g the log1p form below loses precision (cancellation ~ g^2 * eps), so we switch to the
# asymptotic log h(g) = log phi(g) - 2 log|g| whose relative error is O(1/g^2) = 1e-8 there.
_ASYMPTOTIC_BELOW = -1e4
# NOTE: above -1 the direct form g * Phi(g) + phi(g) has no cancellation.
_DIRECT_ABOVE = -1.0


def incumbent(observed: np.ndarray, variant: str) -> float:
    """The EI incumbent ``y*`` for observed (z-scored) accuracies.

    Args:
        observed: search values seen so far, shape ``(n,)``, n >= 1.
        variant: ``"corrected"`` (``max(observed)``) or ``"faithful"`` (``-min(observed)``, the published
            code's sign slip).

    Returns:
        ``y*`` such that ``g = (mu - y*) / sd``.
    """
    if variant not in EI_VARIANTS:
        raise ConfigError(f"ei: unknown EI variant {variant!r}; choose one of {list(EI_VARIANTS)}")
    obs = np.asarray(observed, dtype=np.float64)
    if obs.size == 0:
        raise ConfigError("ei: the incumbent needs at least one observed value, got none")
    return float(obs.max()) if variant == "corrected" else float(-obs.min())


def ensemble_mean_sd(predictions: np.ndarray, calibration: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
    """Member mean and calibrated spread of ensemble predictions.

    Args:
        predictions: shape ``(E, m)``.
        calibration: the spread is divided by this (published: 5).

    Returns:
        ``(mu, sd)``, both float64 of shape ``(m,)``; ``sd`` is the population std (ddof 0) / calibration.
    """
    if calibration <= 0:
        raise ConfigError(f"ei.calibration must be > 0, got {calibration}")
    p = np.asarray(predictions, dtype=np.float64)
    return p.mean(axis=0), p.std(axis=0) / calibration


def _log_h(g: np.ndarray) -> np.ndarray:
    """``log(g * Phi(g) + phi(g))``, stable for every finite ``g``. Shape as ``g``."""
    out = np.empty_like(g)
    direct = g > _DIRECT_ABOVE
    gd = g[direct]
    out[direct] = np.log(gd * np.exp(log_ndtr(gd)) + np.exp(-0.5 * gd * gd - _LOG_SQRT_2PI))
    tail = g <= _ASYMPTOTIC_BELOW
    out[tail] = -0.5 * g[tail] ** 2 - _LOG_SQRT_2PI - 2.0 * np.log(-g[tail])
    mid = ~direct & ~tail
    gm = g[mid]
    # h(g) = phi(g) * (1 + g * Phi(g) / phi(g)) and Phi(g) / phi(g) = sqrt(pi / 2) * erfcx(-g / sqrt(2)).
    out[mid] = -0.5 * gm**2 - _LOG_SQRT_2PI + np.log1p(gm * np.sqrt(np.pi / 2) * erfcx(-gm / np.sqrt(2)))
    return out


def log_expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """log EI of a maximisation at incumbent ``best``.

    Where ``sd == 0`` EI is the plain improvement ``max(mu - best, 0)``, so its log is ``-inf`` for a
    candidate all members agree is no better than the incumbent.

    Args:
        mu: predicted mean, shape ``(m,)``.
        sd: predicted (calibrated) std, shape ``(m,)``, >= 0.
        best: the incumbent ``y*`` (see :func:`incumbent`).

    Returns:
        float64 array of shape ``(m,)``, ``-inf`` where EI is exactly 0.
    """
    mu = np.asarray(mu, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    out = np.empty(np.broadcast(mu, sd).shape, dtype=np.float64)
    spread = sd > 0
    g = (mu[spread] - best) / sd[spread]
    out[spread] = np.log(sd[spread]) + _log_h(g)
    with np.errstate(divide="ignore"):
        out[~spread] = np.log(np.maximum(mu[~spread] - best, 0.0))
    return out


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    """EI itself, ``exp`` of :func:`log_expected_improvement`; shape ``(m,)``."""
    return np.exp(log_expected_improvement(mu, sd, best))
