"""The leaderboard: one row per report and variant, claims beside what the harness measured."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from typing import Any, Literal

from tabulate import tabulate

from harness.measure import size_of
from harness.spec import Claim, Spec

Format = Literal["markdown", "csv", "json"]


def headline(spec: Spec, variant: str) -> Claim | None:
    """The claim the report leads with for this variant (the first accuracy claim if none is marked)."""
    claims = [c for c in spec.claims_for(variant) if c.metric == "accuracy"]
    return next((c for c in claims if c.headline), claims[0] if claims else None)


def params_claim(spec: Spec, variant: str) -> Claim | None:
    """The most precisely stated parameter count for this variant."""
    claims = [c for c in spec.claims_for(variant) if c.metric == "params"]
    return min(claims, key=lambda c: c.step) if claims else None


def describe(claim: Claim) -> str:
    return f"{claim.text} ({'; '.join(claim.stated_in)}; {claim.split}; {claim.selection})"


def size_columns(spec: Spec, variant: str) -> dict[str, Any]:
    """params, claimed params and whether they agree, MACs, and the budget check."""
    size = size_of(spec.variants[variant].recipe.model)
    claim = params_claim(spec, variant)
    agreement = claim.agreement(size.params) if claim else None
    return {
        "params": size.params,
        "claimed_params": claim.value if claim else None,
        "claimed_params_text": claim.text if claim else None,
        "params_match": None if claim is None else agreement is not None,
        "params_agreement": agreement,
        "macs": size.macs,
        "param_budget": spec.report.param_budget,
        "within_budget": size.params <= spec.report.param_budget,
        "role": spec.role(variant),
    }


PROFILE_RANK = {"full": 0, "short": 1, "smoke": 2}


def evidence(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The strongest comparable set of finished runs: full budget on official data first, then the rest.

    Runs are only pooled when they share profile, epochs and data, so a mean never mixes budgets.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("status") == "complete" and record.get("test_acc") is not None:
            budget = record.get("budget", {})
            key = (record["profile"], budget.get("epochs"), budget.get("train_images"), record.get("data_source"))
            groups[key].append(record)
    if not groups:
        return []

    def strength(item: tuple[tuple[Any, ...], list[dict[str, Any]]]) -> tuple[Any, ...]:
        (profile, _, _, _), runs = item
        reproduction = all(r.get("is_reproduction") for r in runs)
        return (not reproduction, PROFILE_RANK.get(profile, 9), -len(runs))

    return min(groups.items(), key=strength)[1]


def verdict(runs: list[dict[str, Any]]) -> str:
    """What the results can say about the claim (refined by the statistics of the leaderboard)."""
    if not runs:
        return "not run"
    if not all(r.get("is_reproduction") for r in runs):
        return "not run at full budget"
    return "run at full budget"


def rows(specs: list[Spec], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Leaderboard rows: every variant of every spec, with the results recorded for its current recipe."""
    by_entry: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_entry[(record["report"], record["variant"])].append(record)
    out = []
    for spec in specs:
        for name, variant in spec.variants.items():
            claim = headline(spec, name)
            current = [r for r in by_entry.get((spec.name, name), []) if r.get("spec_hash") == variant.spec_hash]
            runs = evidence(current)
            accs = [r["test_acc"] for r in runs]
            out.append(
                {
                    "report": spec.name,
                    "report_id": spec.report.id,
                    "variant": name,
                    "claim": describe(claim) if claim else None,
                    "claim_value": claim.value if claim else None,
                    "claims": [c.id for c in spec.claims_for(name)],
                    **size_columns(spec, name),
                    "n_seeds": len(accs),
                    "test_acc_mean": statistics.fmean(accs) if accs else None,
                    "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else None,
                    "verdict": verdict(runs),
                    "profile": runs[0]["profile"] if runs else None,
                    "epochs": runs[0]["budget"]["epochs"] if runs else None,
                    "data_source": runs[0].get("data_source") if runs else None,
                    "n_diverged": sum(r.get("status") == "diverged" for r in current),
                    "n_stale": len(by_entry.get((spec.name, name), [])) - len(current),
                }
            )
    return out


MARKDOWN_COLUMNS = {
    "report": "report",
    "variant": "variant",
    "claim": "headline claim (where; split; selection)",
    "params": "params",
    "claimed_params_text": "claimed params",
    "params_agreement": "params match",
    "macs": "MACs (M)",
    "within_budget": "<= 5M",
    "n_seeds": "n",
    "test_acc": "test acc (%)",
    "verdict": "verdict",
    "profile": "profile",
    "data_source": "data",
}


def budget_cell(row: dict[str, Any]) -> str:
    """yes / NO, or 'no (teacher)' / 'no (reference)' for entries not held to the budget."""
    return "yes" if row["within_budget"] else ("NO" if row["role"] == "model" else f"no ({row['role']})")


def _markdown_cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if key == "macs":
        return f"{value / 1e6:.1f}"
    if key in ("params",):
        return f"{value:,}"
    if key == "params_agreement":
        return "-" if row["claimed_params"] is None else (value or "NO")
    if key == "within_budget":
        return budget_cell(row)
    if key == "test_acc":
        mean, std = row["test_acc_mean"], row["test_acc_std"]
        if mean is None:
            return ""
        return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
    if key == "n_seeds":
        return str(value) if value else ""
    if key == "profile" and value:
        return f"{value} ({row['epochs']} ep)"
    return "" if value is None else str(value)


def render(table: list[dict[str, Any]], fmt: Format) -> str:
    """The rows as a markdown table (to paste into a paper), CSV, or JSON."""
    if fmt == "json":
        return json.dumps(table, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["report", "variant"])
        writer.writeheader()
        for row in table:
            writer.writerow({k: (";".join(v) if isinstance(v, list) else v) for k, v in row.items()})
        return buffer.getvalue()
    body = [[_markdown_cell(row, key) for key in MARKDOWN_COLUMNS] for row in table]
    return tabulate(body, headers=list(MARKDOWN_COLUMNS.values()), tablefmt="github", disable_numparse=True)
