"""Where text, code and harness differ, and what the audit flags mean for the claims: each said once.

Deviations are one table keyed by spec key, with the variants as columns (a variant marked where it
carries that difference), so a difference shared by ten variants is one row, not ten paragraphs. Audit
flags are attached to the claims they concern: a claim-level flag (chosen on test, stated inconsistently, a
count that does not reproduce) only to the claims it names, a variant-level flag to the claims of the
variants it applies to.
"""

from __future__ import annotations

from typing import Any

from harness.results.audit import FLAGS, audit
from harness.spec import TEST_SELECTION, Claim, Spec

KIND_WORDS = {
    "code-differs": "code differs from text",
    "unstated": "not stated (value from code or a stated guess)",
    "inferred": "not released (inferred)",
    "harness": "harness protocol departs",
}
CONSEQUENCE = {  # what a flag means for the claims it concerns
    "test-selection": "the claimed figure is the best of several looks at the test set, so it is biased upward; "
    "the harness judges it under the same rule (the best test epoch, from --track-test) and also reports the "
    "clean figure chosen on held-out data.",
    "no-val": "the report had no held-out split, so any choice it made (epoch, configuration) saw the test set; "
    "the harness holds out its own validation images.",
    "aug-val": "the report's validation accuracy is measured on augmented images and does not compare with "
    "test accuracy.",
    "inconsistent": "the report states more than one figure for one quantity; each is a separate claim here.",
    "params-mismatch": "the network as specified does not have the stated size, so the stated size and accuracy "
    "may describe different networks.",
    "over-budget": "the network exceeds the report's parameter budget.",
    "code-differs": "the text and the released code describe different recipes; the harness runs both "
    "(as-written and as-coded) and the verdict of each says which one reproduces the figure.",
    "schedule-cut-short": "training ends before the learning rate schedule does; the harness runs it as released.",
    "schedule-restarts": "training runs past the cosine schedule's end, where the rate rises again; run as released.",
    "unreleased": "the run behind the claim is not in the released code, so part of its recipe is inferred; "
    "a miss may be the inference's, not the report's.",
}
FROM_DEVIATIONS = {"code-differs": "code-differs", "unreleased": "inferred"}  # flags raised by a deviation kind
CLAIM_LEVEL = {  # flags that concern only the claims they name: (claim, finding) -> the claim's own evidence or None
    "test-selection": lambda c, detail: (
        f"{c.text} ({c.selection}{', configuration compared on test' if c.runs_compared_on_test else ''})"
        if c.selection in TEST_SELECTION or c.runs_compared_on_test
        else None
    ),
    "inconsistent": lambda c, detail: _pairs(detail, c.quantity) or None,
    "params-mismatch": lambda c, detail: detail if c.metric == "params" and c.text in detail else None,
    "over-budget": lambda c, detail: detail if c.metric == "params" else None,
}


def _pairs(detail: str, quantity: str) -> list[str]:
    """The audit's clashes of one quantity, each `A vs B` in one order whichever variant listed it."""
    found = []
    for part in detail.split("; "):
        name, _, pair = part.partition(": ")
        if name == quantity:
            found.append(f"{name}: {' vs '.join(sorted(pair.split(' vs ')))}")
    return sorted(set(found))


def difference_table(spec: Spec, variants: list[str]) -> dict[str, Any]:
    """One row per distinct (spec key, kind, note), with the variants that carry it marked."""
    rows: dict[tuple[str, str, str], set[str]] = {}
    for name in variants:
        for d in spec.variants[name].deviations:
            rows.setdefault((d.key, d.kind, d.note), set()).add(name)
    ordered = sorted(rows.items(), key=lambda item: (item[0][0], list(KIND_WORDS).index(item[0][1]), item[0][2]))
    return {
        "variants": variants,
        "rows": [
            {"key": key, "kind": kind, "kind_words": KIND_WORDS[kind], "note": note,
             "marks": [name in carriers for name in variants], "n": len(carriers)}  # fmt: skip
            for (key, kind, note), carriers in ordered
        ],
    }


def claim_flags(spec: Spec, claim: Claim) -> list[dict[str, str]]:
    """The audit flags that concern one claim, each once whichever of its variants raised it, with its
    distinct pieces of evidence (a list: the discussion says each piece once across claims)."""
    found: dict[str, list[str]] = {}
    for name in claim.variants:
        if name not in spec.variants:
            continue
        for finding in audit(spec, name):
            own = CLAIM_LEVEL.get(finding.flag.name)
            detail = finding.detail if own is None else own(claim, finding.detail)
            if detail is None:
                continue
            details = found.setdefault(finding.flag.name, [])
            details += [part for part in ([detail] if isinstance(detail, str) else detail) if part not in details]
    return [
        {"code": FLAGS[name].code, "name": name, "meaning": FLAGS[name].meaning, "evidence": details}
        for name, details in sorted(found.items(), key=lambda item: list(FLAGS).index(item[0]))
    ]


def flag_legend(claims: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The flags that appear beside any claim, once each: code, name and meaning."""
    seen = {f["name"] for c in claims for f in c["flags"]}
    return [{"code": f.code, "name": f.name, "meaning": f.meaning} for f in FLAGS.values() if f.name in seen]


def discussion(spec: Spec, claims: list[dict[str, Any]]) -> list[str]:
    """What each audit flag means for the claims it concerns, and what the differences mean: one paragraph
    per flag, naming its claims and its evidence once."""
    said = []
    for flag in FLAGS.values():
        concerned = [c for c in claims if any(f["name"] == flag.name for f in c["flags"])]
        if not concerned:
            continue
        evidence = sorted({part for c in concerned for f in c["flags"] if f["name"] == flag.name for part in f["evidence"]})
        if flag.name in FROM_DEVIATIONS:  # its evidence is the differences table's rows: said there, once
            evidence = [f"the rows marked '{KIND_WORDS[FROM_DEVIATIONS[flag.name]]}' in the differences table"]
        said.append(
            f"{flag.name} ({flag.code}), {len(concerned)} claim{'s' * (len(concerned) != 1)} "
            f"({', '.join(c['id'] for c in concerned)}): {flag.meaning}. What it means: {CONSEQUENCE[flag.name]} "
            f"Evidence: {'; '.join(evidence)}."
        )
    harness_keys = sorted({d.key for v in spec.variants.values() for d in v.deviations if d.kind == "harness"})
    if harness_keys:
        said.append(
            "The harness's protocol departs from the report at " + ", ".join(harness_keys) + ": the differences "
            "table says how, with the expected effect where the spec states one; a miss larger than those effects "
            "is not explained by them."
        )
    return said
