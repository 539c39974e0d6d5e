"""The claims audit: protocol problems computed from a spec's own data, never typed into a table."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.measure.size import size_of
from harness.spec import TEST_SELECTION, Claim, Spec


@dataclass(frozen=True)
class Flag:
    code: str  # the short form shown in table cells
    name: str
    meaning: str


FLAGS = {
    flag.name: flag
    for flag in (
        Flag("T", "test-selection", "a claimed model, epoch or configuration was chosen on the test set"),
        Flag("V", "no-val", "the report's code has no validation split (it validates on the test set, or not at all)"),
        Flag("A", "aug-val", "the report's validation images pass through the training augmentation"),
        Flag("I", "inconsistent", "the report states different figures for one quantity"),
        Flag("P", "params-mismatch", "a stated parameter count does not reproduce"),
        Flag("B", "over-budget", "the model exceeds the report's parameter budget"),
        Flag("C", "code-differs", "the report's text differs from its released code"),
        Flag("S", "schedule-cut-short", "training stops before the learning-rate schedule's horizon"),
        Flag("R", "schedule-restarts", "training runs past the schedule's horizon, where the rate rises again"),
        Flag("U", "unreleased", "the run behind the claim is not in the released code; its recipe is inferred"),
    )
}


@dataclass(frozen=True)
class Finding:
    flag: Flag
    detail: str


def consistent(a: Claim, b: Claim) -> bool:
    """Two figures for one quantity agree if either, at its stated precision, covers the other."""
    return a.agreement(b.value) is not None or b.agreement(a.value) is not None


def audit(spec: Spec, variant: str) -> list[Finding]:
    """Every flag that applies to one variant of a spec, with the evidence for it."""
    v = spec.variants[variant]
    recipe = v.recipe
    claims = spec.claims_for(variant)
    found: list[Finding] = []

    chosen = [c for c in claims if c.selection in TEST_SELECTION or c.runs_compared_on_test]
    if chosen:
        found.append(
            Finding(
                FLAGS["test-selection"],
                "; ".join(
                    f"{c.text} ({c.selection}{', configuration compared on test' if c.runs_compared_on_test else ''})"
                    for c in chosen
                ),
            )
        )
    if recipe.eval.report_validation in ("test-set", "none"):
        found.append(Finding(FLAGS["no-val"], f"the report's validation set: {recipe.eval.report_validation}"))
    if recipe.eval.report_validation == "held-out-augmented":
        found.append(Finding(FLAGS["aug-val"], "validation images get the training transform"))

    clashes = []
    for i, a in enumerate(claims):
        for b in claims[i + 1 :]:
            if a.quantity == b.quantity and not consistent(a, b):
                clashes.append(
                    f"{a.quantity}: {a.text} ({', '.join(a.stated_in)}) vs {b.text} ({', '.join(b.stated_in)})"
                )
    if clashes:
        found.append(Finding(FLAGS["inconsistent"], "; ".join(clashes)))

    size = size_of(recipe.model)
    wrong = [c for c in claims if c.metric == "params" and c.agreement(size.params) is None]
    if wrong:
        found.append(
            Finding(
                FLAGS["params-mismatch"],
                f"measured {size.params:,}; stated " + ", ".join(f"{c.text} ({', '.join(c.stated_in)})" for c in wrong),
            )
        )
    if size.params > spec.report.param_budget and spec.role(variant) == "model":
        found.append(Finding(FLAGS["over-budget"], f"{size.params:,} > {spec.report.param_budget:,}"))

    differs = [d for d in v.deviations if d.kind == "code-differs"]
    if differs:
        found.append(Finding(FLAGS["code-differs"], "; ".join(f"{d.key}: {d.note}" for d in differs)))

    steps_per_epoch = math.ceil(recipe.data.train_size / recipe.train.batch_size)
    horizon = recipe.train.schedule.horizon_epochs(steps_per_epoch)
    if horizon is not None and recipe.train.epochs < horizon:
        found.append(
            Finding(
                FLAGS["schedule-cut-short"],
                f"{recipe.train.epochs} epochs of a {horizon:g}-epoch {recipe.train.schedule.name} schedule",
            )
        )
    if horizon is not None and recipe.train.epochs > horizon and recipe.train.schedule.name == "cosine":
        found.append(
            Finding(FLAGS["schedule-restarts"], f"{recipe.train.epochs} epochs on a cosine with T_max = {horizon:g}")
        )

    inferred = [d for d in v.deviations if d.kind == "inferred"]
    if inferred:
        found.append(Finding(FLAGS["unreleased"], "; ".join(f"{d.key}: {d.note}" for d in inferred)))
    return found


def legend() -> str:
    return "; ".join(f"{f.code} = {f.name}: {f.meaning}" for f in FLAGS.values())


def audit_text(spec: Spec, variant: str) -> str:
    """`harness audit` for one variant: its flags with their evidence, its claims, its deviations by kind."""
    v = spec.variants[variant]
    lines = [f"## {spec.name} / {variant}  ({spec.report.title}, {spec.report.year})", f"   {v.description}"]
    findings = audit(spec, variant)
    lines += [] if findings else ["   no flags"]
    for finding in findings:
        lines += [f"   [{finding.flag.code}] {finding.flag.name}: {finding.flag.meaning}", f"       {finding.detail}"]
    params = size_of(v.recipe.model).params
    for claim in spec.claims_for(variant):
        status = ""
        if claim.metric == "params":
            status = f" -> measured {params:,}: {claim.agreement(params) or 'does NOT reproduce'}"
        lines.append(f"   claim {claim.id}: {claim.describe()}{status}")
    for kind in ("code-differs", "unstated", "inferred", "harness"):
        lines += [f"   deviation [{kind}] {d.key}: {d.note}" for d in v.deviations if d.kind == kind]
    return "\n".join(lines) + "\n"
