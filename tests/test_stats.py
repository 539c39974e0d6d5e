"""Seed statistics: the confidence interval, the verdict rules, their one tolerance and Welch's test, against hand
values and scipy."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.results.stats import judge, mcnemar, power, seeds_needed, strength, summarize, tolerance, welch


def test_summary_of_three_seeds_by_hand() -> None:
    s = summarize([93.0, 94.0, 95.0])
    assert (s.n, s.mean, s.std) == (3, 94.0, 1.0)
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2)
    assert s.ci95 == pytest.approx((94.0 - half, 94.0 + half))


def test_one_seed_has_no_interval() -> None:
    s = summarize([90.0])
    assert (s.n, s.mean, s.std, s.ci95) == (1, 90.0, None, None)
    assert summarize([]) is None


@pytest.mark.parametrize(
    ("values", "claim", "step", "expected"),
    [
        ([96.0, 96.2, 96.1], 96.14, 0.01, "reproduced"),
        ([95.0, 95.1, 95.2], 96.14, 0.01, "below claim"),
        ([97.0, 97.1, 97.2], 96.14, 0.01, "above claim"),
        ([96.3, 96.4, 96.5], 96.0, 1.0, "reproduced"),  # "96%" covers 95.5-96.5
        ([95.8], 96.14, 0.01, "reproduced (1 seed)"),
        ([95.5], 96.14, 0.01, "below claim (1 seed)"),
        ([96.1, 96.2], 96.14, 0.01, "reproduced (2 seeds)"),  # below three seeds a verdict says its count
        ([95.0, 95.1], 96.14, 0.01, "below claim (2 seeds)"),
    ],
)
def test_verdicts(values: list[float], claim: float, step: float, expected: str) -> None:
    assert judge(summarize(values), claim, step) == expected


def test_welch_reproduces_a_published_worked_example() -> None:
    # R's t.test(ts1, ts2), which is Welch's by default, as printed in a public worked example:
    # "t = -1.8325, df = 17.9, p-value = 0.08356 ... 95 percent confidence interval: -2.1469104 0.1469104 ...
    # mean of x 10.4, mean of y 11.4".
    ts1 = [11, 9, 10, 11, 10, 12, 9, 11, 12, 9]
    ts2 = [11, 13, 10, 13, 12, 9, 11, 12, 12, 11]
    result = welch(ts1, ts2)
    assert (result.a.mean, result.b.mean, result.difference) == pytest.approx((10.4, 11.4, -1.0))
    assert result.t == pytest.approx(-1.8325, abs=5e-5)
    assert result.dof == pytest.approx(17.9, abs=0.05)
    assert result.p_value == pytest.approx(0.08356, abs=5e-6)
    assert result.ci95 == pytest.approx((-2.1469104, 0.1469104), abs=5e-7)


def test_one_sided_tests_against_the_closed_form() -> None:
    # One-sample t with 2 degrees of freedom has the CDF 1/2 + t / (2 sqrt(2 + t^2)): for 1, 2, 3 against
    # a claim of 4, t = -2 sqrt(3) and p(mean < claim) = 1/2 - sqrt(3) / sqrt(14) = 0.0370900...
    result = strength([1.0, 2.0, 3.0], 4.0, 0.0)  # a claim stated exactly: no band
    assert result.p_below == pytest.approx(0.5 - math.sqrt(3) / math.sqrt(14), abs=1e-12)
    assert result.p_above == pytest.approx(0.5 + math.sqrt(3) / math.sqrt(14), abs=1e-12)
    assert strength([90.0], 91.0, 0.01).p_below is None  # one seed: no test
    assert strength([90.0, 90.0], 91.0, 0.01).p_below is None  # no spread: no t statistic


def test_power_against_published_tables() -> None:
    # G*Power and Cohen's tables, one-sample two-sided t-test at alpha 0.05: d = 0.5 with n = 34 has power
    # 0.8078 (the smallest n reaching 0.8), and d = 0.8 needs n = 15 (power 0.8213).
    assert power(34, 0.5) == pytest.approx(0.8078, abs=5e-4)
    assert power(33, 0.5) < 0.8 <= power(34, 0.5)
    assert power(15, 0.8) == pytest.approx(0.8213, abs=5e-4)
    assert seeds_needed(0.5, 1.0) == 34 and seeds_needed(-0.8, 1.0) == 15  # the gap's sign does not matter
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(1.0, 0.0) is None
    # "n seeds resolve a gap of X pp": the gap at which n seeds reach 80% power, at this spread
    result = strength([95.0, 95.5, 96.0, 95.2, 95.8], 96.14, 0.0)
    assert power(5, result.resolvable_gap / statistics.stdev([95.0, 95.5, 96.0, 95.2, 95.8])) == pytest.approx(0.8)


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_images() -> None:
    # 9 images only A gets right, 1 only B: p = 2 * P(X <= 1 | n = 10, 1/2) = 2 * 11 / 1024
    a = np.array([True] * 9 + [False] + [True] * 5 + [False] * 3)
    b = np.array([False] * 9 + [True] + [True] * 5 + [False] * 3)
    result = mcnemar(a, b)
    assert (result.images, result.only_a, result.only_b) == (18, 9, 1)
    assert result.p_value == pytest.approx(22 / 1024, abs=1e-15)
    assert mcnemar(a, a).p_value == 1.0


def test_one_tolerance_for_the_verdict_and_the_one_sided_tests() -> None:
    """Guards against the verdict allowing half the claim's stated precision while the one-sided tests used
    the bare value: a claim of 88 (stated to 1 point) read `reproduced` with p(above) = 0.025. Checked against
    the t distribution directly (scipy.stats.t), not the module's own call."""
    from scipy import stats

    assert tolerance(1.0) == 0.5 and tolerance(0.01) == 0.005
    values, claim, step = [88.3, 88.4, 88.5], 88.0, 1.0
    assert judge(summarize(values), claim, step) == "reproduced"  # 88.4 lies in 87.5-88.5
    result = strength(values, claim, step)
    se = statistics.stdev(values) / math.sqrt(3)
    assert result.p_above == pytest.approx(stats.t.sf((88.4 - 88.5) / se, 2), rel=1e-11, abs=1e-14)
    assert result.p_below == pytest.approx(stats.t.cdf((88.4 - 87.5) / se, 2), rel=1e-11, abs=1e-14)
    assert result.p_above > 0.5 and stats.t.sf((88.4 - 88.0) / se, 2) < 0.025  # the bare claim: "above"
    assert result.seeds_needed is None  # a mean inside the band is never found outside it, however many seeds
    effect = result.resolvable_gap - 0.5  # the gap past the band's edge that 3 seeds find 80% of the time
    assert power(3, effect / statistics.stdev(values)) == pytest.approx(0.8)
    above = [89.0, 89.2, 89.4]  # 0.7 past the band: its one-sided test and its verdict agree
    assert judge(summarize(above), claim, step) == "above claim"
    assert strength(above, claim, step).p_above < 0.025
    assert strength(above, claim, step).seeds_needed == seeds_needed(89.2 - 88.5, statistics.stdev(above))


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.integers(8500, 9500), min_size=2, max_size=8),
    claim=st.integers(8500, 9500),
    step=st.sampled_from([0.01, 0.1, 0.5, 1.0]),
)
def test_the_verdict_says_below_or_above_exactly_when_the_one_sided_test_does(
    values: list[int], claim: int, step: float
) -> None:
    # The 95% CI lies wholly under the band exactly when the one-sided test from its lower edge gives p < 0.025.
    figures, value = [v / 100 for v in values], claim / 100
    result = strength(figures, value, step)
    if result.p_below is None:
        return
    verdict = judge(summarize(figures), value, step).split(" (")[0]
    for p, word in ((result.p_below, "below claim"), (result.p_above, "above claim")):
        if abs(p - 0.025) > 1e-9:  # the edge itself is a matter of rounding
            assert (verdict == word) == (p < 0.025), (figures, value, step, p, verdict)
