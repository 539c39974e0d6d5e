"""`harness measure`: a row per variant with its size, its parameter claim, its budget and its latency."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from harness.common.events import Events
from harness.measure.latency import measured_timing, timing_dict, timing_runtimes
from harness.measure.size import budget_cell, size_columns
from harness.spec import Spec


def measure_rows(specs: list[Spec], variant: str | None, rounds: int | None, events: Events) -> list[dict[str, Any]]:
    """One row per variant (or only `variant`); latency timed with `rounds` batch-1 calls, none when None.

    Each network is timed once, whichever variants share it; `events` shows the progress.
    """
    entries = [(s, s.variant(variant).name) for s in specs] if variant else [(s, n) for s in specs for n in s.variants]
    runtimes = timing_runtimes() if rounds is not None else []
    timings: dict[tuple[Any, str], Any] = {}
    rows = []
    with events.progress(len(entries), "measure", "network") as advance:
        for spec, name in entries:
            model_cfg = spec.variants[name].recipe.model
            row: dict[str, Any] = {"report": spec.name, "report_id": spec.report.id, "variant": name}
            row.update(size_columns(spec, name))
            row["flops"] = 2 * row["macs"]
            for runtime in runtimes:
                key = (model_cfg, runtime.device.type)
                if key not in timings:
                    timings[key] = _timed(model_cfg, runtime, rounds or 0, f"{spec.name}/{name}", events)
                row.update(timing_dict(timings[key], runtime.device.type))
            row["latency_ms_b1"] = row.get("cpu_latency_ms_b1")
            rows.append(row)
            advance(1, at=f"{spec.name}/{name}")
    return rows


def _timed(model_cfg: Any, runtime: Any, rounds: int, name: str, events: Events) -> Any:
    timing = measured_timing(model_cfg, runtime, rounds_b1=rounds)
    if timing.busy:
        events.message(
            f"warning: other processes used {timing.other_cpu_use:.0%} of the CPUs while {name} was timed: "
            "its latency is inflated and was not cached"
        )
    return timing


def render_measure(rows: list[dict[str, Any]], rounds: int | None) -> str:
    """The rows as a markdown table, with the measurement conventions below it."""
    gpu = any(row.get("cuda_latency_ms_b1") is not None for row in rows)
    headers = ["report", "variant", "params", "claimed", "match", "MACs (M)", "FLOPs (G) = 2 x MACs", "<= budget"]
    if rounds is not None:
        headers += ["CPU b1 median (ms)", "CPU b1 p90 (ms)", "CPU b256 (img/s)"]
        headers += ["GPU b1 median (ms)", "GPU b256 (img/s)"] if gpu else []
    body = []
    for row in rows:
        line = [
            row["report"],
            row["variant"],
            f"{row['params']:,}",
            row["claimed_params_text"] or "-",
            "-" if row["claimed_params"] is None else (row["params_agreement"] or "NO"),
            f"{row['macs'] / 1e6:.1f}",
            f"{row['flops'] / 1e9:.3f}",
            budget_cell(row),
        ]
        if rounds is not None:
            line += [
                f"{row['cpu_latency_ms_b1']:.2f}",
                f"{row['cpu_latency_ms_b1_p90']:.2f}",
                f"{row['cpu_throughput_img_s_b256']:.0f}",
            ]
            line += [f"{row['cuda_latency_ms_b1']:.2f}", f"{row['cuda_throughput_img_s_b256']:.0f}"] if gpu else []
        body.append(line)
    text = tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
    text += (
        "\n\nMACs: multiply-accumulates of conv/linear layers for one 3x32x32 image (fvcore, checked against "
        "torch.utils.flop_counter); FLOPs = 2 x MACs."
    )
    if rounds is not None:
        conditions = rows[0].get("cpu_conditions") if rows else None
        text += (
            f"\nLatency: eval-mode forward, inference_mode, after warm-up; {rounds} batch-1 calls; "
            f"measured under: {conditions or '-'}."
        )
    return text
