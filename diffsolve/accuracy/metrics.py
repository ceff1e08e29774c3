"""Closed-form distances between diagonal Gaussian laws (docs/verification.md §1.4), summed over coordinates."""

from __future__ import annotations

import numpy as np

__all__ = ["w2", "kl", "hellinger2", "tv_bound", "METRICS"]


def w2(m1, v1, m2, v2) -> float:
    """2-Wasserstein distance; for commuting covariances sqrt(sum (m1-m2)^2 + (sqrt v1 - sqrt v2)^2)."""
    return float(np.sqrt(np.sum((m1 - m2) ** 2 + (np.sqrt(v1) - np.sqrt(v2)) ** 2)))


def _x_minus_log1p(x):
    """x - log(1 + x) without cancellation for small |x| (series below 1e-2)."""
    x = np.asarray(x, dtype=np.float64)
    series = x * x * (1 / 2 - x * (1 / 3 - x * (1 / 4 - x * (1 / 5 - x * (1 / 6 - x * (1 / 7 - x * (1 / 8 - x / 9)))))))
    with np.errstate(invalid="ignore", divide="ignore"):
        direct = x - np.log1p(x)
    return np.where(np.abs(x) < 1e-2, series, direct)


def kl(m1, v1, m2, v2) -> float:
    """KL(N(m1, v1) || N(m2, v2)) = 1/2 sum [x - log(1 + x) + (m1 - m2)^2 / v2], x = (v1 - v2)/v2."""
    return float(0.5 * np.sum(_x_minus_log1p((v1 - v2) / v2) + (m1 - m2) ** 2 / v2))


def hellinger2(m1, v1, m2, v2) -> float:
    """Squared Hellinger distance 1 - prod BC with BC the per-coordinate Bhattacharyya coefficient."""
    s = v1 + v2
    log_bc = 0.5 * np.log(2.0 * np.sqrt(v1 * v2) / s) - (m1 - m2) ** 2 / (4.0 * s)
    return float(-np.expm1(np.sum(log_bc)))


def tv_bound(m1, v1, m2, v2) -> float:
    """Upper bound on total variation, sqrt(2) * Hellinger (H^2 <= TV <= sqrt(2) H)."""
    return float(np.sqrt(2.0 * hellinger2(m1, v1, m2, v2)))


METRICS = {"w2": w2, "kl": kl, "tv-bound": tv_bound, "hellinger": lambda *a: float(np.sqrt(hellinger2(*a)))}
