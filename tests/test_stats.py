"""Seed statistics: the confidence interval, the verdict rules and Welch's test, against hand values."""

from __future__ import annotations

import math

import pytest
from scipy import stats as scipy_stats

from harness.stats import judge, summarize, welch


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
    ],
)
def test_verdicts(values: list[float], claim: float, step: float, expected: str) -> None:
    assert judge(summarize(values), claim, step) == expected


def test_welch_matches_scipy_and_the_hand_interval() -> None:
    a, b = [93.1, 93.4, 93.2, 93.6], [92.8, 92.9, 93.0]
    result = welch(a, b)
    reference = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert result.p_value == pytest.approx(reference.pvalue) and result.t == pytest.approx(reference.statistic)
    va, vb = result.a.std**2 / 4, result.b.std**2 / 3
    dof = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = scipy_stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    assert result.dof == pytest.approx(dof) and result.ci95[1] - result.difference == pytest.approx(half)
    assert result.difference == pytest.approx(sum(a) / 4 - sum(b) / 3)
