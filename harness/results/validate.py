"""Figures no run can produce, found where a record is read; and JSON output that is JSON.

A record is hand-editable text: an accuracy of NaN or 170 %, or a negative time, would otherwise flow into
means, tests and verdicts (statistics on NaN crash; 170 % compares as "+159.62 points"). Such a record is
refused on reading, with one line naming its file and the field, and is never pooled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

ACCURACIES = ("test_acc", "val_acc")  # percent, 0-100
TIMES = ("wall_time_s", "device_hours", "train_images_per_s")  # finite, not negative
RULE_EPOCHS = ("best-val-epoch", "best-epoch-test-epoch")  # test_acc_by_rule's epochs ("last-epoch" is a figure)
HISTORY_TIMES = ("seconds", "train_images_per_s")


def _figures(data: dict[str, Any]) -> Iterator[tuple[str, Any, bool]]:
    """(field, value, is an accuracy) for every figure of a record that has a range: accuracies in percent,
    times and rates."""
    for name in ACCURACIES:
        yield name, data.get(name), True
    for name in TIMES:
        yield name, data.get(name), False
    by_rule = data.get("test_acc_by_rule")
    if isinstance(by_rule, dict):
        for rule, value in by_rule.items():
            if rule not in RULE_EPOCHS:
                yield f"test_acc_by_rule.{rule}", value, True
    robustness = data.get("robustness")
    if isinstance(robustness, dict):
        yield "robustness.mean", robustness.get("mean"), True
        for corruption, by_severity in (robustness.get("per_corruption") or {}).items():
            for severity, value in (by_severity or {}).items():
                yield f"robustness.per_corruption.{corruption}.{severity}", value, True
    for i, entry in enumerate(data.get("history") or []):
        if not isinstance(entry, dict):
            continue
        for key, value in entry.items():
            if "acc" in key:  # val_acc, test_acc_monitor, train_acc_first_label
                yield f"history[{i}].{key}", value, True
            elif key in HISTORY_TIMES:
                yield f"history[{i}].{key}", value, False


def _wrong(value: Any, accuracy: bool) -> str | None:
    """What is wrong with one figure, or None (None itself is a figure not measured: allowed)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not a number"
    if not math.isfinite(value):
        return "not a finite number"
    if accuracy and not 0 <= value <= 100:
        return "outside 0-100 %"
    if not accuracy and value < 0:
        return "negative"
    return None


def impossible_figure(data: dict[str, Any]) -> str | None:
    """The first figure of a record (as read from its JSON) that no run can produce, as `field = value
    (what is wrong)`, and how many more there are; None when every figure is possible."""
    found = [(name, value, why) for name, value, accuracy in _figures(data) if (why := _wrong(value, accuracy))]
    if not found:
        return None
    name, value, why = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{name} = {value!r} ({why}){more}"


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float (nested in dicts, lists, tuples) made None: JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """`value` as strict JSON (no NaN or Infinity, which json.dumps writes by default): those become null."""
    return json.dumps(finite(value), indent=indent, allow_nan=False)


def refusal(data: dict[str, Any]) -> str | None:
    """Why a record read from JSON must not be used (a newer harness's, or a figure no run can produce), as
    the end of a `FILE: skipped, ...` line; None when it may be used."""
    from harness.results.identity import RESULTS_VERSION

    version = (data.get("identity") or {}).get("results_version") if isinstance(data.get("identity"), dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > RESULTS_VERSION:
        # not stale (older code's): this harness cannot know what the newer one changed
        return f"from a newer harness (results version {version} > {RESULTS_VERSION}): upgrade the harness to read it"
    if figure := impossible_figure(data):
        return f"{figure}: no run produces that; not pooled (correct the record or remove the file)"
    return None


def newer_schema(data: Any, current: str) -> str | None:
    """A record of a schema newer than `current` (`harness.result/N`), which this harness cannot read."""
    schema = data.get("schema") if isinstance(data, dict) else None
    prefix, _, number = current.rpartition("/")
    if not isinstance(schema, str) or not schema.startswith(prefix + "/"):
        return None
    found = schema.removeprefix(prefix + "/")
    if found.isdigit() and int(found) > int(number):
        return f"from a newer harness (record schema {schema}; this one reads up to {current}): upgrade the harness"
    return None
