"""The sequential design (issue 28): each false verdict stays within alpha although the seeds are looked at
after every one, the uncorrected design does not, sweeps stop for a reproduction as well as a miss, large
misses stop early, and decide() agrees with scipy's t-tests."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from harness.results import sequential as seq
from harness.results.stats import judge, summarize, tolerance

SWEEPS = 10_000
ALPHA = 0.05
MC_SLACK = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SWEEPS)  # three Monte Carlo standard errors at the rate alpha
TOL = tolerance(0.01)  # a claim stated to 0.01, like 89.03
STD = 0.15
WIDE = 0.25  # a claim stated to 0.5: a band wide enough next to the spread that "reproduced" can happen

# (verdict, true gap below the claim, tolerance): the true mean on a band edge or inside the band for a
# miss, on or just outside a band edge for "reproduced"; each verdict here would be false
FALSE_VERDICTS = [
    ("below", TOL, TOL),  # lower edge
    ("below", 0.0, TOL),  # inside
    ("below", -TOL, TOL),  # upper edge
    ("above", -TOL, TOL),
    ("above", 0.0, TOL),
    ("reproduced", TOL, TOL),
    ("reproduced", -TOL, TOL),
    ("reproduced", WIDE, WIDE),  # on the edge of a band that allows reproducing
    ("reproduced", -WIDE, WIDE),
    ("reproduced", WIDE + 0.02, WIDE),  # just outside
]
EDGES = [("below", TOL, TOL), ("above", -TOL, TOL), ("reproduced", WIDE, WIDE)]


def false_rate(d: seq.Design, verdict: str, gap: float, tol: float, seed: int) -> float:
    result = seq.simulate(d, gap, STD, tol, SWEEPS, np.random.default_rng(seed))
    return {"below": result.below, "above": result.above, "reproduced": result.reproduced}[verdict]


@pytest.mark.parametrize(("verdict", "gap", "tol"), FALSE_VERDICTS)
def test_each_false_verdict_stays_within_alpha_over_all_looks(verdict: str, gap: float, tol: float) -> None:
    rate = false_rate(seq.design(ALPHA), verdict, gap, tol, seed=1)
    assert rate <= ALPHA + MC_SLACK, f"false {verdict} at gap {gap}: {rate:.4f} > {ALPHA} + {MC_SLACK:.4f}"


@pytest.mark.parametrize(("verdict", "gap", "tol"), EDGES)
def test_the_fixed_level_at_every_look_breaks_the_error_rate(verdict: str, gap: float, tol: float) -> None:
    # the bug put back: the fixed design's level reused at every look, with no correction for looking often
    rate = false_rate(seq.naive(ALPHA), verdict, gap, tol, seed=1)
    assert rate > ALPHA + MC_SLACK, f"naive false {verdict}: {rate:.4f}"


@pytest.mark.parametrize(("alpha", "low", "high"), list(seq.NOMINAL))
def test_the_precomputed_levels_give_alpha_on_a_fresh_sample(alpha: float, low: int, high: int) -> None:
    # recomputed here with plain numpy and scipy.stats, not the module's running sums
    nominal, sweeps = seq.NOMINAL[(alpha, low, high)], 200_000
    x = np.random.default_rng(2026).standard_normal((sweeps, high))
    rejected = np.zeros(sweeps, dtype=bool)
    for n in range(low, high + 1):  # a loop over the looks, not the sweeps
        t = x[:, :n].mean(axis=1) / (x[:, :n].std(axis=1, ddof=1) / math.sqrt(n))
        rejected |= t < -sps.t.ppf(1 - nominal, n - 1)
    assert abs(rejected.mean() - alpha) <= 3 * math.sqrt(alpha * (1 - alpha) / sweeps)
    assert seq.design(alpha, high, low).nominal == nominal


def test_fewer_looks_allow_a_larger_level() -> None:
    five = seq.design(ALPHA, max_seeds=5).nominal  # not precomputed: calibrated on first use
    assert seq.NOMINAL[(ALPHA, 2, 10)] < five < ALPHA


def test_a_sweep_stops_for_reproduced_and_not_only_for_a_miss() -> None:
    result = seq.simulate(seq.design(), 0.0, 0.001, TOL, SWEEPS, np.random.default_rng(3))
    assert result.reproduced > 0.95 and result.below + result.above < 0.01
    assert result.mean_seeds < 5
    wide = seq.simulate(seq.design(), 0.0, STD, WIDE, SWEEPS, np.random.default_rng(3))
    assert wide.reproduced > 0.9 and wide.mean_seeds < 8
    decision = seq.decide([89.031, 89.029, 89.030], 89.03, TOL, seq.design())
    assert (decision.outcome, decision.n, decision.look) == ("reproduced", 3, 2)
    assert decision.ci is not None and 89.025 < decision.ci[0] < decision.ci[1] < 89.035


@pytest.mark.parametrize("gap", [1.0, 2.0])
def test_large_misses_stop_within_3_2_seeds_on_average(gap: float) -> None:
    result = seq.simulate(seq.design(), gap, STD, TOL, SWEEPS, np.random.default_rng(4))
    assert result.mean_seeds <= 3.2
    assert result.below > 0.999 and result.power == result.below


SAMPLES = [
    ([88.0, 88.1, 87.9], 89.03, "below claim"),
    ([89.8, 90.0, 89.9, 90.1], 89.03, "above claim"),
    ([89.031, 89.029, 89.030, 89.0305], 89.03, "reproduced"),
    ([89.0, 89.2, 88.9], 89.03, "open"),
    ([88.7, 89.2], 89.03, "open"),  # two seeds, one degree of freedom
    ([89.0, 89.2, 88.9, 89.1, 89.05, 88.95, 89.0, 89.15, 88.9, 89.02], 89.03, "inconclusive"),
]


@pytest.mark.parametrize(("values", "claim", "expected"), SAMPLES)
def test_decide_agrees_with_scipy_t_tests(values: list[float], claim: float, expected: str) -> None:
    d = seq.design()
    p_below = sps.ttest_1samp(values, claim - TOL, alternative="less").pvalue
    p_above = sps.ttest_1samp(values, claim + TOL, alternative="greater").pvalue
    p_tost = max(
        sps.ttest_1samp(values, claim - TOL, alternative="greater").pvalue,
        sps.ttest_1samp(values, claim + TOL, alternative="less").pvalue,
    )
    by_scipy = (
        "below claim" if p_below < d.nominal
        else "above claim" if p_above < d.nominal
        else "reproduced" if p_tost < d.nominal
        else "inconclusive" if len(values) == d.max_seeds
        else "open"
    )  # fmt: skip
    decision = seq.decide(values, claim, TOL, d)
    assert decision.outcome == by_scipy == expected
    assert decision.n == len(values) and decision.look == len(values) - 1
    interval = sps.ttest_1samp(values, claim).confidence_interval(confidence_level=1 - 2 * d.nominal)
    assert decision.ci == pytest.approx((interval.low, interval.high), abs=1e-9)
    assert f"{d.nominal:.4g}" in decision.boundary


def test_decide_before_the_first_look_and_after_the_last() -> None:
    d = seq.design()
    assert seq.decide([89.0], 89.03, TOL, d) == seq.Decision("open", 1, 0, "no look before 2 seeds", None)
    with pytest.raises(ValueError, match="stops at 10"):
        seq.decide([89.0] * 11, 89.03, TOL, d)


def test_the_fixed_design_is_stats_judge_at_five_seeds() -> None:
    rng = np.random.default_rng(5)
    claim, step = 89.03, 0.01
    offsets = rng.normal(0, STD, (300, seq.FIXED_SEEDS)) - rng.choice([0.0, 0.1, 0.2, -0.2], (300, 1))
    codes = seq.fixed_codes(offsets, tolerance(step))
    verdicts = [judge(summarize(list(claim + row)), claim, step) for row in offsets]  # 300 samples
    assert [seq.OUTCOMES[int(c)] for c in codes] == verdicts
    assert {"below claim", "above claim", "reproduced"} <= set(verdicts)


def test_the_readme_tables_are_what_the_code_prints() -> None:
    text = (Path(__file__).parents[1] / "README.md").read_text()  # the sweep section's tables
    assert seq.markdown(seq.expected_seeds_table()) in text
    assert seq.markdown(seq.expected_seeds_table(tol=WIDE)) in text
    assert "Pocock" in text and "python -m harness.results.sequential" in text


# The table and the study say after how many seeds the sequential design decided (issue 28, item 2): report
# 000's headline claim, 96.14% (last epoch; band +-0.005), against five seeds of official full-budget runs.
KD_CLAIM = 96.14
KD_SEEDS = [95.24, 96.04, 95.54, 95.64, 95.59]  # by seed 0..4: the one-sided test first crosses at the 5th


def _first_crossing(values: list[float]) -> int | None:
    """scipy's one-sided t-test from the band's lower edge at the design's nominal level, after each seed."""
    level = seq.design().nominal
    for n in range(2, len(values) + 1):
        if sps.ttest_1samp(values[:n], KD_CLAIM - tolerance(0.01), alternative="less").pvalue < level:
            return n
    return None


