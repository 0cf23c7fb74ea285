"""Statistics for evaluation: confidence intervals of accuracies and the unbiased pass@k estimator.

- :func:`wilson_interval`: the Wilson score interval of a proportion (successes out of n). Used for every
  accuracy that is a plain proportion of questions: greedy accuracy, maj@k, per-category accuracy, and pass@k
  when each question has exactly k samples (pass@k is then "any of the k is correct", a 0/1 per question).
  Unlike the normal ("Wald") interval it stays inside [0, 1] and does not collapse to a point at 0/n or n/n.
- :func:`pass_at_k`: Chen et al. (2021, "Evaluating Large Language Models Trained on Code") unbiased estimator
  of pass@k from n >= k samples of which c are correct: ``1 - C(n - c, k) / C(n, k)``, computed exactly.
- :func:`bootstrap_mean_interval`: a percentile bootstrap over questions of the mean of per-question values,
  for pass@k with n > k samples (its per-question values lie between 0 and 1, so Wilson does not apply).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
