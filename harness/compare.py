"""`harness compare`: Welch's t-test between two entries, each over one cohort of 3+ finished seeds."""

from __future__ import annotations

from typing import Any

from harness.errors import HarnessError
from harness.identity import budget_text, comparison_key
from harness.record import Record
from harness.spec import Protocol, Spec, with_protocol
from harness.stats import welch
from harness.verdict import evidence


class CompareError(HarnessError):
    """Two entries that cannot be compared; the message says which and why."""


def entry_runs(specs: list[Spec], records: list[Record], label: str, protocol: Protocol | None) -> list[Record]:
    """The strongest cohort of finished runs of `REPORT/VARIANT` under its own recipe or `protocol`."""
    by_name = {spec.name: spec for spec in specs}
    report, _, name = label.partition("/")
    if report not in by_name or not name:
        raise CompareError(f"{label!r}: expected REPORT/VARIANT with REPORT one of {', '.join(by_name)}")
    spec = by_name[report]
    target = with_protocol(spec, spec.variant(name), protocol)
    wanted = "own" if protocol is None else protocol.name
    runs = evidence([r for r in records if r.spec_hash == target.spec_hash and r.protocol == wanted])
    if len(runs) < 3:
        raise CompareError(
            f"{label}: {len(runs)} finished seed(s) of one cohort; Welch's test needs at least 3 for each side"
        )
    return runs


def compare(a: tuple[str, list[Record]], b: tuple[str, list[Record]]) -> dict[str, Any]:
    """Both means with std and n, the difference with its 95% CI, t, degrees of freedom and p."""
    (label_a, runs_a), (label_b, runs_b) = a, b
    cohort_a, cohort_b = runs_a[0].cohort, runs_b[0].cohort
    if comparison_key(cohort_a) != comparison_key(cohort_b):
        raise CompareError(
            f"{label_a} ran at {budget_text(cohort_a)} but {label_b} at {budget_text(cohort_b)} "
            "(or on other data): compare runs of one budget, data and precision"
        )
    result = welch([r.test_acc for r in runs_a], [r.test_acc for r in runs_b])
    full = cohort_a["profile"] == "full"
    return {
        "a": label_a,
        "b": label_b,
        "profile": cohort_a["profile"],
        "epochs": None if full else cohort_a["epochs"],  # None: each recipe's own (full)
        "train_images": None if full else cohort_a["train_images"],
        "precision": cohort_a["precision"],
        "data_source": runs_a[0].data_source,
        "n_a": result.a.n,
        "mean_a": result.a.mean,
        "std_a": result.a.std,
        "n_b": result.b.n,
        "mean_b": result.b.mean,
        "std_b": result.b.std,
        "difference": result.difference,
        "ci95": list(result.ci95),
        "t": result.t,
        "dof": result.dof,
        "p_value": result.p_value,
    }


def compare_text(out: dict[str, Any]) -> str:
    """The comparison as four lines of text."""
    images = f"{out['train_images']:,}" if out["train_images"] else "all"
    size = "" if out["epochs"] is None else f": {out['epochs']} epochs on {images} training images"
    precision = "" if out["precision"] == "fp32" else f", {out['precision']}"
    return "\n".join(
        [
            f"{out['a']}: {out['mean_a']:.2f} ± {out['std_a']:.2f} % (n={out['n_a']})",
            f"{out['b']}: {out['mean_b']:.2f} ± {out['std_b']:.2f} % (n={out['n_b']})",
            (
                f"difference {out['difference']:+.2f} points, 95% CI [{out['ci95'][0]:+.2f}, {out['ci95'][1]:+.2f}]; "
                f"Welch's t = {out['t']:.3f}, dof = {out['dof']:.1f}, p = {out['p_value']:.4g}"
            ),
            f"({out['profile']} budget{size}{precision}; {out['data_source']})",
        ]
    )
