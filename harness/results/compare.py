"""`harness compare`: two entries, each its strongest cohort (one sample per seed), compared two ways.

- Welch's t-test of the two means, when each side has 3+ seeds;
- McNemar's exact paired test per seed that both sides ran on the same test images: the same images
  scored by both models, which tells a difference apart with far fewer seeds than comparing means.
"""

from __future__ import annotations

from typing import Any

from harness.common.errors import HarnessError
from harness.results.identity import budget_name, budget_text, comparison_key
from harness.results.record import SELECT_RULE, Record, unpack_mask
from harness.results.stats import FIRM_SEEDS, mcnemar, welch
from harness.results.verdict import Evidence, evidence
from harness.spec import Protocol, Spec, with_protocol


class CompareError(HarnessError):
    """Two entries that cannot be compared; the message says which and why."""


def entry_runs(specs: list[Spec], records: list[Record], label: str, protocol: Protocol | None) -> Evidence:
    """The strongest cohort of finished runs of `REPORT/VARIANT` under its own recipe or `protocol`."""
    by_name = {spec.name: spec for spec in specs}
    report, _, name = label.partition("/")
    if report not in by_name or not name:
        raise CompareError(f"{label!r}: expected REPORT/VARIANT with REPORT one of {', '.join(by_name)}")
    spec = by_name[report]
    target = with_protocol(spec, spec.variant(name), protocol)
    wanted = "own" if protocol is None else protocol.name
    found = evidence([r for r in records if r.spec_hash == target.spec_hash and r.protocol == wanted])
    if not found.runs:
        raise CompareError(f"{label}: no finished run of its current recipe (stale records do not count)")
    return found


def compare(a: tuple[str, Evidence], b: tuple[str, Evidence]) -> dict[str, Any]:
    """Both means with std and n (distinct seeds), Welch's test where both sides have 3+ seeds, and the
    paired per-image test for each seed both sides ran on the same test images."""
    (label_a, found_a), (label_b, found_b) = a, b
    cohort_a, cohort_b = found_a.runs[0].cohort, found_b.runs[0].cohort
    if comparison_key(cohort_a) != comparison_key(cohort_b):
        raise CompareError(_mismatch((label_a, found_a.runs[0]), (label_b, found_b.runs[0])))
    paired = _paired(found_a, found_b)
    weak = [f"{label} has {f.n}" for label, f in ((label_a, found_a), (label_b, found_b)) if f.n < FIRM_SEEDS]
    if weak and not paired:
        raise CompareError(
            f"Welch's test needs {FIRM_SEEDS}+ seeds on each side ({' and '.join(weak)} of one cohort), and no seed "
            "of both was scored on the same test images for a paired test"
        )
    full = budget_name(cohort_a) == "full"
    out: dict[str, Any] = {
        "a": label_a,
        "b": label_b,
        "budget": budget_name(cohort_a),
        "epochs": None if full else cohort_a["epochs"],  # None: each recipe's own (full)
        "train_images": None if full else cohort_a["train_images"],
        "precision": cohort_a["precision"],
        "data_source": found_a.runs[0].data_source,
        "n_a": found_a.n,
        "n_b": found_b.n,
        "welch": None,
        "paired": paired,
    }
    if not weak:
        result = welch([r.test_acc for r in found_a.runs], [r.test_acc for r in found_b.runs])
        out["welch"] = {
            "mean_a": result.a.mean,
            "std_a": result.a.std,
            "mean_b": result.b.mean,
            "std_b": result.b.std,
            "difference": result.difference,
            "ci95": list(result.ci95),
            "t": result.t,
            "dof": result.dof,
            "p_value": result.p_value,
        }
    return out


