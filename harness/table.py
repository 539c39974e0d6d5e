"""The leaderboard: one row per report and variant, every claim beside what the harness measured."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from typing import Any, Literal

from tabulate import tabulate

from harness.audit import audit, legend
from harness.identity import budget_text
from harness.latency import cached_timing, timing_runtimes
from harness.measure import budget_cell, size_columns
from harness.record import Record
from harness.spec import Claim, Protocol, Spec, with_protocol
from harness.stats import summarize
from harness.verdict import evidence, rule_figure, verdict

Format = Literal["markdown", "csv", "json"]
REFERENCES = "references"  # specs in reproductions/references/: networks the reports compare with, not reports


def rows(
    specs: list[Spec], records: list[Record], common: Protocol | None = None, latency: bool = True
) -> list[dict[str, Any]]:
    """Leaderboard rows: every variant of every spec, with the results recorded for its current recipe."""
    by_hash: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_hash[record.spec_hash].append(record)
    out = []
    for spec in specs:
        for name, variant in spec.variants.items():
            claim = spec.headline(name)
            current = [r for r in by_hash.get(variant.spec_hash, []) if r.protocol == "own"]
            common_runs = evidence(by_hash.get(with_protocol(spec, variant, common).spec_hash, [])) if common else []
            flags = audit(spec, name)
            out.append(
                {
                    "section": "references" if spec.path.parent.name == REFERENCES else "reports",
                    "report": spec.name,
                    "report_id": spec.report.id,
                    "variant": name,
                    "claims": [c.summary() for c in spec.claims_for(name)],
                    "claim": claim.describe() if claim else None,
                    "claim_value": claim.value if claim else None,
                    "claim_selection": claim.selection if claim else None,
                    **size_columns(spec, name),
                    **_latency_columns(variant.recipe.model, latency),
                    **_result_columns(evidence(current), claim),
                    **_common_columns(common_runs),
                    "flags": [f.flag.name for f in flags],
                    "flag_codes": "".join(f.flag.code for f in flags),
                    "n_diverged": sum(r.status == "diverged" for r in current),
                    "n_stale": sum(r.protocol == "own" and (r.report, r.variant) == (spec.name, name) for r in records)
                    - len(current),
                }
            )
    return out


def _latency_columns(model_cfg: Any, latency: bool) -> dict[str, Any]:
    """Batch-1 latency on the CPU (and CUDA), cached by latency.py; None when not asked for."""
    timings = {r.device.type: cached_timing(model_cfg, r) if latency else None for r in timing_runtimes()}
    cpu, cuda = timings.get("cpu"), timings.get("cuda")
    return {
        "cpu_latency_ms_b1": cpu.latency_ms_b1 if cpu else None,
        "cuda_latency_ms_b1": cuda.latency_ms_b1 if cuda else None,
        "cpu_latency_busy": bool(cpu and cpu.busy),
    }


def _result_columns(runs: list[Record], claim: Claim | None) -> dict[str, Any]:
    """The claim's own rule's figure and verdict, and the clean figure, over one cohort of runs."""
    summary = summarize([r.test_acc for r in runs])
    rule_values = [v for r in runs if claim and (v := rule_figure(r, claim.selection)) is not None]
    rule = summarize(rule_values)
    first = runs[0] if runs else None
    return {
        "rule_n": rule.n if rule else 0,
        "rule_acc_mean": rule.mean if rule else None,
        "rule_acc_std": rule.std if rule else None,
        "ci95": list(rule.ci95) if rule and rule.ci95 else None,
        "delta": rule.mean - claim.value if rule and claim else None,
        "verdict": verdict(runs, claim, rule),
        "n_seeds": summary.n if summary else 0,
        "test_acc_mean": summary.mean if summary else None,
        "test_acc_std": summary.std if summary else None,
        "delta_clean": summary.mean - claim.value if summary and claim else None,
        "corrupted_acc_mean": _mean([r.robustness["mean"] for r in runs if r.robustness]),
        "device_hours_mean": _mean([r.device_hours for r in runs if r.device_hours is not None]),
        "train_device": first.device.get("name") if first else None,
        "profile": first.profile if first else None,
        "epochs": first.cohort.get("epochs") if first else None,
        "train_images": first.cohort.get("train_images") if first else None,  # None: all
        "precision": first.cohort.get("precision") if first else None,
        "data_source": first.data_source if first else None,
        "sources": sorted({r.origin for r in runs}),
    }


def _common_columns(runs: list[Record]) -> dict[str, Any]:
    summary = summarize([r.test_acc for r in runs])
    return {
        "common_n_seeds": summary.n if summary else 0,
        "common_test_acc_mean": summary.mean if summary else None,
        "common_test_acc_std": summary.std if summary else None,
        "common_profile": runs[0].profile if runs else None,
    }


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


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
    parts = []
    for section, title in (("reports", "Reports"), (REFERENCES, "Reference networks (not among the five reports)")):
        body = [[cell(row) for _, cell in MARKDOWN.values()] for row in table if row["section"] == section]
        if body:
            headers = [h for h, _ in MARKDOWN.values()]
            parts.append(f"### {title}\n\n" + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True))
    text = "\n\n".join(parts)
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
