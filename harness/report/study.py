"""A report's reproduction study as plain facts, in the form reviewers use (ML Reproducibility Challenge,
ReScience): a title that carries the outcome, a summary of numbers, introduction, methodology, results,
discussion, what was easy and hard, communication with the authors, computational requirements, and an
appendix that lets anyone redo every run.

Every sentence is derived from the spec (claims, deviations, release facts), the audit, the leaderboard's
rows (verdicts and their strength) and the records; nothing is written by hand per report. Each fact is
said once: differences in one table keyed by spec key (differences.py), audit flags beside the claims they
concern, runs and their provenance in provenance.py. `render.py` turns the facts into Markdown, HTML and
LaTeX.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.report.differences import claim_flags, difference_table, discussion, flag_legend
from harness.report.provenance import appendix, compute_requirements, run_facts
from harness.results.identity import budget_text
from harness.results.record import Record
from harness.spec import Claim, Spec

CHECKLIST = (  # Papers with Code's ML Code Completeness Checklist, in its order
    ("dependencies", "Dependencies"),
    ("training_code", "Training code"),
    ("evaluation_code", "Evaluation code"),
    ("pretrained_weights", "Pre-trained models"),
    ("results_with_commands", "README with results and the commands that make them"),
)
# A claim's outcome from its verdicts (verdict.py's words); a claim with none of these is untested
DECIDED = {"reproduced": "reproduced", "below claim": "not reproduced (below)", "above claim": "not reproduced (above)"}
NO_FULL_RUN = "no run at the full budget on the official CIFAR-10 pixels"


@dataclass(frozen=True)
class StudyInputs:
    """One report's spec, the leaderboard rows of every spec (for the fronts and the leaderboard), every
    record read, and the harness that writes the study (commit and versions, for the appendix)."""

    spec: Spec
    rows: list[dict[str, Any]]
    records: list[Record]
    writer: dict[str, Any]


def build_study(inputs: StudyInputs) -> dict[str, Any]:
    """The study's facts as one JSON-able dict (the templates' only input)."""
    spec = inputs.spec
    mine = [r for r in inputs.rows if r["report"] == spec.name]
    used = {path for row in mine for path in row["records_used"]}
    records = sorted({r.record_path: r for r in inputs.records if r.record_path in used}.values(), key=_run_order)
    claims = [_claim(spec, c, mine) for c in _central_first(spec)]
    accuracy = [c for c in claims if c["metric"] == "accuracy"]
    runs = [run_facts(r, spec) for r in records]
    checklist = _checklist(spec)
    return {
        "report": _report(spec),
        "outcome": outcome(accuracy),
        "claims": claims,
        "results": [{**v, "claim": c} for c in accuracy for v in c["verdicts"] if v["figure"] is not None],
        "untested": [c for c in accuracy if not any(v["figure"] is not None for v in c["verdicts"])],
        "params": [{**v, "claim": c} for c in claims if c["metric"] == "params" for v in c["verdicts"]],
        "introduction": _introduction(spec, accuracy),
        "methodology": _methodology(spec, records),
        "differences": difference_table(spec, [row["variant"] for row in mine]),
        "flags": flag_legend(claims),
        "discussion": discussion(spec, claims),
        "easy": _easy(spec, mine, checklist),
        "hard": _hard(spec, checklist, records),
        "communication": spec.report.communication,
        "compute": compute_requirements(spec, mine, records),
        "runs": runs,
        "appendix": appendix(spec, mine, records, inputs.writer),
        "checklist": checklist,
        "unofficial": sorted({r.data.get("source") or r.data_source for r in records if not r.data.get("official")}),
        "n_unofficial": sum(not r.data.get("official") for r in records),
    }


def outcome(accuracy: list[dict[str, Any]]) -> dict[str, Any]:
    """The study's answer: reproduced, not reproduced, partly reproduced, or untested (and why), with the
    count of accuracy claims in each state."""
    counts = {state: sum(c["status"] == state for c in accuracy) for state in (*DECIDED.values(), "untested")}
    decided = len(accuracy) - counts["untested"]
    if decided == 0:
        word = "untested"
        ran = sum(any(v["figure"] is not None for v in c["verdicts"]) for c in accuracy)
        why = NO_FULL_RUN + (f" ({ran} of {len(accuracy)} claims have runs that cannot judge them)" if ran else "")
    elif counts["reproduced"] == len(accuracy):
        word, why = "reproduced", "every accuracy claim is reproduced"
    elif counts["reproduced"] == 0 and counts["untested"] == 0:
        word, why = "not reproduced", "no accuracy claim is reproduced"
    else:
        word, why = "partly reproduced", f"{counts['reproduced']} of {len(accuracy)} accuracy claims reproduced"
    line = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no accuracy claims"
    return {"word": word, "why": why, "counts": counts, "n_claims": len(accuracy), "line": line}


def _claim(spec: Spec, claim: Claim, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A claim, its verdict per variant (the claim's own rule; the gap even where no verdict is given), its
    audit flags and its state."""
    verdicts = [_verdict(claim, row) for row in rows if row["variant"] in claim.variants]
    if not verdicts:
        verdicts = [_verdict(claim, None)]
    states = [DECIDED[v["verdict_word"]] for v in verdicts if v["verdict_word"] in DECIDED]
    status = "reproduced" if "reproduced" in states else (states[0] if states else "untested")
    reasons = sorted({v["verdict"] for v in verdicts if v["verdict_word"] not in DECIDED})
    return {
        "id": claim.id,
        "central": claim is spec.headline(spec.default_variant),
        "metric": claim.metric,
        "value": claim.value,
        "text": claim.text,
        "step": claim.step,
        "where": "; ".join(claim.stated_in),
        "split": claim.split,
        "selection": claim.selection,
        "variants": list(claim.variants),
        "note": claim.note,
        "verdicts": verdicts,
        "status": status,
        "why_untested": "; ".join(reasons) if status == "untested" else "",
        "flags": claim_flags(spec, claim),
    }


