"""The leaderboard: one row per report and variant, every claim beside what the harness measured."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from typing import Any, Literal

from tabulate import tabulate

from harness.audit import TEST_SELECTION, audit, legend
from harness.identity import budget_text, cohort_id, cohort_of
from harness.measure import cached_timing, size_of, timing_devices
from harness.spec import Claim, Protocol, Spec, with_protocol
from harness.stats import Summary, judge, summarize

Format = Literal["markdown", "csv", "json"]
PROFILE_RANK = {"full": 0, "short": 1, "smoke": 2}


def headline(spec: Spec, variant: str) -> Claim | None:
    """The accuracy the report leads with for this variant (the first accuracy claim if none is marked)."""
    claims = [c for c in spec.claims_for(variant) if c.metric == "accuracy"]
    return next((c for c in claims if c.headline), claims[0] if claims else None)


def params_claim(spec: Spec, variant: str) -> Claim | None:
    """The most precisely stated parameter count for this variant."""
    claims = [c for c in spec.claims_for(variant) if c.metric == "params"]
    return min(claims, key=lambda c: c.step) if claims else None


def describe(claim: Claim) -> str:
    return f"{claim.text} ({'; '.join(claim.stated_in)}; {claim.split}; {claim.selection})"


def claim_dict(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id,
        "metric": claim.metric,
        "value": claim.value,
        "text": claim.text,
        "stated_in": list(claim.stated_in),
        "split": claim.split,
        "selection": claim.selection,
        "runs_compared_on_test": claim.runs_compared_on_test,
        "headline": claim.headline,
    }


def budget_cell(row: dict[str, Any]) -> str:
    """yes / NO, or 'no (teacher)' / 'no (reference)' for entries not held to the budget."""
    return "yes" if row["within_budget"] else ("NO" if row["role"] == "model" else f"no ({row['role']})")


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


def evidence(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The strongest cohort of finished runs: full budget on official data first, then the most seeds.

    Runs are pooled only within one cohort (identity.py: the same recipe, protocol, budget, data,
    precision and teacher), so a mean never mixes runs that were made differently.
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("status") == "complete" and record.get("test_acc") is not None:
            groups[cohort_id(cohort_of(record))].append(record)
    if not groups:
        return []

    def strength(runs: list[dict[str, Any]]) -> tuple[Any, ...]:
        reproduction = all(r.get("is_reproduction") for r in runs)
        return (not reproduction, PROFILE_RANK.get(runs[0]["profile"], 9), -len(runs))

    return min(groups.values(), key=strength)


RULE_FIGURE = {  # a claim's selection -> the figure of test_acc_by_rule made by the same rule
    "last-epoch": "last-epoch",
    "best-val": "best-val",
    "best-epoch-test": "best-epoch-test",
    "test-early-stop": "best-epoch-test",  # stopping where the test curve peaks picks its best epoch
}
SELECT_RULE = {"last": "last-epoch", "best-val": "best-val"}


def rule_figure(record: dict[str, Any], selection: str) -> float | None:
    """The test accuracy a run gives under a claim's selection rule; None when the run cannot say.

    `unknown`: the harness's clean figure (the verdict then says the rule is unknown).
    """
    if selection not in RULE_FIGURE:
        return record.get("test_acc")
    rule = RULE_FIGURE[selection]
    by_rule = record.get("test_acc_by_rule")
    if by_rule is not None:
        return by_rule.get(rule)
    if rule == "best-epoch-test":  # schema 1: the monitored maximum
        return (record.get("report_rule") or {}).get("value")
    return record.get("test_acc") if SELECT_RULE.get(record.get("selection", "last")) == rule else None


def verdict(runs: list[dict[str, Any]], claim: Claim | None, summary: Summary | None) -> str:
    """reproduced / below claim / above claim under the claim's own rule, or why the runs cannot say.

    `summary` summarises the runs' figures under the claim's rule (see rule_figure).
    """
    if not runs:
        return "not run"
    if not all(r.get("is_reproduction") for r in runs):
        return "not run at full budget"
    if claim is None or claim.split != "cifar10-test":
        return "no test-set claim"
    if summary is None:
        if claim.selection in TEST_SELECTION:
            return "no test curve (run with --track-test)"
        return f"no {claim.selection} figure"
    suffix = " (selection unknown: clean figure)" if claim.selection == "unknown" else ""
    return judge(summary, claim.value, claim.step) + suffix


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def rows(
    specs: list[Spec],
    records: list[dict[str, Any]],
    common: Protocol | None = None,
    latency: bool = True,
) -> list[dict[str, Any]]:
    """Leaderboard rows: every variant of every spec, with the results recorded for its current recipe."""
    by_hash: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_entry: dict[tuple[str, str], int] = defaultdict(int)
    for record in records:
        by_hash[record["spec_hash"]].append(record)
        if record.get("protocol", "own") == "own":
            by_entry[(record["report"], record["variant"])] += 1
    devices = timing_devices()
    out = []
    for spec in specs:
        for name, variant in spec.variants.items():
            claim = headline(spec, name)
            current = [r for r in by_hash.get(variant.spec_hash, []) if r.get("protocol", "own") == "own"]
            runs = evidence(current)
            summary = summarize([r["test_acc"] for r in runs])
            rule_values = [v for r in runs if claim and (v := rule_figure(r, claim.selection)) is not None]
            rule_summary = summarize(rule_values)
            common_runs = []
            if common is not None:
                common_runs = evidence(by_hash.get(with_protocol(spec, variant, common).spec_hash, []))
            common_summary = summarize([r["test_acc"] for r in common_runs])
            flags = audit(spec, name)
            timings = {d.type: cached_timing(variant.recipe.model, d) if latency else None for d in devices}
            robust = [r["robustness"]["mean"] for r in runs if r.get("robustness")]
            out.append(
                {
                    "report": spec.name,
                    "report_id": spec.report.id,
                    "variant": name,
                    "claims": [claim_dict(c) for c in spec.claims_for(name)],
                    "claim": describe(claim) if claim else None,
                    "claim_value": claim.value if claim else None,
                    "claim_selection": claim.selection if claim else None,
                    **size_columns(spec, name),
                    "cpu_latency_ms_b1": timings["cpu"].latency_ms_b1 if timings.get("cpu") else None,
                    "cuda_latency_ms_b1": timings["cuda"].latency_ms_b1 if timings.get("cuda") else None,
                    "cpu_latency_busy": bool(timings.get("cpu") and timings["cpu"].busy),
                    "rule_n": rule_summary.n if rule_summary else 0,
                    "rule_acc_mean": rule_summary.mean if rule_summary else None,
                    "rule_acc_std": rule_summary.std if rule_summary else None,
                    "ci95": list(rule_summary.ci95) if rule_summary and rule_summary.ci95 else None,
                    "delta": rule_summary.mean - claim.value if rule_summary and claim else None,
                    "verdict": verdict(runs, claim, rule_summary),
                    "n_seeds": summary.n if summary else 0,
                    "test_acc_mean": summary.mean if summary else None,
                    "test_acc_std": summary.std if summary else None,
                    "delta_clean": summary.mean - claim.value if summary and claim else None,
                    "corrupted_acc_mean": _mean(robust),
                    "device_hours_mean": _mean([r["device_hours"] for r in runs if r.get("device_hours") is not None]),
                    "train_device": runs[0]["device"]["name"] if runs and runs[0].get("device") else None,
                    "profile": runs[0]["profile"] if runs else None,
                    "epochs": runs[0]["budget"]["epochs"] if runs else None,
                    "train_images": runs[0]["budget"].get("train_images") if runs else None,  # None: all
                    "precision": cohort_of(runs[0])["precision"] if runs else None,
                    "data_source": runs[0].get("data_source") if runs else None,
                    "sources": sorted({r.get("_origin", "") for r in runs}) if runs else [],
                    "common_n_seeds": common_summary.n if common_summary else 0,
                    "common_test_acc_mean": common_summary.mean if common_summary else None,
                    "common_test_acc_std": common_summary.std if common_summary else None,
                    "common_profile": common_runs[0]["profile"] if common_runs else None,
                    "flags": [f.flag.name for f in flags],
                    "flag_codes": "".join(f.flag.code for f in flags),
                    "n_diverged": sum(r.get("status") == "diverged" for r in current),
                    "n_stale": by_entry.get((spec.name, name), 0) - len(current),
                }
            )
    return out


def _acc(mean: float | None, std: float | None, n: int) -> str:
    if mean is None:
        return ""
    return f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "") + f" (n={n})"


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


MARKDOWN = {
    "report": ("report", lambda r: r["report"]),
    "variant": ("variant", lambda r: r["variant"]),
    "claim": (
        "headline claim (where; split; selection)",
        lambda r: (r["claim"] or "") + (f" +{len(r['claims']) - 1} more" if len(r["claims"]) > 1 else ""),
    ),
    "rule": (
        "acc under the claim's rule % (mean ± std, n)",
        lambda r: _acc(r["rule_acc_mean"], r["rule_acc_std"], r["rule_n"]),
    ),
    "ci95": ("95% CI", lambda r: "" if not r["ci95"] else f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]"),
    "delta": ("Δ claim", lambda r: _num(r["delta"], "+.2f")),
    "verdict": ("verdict", lambda r: r["verdict"] + (f" ({r['n_diverged']} diverged)" if r["n_diverged"] else "")),
    "test_acc": (
        "clean test acc % (mean ± std, n)",
        lambda r: _acc(r["test_acc_mean"], r["test_acc_std"], r["n_seeds"]),
    ),
    "delta_clean": ("Δ claim (clean)", lambda r: _num(r["delta_clean"], "+.2f")),
    "params": ("params", lambda r: f"{r['params']:,}"),
    "params_match": (
        "params claim",
        lambda r: (
            "-" if r["claimed_params"] is None else f"{r['claimed_params_text']}: {r['params_agreement'] or 'NO'}"
        ),
    ),
    "macs": ("MACs (M)", lambda r: f"{r['macs'] / 1e6:.1f}"),
    "budget": ("<= 5M", budget_cell),
    "cpu": ("CPU b1 (ms)", lambda r: _num(r["cpu_latency_ms_b1"], ".2f") + ("*" if r["cpu_latency_busy"] else "")),
    "gpu": ("GPU b1 (ms)", lambda r: _num(r["cuda_latency_ms_b1"], ".2f")),
    "corrupted": ("corrupted acc %", lambda r: _num(r["corrupted_acc_mean"], ".2f")),
    "cost": ("device-h/run", lambda r: _num(r["device_hours_mean"], ".3g")),
    "common": (
        "common recipe acc %",
        lambda r: _acc(r["common_test_acc_mean"], r["common_test_acc_std"], r["common_n_seeds"]),
    ),
    "flags": ("flags", lambda r: r["flag_codes"]),
    "profile": ("profile", lambda r: budget_text(r) if r["profile"] else ""),
    "data": ("data", lambda r: r["data_source"] or ""),
    "sources": ("records in", lambda r: ", ".join(r["sources"])),
}


def render(table: list[dict[str, Any]], fmt: Format) -> str:
    """The rows as a markdown table (to paste into a paper) with its flag legend, CSV, or JSON."""
    if fmt == "json":
        return json.dumps(table, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["report", "variant"])
        writer.writeheader()
        for row in table:
            writer.writerow({k: _csv_cell(v) for k, v in row.items()})
        return buffer.getvalue()
    body = [[cell(row) for _, cell in MARKDOWN.values()] for row in table]
    text = tabulate(body, headers=[h for h, _ in MARKDOWN.values()], tablefmt="github", disable_numparse=True)
    busy = (
        "\n\n* CPU latency measured while other processes were using the CPUs: inflated, not cached; "
        "run `harness table` again on a quiet machine."
        if any(row["cpu_latency_busy"] for row in table)
        else ""
    )
    return f"{text}\n\nFlags: {legend()}.{busy}"


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list):
        if value and isinstance(value[0], dict):  # claims
            return "; ".join(f"{c['text']} ({'/'.join(c['stated_in'])}; {c['split']}; {c['selection']})" for c in value)
        return ";".join(str(v) for v in value)
    return value
