"""Statistics over seeds: mean, std, a t-based 95% confidence interval, verdicts, Welch's t-test."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from harness.lazy import lazy

scipy_stats = lazy("scipy.stats")  # loaded only for a confidence interval or a test: a second of import

SINGLE_SEED_TOLERANCE = 0.5  # percentage points: the band around a claim that one seed is judged by


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None  # sample standard deviation (n - 1); None for one seed
    ci95: tuple[float, float] | None  # mean +- t(0.975, n-1) * std / sqrt(n); None for one seed


def summarize(values: list[float]) -> Summary | None:
    if not values:
        return None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return Summary(1, mean, None, None)
    std = statistics.stdev(values)
    half = float(scipy_stats.t.ppf(0.975, len(values) - 1)) * std / math.sqrt(len(values))
    return Summary(len(values), mean, std, (mean - half, mean + half))


def judge(summary: Summary, claim: float, claim_step: float) -> str:
    """reproduced / below claim / above claim, allowing for the precision the claim is stated to.

    With two or more seeds the claim must lie in the 95% CI of the mean; with one seed, within
    SINGLE_SEED_TOLERANCE points of it (marked "(1 seed)", as no interval can be computed).
    """
    slack = claim_step / 2
    if summary.ci95 is not None:
        low, high = summary.ci95
        suffix = ""
    else:
        low, high = summary.mean - SINGLE_SEED_TOLERANCE, summary.mean + SINGLE_SEED_TOLERANCE
        suffix = " (1 seed)"
    if high < claim - slack:
        return "below claim" + suffix
    if low > claim + slack:
        return "above claim" + suffix
    return "reproduced" + suffix


@dataclass(frozen=True)
class Comparison:
    a: Summary
    b: Summary
    difference: float  # mean(a) - mean(b)
    ci95: tuple[float, float]  # Welch-Satterthwaite interval for the difference
    t: float
    dof: float
    p_value: float


def welch(a: list[float], b: list[float]) -> Comparison:
    """Welch's unequal-variance t-test of mean(a) = mean(b), with the CI of the difference."""
    sa, sb = summarize(a), summarize(b)
    assert sa is not None and sb is not None and sa.std is not None and sb.std is not None
    result = scipy_stats.ttest_ind(a, b, equal_var=False)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:
        dof = float(sa.n + sb.n - 2)
    else:
        dof = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    half = float(scipy_stats.t.ppf(0.975, dof)) * se
    diff = sa.mean - sb.mean
    p_value = float(result.pvalue) if not math.isnan(result.pvalue) else (1.0 if diff == 0 else 0.0)
    return Comparison(sa, sb, diff, (diff - half, diff + half), float(result.statistic), dof, p_value)
