"""What settling a report's claims would cost, before anything runs: for every variant and each of its
accuracy claims on the CIFAR-10 test split, the device-hours of one seed at the full budget (the GPU figure
`harness run` prints, at a named device's rate), the seed spread it assumes, the seeds a decisive verdict
needs at a given gap, and the hours of the whole sweep.

It sits beside sweep.py, above measure/ and results/: it reads a recipe's cost from the one and records
and statistics from the other, so inside either stage it would make data flow backwards. It trains nothing
and times nothing; the only counting is the MAC count of measure/size.py, cached per network.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.common.errors import HarnessError
from harness.measure import gpu
from harness.measure.gpu import GPU_STEP_FLOOR_S, H100_ASSUMED_MFU, GpuRate, gpu_rate
from harness.measure.size import size_of
from harness.results.record import Record
from harness.results.stats import ALPHA, FIRM_SEEDS, POWER, seeds_needed, tolerance
from harness.results.verdict import evidence, rule_sample
from harness.spec import Claim, Spec, Variant

TRAIN_FLOPS_PER_MAC = 6  # a training image: forward (2 FLOPs a MAC) and backward (about twice the forward)
TEACHER_FLOPS_PER_MAC = 2  # a distillation teacher runs forward only
# No full-budget run on the official pixels has two seeds yet (results/README.md, README's "Checking a GPU"),
# so the spread is a stated assumption until one has: the plan says which each row rests on.
PRIOR_SPREAD = 0.15
PRIOR_SOURCE = f"assumed prior {PRIOR_SPREAD} points (no measured spread)"


@dataclass(frozen=True)
class Peak:
    """A GPU's published dense tensor-core peak, and where the figure is printed."""

    flops_per_s: float
    source: str


# Dense (no sparsity) tensor-core peaks from NVIDIA's datasheets; the harness trains in bf16 on CUDA.
DATASHEET_PEAKS = {
    "h100": Peak(989e12, "NVIDIA H100 datasheet, H100 SXM: BF16 tensor core 1,979 TFLOP/s with sparsity, 989 dense"),
    "h200": Peak(989e12, "NVIDIA H200 datasheet, H200 SXM: BF16 tensor core 1,979 TFLOP/s with sparsity, 989 dense"),
    "a100": Peak(312e12, "NVIDIA A100 datasheet: BF16 tensor core 312 TFLOP/s (624 with sparsity)"),
    "l4": Peak(121e12, "NVIDIA L4 datasheet: BF16 tensor core 242 TFLOP/s with sparsity, 121 dense"),
    "t4": Peak(65e12, "NVIDIA T4 datasheet: mixed-precision (FP16/FP32) 65 TFLOP/s; T4 has no bf16 units"),
}


# (spec, variant) -> seeds it must run, hours a seed, the spec whose totals count it
Runs = dict[tuple[str, str], tuple[int, float, str]]


class PlanError(HarnessError):
    """A plan asked for with arguments it cannot use."""


@dataclass(frozen=True)
class PlanRequest:
    variants: str  # "all" or comma-separated variant names
    device: str  # a DATASHEET_PEAKS name, or the measured device of the rates file
    gap: float  # points between the claim and a mean that the sweep must detect
    rates_file: Path | None = None  # gpu_rates.json (default: gpu.GPU_RATES, read when planning)


@dataclass(frozen=True)
class Device:
    name: str
    measured: dict[str, Any] | None  # the rates file's content when the name is its measured device
    rates_file: Path


def _measured(rates_file: Path) -> dict[str, Any] | None:
    """The rates `make gpu-check` measured on a GPU (a CPU dry run's figures are never a GPU's)."""
    data = json.loads(rates_file.read_text(encoding="utf-8")) if rates_file.is_file() else {}
    return data if data and "dry-run" not in data.get("source", "dry-run") else None


def _short_name(device: str) -> str:
    """`NVIDIA H100 80GB HBM3` -> h100: the datasheet name inside a measured device's, else its whole name."""
    lowered = device.lower()
    return next((name for name in DATASHEET_PEAKS if name in lowered), "-".join(lowered.split()))


