"""What a set of runs says about a claim: which runs pool (one cohort, one sample per seed), the figure
the claim's own selection rule gives (each seed's newest run that has it), the verdict and how strong it is.

A claim's `selection` says how its figure was chosen; the runs are judged by the figure the same rule
produces (the best test epoch for a claim chosen on the test curve, the last epoch for a last-epoch
claim, ...), and the clean figure (the model the spec selects, never chosen on test data) is shown
beside it by the table.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.results import sequential
from harness.results.identity import budget_name, cohort_id
from harness.results.record import Record
from harness.results.stats import Summary, judge, strength, summarize, tolerance
from harness.spec import TEST_SELECTION, Claim

RULE_FIGURE = {  # a claim's selection -> the figure of test_acc_by_rule made by the same rule
    "last-epoch": "last-epoch",
    "best-val": "best-val",
    "best-epoch-test": "best-epoch-test",
    "test-early-stop": "best-epoch-test",  # stopping where the test curve peaks picks its best epoch
}
UNBOUNDED = 10**9  # "every image" when ranking budgets by the images they trained on


@dataclass(frozen=True)
class Evidence:
    """One cohort's finished runs: each seed's distinct runs, newest first, and every record read of them."""

    by_seed: tuple[tuple[Record, ...], ...]  # per seed, in seed order: its runs (one record each), newest first
    records: tuple[Record, ...]  # every record of the cohort: copies of a run in other folders included

    @property
    def runs(self) -> list[Record]:
        """One record per seed, in seed order: its newest run, the sample of the clean figure."""
        return [runs[0] for runs in self.by_seed]

    def sample(self, figure: Callable[[Record], float | None]) -> list[tuple[Record, float]]:
        """Per seed, its newest run that has `figure` (e.g. a claim rule's), with the figure: a run without
        the figure never displaces one with it, and a seed none of whose runs has it is left out."""
        found = []
        for runs in self.by_seed:
            found += [(r, v) for r in runs if (v := figure(r)) is not None][:1]
        return found

    @property
    def n(self) -> int:
        return len(self.by_seed)

    @property
    def distinct(self) -> int:
        """Distinct runs (by run identity) of the cohort: a record copied into several folders is one."""
        return sum(len(runs) for runs in self.by_seed)

    @property
    def unused(self) -> int:
        """Distinct runs of these seeds that are not their seed's newest: re-runs differing only outside the
        cohort (another device, layout, augmentation path, ...). Copies of a run count as the run."""
        return self.distinct - self.n

    @property
    def full_budget(self) -> bool:
        return bool(self.by_seed) and bool(self.runs[0].cohort.get("full_budget"))

    @property
    def official(self) -> bool:
        return bool(self.by_seed) and all(r.data.get("official") for r in self.runs)

    @property
    def reproduction(self) -> bool:
        """The only evidence a claim is judged on: its own recipe, at the full budget, on official CIFAR-10."""
        return self.full_budget and self.official and self.runs[0].protocol == "own"


NO_EVIDENCE = Evidence((), ())


def run_key(record: Record) -> str:
    """The run a record is of: its run id (its identity's digest), the same in every folder that holds it."""
    return record.run_id or cohort_id(record.identity)


def finished(record: Record) -> bool:
    """A finished, current run: complete with a test figure, of this harness's results version."""
    return record.status == "complete" and record.test_acc is not None and not record.stale


def cohorts(records: list[Record], finished_only: bool = True) -> list[Evidence]:
    """Every cohort among the finished, current records (stale ones never pool), each seed's runs newest
    first; with `finished_only=False`, among all records (for drawing curves: a cohort never mixes versions).

    A record copied into several folders is one run (its newest copy stands for it); a run's re-run with
    settings outside the cohort is another run of the same seed. Newest: the latest `finished_at`, ties
    going to the larger run id, then to the record read first.
    """
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if finished(record) or not finished_only:
            groups[cohort_id(record.cohort)].append(record)
    found = []
    for key in sorted(groups):
        newest = sorted(groups[key], key=lambda r: (r.finished_at, r.run_id), reverse=True)  # stable: ties in order
        by_run: dict[str, Record] = {}
        for record in newest:
            by_run.setdefault(run_key(record), record)
        by_seed: dict[int, list[Record]] = defaultdict(list)
        for record in by_run.values():
            by_seed[record.seed].append(record)
        found.append(Evidence(tuple(tuple(by_seed[s]) for s in sorted(by_seed)), tuple(groups[key])))
    return found


def evidence(records: list[Record]) -> Evidence:
    """The strongest cohort: a reproduction first, then the full budget, then the most images trained on,
    then the most seeds (ties: the cohort id, so that the choice never depends on the order of files)."""
    found = cohorts(records)
    if not found:
        return NO_EVIDENCE

    def rank(e: Evidence) -> tuple[bool, bool, int, int, str]:
        cohort = e.runs[0].cohort
        trained = cohort["epochs"] * (cohort["train_images"] or UNBOUNDED)
        return (not e.reproduction, not e.full_budget, -trained, -e.n, cohort_id(cohort))

    return min(found, key=rank)


def rule_figure(record: Record, selection: str) -> float | None:
    """The test accuracy a run gives under a claim's selection rule; None when the run cannot say.

    `unknown`: the harness's clean figure (the verdict then says the rule is unknown).
    """
    if selection not in RULE_FIGURE:
        return record.test_acc
    return record.test_acc_by_rule.get(RULE_FIGURE[selection])


def rule_sample(found: Evidence, selection: str) -> list[tuple[Record, float]]:
    """Each seed's figure under a claim's selection rule, from its newest run that has one: a re-run without
    the figure (e.g. without --track-test for the best test epoch) never displaces an older run with it."""
    return found.sample(lambda record: rule_figure(record, selection))


def records_used(found: Evidence, claims: tuple[Claim, ...]) -> list[str]:
    """Where the records behind a row's figures were written: each seed's newest run (the clean figure),
    then any older run that an accuracy claim's rule took for a seed lacking its figure in the newest."""
    used = found.runs + [r for c in claims if c.metric == "accuracy" for r, _ in rule_sample(found, c.selection)]
    return list(dict.fromkeys(r.record_path for r in used))


def why_no_verdict(found: Evidence) -> str | None:
    """Why these runs cannot be held against a claim (None when they can): the reason, not a label."""
    if not found.runs:
        return "not run"
    if not found.full_budget:
        return "not run at full budget"
    if not found.official:
        return "full budget, but not on the official CIFAR-10 pixels"
    if found.runs[0].protocol != "own":
        return "another protocol's recipe"
    return None


def verdict(found: Evidence, claim: Claim | None, summary: Summary | None) -> str:
    """reproduced / below claim / above claim under the claim's own rule (with the seed count below
    three seeds), or why the runs cannot say. `summary` summarises the runs' figures under the claim's rule."""
    reason = why_no_verdict(found)
    if reason is not None:
        return reason
    if claim is None or claim.split != "cifar10-test":
        return "no test-set claim"
    if summary is None:
        if claim.selection in TEST_SELECTION:
            return "no test curve (run with --track-test)"
        return f"no {claim.selection} figure"
    suffix = " (selection unknown: clean figure)" if claim.selection == "unknown" else ""
    return judge(summary, claim.value, claim.step) + suffix


def judge_claim(found: Evidence, claim: Claim | None) -> dict[str, Any]:
    """One accuracy claim (None: a variant without one) against one cohort: its rule's figure, the verdict
    and its strength.

    Δ, the CI, the one-sided tests and the power statement exist only for a test-set claim against a
    reproduction (the full budget on the official data); one seed never has a CI.
    """
    values = [v for _, v in rule_sample(found, claim.selection)] if claim else []
    rule = summarize(values)
    # a claim on another split (validation, train, Kaggle) is listed, never held against test figures
    judged = found.reproduction and rule is not None and claim is not None and claim.split == "cifar10-test"
    power = strength(values, claim.value, claim.step) if judged else None
    return {
        "claim_id": claim.id if claim else None,
        "claim_value": claim.value if claim else None,
        "claim_selection": claim.selection if claim else None,
        "claim_split": claim.split if claim else None,
        "headline": claim.headline if claim else False,
        "rule_n": rule.n if rule else 0,
        "rule_acc_mean": rule.mean if rule else None,
        "rule_acc_std": rule.std if rule else None,
        "ci95": list(rule.ci95) if judged and rule.ci95 else None,
        "rule_ci95": list(rule.ci95) if rule and rule.ci95 else None,  # the same interval, judging nothing
        "delta": rule.mean - claim.value if judged else None,
        "p_below_claim": power.p_below if power else None,
        "p_above_claim": power.p_above if power else None,
        "resolvable_gap": power.resolvable_gap if power else None,
        "seeds_needed": power.seeds_needed if power else None,
        "verdict": verdict(found, claim, rule),
        "sequential": sequential_verdict(values, claim) if judged else None,
    }


def sequential_verdict(values: list[float], claim: Claim) -> dict[str, Any]:
    """The sequential design (sequential.py, α = 0.05, looks at 2..10 seeds) over the seeds in seed order: the
    look at which it decided, or that it is still open. Its `reproduced` is an equivalence test (the interval
    inside the band), stricter than the verdict's (the 95% CI meets the band)."""
    d = sequential.design()
    decision = sequential.first_decision(values, claim.value, tolerance(claim.step), d)
    return {
        "outcome": decision.outcome,
        "seeds": decision.n,
        "alpha": d.alpha,
        "design": d.name,
        "boundary": decision.boundary,
        "text": sequential.decided_text(decision, d),
    }


def budget_of(found: Evidence) -> str | None:
    """The evidence's budget by what was run: `full`, or `reduced` (never a profile's name)."""
    return budget_name(found.runs[0].cohort) if found.runs else None
