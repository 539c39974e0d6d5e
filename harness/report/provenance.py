"""What a study's runs cost and how to redo them: each run's facts and exact command, the device-hours and
speeds with their conditions, the estimate for the whole study on a named GPU, and the versions, hashes and
commits behind every figure."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

from harness.measure.gpu import gpu_estimate
from harness.measure.size import size_of
from harness.results.identity import budget_text
from harness.results.record import Record
from harness.results.target import speed_conditions, time_to_target
from harness.spec import Spec

SEEDS_FOR_VERDICT = 3  # below three seeds a verdict carries its seed count (stats.FIRM_SEEDS)
TRAIN_FLOPS_PER_MAC = 6  # forward (2 FLOPs a MAC) and backward (about twice the forward) of each training image


def run_facts(record: Record, spec: Spec) -> dict[str, Any]:
    """One run as the study lists it: budget, data, figure, chosen epoch (1-based), cost and provenance."""
    claim = spec.headline(record.variant)
    target = time_to_target(record.history, claim.value) if claim and record.history else None
    return {
        "variant": record.variant,
        "seed": record.seed,
        "protocol": record.protocol,
        "status": record.status,
        "budget": budget_text(record.cohort),
        "full_budget": bool(record.cohort.get("full_budget")),
        "data": record.data.get("source") or record.data_source,
        "data_sha256": record.data.get("sha256") or record.identity.get("data_sha256", ""),
        "official": bool(record.data.get("official")),
        "test_acc": record.test_acc,
        "selected_epoch": record.selected_epoch,
        "selection": record.selection,
        "device": record.device.get("name") or record.device.get("type"),
        "device_hours": record.device_hours,
        "images_per_s": record.train_images_per_s,
        "speed_conditions": speed_conditions(record),
        "time_to_target": target,
        "spec_hash": record.spec_hash,
        "commit": (record.git or {}).get("commit", ""),
        "dirty": bool((record.git or {}).get("dirty")),
        "versions": record.versions or {},
        "finished_at": record.finished_at,
        "record_file": record.read_from or record.record_path,
        "command": rerun_command(record),
    }


def rerun_command(record: Record) -> str:
    """The `harness run` command that makes a run of this identity again (DATA: the data of the record's
    sha256): every option that the identity holds is spelled out, none left to a default."""
    identity = record.identity
    parts = ["harness", "run", record.spec_file or f"{record.report}.toml", "--variant", record.variant]
    parts += ["--seed", str(record.seed), "--profile", record.profile]
    if not identity.get("full_budget"):
        parts += ["--epochs", str(identity.get("epochs"))]
        parts += ["--subset", str(identity["train_images"])] if identity.get("train_images") else []
    if record.protocol != "own":
        parts += ["--protocol", record.protocol]
    parts += ["--device", identity.get("device_type", "auto"), "--precision", identity.get("precision", "fp32")]
    parts += ["--channels-last", "on" if identity.get("channels_last") else "off"]
    parts += ["--augment", identity.get("augment", "auto")]
    parts += ["--track-test" if identity.get("track_test") else "--no-track-test"]
    parts += ["--robustness" if identity.get("robustness") else "--no-robustness"]
    parts += ["--compile"] if identity.get("compile") else []
    parts += ["--deterministic"] if identity.get("deterministic") else []
    parts += ["--teacher-checkpoint", "TEACHER.pt"] if identity.get("teacher") else []
    return shlex.join([*parts, "--data"]) + " DATA"


def compute_requirements(spec: Spec, rows: list[dict[str, Any]], records: list[Record]) -> dict[str, Any]:
    """Device-hours and speeds of the runs (each with its conditions), their total, and the estimate for the
    full study: every variant of the report at the full budget, SEEDS_FOR_VERDICT seeds, on a named GPU."""
    hours = [r.device_hours for r in records if r.device_hours is not None]
    estimate = [_estimate(spec, row) for row in rows]
    per_seed = sum(e["hours_per_seed"] for e in estimate)
    return {
        "total_device_hours": sum(hours) if hours else None,
        "devices": sorted({r.device.get("name") or r.device.get("type", "?") for r in records}),
        "estimate": estimate,
        "seeds": SEEDS_FOR_VERDICT,
        "estimate_total_hours": per_seed * SEEDS_FOR_VERDICT,
        "estimate_device": estimate[0]["device"] if estimate else None,
        "estimate_basis": sorted({e["basis"] for e in estimate}),
        "flops_rule": f"{TRAIN_FLOPS_PER_MAC} FLOPs per MAC per training image (forward and backward), plus the "
        "teacher's forward (2 FLOPs per MAC) where a variant distils",
    }


def _estimate(spec: Spec, row: dict[str, Any]) -> dict[str, Any]:
    variant = spec.variants[row["variant"]]
    flops = TRAIN_FLOPS_PER_MAC * row["macs"]
    teacher = spec.teacher_of(variant)
    if teacher is not None:
        flops += 2 * size_of(teacher[1].recipe.model).macs
    gpu = gpu_estimate(variant.recipe, f"{spec.name}/{row['variant']}", flops)
    return {
        "variant": row["variant"],
        "epochs": gpu["epochs"],
        "gflops_per_image": flops / 1e9,
        "hours_per_seed": gpu["hours_gpu"],
        "device": gpu["gpu_device"],
        "basis": gpu["rate_basis"],
        "floor_bound": gpu["floor_bound"],
        "teacher": teacher is not None,
    }


def appendix(spec: Spec, rows: list[dict[str, Any]], records: list[Record], writer: dict[str, Any]) -> dict[str, Any]:
    """What anyone needs to redo the study: the spec's hashes, the data's sha256, the commits and library
    versions of the runs and of the harness that wrote the study, and the date it was written."""
    runs = [(r.variant, r.seed, r.versions or {}) for r in records]
    return {
        "spec": spec.path.as_posix(),
        "spec_hashes": [{"variant": row["variant"], "spec_hash": spec.variants[row["variant"]].spec_hash} for row in rows],
        "data": sorted({(r.data.get("source") or r.data_source, r.data.get("sha256", "")) for r in records}),
        "run_commits": sorted({(r.git or {}).get("commit", "")[:12] for r in records}),
        "run_versions": sorted({_versions_text(v) for _, _, v in runs}),
        "writer_commit": writer.get("commit", ""),
        "writer_dirty": bool(writer.get("dirty")),
        "writer_versions": _versions_text(writer.get("versions", {})),
        "written": writer.get("date") or datetime.now(UTC).date().isoformat(),
    }


def _versions_text(versions: dict[str, Any]) -> str:
    keys = ("python", "torch", "torchvision")
    return ", ".join(f"{key} {versions.get(key, '?')}" for key in keys)