def resolve_device(name: str, rates_file: Path | None = None) -> Device:
    """The device of --device: its measured rate where gpu_rates.json has one, else a datasheet peak."""
    rates_file = rates_file or gpu.GPU_RATES
    measured = _measured(rates_file)
    wanted = name.strip().lower()
    if measured and wanted in (_short_name(measured["device"]), "-".join(measured["device"].lower().split())):
        return Device(wanted, measured, rates_file)
    if wanted in DATASHEET_PEAKS:
        return Device(wanted, None, rates_file)
    known = [f"{n} (datasheet peak)" for n in DATASHEET_PEAKS]
    if measured:
        known.insert(0, f"{_short_name(measured['device'])} (measured {measured['date']})")
    raise PlanError(f"--device: unknown device {name!r}; known: {', '.join(known)}")


def device_rate(device: Device, key: str, flops_per_image: float) -> tuple[GpuRate, str]:
    """The training FLOP/s of one recipe on the device, and the estimate's label."""
    if device.measured:
        rate = gpu_rate(key, flops_per_image, device.rates_file)  # the recipe's own rate, else the median
        if not rate.basis.startswith("assumed"):
            return rate, f"estimate (measured rate, {device.measured['date']})"
    peak = DATASHEET_PEAKS.get(device.name, DATASHEET_PEAKS["h100"])
    basis = (
        f"{H100_ASSUMED_MFU:.0%} (the utilisation harness run assumes) of the {peak.flops_per_s / 1e12:.0f} TFLOP/s "
        f"datasheet peak ({peak.source}); no rate of this GPU measured"
    )
    return GpuRate(peak.flops_per_s * H100_ASSUMED_MFU, device.name, basis), "estimate (assumed rate)"


@dataclass(frozen=True)
class Cost:
    """One seed of one variant at the full budget on the device."""

    hours: float
    floor_bound: bool  # the step floor, not the FLOPs, sets the time
    flops_per_image: float
    label: str
    basis: str


def flops_per_image(spec: Spec, variant: Variant) -> float:
    """FLOPs of one training image: the student's forward and backward, and a teacher's forward."""
    flops = TRAIN_FLOPS_PER_MAC * size_of(variant.recipe.model).macs
    linked = spec.teacher_of(variant)
    if linked is not None:
        flops += TEACHER_FLOPS_PER_MAC * size_of(linked[1].recipe.model).macs
    return flops


def variant_cost(spec: Spec, variant: Variant, device: Device) -> Cost:
    """gpu.gpu_estimate at the device's rate: the recipe's FLOPs, never under GPU_STEP_FLOOR_S a step."""
    flops = flops_per_image(spec, variant)
    key = f"{spec.name}/{variant.name}"
    rate, label = device_rate(device, key, flops)
    estimate = gpu.gpu_estimate(variant.recipe, key, flops, rate)
    return Cost(estimate["hours_gpu"], estimate["floor_bound"], flops, label, rate.basis)


def trained_teacher(spec: Spec, variant: Variant) -> tuple[Spec, Variant] | None:
    """The teacher a run trains first (as `harness run` does): a linked teacher with no checkpoint given."""
    distill = variant.recipe.train.distill
    linked = spec.teacher_of(variant)
    return linked if linked is not None and distill is not None and distill.teacher_checkpoint is None else None


@dataclass(frozen=True)
class Spread:
    std: float
    source: str
    seeds: int  # seeds it was measured over; 0 for the prior


def seed_spread(spec: Spec, variant: Variant, claim: Claim, records: list[Record]) -> Spread:
    """The sample std of the claim's rule figure over the variant's full-budget runs on the official pixels
    (its current recipe, its own protocol) where two or more seeds have a spread, else the stated prior."""
    mine = [
        r
        for r in records
        if (r.report, r.variant, r.protocol, r.spec_hash) == (spec.name, variant.name, "own", variant.spec_hash)
    ]
    found = evidence(mine)
    values = [v for _, v in rule_sample(found, claim.selection)] if found.reproduction else []
    if len(values) >= 2 and statistics.stdev(values) > 0:
        where = ", ".join(sorted({r.origin for r in found.records}))
        return Spread(statistics.stdev(values), f"measured: sample std of {len(values)} seeds in {where}", len(values))
    return Spread(PRIOR_SPREAD, PRIOR_SOURCE, 0)


def seeds_for(gap: float, std: float, claim_step: float) -> int | None:
    """Seeds for a decisive verdict on a mean `gap` points from the claim: the fewest with which the verdict's
    test (two-sided, ALPHA) finds it outside the claim's band (claim +- tolerance) with probability POWER, and
    at least FIRM_SEEDS (below them a verdict carries its seed count). None: the gap lies inside the band."""
    beyond = gap - tolerance(claim_step)
    needed = seeds_needed(beyond, std) if beyond > 0 else None
    return None if needed is None else max(needed, FIRM_SEEDS)


