"""A report's reproduction study as plain facts, in the ML Reproducibility Challenge's form: scope,
methodology, results, what was easy and what was hard, then the claims with their verdicts, the recipe as
run and where text, code and harness differ, the runs with their provenance, and the release checklist.

Every sentence is derived from the spec (claims, deviations, release facts), the audit, the leaderboard's
rows (verdicts and their strength) and the records (budgets, data, devices, histories); nothing here is
written by hand per report. `render.py` turns the facts into Markdown, HTML and LaTeX.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.results.audit import audit
from harness.results.identity import budget_text
from harness.results.record import Record
from harness.results.target import speed_conditions, time_to_target
from harness.spec import Claim, Spec

CHECKLIST = (  # Papers with Code's ML Code Completeness Checklist, in its order
    ("dependencies", "Dependencies"),
    ("training_code", "Training code"),
    ("evaluation_code", "Evaluation code"),
    ("pretrained_weights", "Pre-trained models"),
    ("results_with_commands", "README with results and the commands that make them"),
)
NOT_JUDGED = {  # a verdict's strength when there is none (a parameter claim, a claim without runs)
    "rule_acc_mean": None, "rule_acc_std": None, "rule_n": 0, "delta": None, "ci95": None,
    "p_below_claim": None, "p_above_claim": None, "seeds_needed": None,
}  # fmt: skip
DEVIATION_WORDS = {
    "code-differs": "the released code differs from the text",
    "unstated": "the text is silent; the value comes from the code or is a stated guess",
    "inferred": "not in the released code; inferred",
    "harness": "the harness's protocol departs from the report",
}


@dataclass(frozen=True)
class StudyInputs:
    """One report's spec, the leaderboard rows of every spec (for the front and the leaderboard), and
    every record read."""

    spec: Spec
    rows: list[dict[str, Any]]
    records: list[Record]


def build_study(inputs: StudyInputs) -> dict[str, Any]:
    """The study's facts as one JSON-able dict (the templates' only input)."""
    spec = inputs.spec
    mine = [r for r in inputs.rows if r["report"] == spec.name]
    used = {path for row in mine for path in row["records_used"]}
    runs = list({r.record_path: r for r in inputs.records if r.record_path in used}.values())  # copies once
    names = {row["variant"] for row in mine}
    tested = [c for c in _central_first(spec) if names.intersection(c.variants)]
    claims = [_claim(spec, c, mine) for c in tested]
    variants = [_variant(spec, row) for row in mine]
    checklist = _checklist(spec)
    return {
        "report": _report(spec),
        "claims": claims,
        "untested": [
            c.id for c in spec.claims if c not in tested
        ],  # claims of configurations the spec has no variant of
        "variants": variants,
        "runs": [_run(r, spec) for r in sorted(runs, key=lambda r: (r.variant, r.seed))],
        "checklist": checklist,
        "summary": {
            "scope": [
                f"{c['id']}: {c['text']} ({c['variants']}; {c['where']})" for c in claims if c["metric"] == "accuracy"
            ],
            "methodology": _methodology(spec, runs),
            "results": _results(claims),
            "easy": _easy(spec, mine, checklist),
            "hard": _hard(spec, variants, checklist, runs),
        },
        "unofficial": sorted({r.data.get("source") or r.data_source for r in runs if not r.data.get("official")}),
        "n_unofficial": sum(not r.data.get("official") for r in runs),
        "any_verdict": any(v["judged"] for c in claims for v in c["verdicts"]),
    }


def _results(claims: list[dict[str, Any]]) -> list[str]:
    """A line per accuracy claim with each variant's verdict, then one line for the parameter counts."""
    lines = [
        f"{c['id']} ({c['text']}): " + "; ".join(f"{v['variant']}: {v['verdict']}" for v in c["verdicts"])
        for c in claims
        if c["metric"] == "accuracy"
    ]
    counts = [v for c in claims if c["metric"] == "params" for v in c["verdicts"]]
    if counts:
        lines.append(
            f"parameter counts: {sum(v['judged'] for v in counts)} of {len(counts)} (claim, variant) pairs reproduce"
        )
    return lines


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
    }


def _central_first(spec: Spec) -> list[Claim]:
    """The default variant's headline claim first, then the other claims in the spec's order."""
    central = spec.headline(spec.default_variant)
    return sorted(spec.claims, key=lambda c: c is not central)


