"""Summaries with a bootstrap 95% interval, deterministic given the seed."""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 1000


def bootstrap_mean(values: np.ndarray, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES,
                   level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean and the percentile interval of resampled means."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    step = max(1, 2_000_000 // n)  # resample in slabs: samples × n indices at once can be large
    for start in range(0, samples, step):
        stop = min(samples, start + step)
        means[start:stop] = values[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


def geometric_mean_ci(log_values: np.ndarray, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES):
    """Geometric mean of ``exp(log_values)`` with its interval (bootstrap in log space)."""
    mean, low, high = bootstrap_mean(log_values, seed, samples)
    return float(np.exp(mean)), float(np.exp(low)), float(np.exp(high))