def judged_claims(spec: Spec, name: str) -> list[Claim]:
    """The variant's accuracy claims on the CIFAR-10 test split: the ones the harness can judge."""
    return [c for c in spec.claims_for(name) if c.metric == "accuracy" and c.split == "cifar10-test"]


def chosen_variants(specs: list[Spec], wanted: str) -> list[tuple[Spec, list[str]]]:
    """--variants: all, or names each spec is asked for (a name in no spec is an error)."""
    if wanted.strip() == "all":
        return [(s, list(s.variants)) for s in specs]
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    known = sorted({n for s in specs for n in s.variants})
    missing = [n for n in names if n not in known]
    if missing or not names:
        raise PlanError(
            f"--variants: expected all or variant names of the given specs, got {wanted!r}; known: {', '.join(known)}"
        )
    return [(s, [n for n in names if n in s.variants]) for s in specs if any(n in s.variants for n in names)]


@dataclass(frozen=True)
class _Basis:
    """What every row of one plan rests on."""

    records: list[Record]
    device: Device
    gap: float


def plan(specs: list[Spec], records: list[Record], request: PlanRequest) -> dict[str, Any]:
    """Rows (variant x test-set accuracy claim), per-spec and overall totals, and what the figures rest on."""
    if not request.gap > 0:
        raise PlanError(f"--gap: expected a positive number of points, got {request.gap}")
    device = resolve_device(request.device, request.rates_file)
    basis = _Basis(records, device, request.gap)
    rows: list[dict[str, Any]] = []
    runs: Runs = {}
    for spec, names in chosen_variants(specs, request.variants):
        for name in names:
            variant = spec.variants[name]
            claims = judged_claims(spec, name)
            if not claims:
                continue
            rows += _variant_rows(spec, variant, claims, basis, runs)
    return {
        "device": device.name,
        "gap": request.gap,
        "alpha": ALPHA,
        "power": POWER,
        "min_seeds": FIRM_SEEDS,
        "prior_spread": PRIOR_SPREAD,
        "step_floor_s": GPU_STEP_FLOOR_S,
        "rows": rows,
        "totals": _totals(runs),
    }


def _variant_rows(spec: Spec, variant: Variant, claims: list[Claim], basis: _Basis, runs: Runs) -> list[dict[str, Any]]:
    """One row per claim; `runs` gains the seeds the variant (and the teacher it trains first) must run."""
    cost = variant_cost(spec, variant, basis.device)
    teacher = trained_teacher(spec, variant)
    teacher_cost = variant_cost(teacher[0], teacher[1], basis.device) if teacher else None
    teacher_key = f"{teacher[0].name}/{teacher[1].name}" if teacher else None
    out = []
    for claim in claims:
        spread_ = seed_spread(spec, variant, claim, basis.records)
        seeds = seeds_for(basis.gap, spread_.std, claim.step)
        teacher_hours = teacher_cost.hours if teacher_cost else 0.0
        out.append(
            {
                "spec": spec.name,
                "variant": variant.name,
                "claim_id": claim.id,
                "claim_value": claim.value,
                "claim_selection": claim.selection,
                "hours_per_seed": cost.hours,
                "estimate": cost.label,
                "rate_basis": cost.basis,
                "floor_bound": cost.floor_bound,
                "flops_per_image": cost.flops_per_image,
                "teacher": teacher_key,
                "teacher_hours_per_seed": teacher_cost.hours if teacher_cost else None,
                "spread": spread_.std,
                "spread_source": spread_.source,
                "spread_seeds": spread_.seeds,
                "seeds_needed": seeds,
                # a student reuses only a teacher run of its own seed: one teacher run per seed
                "hours_total": None if seeds is None else seeds * (cost.hours + teacher_hours),
            }
        )
        if seeds is not None:
            _need(runs, (spec.name, variant.name), seeds, cost.hours)
            if teacher and teacher_cost:
                _need(runs, (teacher[0].name, teacher[1].name), seeds, teacher_cost.hours, spec.name)
    return out


def _need(runs: Runs, key: tuple[str, str], seeds: int, hours: float, owner: str = "") -> None:
    """A variant's runs settle all its claims at once, and a teacher's serve all its students of each seed:
    it runs the most seeds any of them needs, never their sum."""
    before = runs.get(key, (0, hours, owner or key[0]))
    runs[key] = (max(before[0], seeds), hours, before[2])


