"""`harness sweep --until-decided`: seeds in rounds until the sequential test (results/sequential.py) has
answered every question a variant's seeds are asked, or --max-seeds is reached.

A round asks each open variant for seeds 0..k-1 through the ordinary sweep (sweep.plan, sweep.execute: a
finished seed is skipped, on Slurm the round is one job array), then looks at the seeds: the first round
asks for the design's min_seeds, each later one for one seed more, as the design looks after every seed.
The results folder is the state: a stopped sweep, started again with the same command, replays its looks
from the records it finds (nothing finished runs twice) and so reaches the same decisions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import submitit

from harness.common.errors import HarnessError
from harness.common.files import atomic_write_json
from harness.data.cifar10 import load_cifar10
from harness.results.record import Record
from harness.results.sequential import INCONCLUSIVE, Decision, Design, decide, design
from harness.results.stats import tolerance
from harness.results.validate import refusal
from harness.results.verdict import cohorts, rule_figure
from harness.spec import Spec
from harness.sweep import SweepRequest, execute, finished, plan, prepare, run_device_type
from harness.train.request import RunOptions, make_budget

FIRST_LOOK = 2  # sequential.design's min_seeds: a t-statistic needs two seeds
MOST_SEEDS = 30  # calibrating a design draws 250,000 sweeps x max_seeds values: keep that in memory
SUMMARY = "until-decided.json"
TARGET_WORDS = {"above claim": "reached", "below claim": "missed", INCONCLUSIVE: "undecided"}


class UntilError(HarnessError):
    """An --until-decided sweep that cannot be run as asked (refused before anything runs)."""


@dataclass(frozen=True)
class Question:
    """One thing a variant's seeds must answer: an accuracy claim, or the --target."""

    label: str  # the claim's id, or "target >= PCT%"
    value: float
    tol: float  # the band: stats.tolerance(claim step); 0 for a target (a one-sided question)
    selection: str | None  # the claim's selection rule; None: the run's clean test figure


@dataclass
class Tracked:
    """A variant under the sequential test: its questions, each one's decision, and every look."""

    spec: Spec
    name: str
    questions: tuple[Question, ...]
    decided: dict[str, Decision] = field(default_factory=dict)  # first crossing per question: never re-decided
    looks: list[dict[str, Any]] = field(default_factory=list)
    seeds: int = 0
    state: str = "open"  # open, decided, undecided, failed
    why: str = ""

    @property
    def label(self) -> str:
        return f"{self.spec.name}/{self.name}"


@dataclass(frozen=True)
class Rounds:
    """An --until-decided sweep, checked: what runs, the design, and where its summary goes."""

    specs: tuple[Spec, ...]
    request: SweepRequest
    base: RunOptions
    design: Design
    target: float | None
    summary: Path


def until_decided(args: Any, specs: list[Spec], request: SweepRequest, base: RunOptions) -> Rounds | None:
    """The checked --until-decided sweep (None without the flag); every refusal is one line, before any run."""
    given = [o for o, v in (("--max-seeds", args.max_seeds), ("--alpha", args.alpha), ("--target", args.target)) if v]
    if not args.until_decided:
        if given:
            raise UntilError(f"{given[0]}: only with --until-decided")
        return None
    max_seeds = 10 if args.max_seeds is None else args.max_seeds
    if not FIRST_LOOK <= max_seeds <= MOST_SEEDS:
        raise UntilError(
            f"--max-seeds: expected {FIRST_LOOK} to {MOST_SEEDS} (the sequential design's first look is at "
            f"{FIRST_LOOK} seeds), got {max_seeds}"
        )
    if any(a == "--seeds" or a.startswith("--seeds=") for a in getattr(args, "argv", [])):
        raise UntilError("--seeds: not with --until-decided, which adds seeds until decided (--max-seeds caps them)")
    if request.protocols != ("own",):
        raise UntilError("--protocol: --until-decided judges each report's own recipe; expected own")
    if args.target is None:
        _refuse_unjudgeable(specs, request.variants, base)
    prepare(specs, replace(request, seeds=FIRST_LOOK), base)  # variant names and budgets, as a sweep checks them
    if args.target is None and not (data := load_cifar10(base.data)).official:
        raise UntilError(
            f"--until-decided: no claim can be judged on these pixels ({data.source} is not the official CIFAR-10); "
            "claims are judged on the official CIFAR-10 only: use --target PCT to check the machinery"
        )
    d = design(0.05 if args.alpha is None else args.alpha, max_seeds, FIRST_LOOK)
    return Rounds(tuple(specs), request, base, d, args.target, request.logs / SUMMARY)