def _verdict(claim: Claim, row: dict[str, Any] | None) -> dict[str, Any]:
    """One (claim, variant) pair: the figure under the claim's rule, its gap to the claim, and the verdict."""
    if row is None:
        return {"variant": ", ".join(claim.variants) or "-", "figure": None, "gap": None, "verdict": "no variant",
                "verdict_word": "no variant", "judged": False, "rule_n": 0, "rule_acc_mean": None,
                "rule_acc_std": None, "delta": None, "ci95": None, "p_below_claim": None, "p_above_claim": None,
                "seeds_needed": None, "sequential": None, "budget": None, "data": None}  # fmt: skip
    if claim.metric == "params":
        agreement = claim.agreement(row["params"])
        return {"variant": row["variant"], "counted": row["params"], "agreement": agreement,
                "verdict": agreement or "does not reproduce", "verdict_word": "params", "figure": None,
                "judged": agreement is not None, "sequential": None}  # fmt: skip
    judged = next(j for j in row["claim_verdicts"] if j["claim_id"] == claim.id)
    figure = judged["rule_acc_mean"]
    return {
        **judged,
        "variant": row["variant"],
        "figure": figure,
        "gap": None if figure is None else figure - claim.value,
        "ci95": judged["rule_ci95"],  # shown beside a gap that judges nothing too, as the gap is
        "verdict_word": judged["verdict"].split(" (")[0],
        "judged": judged["delta"] is not None,
        "budget": budget_text(row) if row["epochs"] else None,
        "data": row["data_source"],
    }


def _report(spec: Spec) -> dict[str, Any]:
    report = spec.report
    return {
        "id": report.id,
        "name": report.name,
        "title": report.title,
        "authors": list(report.authors),
        "year": report.year,
        "url": report.url,
        "code_url": report.code_url,
        "code_read": report.code_read,
        "spec": spec.path.as_posix(),
        "default_variant": spec.default_variant,
        "param_budget": report.param_budget,
    }


def _central_first(spec: Spec) -> list[Claim]:
    """The default variant's headline claim first, then the other claims in the spec's order."""
    central = spec.headline(spec.default_variant)
    return sorted(spec.claims, key=lambda c: c is not central)


def _run_order(record: Record) -> tuple[str, str, int]:
    return (record.variant, record.protocol, record.seed)


