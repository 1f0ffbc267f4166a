"""The little statistics the report needs: percentiles and a least-squares line.

Pure functions, no I/O, so the report's numbers can be checked by hand from the JSON samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` quantile (0..1) with linear interpolation between closest ranks.

    Raises:
        ValueError: for an empty sequence or a fraction outside 0..1.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction {fraction} is outside 0..1")
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


@dataclass(frozen=True)
class LineFit:
    """``y = intercept + slope * x`` and how well it fits (``r2`` = 1 is a perfect line)."""

    slope: float
    intercept: float
    r2: float
    points: int

    def is_linear(self, threshold: float = 0.95) -> bool:
        return self.points >= 3 and self.r2 >= threshold


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> LineFit:
    """Ordinary least squares over paired samples (at least two distinct x values).

    Raises:
        ValueError: for mismatched lengths or fewer than two distinct x values.
    """
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    if len(set(xs)) < 2:
        raise ValueError("a line needs at least two distinct x values")
    count = len(xs)
    mean_x = sum(xs) / count
    mean_y = sum(ys) / count
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return LineFit(slope=slope, intercept=intercept, r2=r2, points=len(set(xs)))