def _selected(specs: list[Spec] | tuple[Spec, ...], variants: str) -> list[tuple[Spec, str]]:
    wanted = None if variants == "all" else [v.strip() for v in variants.split(",") if v.strip()]
    return [
        (s, n) for s in specs for n in (list(s.variants) if wanted is None else [v for v in wanted if v in s.variants])
    ]


def _claims(spec: Spec, name: str) -> list[Question]:
    """The claims seeds can settle: accuracy on the CIFAR-10 test split, each with its own band and rule."""
    return [
        Question(c.id, c.value, tolerance(c.step), c.selection)
        for c in spec.claims_for(name)
        if c.metric == "accuracy" and c.split == "cifar10-test"
    ]


def _refuse_unjudgeable(specs: list[Spec], variants: str, base: RunOptions) -> None:
    for spec, name in _selected(specs, variants):
        budget = make_budget(spec.variants[name].recipe, base.profile, base.epochs, base.subset)
        if not budget.is_full:
            images = "all" if budget.train_images is None else f"{budget.train_images:,}"
            raise UntilError(
                f"--until-decided: no claim can be judged at this budget ({budget.profile}: {budget.epochs} of "
                f"{budget.spec_epochs} epochs on {images} images); claims are judged on full-budget runs on the "
                "official CIFAR-10 pixels: use --profile full, or --target PCT to check the machinery"
            )
        if not _claims(spec, name):
            raise UntilError(
                f"--until-decided: {spec.name}/{name} carries no accuracy claim on the CIFAR-10 test split; "
                "pick --variants with claims, or use --target PCT"
            )


def run_rounds(
    rounds: Rounds, executor: submitit.Executor, progress: Callable[[str], None], say: Callable[[str], None]
) -> int:
    """Round after round until every variant is decided, undecided at max_seeds, or failed; 1 if any failed."""
    d = rounds.design
    target = rounds.target
    variants = [
        Tracked(spec, name, (Question(f"target >= {target:g}%", target, 0.0, None),) if target is not None
                else tuple(_claims(spec, name)))
        for spec, name in _selected(rounds.specs, rounds.request.variants)
    ]  # fmt: skip
    request, base = rounds.request, rounds.base
    device_type = run_device_type(base.device, request.executor, request.slurm.get("gpus", 0))
    seeds = d.min_seeds
    while active := [v for v in variants if v.state == "open"]:
        tasks = [
            t
            for spec in rounds.specs
            if (names := [v.name for v in active if v.spec is spec])
            for t in plan([spec], ",".join(names), seeds, ["own"], base, request.results)
        ]
        slots = execute(
            tasks, finished(list(rounds.specs), tasks, base.data, device_type), executor, request.pace, progress
        )
        paths = {(s.task.report, s.task.variant, s.task.options.seed): s.result.get("record_path") for s in slots}
        for variant in active:
            _look(
                variant,
                [paths.get((variant.spec.name, variant.name, seed)) for seed in range(seeds)],
                d,
                target is not None,
            )
            say(_round_line(variant, d, target is not None))
        _write_summary(rounds, variants)
        seeds += 1
    for variant in variants:
        say(_final_line(variant, d))
    return 1 if any(v.state == "failed" for v in variants) else 0


