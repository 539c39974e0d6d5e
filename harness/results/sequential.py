"""A sequential design for seeds: a sweep adds one seed at a time and stops as soon as a claim's answer is
known, while each false verdict keeps its stated rate although the data are looked at after every seed.

The design is a Pocock-type group-sequential test (Pocock 1977, "Group sequential methods in the design and
analysis of clinical trials", Biometrika 64(2):191-199): one constant nominal level for every look, chosen
so that the chance that *any* look rejects a true null is alpha. Pocock's constants assume a normal
statistic with known variance; seeds give a t-statistic with 1 to 9 degrees of freedom, so the level here
is calibrated for the t-statistic itself. Its null distribution is free of the mean and the spread, so one
calibration holds for every seed spread.

At each look with n >= min_seeds values (a look after every seed, n = min_seeds..max_seeds), with
tol = stats.tolerance(claim's step):
- "below claim" when the one-sided t-test of H0: mean >= claim - tol rejects at the nominal level;
- "above claim" likewise for H0: mean <= claim + tol;
- "reproduced" when the equivalence test (TOST) rejects both mean <= claim - tol and mean >= claim + tol at
  the nominal level, i.e. the (1 - 2 nominal) t-interval lies inside the band;
- else "open" (add a seed), and "inconclusive" when still open at max_seeds.

Error rates. Under mean = claim - tol the below-test statistic at every look is a central t, whatever the
spread; the level is the alpha-quantile of the smallest p-value over the looks (`calibrate`), so that the
below-test rejects at some look with probability alpha. The sweep may stop earlier for another outcome,
which only removes chances to err, and a mean inside the band makes "below" rarer still; the same holds
for "above" by symmetry. A false "reproduced" needs the test against the nearer edge to reject, so at or
beyond a band edge it too happens with probability <= alpha. Calibration: a fixed-seed simulation of
CALIBRATION_SWEEPS sweeps, precomputed in NOMINAL (`python -m harness.results.sequential --calibrate`
recomputes it; tests/test_sequential.py checks it on a fresh sample); other designs calibrate on first
use (about a second) and are cached.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness.common.lazy import lazy

scipy_stats = lazy("scipy.stats")

CITATION = "Pocock (1977), Biometrika 64(2):191-199: a constant nominal level at every look"
CALIBRATION_SWEEPS = 1_000_000
CALIBRATION_SEED = 1977
# (alpha, min_seeds, max_seeds) -> nominal level; printed by `python -m harness.results.sequential --calibrate`
NOMINAL = {
    (0.05, 2, 10): 0.010984,
    (0.025, 2, 10): 0.0049354,
}
OPEN, BELOW, ABOVE, REPRODUCED = 0, 1, 2, 3  # outcome codes of the vectorised rule
OUTCOMES = {OPEN: "open", BELOW: "below claim", ABOVE: "above claim", REPRODUCED: "reproduced"}
INCONCLUSIVE = "inconclusive"  # still open at max_seeds: the sweep stops without a verdict
FIXED_SEEDS = 5  # the fixed design the table compares with: stats.judge's rule at five seeds
TABLE_GAPS = (0.0, 0.25, 0.5, 1.0, 2.0)  # points below the claim
TABLE_STD, TABLE_TOL, TABLE_SWEEPS, TABLE_SEED = 0.15, 0.005, 20_000, 28


@dataclass(frozen=True)
class Design:
    alpha: float  # the most each false verdict may happen, over all looks together
    min_seeds: int  # the first look
    max_seeds: int  # the last look: a look after every seed in between
    nominal: float  # the one-sided level of every test at every look
    name: str
    citation: str


@dataclass(frozen=True)
class Decision:
    outcome: str  # below claim / above claim / reproduced / open / inconclusive
    n: int  # seeds looked at
    look: int  # 1 at min_seeds; 0 before the first look
    boundary: str  # which test crossed, at what level (or why none did)
    ci: tuple[float, float] | None  # the (1 - 2 nominal) t-interval of the mean; None below two seeds


@dataclass(frozen=True)
class SimulationResult:
    true_gap: float  # points below the claim
    std: float
    tol: float
    sweeps: int
    below: float  # share of sweeps ending in each outcome
    above: float
    reproduced: float
    inconclusive: float
    mean_seeds: float
    power: float | None  # share ending in the verdict the true mean calls for; None on a band edge


def _running_t(x: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeds, mean and standard error after each look (columns n = first..x.shape[1]) of each sweep (rows)."""
    y = x - x[:, :1]  # shifted by each sweep's first value: no cancellation in the sum of squares
    n = np.arange(1, x.shape[1] + 1, dtype=float)
    s1, s2 = np.cumsum(y, axis=1), np.cumsum(y * y, axis=1)
    var = np.maximum(s2 - s1 * s1 / n, 0.0) / np.maximum(n - 1, 1)
    mean = s1 / n + x[:, :1]
    cols = slice(first - 1, None)
    return n[cols], mean[:, cols], np.sqrt(var[:, cols] / n[cols])


