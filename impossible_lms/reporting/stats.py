"""Aggregation over seeds: a point estimate and a 95% Student-t interval.

Perplexities are aggregated in log space (geometric mean; the interval is the
t-interval of the log values, exponentiated), because a perplexity is itself a
geometric mean and the seeds' spread is multiplicative. Surprisals (bits, may
be negative) and areas use the arithmetic mean and a plain t-interval. With one
seed there is no interval (NaN), rather than a fake zero-width one.
"""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np

# Two-sided 95% Student-t quantiles t_{0.975, df} for df = 1..30; kept here so
# the report needs no scipy. Beyond 30 the normal quantile is within 4%.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)


def t_quantile(df: int) -> float:
    """t_{0.975, df}: the half-width multiplier of a 95% interval."""
    if df < 1:
        return math.nan
    return _T975[df - 1] if df <= len(_T975) else 1.960


def mean_interval(values: Iterable[float]) -> tuple[float, float, float, int]:
    """(mean, low, high, n): arithmetic mean with a 95% t-interval over the values."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n == 1:
        return mean, math.nan, math.nan, 1
    half = t_quantile(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def geometric_interval(values: Iterable[float]) -> tuple[float, float, float, int]:
    """(geometric mean, low, high, n): the t-interval of log values, exponentiated."""
    x = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    if len(x) == 1:  # exactly the value, not exp(log(value))
        return float(x[0]), math.nan, math.nan, 1
    mean, low, high, n = mean_interval(np.log(x)) if x else (math.nan,) * 3 + (0,)
    return math.exp(mean) if n else math.nan, math.exp(low), math.exp(high), n


def normalised_auc(steps: Iterable[float], values: Iterable[float]) -> float:
    """Trapezoid area under value(step), divided by the step span: the curve's mean height.

    In the value's own units (a perplexity), so runs with different checkpoint
    grids compare. One point: that value.
    """
    s = np.asarray(list(steps), dtype=float)
    v = np.asarray(list(values), dtype=float)
    order = np.argsort(s)
    s, v = s[order], v[order]
    if len(s) == 0:
        return math.nan
    if len(s) == 1 or s[-1] == s[0]:
        return float(v.mean())
    area = float(np.sum((v[1:] + v[:-1]) * np.diff(s)) / 2.0)
    return area / float(s[-1] - s[0])