def _look(variant: Tracked, paths: list[str | None], d: Design, is_target: bool) -> None:
    """The look after len(paths) seeds: each open question decided or left open; the variant stops when
    none is open, at max_seeds, or when a seed has no finished record (its run failed or diverged)."""
    n = len(paths)
    records = []
    for path in filter(None, paths):
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if refusal(data) is None:  # as load_records: a figure no run produces is never pooled
            records.append(Record.from_json(data, read_from=path))
    found = cohorts(records)  # the finished, current runs, as the table pools them: one cohort, a run per seed
    runs = found[0] if len(found) == 1 else None
    variant.seeds = n
    if runs is None or runs.n < n:
        have = {r.seed for r in runs.runs} if runs else set()
        missing = [seed for seed in range(n) if seed not in have]
        variant.state, variant.why = "failed", f"no finished run of seed {missing[0] if missing else '?'}"
        return
    for question in variant.questions:
        if question.label in variant.decided and variant.decided[question.label].outcome != "open":
            continue
        values = [v for _, v in runs.sample(lambda r, q=question: _figure(r, q))]
        if len(values) < n:  # e.g. a test-chosen claim's figure needs --track-test
            variant.state, variant.why = "failed", f"{question.label}: {n - len(values)} seeds lack its figure"
            return
        variant.decided[question.label] = decide(values, question.value, question.tol, d)
    variant.looks.append(
        {
            "seeds": n,
            "look": n - d.min_seeds + 1,
            "decisions": {k: _as_dict(v, is_target) for k, v in variant.decided.items()},
        }
    )
    if all(x.outcome != "open" for x in variant.decided.values()):
        variant.state = "undecided" if any(x.outcome == INCONCLUSIVE for x in variant.decided.values()) else "decided"
    elif n >= d.max_seeds:  # never a seed past the design, whatever the decisions say
        variant.state = "undecided"


def _figure(record: Record, question: Question) -> float | None:
    return record.test_acc if question.selection is None else rule_figure(record, question.selection)


def _as_dict(decision: Decision, is_target: bool) -> dict[str, Any]:
    """A decision as the summary keeps it; `answer` in the question's words (a target is reached or missed)."""
    return {
        **asdict(decision),
        "ci": list(decision.ci) if decision.ci else None,
        "answer": _word(decision.outcome, is_target),
    }


def _word(outcome: str, is_target: bool) -> str:
    return TARGET_WORDS.get(outcome, outcome) if is_target else outcome


def _round_line(variant: Tracked, d: Design, is_target: bool) -> str:
    head = f"{variant.label}: {variant.seeds} seeds"
    if variant.state == "failed":
        return f"{head}; stopped: {variant.why}"
    parts = []
    level = f"{100 * (1 - 2 * d.nominal):.1f}% CI"
    for question in variant.questions:
        decision = variant.decided[question.label]
        interval = f", {level} [{decision.ci[0]:.2f}, {decision.ci[1]:.2f}]" if decision.ci else ""
        mean = f", mean {sum(decision.ci) / 2:.2f}" if decision.ci else ""
        parts.append(f"{question.label}: {_word(decision.outcome, is_target)}{mean}{interval}")
    return f"{head}; " + "; ".join(parts)


def _final_line(variant: Tracked, d: Design) -> str:
    if variant.state == "decided":
        return f"{variant.label}: decided after {variant.seeds} seeds (sequential, alpha = {d.alpha:g})"
    if variant.state == "undecided":
        return f"{variant.label}: undecided at --max-seeds {d.max_seeds}"
    return f"{variant.label}: stopped after {variant.seeds} seeds: {variant.why}"


def _write_summary(rounds: Rounds, variants: list[Tracked]) -> None:
    """The design, every look and the boundary each decision crossed; rewritten after every round."""
    payload = {
        "design": asdict(rounds.design),
        "round_size": 1,  # a look after every seed, as the design is calibrated for
        "target": rounds.target,
        "variants": [
            {
                "report": v.spec.name,
                "variant": v.name,
                "state": v.state,
                "seeds": v.seeds,
                "why": v.why or None,
                "questions": [asdict(q) for q in v.questions],
                "decisions": {k: _as_dict(x, rounds.target is not None) for k, x in v.decided.items()},
                "looks": v.looks,
            }
            for v in variants
        ],
    }
    rounds.summary.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(rounds.summary, payload)