def _kd_table(folder: Path, values: list[float], capsys: pytest.CaptureFixture[str]) -> tuple[dict, str]:
    import json

    from harness.cli import main
    from tests.conftest import SPECS_DIR
    from tests.records import record_json

    folder.mkdir()
    for seed in reversed(range(len(values))):  # files and finish times against seed order
        at = f"2026-12-0{len(values) - seed}T00:00:00+00:00"
        record = record_json("dmsresnet", "as-coded", seed, values[seed], finished_at=at)
        (folder / f"{9 - seed}-{record['run_id']}.json").write_text(json.dumps(record))
    spec = str(SPECS_DIR / "dmsresnet.toml")
    base = ["table", "--claims", "--specs", spec, "--results", str(folder), "--no-latency"]
    assert main([*base, "--format", "json"]) == 0
    claims = json.loads(capsys.readouterr().out)
    assert main(base) == 0
    kd = next(c for c in claims if c["claim_id"] == "kd-acc" and c["variant"] == "as-coded")
    return kd, capsys.readouterr().out


def test_the_table_says_after_how_many_seeds_in_seed_order_the_sequential_test_decided(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seeds are looked at in seed order, as the sweep adds them: in seed order the test first crosses after 5
    seeds, in the order the files (or their finish times) give it would after 3."""
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    assert _first_crossing(KD_SEEDS) == 5 and _first_crossing(KD_SEEDS[::-1]) == 3
    kd, text = _kd_table(tmp_path / "five", KD_SEEDS, capsys)
    assert kd["verdict"] == "below claim" and kd["rule_n"] == 5
    assert kd["sequential"]["outcome"] == "below claim" and kd["sequential"]["seeds"] == 5
    assert kd["sequential"]["text"] == "below claim: decided after 5 seeds (sequential, α = 0.05)"
    assert kd["sequential"]["alpha"] == 0.05 and "nominal 0.01098" in kd["sequential"]["boundary"]
    assert "below after 5" in text and "sequential α 0.05" in text
    # two seeds: the fixed rule already says something, the sequential test is still open
    kd, text = _kd_table(tmp_path / "two", KD_SEEDS[:2], capsys)
    assert _first_crossing(KD_SEEDS[:2]) is None
    assert kd["sequential"]["text"] == "open after 2 seeds (sequential, α = 0.05)" and "open at 2" in text


def test_the_study_says_after_how_many_seeds_the_sequential_test_decided(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.cli import main
    from tests.conftest import REPO, SPECS_DIR

    monkeypatch.chdir(REPO)
    _kd_table(tmp_path / "runs", KD_SEEDS, capsys)
    out = tmp_path / "studies"
    argv = ["report", str(SPECS_DIR / "dmsresnet.toml"), "--results", str(tmp_path / "runs"), "--out", str(out)]
    assert main([*argv, "--no-latency"]) == 0
    for name in ("study.md", "study.html"):
        assert "below claim: decided after 5 seeds (sequential, α = 0.05)" in (out / "dmsresnet" / name).read_text()
    tex = (out / "dmsresnet" / "claims.tex").read_text()
    assert r"below claim: decided after 5 seeds (sequential, \ensuremath{\alpha} = 0.05)" in tex


def test_seeds_without_spread_are_decided_not_an_error() -> None:
    """Two seeds with the same figure (a tie is common at a small budget): t is infinite, and the look decides
    by the side of the band the mean lies on (it raised ZeroDivisionError on a table row with two equal seeds)."""
    d = seq.design()
    assert seq.decide([94.0, 94.0], 96.5, 0.05, d).outcome == "below claim"
    assert seq.decide([97.0, 97.0], 96.5, 0.05, d).outcome == "above claim"
    assert seq.decide([96.5, 96.5], 96.5, 0.05, d).outcome == "reproduced"
    assert seq.decide([0.5, 0.5], 0.0, 0.5, d).outcome == "open"  # on the band's edge: t is NaN
