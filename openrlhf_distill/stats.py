"""Every statistic the package reports, with no dependency beyond the standard library.

Accuracies of one evaluation (over questions):

- :func:`wilson_interval`: the Wilson score interval of a proportion (successes out of n). Used for every
  accuracy that is a plain proportion of questions: greedy accuracy, maj@k, per-category accuracy, and pass@k
  when each question has exactly k samples (pass@k is then "any of the k is correct", a 0/1 per question).
  Unlike the normal ("Wald") interval it stays inside [0, 1] and does not collapse to a point at 0/n or n/n.
- :func:`pass_at_k`: Chen et al. (2021, "Evaluating Large Language Models Trained on Code") unbiased estimator
  of pass@k from n >= k samples of which c are correct: ``1 - C(n - c, k) / C(n, k)``, computed exactly.
- :func:`bootstrap_mean_interval`: a percentile bootstrap over questions of the mean of per-question values,
  for pass@k with n > k samples (its per-question values lie between 0 and 1, so Wilson does not apply).

Over seeds (the report): :func:`mean`, :func:`sample_std` and :func:`t_interval`, the Student-t interval of the
mean. The t quantile is exact (to bisection precision, 1e-12): the two-sided t probability for an integer number
of degrees of freedom has a closed form (Abramowitz & Stegun 26.7.3-4), solved for 0.95 by bisection.

Reward models (`eval-rm`): :func:`auc`, :func:`expected_calibration_error`, :func:`pair_accuracy`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from statistics import NormalDist

WILSON = "wilson"
BOOTSTRAP = "percentile_bootstrap"


def z_value(confidence: float = 0.95) -> float:
    """The two-sided standard normal quantile: 1.959963984540054 for 95%."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / n``.

    >>> [round(x, 3) for x in wilson_interval(8, 10)]
    [0.49, 0.943]
    """
    if n <= 0:
        raise ValueError(f"a confidence interval needs n >= 1 trials, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}], got {successes}")
    z = z_value(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # Exact at the edges (rounding would otherwise leave 1e-17 outside [0, 1] or off the observed value).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of the chance that at least one of k samples is correct, from n samples, c correct.

    With n == k it is 1.0 when c > 0 and 0.0 otherwise ("any correct").

    >>> pass_at_k(4, 1, 2)
    0.5
    """
    if k < 1 or n < k:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if not 0 <= c <= n:
        raise ValueError(f"correct samples must be in [0, n={n}], got {c}")
    if n - c < k:
        return 1.0  # every k-subset holds a correct sample
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def bootstrap_mean_interval(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: ``resamples`` resamplings of the values (questions) with
    replacement, the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of their means. Deterministic for a
    seed (numpy's PCG64)."""
    import numpy as np

    if len(values) == 0:
        raise ValueError("a bootstrap interval needs at least one value")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 4_000_000 // len(data))  # bounded memory: at most ~4M indices at a time
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        indices = rng.integers(0, len(data), size=(size, len(data)))
        means[start : start + size] = data[indices].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


# --- Over seeds -------------------------------------------------------------------------------------------------


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


# --- Reward models ----------------------------------------------------------------------------------------------


def auc(scores: list[float], labels: list[int]) -> float | None:
    """Probability that a random positive outscores a random negative (ties count half)."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def expected_calibration_error(probabilities: list[float], labels: list[float], bins: int = 10) -> float:
    """Mean |observed label - predicted probability| over equal-width bins, weighted by bin size."""
    groups = defaultdict(list)
    for p, y in zip(probabilities, labels, strict=True):
        groups[min(int(p * bins), bins - 1)].append((p, y))
    return sum(abs(sum(y for _, y in g) - sum(p for p, _ in g)) for g in groups.values()) / len(probabilities)


def pair_accuracy(better_worse: list[tuple[float, float]]) -> dict:
    """Share of (better, worse) score pairs ranked right, a tie counting half (as in ``auc``), and the share of
    ties. Ties are common: a reward model scored in bf16 has about 256 distinct values per power of two, so two
    answers that differ in one number often get the very same score. Counting a tie as a miss would read "no
    preference" as "the wrong preference"."""
    credit = [1.0 if b > w else 0.5 if b == w else 0.0 for b, w in better_worse]
    ties = sum(b == w for b, w in better_worse)
    n = len(better_worse)
    return {"accuracy": mean(credit), "n": n, "ties": ties / n if n else None}