def _claim(spec: Spec, claim: Claim, rows: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts = []
    for row in rows:
        if row["variant"] not in claim.variants:
            continue
        if claim.metric == "params":
            agreement = claim.agreement(row["params"])
            text = f"{row['params']:,} counted: " + (agreement or "does not reproduce")
            verdicts.append({**NOT_JUDGED, "variant": row["variant"], "verdict": text, "judged": agreement is not None})
            continue
        judged = next((j for j in row["claim_verdicts"] if j["claim_id"] == claim.id), None)
        if judged is not None:
            verdicts.append({"variant": row["variant"], **judged, "judged": judged["delta"] is not None})
    if not verdicts:
        verdicts.append(
            {**NOT_JUDGED, "variant": ", ".join(claim.variants), "verdict": "not in the table", "judged": False}
        )
    return {
        "id": claim.id,
        "central": claim is spec.headline(spec.default_variant),
        "metric": claim.metric,
        "value": claim.value,
        "text": claim.text,
        "where": "; ".join(claim.stated_in),
        "split": claim.split,
        "selection": claim.selection,
        "variants": ", ".join(claim.variants),
        "note": claim.note,
        "verdicts": verdicts,
    }


def _variant(spec: Spec, row: dict[str, Any]) -> dict[str, Any]:
    variant = spec.variants[row["variant"]]
    recipe = variant.recipe
    train = recipe.train
    return {
        "variant": row["variant"],
        "description": variant.description,
        "role": row["role"],
        "params": row["params"],
        "macs": row["macs"],
        "epochs": train.epochs,
        "batch_size": train.batch_size,
        "optimizer": train.optimizer.model_dump(mode="json", exclude_defaults=True),
        "schedule": train.schedule.model_dump(mode="json", exclude_defaults=True),
        "augment": [op.op for op in recipe.augment.train],
        "selection": recipe.eval.select,
        "deviations": [{"kind": d.kind, "key": d.key, "note": d.note} for d in variant.deviations],
        "flags": [
            {"name": f.flag.name, "meaning": f.flag.meaning, "detail": f.detail} for f in audit(spec, row["variant"])
        ],
        "row": row,
    }


def _run(record: Record, spec: Spec) -> dict[str, Any]:
    claim = spec.headline(record.variant)
    target = time_to_target(record.history, claim.value) if claim and record.history else None
    return {
        "variant": record.variant,
        "seed": record.seed,
        "status": record.status,
        "budget": budget_text(record.cohort),
        "full_budget": bool(record.cohort.get("full_budget")),
        "data": record.data.get("source") or record.data_source,
        "official": bool(record.data.get("official")),
        "test_acc": record.test_acc,
        "selected_epoch": None if record.selected_epoch is None else record.selected_epoch + 1,
        "selection": record.selection,
        "device": record.device.get("name") or record.device.get("type"),
        "device_hours": record.device_hours,
        "images_per_s": record.train_images_per_s,
        "speed_conditions": speed_conditions(record),
        "time_to_target": target,
        "commit": (record.git or {}).get("commit", ""),
        "dirty": bool((record.git or {}).get("dirty")),
        "finished_at": record.finished_at,
        "launcher": (record.launcher or {}).get("by", ""),
        "record": record.record_path,
        "record_file": _relative(record.read_from or record.record_path),
        "history": [
            {"epoch": h["epoch"] + 1, "val_acc": h.get("val_acc"), "train_loss": h.get("train_loss")}
            for h in record.history
        ],
    }


def _checklist(spec: Spec) -> list[dict[str, Any]]:
    release = spec.report.release
    if release is None:
        return []
    return [{"item": label, **getattr(release, key).model_dump()} for key, label in CHECKLIST]


def _methodology(spec: Spec, runs: list[Record]) -> list[str]:
    recipe = spec.variant().recipe
    said = [
        (
            f"Every variant is built and trained by the harness from {spec.path.name}, under one protocol: "
            f"{recipe.data.val_size:,} training images are held out for validation (seed {recipe.data.val_seed}), "
            "and each selection rule's model is tested once on the 10,000 test images; the spec names which "
            "figure is the clean one, and no choice is made on the test set."
        ),
        (
            "A claim is judged only by runs at the recipe's full budget on the official CIFAR-10 pixels, under "
            "the claim's own selection rule; Δ, the 95% CI, the one-sided tests and the seeds needed come from "
            "one sample per seed."
        ),
    ]
    if runs:
        budgets = sorted({budget_text(r.cohort) for r in runs})
        sources = sorted({r.data_source for r in runs})
        said.append(f"Runs: {len(runs)} ({'; '.join(budgets)}) on {'; '.join(sources)}.")
    else:
        said.append("No run of the current recipe has been recorded yet.")
    return said


def _easy(spec: Spec, rows: list[dict[str, Any]], checklist: list[dict[str, Any]]) -> list[str]:
    released = [item["item"] for item in checklist if item["present"]]
    easy = [f"Released: {', '.join(released)} (the checklist below says how complete each is)"] if released else []
    for row in rows:
        if row["params_agreement"]:
            easy.append(
                f"{row['variant']}: the stated {row['claimed_params_text']} parameters reproduce "
                f"({row['params']:,} counted, {row['params_agreement']})"
            )
    central = spec.variant()
    if not any(d.kind in ("unstated", "inferred") for d in central.deviations):
        easy.append(f"{central.name}: every recipe value is stated in the report or its code")
    return easy


def _hard(spec: Spec, variants: list[dict[str, Any]], checklist: list[dict[str, Any]], runs: list[Record]) -> list[str]:
    hard = [f"{item['item']} missing: {item['note']}" for item in checklist if not item["present"]]
    central = next((v for v in variants if v["variant"] == spec.default_variant), None)
    for variant in [central] if central else []:
        hard += [f"{d['key']}: {DEVIATION_WORDS[d['kind']]} ({d['note']})" for d in variant["deviations"]]
        hard += [f"{f['meaning']}: {f['detail']}" for f in variant["flags"]]
    if not any(r.cohort.get("full_budget") for r in runs):
        hard.append("no run at the recipe's full budget yet: the full recipes are GPU work")
    if runs and not any(r.data.get("official") for r in runs):
        hard.append("no run on the official CIFAR-10 pixels: the figures here cannot judge a claim")
    return hard


def _relative(path: str) -> str:
    """A record's path relative to the working folder when it lies under it (as committed records do)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path