def _mismatch(a: tuple[str, Record], b: tuple[str, Record]) -> str:
    """Why two entries' runs do not compare (identity.comparison_key), in one line: their data, else their
    precision, else their budget (both are current runs: the harness version is this one)."""
    (label_a, run_a), (label_b, run_b) = a, b
    cohort_a, cohort_b = run_a.cohort, run_b.cohort
    if cohort_a["data_sha256"] != cohort_b["data_sha256"]:
        return f"{label_a} ran on {_data(run_a)} but {label_b} on {_data(run_b)}: compare runs on one data set"
    if cohort_a["precision"] != cohort_b["precision"]:
        return (
            f"{label_a} ran in {cohort_a['precision']} but {label_b} in {cohort_b['precision']}: compare one precision"
        )
    return f"{label_a} ran at {budget_text(cohort_a)} but {label_b} at {budget_text(cohort_b)}: compare one budget"


def _data(run: Record) -> str:
    """The data a run used, by name and SHA-256 prefix: two image copies may share a name."""
    name = "the official CIFAR-10 pixels" if run.data.get("official") else run.data_source or "unnamed data"
    return f"{name} (sha256 {str(run.cohort['data_sha256'])[:12]})"


def _paired(found_a: Evidence, found_b: Evidence) -> list[dict[str, Any]]:
    """McNemar per seed that both sides ran and scored image by image on the same test images."""
    by_seed = {r.seed: r for r in found_b.runs}
    out = []
    for run_a in found_a.runs:
        run_b = by_seed.get(run_a.seed)
        if run_b is None or run_a.identity.get("test_images") != run_b.identity.get("test_images"):
            continue
        bits_a = run_a.test_correct.get(SELECT_RULE.get(run_a.selection, "last-epoch"))
        bits_b = run_b.test_correct.get(SELECT_RULE.get(run_b.selection, "last-epoch"))
        if bits_a is None or bits_b is None:
            continue
        images = run_a.budget.get("test_images")
        result = mcnemar(unpack_mask(bits_a, images), unpack_mask(bits_b, images))
        out.append(
            {
                "seed": run_a.seed,
                "images": result.images,
                "acc_a": run_a.test_acc,
                "acc_b": run_b.test_acc,
                "only_a": result.only_a,
                "only_b": result.only_b,
                "p_value": result.p_value,
            }
        )
    return out


def compare_text(out: dict[str, Any]) -> str:
    """The comparison as lines of text: Welch's test of the means, then the paired tests."""
    images = f"{out['train_images']:,}" if out["train_images"] else "all"
    size = "" if out["epochs"] is None else f": {out['epochs']} epochs on {images} training images"
    precision = "" if out["precision"] == "fp32" else f", {out['precision']}"
    lines = []
    welch_out = out["welch"]
    if welch_out:
        lines += [
            f"{out['a']}: {welch_out['mean_a']:.2f} ± {welch_out['std_a']:.2f} % (n={out['n_a']} seeds)",
            f"{out['b']}: {welch_out['mean_b']:.2f} ± {welch_out['std_b']:.2f} % (n={out['n_b']} seeds)",
            (
                f"difference {welch_out['difference']:+.2f} points, 95% CI [{welch_out['ci95'][0]:+.2f}, "
                f"{welch_out['ci95'][1]:+.2f}]; Welch's t = {welch_out['t']:.3f}, dof = {welch_out['dof']:.1f}, "
                f"p = {welch_out['p_value']:.4g}"
            ),
        ]
    else:
        lines.append(f"no Welch's test: {FIRM_SEEDS}+ seeds needed on each side (n = {out['n_a']} and {out['n_b']})")
    for pair in out["paired"]:
        lines.append(
            f"seed {pair['seed']}, paired on {pair['images']:,} test images: {pair['acc_a']:.2f} vs {pair['acc_b']:.2f} %; "
            f"only {out['a']} right on {pair['only_a']}, only {out['b']} on {pair['only_b']}; "
            f"McNemar's exact p = {pair['p_value']:.4g}"
        )
    lines.append(f"({out['budget']} budget{size}{precision}; {out['data_source']})")
    return "\n".join(lines)
