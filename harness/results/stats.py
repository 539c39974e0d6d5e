"""Statistics over seeds: mean, std, a t-based 95% confidence interval, verdicts and how strong they are
(one-sided tests of a claim, the gap a number of seeds resolves, the seeds a gap needs), Welch's t-test,
and McNemar's paired test of two models on the same test images."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from harness.common.lazy import lazy

scipy_stats = lazy("scipy.stats")  # loaded only for a confidence interval or a test: a second of import
scipy_optimize = lazy("scipy.optimize")

SINGLE_SEED_TOLERANCE = 0.5  # percentage points: one seed's mean +- this stands in for a CI
FIRM_SEEDS = 3  # below this many seeds a verdict carries its seed count
ALPHA, POWER = 0.05, 0.8  # the power statement: a two-sided 5% test that finds the gap 80% of the time
MAX_SEEDS = 1000  # seeds_needed gives up beyond this: the gap is negligible next to the spread


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


def tolerance(claim_step: float) -> float:
    """How far a mean may lie from a claim and still reproduce it: half the precision the claim is stated
    to (88% stated to 1 point covers 87.5-88.5; 96.14% to 0.01 covers 96.135-96.145). The verdict and the
    one-sided tests both measure from this band, so that they never disagree."""
    return claim_step / 2


def judge(summary: Summary, claim: float, claim_step: float) -> str:
    """reproduced / below claim / above claim: where the mean's 95% CI lies against the claim's band
    (claim +- tolerance(claim_step)).

    With two or more seeds: below when the whole CI lies under the band, above when over it (exactly when
    the one-sided t-test of `strength` at 2.5% says so), else reproduced. With one seed, the mean +-
    SINGLE_SEED_TOLERANCE points stands for the CI (marked "(1 seed)", as no interval can be computed).
    """
    slack = tolerance(claim_step)
    if summary.ci95 is not None:
        low, high = summary.ci95
        suffix = ""
    else:
        low, high = summary.mean - SINGLE_SEED_TOLERANCE, summary.mean + SINGLE_SEED_TOLERANCE
        suffix = " (1 seed)"
    if summary.n < FIRM_SEEDS:
        suffix = f" ({summary.n} seed{'s' * (summary.n != 1)})"
    if high < claim - slack:
        return "below claim" + suffix
    if low > claim + slack:
        return "above claim" + suffix
    return "reproduced" + suffix


@dataclass(frozen=True)
class Strength:
    """How strongly seeds speak about a claim, all measured from the claim's band (claim +- tolerance):
    one-sided t-tests, and what seeds can resolve at this spread."""

    p_below: float | None  # p of "the mean is below the band" (H0: mean >= claim - tolerance); None below 2 seeds
    p_above: float | None  # p of "the mean is above the band" (H0: mean <= claim + tolerance)
    resolvable_gap: float | None  # pp from the claim where these seeds detect a mean off the band (ALPHA, POWER)
    seeds_needed: int | None  # seeds that would so detect the observed mean off the band; None: inside it, no spread


def strength(values: list[float], claim: float, claim_step: float) -> Strength:
    """One-sided one-sample t-tests of the mean against the band's edges, and the power statement.

    p_below tests mean < claim - tolerance, p_above mean > claim + tolerance; `judge` says below (above)
    claim exactly when p_below (p_above) < 0.025. The resolvable gap is the distance from the claim at which
    these seeds find a mean outside the band 80% of the time; the seeds needed, those that would find the
    observed mean outside it so (None when the mean lies inside the band: no number of seeds would)."""
    if len(values) < 2 or statistics.stdev(values) == 0:
        return Strength(None, None, None, None)
    std, slack = statistics.stdev(values), tolerance(claim_step)
    below = float(scipy_stats.ttest_1samp(values, claim - slack, alternative="less").pvalue)
    above = float(scipy_stats.ttest_1samp(values, claim + slack, alternative="greater").pvalue)
    beyond = max(abs(statistics.fmean(values) - claim) - slack, 0.0)
    return Strength(below, above, slack + resolvable_effect(len(values)) * std, seeds_needed(beyond, std))


def power(n: int, effect: float) -> float:
    """Power of a two-sided one-sample t-test at ALPHA with n seeds, for a gap of `effect` standard deviations.

    Written here from the noncentral t (scipy) rather than taken from statsmodels' TTestPower, which gives
    the same figures but would add a dependency for one function; tests/test_stats.py checks it against
    published tables."""
    dof = n - 1
    critical = scipy_stats.t.ppf(1 - ALPHA / 2, dof)
    shift = effect * math.sqrt(n)
    far_tail = float(scipy_stats.nct.cdf(-critical, dof, shift))  # below 1e-8 wherever scipy returns NaN for it
    return float(scipy_stats.nct.sf(critical, dof, shift)) + (0.0 if math.isnan(far_tail) else far_tail)


def resolvable_effect(n: int) -> float:
    """The smallest gap, in standard deviations, that n seeds detect with probability POWER."""
    high = 1.0
    while power(n, high) < POWER:  # bracket the root
        high *= 2
    return float(scipy_optimize.brentq(lambda d: power(n, d) - POWER, 1e-9, high))


def seeds_needed(gap: float, std: float) -> int | None:
    """The fewest seeds (at least 2) that detect `gap` pp with probability POWER at spread `std`."""
    if std <= 0 or gap == 0:
        return None
    effect = abs(gap) / std
    if power(MAX_SEEDS, effect) < POWER:
        return None
    low, high = 1, MAX_SEEDS  # power grows with n: the first n that reaches POWER, by bisection
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power(middle, effect) >= POWER else (middle, high)
    return high


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


@dataclass(frozen=True)
class Paired:
    """McNemar's exact test of two models on the same test images."""

    images: int
    only_a: int  # images A gets right and B wrong
    only_b: int
    p_value: float  # two-sided: P(a split at least this uneven | each discordant image is a coin flip)


def mcnemar(correct_a: Any, correct_b: Any) -> Paired:
    """Exact McNemar: the two-sided binomial test (scipy) of the discordant images, split evenly under H0."""
    only_a = int((correct_a & ~correct_b).sum())
    only_b = int((~correct_a & correct_b).sum())
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(scipy_stats.binomtest(only_a, discordant, 0.5).pvalue)
    return Paired(len(correct_a), only_a, only_b, p_value)
