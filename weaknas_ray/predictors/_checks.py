"""Input checks shared by every predictor, so all of them fail the same way on the same bad input."""

from __future__ import annotations

import numpy as np

from weaknas_ray.exceptions import ConfigError, NotFittedError


def check_members(n_members: int, where: str) -> int:
    """``n_members`` as a positive int; raises ConfigError naming ``where`` otherwise."""
    if isinstance(n_members, bool) or not isinstance(n_members, (int, np.integer)) or n_members < 1:
        raise ConfigError(f"{where}: n_members must be a positive integer, got {n_members!r}")
    return int(n_members)


def check_fit_data(X: np.ndarray, y: np.ndarray, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate training data.

    Args:
        X: features, shape ``(n, d)``, n >= 1.
        y: targets, shape ``(n,)`` (or ``(n, 1)``), finite.
        where: the predictor's name, for the message.

    Returns:
        ``(X, y)`` as C-contiguous float32 arrays of shapes ``(n, d)`` and ``(n,)``.

    Raises:
        ConfigError: wrong shapes, empty data or non-finite values.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ConfigError(
            f"{where}.fit: expected X of shape (n, d) and y of shape (n,) with n >= 1, "
            f"got X {X.shape} and y {y.shape}"
        )
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ConfigError(f"{where}.fit: X and y must be finite (found NaN or inf)")
    return X, y


def check_predict_data(X: np.ndarray, n_features: int | None, where: str) -> np.ndarray:
    """Validate prediction input against the fitted feature count.

    Args:
        X: features, shape ``(m, d)``.
        n_features: ``d`` seen in ``fit``, or ``None`` when the predictor is not fitted.
        where: the predictor's name, for the message.

    Returns:
        ``X`` as a C-contiguous float32 array, shape ``(m, d)``.

    Raises:
        NotFittedError: ``fit`` was never called.
        ConfigError: ``X`` is not 2-D with ``d`` columns.
    """
    check_fitted(n_features, f"{where}.predict")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ConfigError(f"{where}.predict: expected X of shape (m, {n_features}), got {X.shape}")
    return X


def check_fitted(n_features: int | None, where: str) -> None:
    """Raise NotFittedError naming ``where`` when ``n_features`` (set by ``fit``) is still ``None``."""
    if n_features is None:
        raise NotFittedError(f"{where}: call fit(X, y, seed) first")
