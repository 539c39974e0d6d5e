"""Seed statistics: the confidence interval, the verdict rules and Welch's test, against hand values."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from harness.results.stats import judge, mcnemar, power, seeds_needed, strength, summarize, welch


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
    result = strength([1.0, 2.0, 3.0], 4.0)
    assert result.p_below == pytest.approx(0.5 - math.sqrt(3) / math.sqrt(14), abs=1e-12)
    assert result.p_above == pytest.approx(0.5 + math.sqrt(3) / math.sqrt(14), abs=1e-12)
    assert strength([90.0], 91.0).p_below is None  # one seed: no test
    assert strength([90.0, 90.0], 91.0).p_below is None  # no spread: no t statistic


def test_power_against_published_tables() -> None:
    # G*Power and Cohen's tables, one-sample two-sided t-test at alpha 0.05: d = 0.5 with n = 34 has power
    # 0.8078 (the smallest n reaching 0.8), and d = 0.8 needs n = 15 (power 0.8213).
    assert power(34, 0.5) == pytest.approx(0.8078, abs=5e-4)
    assert power(33, 0.5) < 0.8 <= power(34, 0.5)
    assert power(15, 0.8) == pytest.approx(0.8213, abs=5e-4)
    assert seeds_needed(0.5, 1.0) == 34 and seeds_needed(-0.8, 1.0) == 15  # the gap's sign does not matter
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(1.0, 0.0) is None
    # "n seeds resolve a gap of X pp": the gap at which n seeds reach 80% power, at this spread
    result = strength([95.0, 95.5, 96.0, 95.2, 95.8], 96.14)
    assert power(5, result.resolvable_gap / statistics.stdev([95.0, 95.5, 96.0, 95.2, 95.8])) == pytest.approx(0.8)


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_images() -> None:
    # 9 images only A gets right, 1 only B: p = 2 * P(X <= 1 | n = 10, 1/2) = 2 * 11 / 1024
    a = np.array([True] * 9 + [False] + [True] * 5 + [False] * 3)
    b = np.array([False] * 9 + [True] + [True] * 5 + [False] * 3)
    result = mcnemar(a, b)
    assert (result.images, result.only_a, result.only_b) == (18, 9, 1)
    assert result.p_value == pytest.approx(22 / 1024, abs=1e-15)
    assert mcnemar(a, a).p_value == 1.0
