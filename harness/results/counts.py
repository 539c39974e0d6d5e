"""The leaderboard's counts: what else was found beside the runs a row shows, each run counted once.

A row shows one cohort (verdict.evidence); its counts are of that cohort, by run identity (a record copied
into several folders is one run, so a copied folder changes no count):

- `n_records`: distinct finished runs of the cohort, the seeds' samples and the runs not used;
- `n_unused`: finished runs of those seeds that are not their seed's newest: re-runs differing only
  outside the cohort (device, layout, augmentation path, ...);
- `n_diverged`: runs of the cohort that diverged;
- `n_stale`: records that would be of the cohort but for their recipe (an edited spec: another
  `spec_hash`) or harness code (another results version): shown here, never pooled. At the full budget
  the epochs are the recipe's own, so an edited spec's full-budget runs count on the full-budget row.

A row that shows no run has no cohort: its counts are then of every run of the variant's own recipe
(`n_diverged`: its current runs that diverged, `n_stale`: its stale records), so that `not run, 2 div` still
says that runs were tried.
"""

from __future__ import annotations

from typing import Any

from harness.results.identity import cohort_id
from harness.results.record import Record
from harness.results.verdict import Evidence, run_key

VERSION_FIELDS = ("spec_hash", "results_version")  # what makes a record of a cohort's variant stale


def row_counts(found: Evidence, mine: list[Record], spec_hash: str) -> dict[str, int]:
    """The counts of a row showing `found`, among `mine` (every own-protocol record of the row's variant,
    whatever its recipe or version) and the variant's current `spec_hash`."""
    shown = found.runs[0].cohort if found.runs else None
    current = [r for r in mine if r.spec_hash == spec_hash and not r.stale]
    diverged = {
        run_key(r)
        for r in current
        if r.status == "diverged" and (shown is None or cohort_id(r.cohort) == cohort_id(shown))
    }
    stale = {
        run_key(r)
        for r in mine
        if (r.spec_hash != spec_hash or r.stale) and (shown is None or _but_version(r.cohort) == _but_version(shown))
    }
    return {"n_records": found.distinct, "n_unused": found.unused, "n_diverged": len(diverged), "n_stale": len(stale)}


def _but_version(cohort: dict[str, Any]) -> str:
    """A cohort without its recipe hash and results version (and its epochs at the full budget, which are
    the recipe's own): the cohort a stale record would be of, had it been run with this recipe and harness."""
    kept = {key: value for key, value in cohort.items() if key not in VERSION_FIELDS}
    if kept.get("full_budget"):
        kept["epochs"] = None
    return cohort_id(kept)