def calibrate(alpha: float, min_seeds: int, max_seeds: int, sweeps: int, seed: int) -> float:
    """The nominal level at which a one-sided t-test repeated at every look rejects a true null (mean on the
    band edge) at some look with probability alpha: the alpha-quantile of each sweep's smallest p-value."""
    x = np.random.default_rng(seed).standard_normal((sweeps, max_seeds))
    n, mean, se = _running_t(x, min_seeds)
    smallest = scipy_stats.t.cdf(mean / se, n - 1).min(axis=1)
    return float(np.quantile(smallest, alpha))


@lru_cache(maxsize=16)
def _nominal(alpha: float, min_seeds: int, max_seeds: int) -> float:
    if (alpha, min_seeds, max_seeds) in NOMINAL:
        return NOMINAL[(alpha, min_seeds, max_seeds)]
    return calibrate(alpha, min_seeds, max_seeds, CALIBRATION_SWEEPS // 4, CALIBRATION_SEED)


def design(alpha: float = 0.05, max_seeds: int = 10, min_seeds: int = 2) -> Design:
    """The Pocock-type design: a look after every seed from min_seeds to max_seeds, each false verdict <= alpha."""
    if not (0 < alpha < 0.5 and 2 <= min_seeds <= max_seeds):
        raise ValueError(f"need 0 < alpha < 0.5 and 2 <= min_seeds <= max_seeds, got {alpha}, {min_seeds}, {max_seeds}")
    nominal = _nominal(alpha, min_seeds, max_seeds)
    return Design(alpha, min_seeds, max_seeds, nominal, f"pocock-t {min_seeds}..{max_seeds} seeds", CITATION)


def naive(alpha: float = 0.05, max_seeds: int = 10, min_seeds: int = 2) -> Design:
    """The fixed design's level at every look: what looking after every seed does without a correction."""
    return Design(alpha, min_seeds, max_seeds, alpha, "naive: fixed level at every look", "none")


def _classify(mean: np.ndarray, se: np.ndarray, crit: np.ndarray, tol: float) -> np.ndarray:
    """Outcome codes of the rule (claim at 0): mean, standard error and critical t broadcast together."""
    with np.errstate(divide="ignore", invalid="ignore"):  # no spread: t is +-inf, or NaN (open) on an edge
        low, high = (mean + tol) / se, (mean - tol) / se
    codes = np.full(np.broadcast(mean, se, crit).shape, OPEN)
    codes[low < -crit] = BELOW
    codes[high > crit] = ABOVE
    codes[(low > crit) & (high < -crit)] = REPRODUCED
    return codes


def _critical(d: Design, n: np.ndarray | int) -> np.ndarray:
    return np.asarray(scipy_stats.t.ppf(1 - d.nominal, np.asarray(n) - 1))


def decide(values: Sequence[float], claim: float, tol: float, d: Design) -> Decision:
    """The look after len(values) seeds: a verdict, or open (add a seed), or inconclusive at max_seeds."""
    n = len(values)
    if n > d.max_seeds:
        raise ValueError(f"{n} seeds: the design stops at {d.max_seeds}")
    if n < d.min_seeds:
        return Decision("open", n, 0, f"no look before {d.min_seeds} seeds", None)
    x = np.asarray(values, dtype=float) - claim
    mean, se = x.mean(), x.std(ddof=1) / math.sqrt(n)  # numpy floats: no spread gives t = +-inf, not an error
    crit = float(_critical(d, n))
    code = int(_classify(np.array(mean), np.array(se), np.array(crit), tol))
    level = f"at nominal {d.nominal:.4g}"
    t = scipy_stats.t(n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_low, p_high = float(t.cdf((mean + tol) / se)), float(t.sf((mean - tol) / se))
    boundary = {
        BELOW: f"one-sided t below claim-{tol:g} {level} (p={p_low:.3g})",
        ABOVE: f"one-sided t above claim+{tol:g} {level} (p={p_high:.3g})",
        REPRODUCED: f"TOST inside claim+-{tol:g} {level} (p={max(1 - p_low, 1 - p_high):.3g})",
        OPEN: f"no test crossed {level} (p below {p_low:.3g}, above {p_high:.3g})",
    }[code]
    outcome = OUTCOMES[code]
    if code == OPEN and n == d.max_seeds:
        outcome, boundary = INCONCLUSIVE, boundary + f"; stopped at max_seeds {d.max_seeds}"
    ci = (float(claim + mean - crit * se), float(claim + mean + crit * se))
    return Decision(outcome, n, n - d.min_seeds + 1, boundary, ci)


def first_decision(values: Sequence[float], claim: float, tol: float, d: Design) -> Decision:
    """The design applied to seeds in seed order, as a sweep with --until-decided looks at them: the first look
    at which a test crossed; else the last look the seeds allow (open, or inconclusive at max_seeds). Seeds
    past the first crossing (or past max_seeds) were not needed, and change nothing."""
    for n in range(min(len(values), d.min_seeds), min(len(values), d.max_seeds) + 1):  # one look below min_seeds
        decision = decide(values[:n], claim, tol, d)
        if decision.outcome != "open":
            break
    return decision


def decided_text(decision: Decision, d: Design) -> str:
    """How the table and the study say it: `below claim: decided after 3 seeds (sequential, α = 0.05)`."""
    design = f"(sequential, α = {d.alpha:g})"
    if decision.outcome == "open":
        return f"open after {decision.n} seed{'s' * (decision.n != 1)} {design}"
    if decision.outcome == INCONCLUSIVE:
        return f"inconclusive at {decision.n} seeds {design}"
    return f"{decision.outcome}: decided after {decision.n} seeds {design}"


def _draw(true_gap: float, std: float, sweeps: int, seeds: int, rng: np.random.Generator) -> np.ndarray:
    return rng.normal(-true_gap, std, (sweeps, seeds))  # the claim at 0: values are offsets from it


def _result(codes: np.ndarray, seeds: np.ndarray, true_gap: float, std: float, tol: float) -> SimulationResult:
    share = {code: float(np.mean(codes == code)) for code in OUTCOMES}
    right = BELOW if true_gap > tol else ABOVE if true_gap < -tol else REPRODUCED if abs(true_gap) < tol else None
    power = share[right] if right is not None else None
    return SimulationResult(
        true_gap, std, tol, len(codes), share[BELOW], share[ABOVE], share[REPRODUCED], share[OPEN],
        float(seeds.mean()), power,
    )  # fmt: skip


def simulate(
    d: Design, true_gap: float, std: float, tol: float, sweeps: int, rng: np.random.Generator
) -> SimulationResult:
    """`sweeps` sequential sweeps, vectorised: seeds ~ N(claim - true_gap, std), a look after every seed."""
    n, mean, se = _running_t(_draw(true_gap, std, sweeps, d.max_seeds, rng), d.min_seeds)
    codes = _classify(mean, se, _critical(d, n)[None, :], tol)
    stopped = codes != OPEN
    first = np.where(stopped.any(axis=1), stopped.argmax(axis=1), codes.shape[1] - 1)  # last look if none
    rows = np.arange(sweeps)
    return _result(codes[rows, first], n[first], true_gap, std, tol)


def fixed_codes(x: np.ndarray, tol: float) -> np.ndarray:
    """stats.judge's rule on each row (claim at 0, band +-tol): below / above when the 95% t-interval lies
    wholly outside the band, else reproduced. Vectorised here because judge takes one sample at a time;
    tests/test_sequential.py checks that the two agree."""
    n, mean, se = _running_t(x, x.shape[1])
    half = scipy_stats.t.ppf(0.975, n - 1) * se[:, 0]
    mean = mean[:, 0]
    codes = np.full(len(x), REPRODUCED)
    codes[mean + half < -tol] = BELOW
    codes[mean - half > tol] = ABOVE
    return codes


def simulate_fixed(true_gap: float, std: float, tol: float, sweeps: int, rng: np.random.Generator) -> SimulationResult:
    """The fixed design: FIXED_SEEDS seeds, then stats.judge's verdict (it has no inconclusive outcome)."""
    codes = fixed_codes(_draw(true_gap, std, sweeps, FIXED_SEEDS, rng), tol)
    return _result(codes, np.full(sweeps, float(FIXED_SEEDS)), true_gap, std, tol)


@dataclass(frozen=True)
class TableRow:
    true_gap: float
    sequential: SimulationResult
    fixed: SimulationResult


def expected_seeds_table(
    d: Design | None = None, gaps: Sequence[float] = TABLE_GAPS, std: float = TABLE_STD, tol: float = TABLE_TOL,
    sweeps: int = TABLE_SWEEPS, seed: int = TABLE_SEED,
) -> list[TableRow]:  # fmt: skip
    """Per true gap (points below the claim): the sequential design beside the fixed five-seed one."""
    d = d or design()
    rng = np.random.default_rng(seed)
    return [TableRow(g, simulate(d, g, std, tol, sweeps, rng), simulate_fixed(g, std, tol, sweeps, rng)) for g in gaps]


def markdown(rows: list[TableRow]) -> str:
    head = (
        "| true gap (points below claim) | sequential: mean seeds | P(below) | P(reproduced) | P(open) "
        "| fixed 5 seeds: P(below) | P(reproduced) | P(inconclusive) |\n|---|---|---|---|---|---|---|---|"
    )
    lines = []
    for r in rows:
        s, f = r.sequential, r.fixed
        lines.append(
            f"| {r.true_gap:g} | {s.mean_seeds:.2f} | {s.below:.3f} | {s.reproduced:.3f} | {s.inconclusive:.3f} "
            f"| {f.below:.3f} | {f.reproduced:.3f} | {f.inconclusive:.3f} |"
        )
    return "\n".join([head, *lines])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.results.sequential")
    parser.add_argument("--calibrate", action="store_true", help="recompute NOMINAL (a few seconds each)")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tol", type=float, default=TABLE_TOL)
    args = parser.parse_args(argv)
    if args.calibrate:
        for alpha, low, high in NOMINAL:
            level = calibrate(alpha, low, high, CALIBRATION_SWEEPS, CALIBRATION_SEED)
            print(f"    ({alpha}, {low}, {high}): {level:.5g},")
        return
    d = design(args.alpha)
    print(f"{d.name}, alpha {d.alpha} per false verdict, nominal {d.nominal:.4g} per look; "
          f"std {TABLE_STD}, tol {args.tol:g}, {TABLE_SWEEPS} sweeps, seed {TABLE_SEED}\n")  # fmt: skip
    print(markdown(expected_seeds_table(d, tol=args.tol)))


if __name__ == "__main__":
    main()