def _totals(runs: Runs) -> dict[str, Any]:
    per_spec: dict[str, dict[str, Any]] = {}
    for seeds, hours, owner in runs.values():
        entry = per_spec.setdefault(owner, {"spec": owner, "runs": 0, "hours": 0.0})
        entry["runs"] += seeds
        entry["hours"] += seeds * hours
    return {
        "per_spec": list(per_spec.values()),
        "runs": sum(e["runs"] for e in per_spec.values()),
        "hours": sum(e["hours"] for e in per_spec.values()),
    }


def _hours_text(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:.3f}"


def render_plan(result: dict[str, Any]) -> str:
    """The rows as a Markdown table, then the totals and what every figure rests on."""
    headers = ["spec", "variant", "claim", "claimed %", "hours/seed", "teacher hours/seed", "spread pp (source)"]
    headers += ["seeds", "hours total"]
    body = [
        [
            r["spec"],
            r["variant"],
            r["claim_id"],
            f"{r['claim_value']:g}",
            _hours_text(r["hours_per_seed"]) + ("*" if r["floor_bound"] else ""),
            f"+{_hours_text(r['teacher_hours_per_seed'])} ({r['teacher']})" if r["teacher"] else "-",
            f"{r['spread']:.3g} ({'measured, ' + str(r['spread_seeds']) + ' seeds' if r['spread_seeds'] else 'prior'})",
            "never" if r["seeds_needed"] is None else str(r["seeds_needed"]),
            _hours_text(r["hours_total"]),
        ]
        for r in result["rows"]
    ]
    totals = result["totals"]
    spec_rows = [[e["spec"], str(e["runs"]), _hours_text(e["hours"])] for e in totals["per_spec"]]
    spec_rows.append(["all", str(totals["runs"]), _hours_text(totals["hours"])])
    lines = [
        tabulate(body, headers=headers, tablefmt="github", disable_numparse=True),
        "",
        tabulate(spec_rows, headers=["totals", "runs", "device-hours"], tablefmt="github", disable_numparse=True),
        "",
        *_notes(result),
    ]
    return "\n".join(lines)


def _notes(result: dict[str, Any]) -> Iterable[str]:
    """What the figures rest on, each said once."""
    rows = result["rows"]
    for label, basis in sorted({(r["estimate"], r["rate_basis"]) for r in rows}):
        yield f"Hours per seed: {label}: {basis}."
    yield (
        f"A step never takes under the assumed floor of {result['step_floor_s'] * 1e3:.0f} ms (* where the floor, "
        f"not the FLOPs, sets the time). FLOPs per image: {TRAIN_FLOPS_PER_MAC} x MACs, plus "
        f"{TEACHER_FLOPS_PER_MAC} x the teacher's MACs where a variant distils."
    )
    for source in sorted({r["spread_source"] for r in rows}):
        yield f"Spread: {source}."
    yield (
        f"Seeds: the fewest with which a two-sided t-test at alpha {result['alpha']} (the verdict's 95% CI) finds a "
        f"mean {result['gap']:g} point{'s' * (result['gap'] != 1)} from the claim outside the claim's band (claim +- half its stated precision) "
        f"with power {result['power']} (noncentral t), and at least {result['min_seeds']} (below that a verdict "
        "carries its seed count); never: the gap lies inside the band, or no number of seeds up to 1000 detects it."
    )
    teachers = sorted({r["teacher"] for r in rows if r["teacher"]})
    if teachers:
        yield (
            f"Teachers trained first: {', '.join(teachers)}; one teacher run per seed (a student reuses only a "
            "teacher run of its own seed), shared by every student of that seed, counted once in the totals."
        )
    yield (
        "Totals: each variant runs the most seeds any of its claims needs (one run judges all of its claims), "
        "each teacher the most any of its students needs."
    )


def read_records(folders: list[Path] | None, warn: Callable[[str], None]) -> list[Record]:
    """The records whose seeds give the spread: --results folders (default: the shipped results/)."""
    from harness.common.defaults import SHIPPED_RESULTS
    from harness.results.record import load_records

    records: list[Record] = []
    for folder in folders or [Path(SHIPPED_RESULTS)]:
        if folders and not folder.is_dir():  # a typo must not read as "no measured spread"
            raise PlanError(f"--results: expected a folder of result records, got {str(folder)!r}")
        found, trouble = load_records(folder)
        records += found
        for problem in trouble:
            warn(problem)
    return records
