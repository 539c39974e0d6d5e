"""Time to a target accuracy, as DAWNBench and AlgoPerf report speed: the first epoch, and the device-hours
spent up to the end of it, at which a run's validation accuracy reached the target.

Only validation accuracy is read, never the test set's: a time-to-target chosen on test images would be
one more selection on the test set. The device-hours count every second of the epochs up to and including
that one (training and validation), as the run recorded them. The speed figures beside it carry their
conditions (`speed_conditions`), as timm's benchmark files do.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.results.record import Record


def time_to_target(history: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """`{target, reached, epoch (1-based), device_hours, best_val, best_epoch}` from a run's history."""
    seconds, best, best_epoch = 0.0, None, None
    timed = True
    for entry in history:
        timed = timed and entry.get("seconds") is not None
        seconds += entry.get("seconds") or 0.0
        value = entry.get("val_acc")
        if value is None:
            continue
        if best is None or value >= best:  # ties: the later epoch, as the run's best-val rule takes it
            best, best_epoch = value, entry["epoch"]
        if value >= target:
            hours = seconds / 3600 if timed else None
            return {"target": target, "reached": True, "epoch": entry["epoch"], "device_hours": hours,
                    "best_val": best, "best_epoch": best_epoch}  # fmt: skip
    return {"target": target, "reached": False, "epoch": None, "device_hours": None,
            "best_val": best, "best_epoch": best_epoch}  # fmt: skip


def target_columns(runs: list[Record], target: float | None) -> dict[str, Any]:
    """A row's time to `target` (the headline claim's value) over its runs: how many reached it, the
    median epoch and device-hours of those that did, and each run's figures."""
    validated = [r for r in runs if any(h.get("val_acc") is not None for h in r.history)]
    if target is None or not validated:  # without a validation curve, no time can be read (never from test)
        return {"target_val_acc": target, "target_reached": None, "target_epoch": None, "target_device_hours": None,
                "time_to_target": []}  # fmt: skip
    each = [{"seed": r.seed, **time_to_target(r.history, target)} for r in validated]
    reached = [t for t in each if t["reached"]]
    hours = [t["device_hours"] for t in reached if t["device_hours"] is not None]
    return {
        "target_val_acc": target,
        "target_reached": f"{len(reached)}/{len(each)}",
        "target_epoch": statistics.median([t["epoch"] for t in reached]) if reached else None,
        "target_device_hours": statistics.median(hours) if hours else None,
        "time_to_target": each,
    }


def target_text(row: dict[str, Any]) -> str:
    """The table's cell: `ep 31, 0.62 h (1/1)`, `not reached (0/1)`, or `-`."""
    if not row.get("target_reached"):
        return "-"
    if row["target_epoch"] is None:
        return f"not reached ({row['target_reached']})"
    hours = "" if row["target_device_hours"] is None else f", {row['target_device_hours']:.2f} h"
    return f"ep {row['target_epoch']:g}{hours} ({row['target_reached']})"


def speed_conditions(record: Record) -> str:
    """What a run's training speed was measured under: precision, layout, compile, PyTorch, device."""
    device, identity = record.device or {}, record.identity or {}
    layout = "channels_last" if device.get("channels_last") else "NCHW"
    compiled = "torch.compile" if identity.get("compile") else "eager"
    threads = f", {device['threads']} threads" if device.get("type") == "cpu" and device.get("threads") else ""
    torch_version = (record.versions or {}).get("torch", "?")
    name = device.get("name") or device.get("type", "?")
    return f"{identity.get('precision', 'fp32')}, {layout}, {compiled}, torch {torch_version}, {name}{threads}"
