"""What a set of runs says about a claim: which runs pool (one cohort), the figure the claim's own
selection rule gives, and the verdict.

A claim's `selection` says how its figure was chosen; the runs are judged by the figure the same rule
produces (the best test epoch for a claim chosen on the test curve, the last epoch for a last-epoch
claim, ...), and the clean figure (the model the spec selects, never chosen on test data) is shown
beside it by the table.
"""

from __future__ import annotations

from collections import defaultdict

from harness.identity import cohort_id
from harness.record import Record
from harness.spec import TEST_SELECTION, Claim
from harness.stats import Summary, judge

PROFILE_RANK = {"full": 0, "short": 1, "demo": 2, "smoke": 3}
RULE_FIGURE = {  # a claim's selection -> the figure of test_acc_by_rule made by the same rule
    "last-epoch": "last-epoch",
    "best-val": "best-val",
    "best-epoch-test": "best-epoch-test",
    "test-early-stop": "best-epoch-test",  # stopping where the test curve peaks picks its best epoch
}


def evidence(records: list[Record]) -> list[Record]:
    """The strongest cohort of finished runs: full budget on official data first, then the most seeds.

    Runs are pooled only within one cohort (identity.py: the same recipe, protocol, budget, data,
    precision and teacher), so a mean never mixes runs that were made differently.
    """
    groups: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record.status == "complete" and record.test_acc is not None:
            groups[cohort_id(record.cohort)].append(record)
    if not groups:
        return []

    def strength(runs: list[Record]) -> tuple[bool, int, int]:
        reproduction = all(r.is_reproduction for r in runs)
        return (not reproduction, PROFILE_RANK.get(runs[0].profile, 9), -len(runs))

    return min(groups.values(), key=strength)


def rule_figure(record: Record, selection: str) -> float | None:
    """The test accuracy a run gives under a claim's selection rule; None when the run cannot say.

    `unknown`: the harness's clean figure (the verdict then says the rule is unknown).
    """
    if selection not in RULE_FIGURE:
        return record.test_acc
    return record.test_acc_by_rule.get(RULE_FIGURE[selection])


def verdict(runs: list[Record], claim: Claim | None, summary: Summary | None) -> str:
    """reproduced / below claim / above claim under the claim's own rule, or why the runs cannot say.

    `summary` summarises the runs' figures under the claim's rule (see rule_figure).
    """
    if not runs:
        return "not run"
    if not all(r.is_reproduction for r in runs):
        return "not run at full budget"
    if claim is None or claim.split != "cifar10-test":
        return "no test-set claim"
    if summary is None:
        if claim.selection in TEST_SELECTION:
            return "no test curve (run with --track-test)"
        return f"no {claim.selection} figure"
    suffix = " (selection unknown: clean figure)" if claim.selection == "unknown" else ""
    return judge(summary, claim.value, claim.step) + suffix