def _introduction(spec: Spec, accuracy: list[dict[str, Any]]) -> list[str]:
    """What the report claims and why it matters, from the spec's own facts."""
    report = spec.report
    central = next((c for c in accuracy if c["central"]), None)
    said = [
        f"{', '.join(report.authors)} ({report.year}) report a ResNet for CIFAR-10 classification under a budget of "
        f"{report.param_budget:,} parameters. The spec records {len(accuracy)} accuracy claims and "
        f"{len(spec.claims) - len(accuracy)} parameter counts across {len(spec.variants)} variants."
    ]
    if central is not None:
        said.append(
            f"The central claim is {central['text']} test accuracy ({central['where']}; split {central['split']}, "
            f"model chosen by {central['selection']}) for {spec.default_variant}."
        )
    said.append(
        "Compact networks like this one are what an edge deployment can afford; whether the accuracy reported "
        "for them holds, under a protocol that chooses nothing on the test set, decides whether they should be "
        "picked over better-known networks of the same size."
    )
    return said


def _methodology(spec: Spec, records: list[Record]) -> list[str]:
    recipe = spec.variant().recipe
    said = [
        f"Every variant is built and trained by the harness from {spec.path.name} under one protocol: "
        f"{recipe.data.val_size:,} training images are held out for validation (seed {recipe.data.val_seed}); each "
        "selection rule's model is tested once on the 10,000 test images, and no choice is made on the test set.",
        "A claim is judged only by runs of its own recipe at the full budget on the official CIFAR-10 pixels, under "
        "the claim's own selection rule: one sample per seed gives the mean, Δ, the 95% CI (Student's t), the "
        "one-sided tests and the seeds needed. The verdict and the one-sided tests both measure from the claim "
        "± half its stated precision (88% stated to 1 point covers 87.5-88.5%): reproduced when the 95% CI meets "
        "that band, below or above when the CI lies wholly under or over it. Beside it, the sequential test a "
        "sweep with --until-decided uses (Pocock-type, α = 0.05 for each false verdict, a look after each of 2-10 "
        "seeds) over the seeds in seed order says after how many seeds it decided; its reproduced needs the "
        "interval inside the band.",
    ]
    if records:
        budgets = sorted({budget_text(r.cohort) for r in records})
        sources = sorted({r.data.get("source") or r.data_source for r in records})
        said.append(f"Runs: {len(records)}, at {'; '.join(budgets)}, on {'; '.join(sources)}.")
    else:
        said.append("No run of the current recipe has been recorded yet.")
    return said


def _checklist(spec: Spec) -> list[dict[str, Any]]:
    release = spec.report.release
    if release is None:
        return []
    return [{"item": label, **getattr(release, key).model_dump()} for key, label in CHECKLIST]


def _easy(spec: Spec, rows: list[dict[str, Any]], checklist: list[dict[str, Any]]) -> list[str]:
    released = [item["item"] for item in checklist if item["present"]]
    easy = [f"The release has: {', '.join(released)}." if released else ""]
    counted = [row for row in rows if row["params_agreement"]]
    if counted:
        easy.append(
            f"Parameter counts: {len(counted)} of {len(rows)} variants count to the stated figure "
            f"({', '.join(row['variant'] for row in counted)})."
        )
    central = spec.variant()
    if not any(d.kind in ("unstated", "inferred") for d in central.deviations):
        easy.append(f"{central.name}: every recipe value is stated in the report or its code.")
    return [line for line in easy if line]


def _hard(spec: Spec, checklist: list[dict[str, Any]], records: list[Record]) -> list[str]:
    hard = [f"{item['item']} missing: {item['note']}." for item in checklist if not item["present"]]
    kinds: dict[str, int] = {}
    for variant in spec.variants.values():
        for d in variant.deviations:
            kinds[d.kind] = kinds.get(d.kind, 0) + 1
    if kinds.get("code-differs"):
        hard.append("The released code differs from the text (see the differences table): both are run.")
    if kinds.get("unstated") or kinds.get("inferred"):
        hard.append("Some recipe values are not stated or not released: the table marks each, with the value chosen.")
    if not any(r.cohort.get("full_budget") for r in records):
        hard.append("No run at the recipe's full budget yet: the full recipes are GPU work.")
    if records and not any(r.data.get("official") for r in records):
        hard.append("No run on the official CIFAR-10 pixels: the figures here cannot judge a claim.")
    return hard
