"""Means, spreads and Student-t intervals over seeds, with no dependency beyond the standard library.

The t quantile is exact (to bisection precision, 1e-12): the two-sided t probability for an integer number of
degrees of freedom has a closed form (Abramowitz & Stegun 26.7.3-4), solved for 0.95 by bisection.
"""

from __future__ import annotations

import math
from functools import cache


def mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def sample_std(values: list[float]) -> float | None:
    """Standard deviation with ddof = 1 (the spread of seeds around their mean); None below two values."""
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def t_two_sided_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with ``df`` (a positive integer) degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:  # odd: (2/pi) (theta + sin(theta) (cos + 2/3 cos^3 + ... + (2.4...(df-3))/(1.3...(df-2)) cos^(df-2)))
        total = 0.0
        if df >= 3:
            term = math.cos(theta)
            total = term
            for k in range(3, df - 1, 2):
                term *= c2 * (k - 1) / k
                total += term
        return 2 / math.pi * (theta + s * total)
    total, term = 1.0, 1.0  # even: sin(theta) (1 + 1/2 cos^2 + 1.3/(2.4) cos^4 + ... )
    for k in range(2, df - 1, 2):
        term *= c2 * (k - 1) / k
        total += term
    return s * total


@cache
def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t (the half-width factor of a two-sided 95% interval)."""
    lo, hi = 0.0, 1000.0
    while hi - lo > 1e-12:
        mid = (lo + hi) / 2
        if t_two_sided_probability(mid, df) < 0.95:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def t_interval(values: list[float], within: tuple[float, float] | None = None) -> list[float] | None:
    """95% t-interval of the mean: mean +- t(0.975, n - 1) * std / sqrt(n), std with ddof = 1. None below n = 2.
    ``within``: the range the quantity lives in (an accuracy: (0, 1)); the interval is cut to it, since three
    seeds near 100% give a symmetric interval past 100% that no accuracy can reach."""
    if len(values) < 2:
        return None
    m, s = mean(values), sample_std(values)
    half = t_quantile_975(len(values) - 1) * s / math.sqrt(len(values))
    low, high = m - half, m + half
    if within is not None:
        low, high = max(low, within[0]), min(high, within[1])
    return [low, high]
