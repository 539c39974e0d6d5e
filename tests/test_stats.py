"""Seed statistics: the confidence interval, the verdict rules and Welch's test, against hand values."""

from __future__ import annotations

import math

import pytest

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
