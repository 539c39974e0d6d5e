"""Sweeps of specs x variants x seeds x protocols, run through submitit: on Slurm or on this machine.

Each run is `train.run`, which is idempotent: a run whose record exists is skipped before submission,
and a run that stopped (failure, pre-emption, time-out) resumes from its own checkpoint when it is
submitted again. Teachers run in a first wave, before the students that distil from them.
"""

from __future__ import annotations

import dataclasses
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit
from tabulate import tabulate

from harness.common.console import PlainEvents
from harness.common.device import apply_threads, resolve_device
from harness.common.errors import RunError
from harness.common.registry import did_you_mean
from harness.data.cifar10 import load_cifar10
from harness.results.record import Record, find_record
from harness.spec import Spec, load_spec, resolve_protocol, with_protocol
from harness.train.request import RunOptions, identify, make_budget

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Task:
    """One run of the sweep: a spec file, a variant and the run's options (seed, budget, protocol)."""

    spec_path: str
    report: str
    variant: str
    options: RunOptions
    results: str
    wave: int  # 0: teachers, 1: everything else

    @property
    def label(self) -> str:
        protocol = "" if self.options.protocol == "own" else f" [{self.options.protocol}]"
        return f"{self.report}/{self.variant}{protocol} seed {self.options.seed}"


class RunJob(submitit.helpers.Checkpointable):
    """The callable submitit runs on a node; on pre-emption or time-out it is requeued as it is, and the
    run resumes from its last checkpoint (sweeps always run with resume on)."""

    def __init__(self, task: Task, threads: int | None = None) -> None:
        self.task, self.threads = task, threads

    def __call__(self) -> dict[str, Any]:
        if self.threads:
            apply_threads(self.threads)
        from harness.train.loop import run  # here, not at the top: the sweep itself never loads PyTorch for it

        spec = load_spec(self.task.spec_path)  # the job's log (submitit's .out file) holds the run's lines
        record = run(spec, self.task.variant, self.task.options, Path(self.task.results), PlainEvents())
        return summary(record)


def summary(record: Record) -> dict[str, Any]:
    """What the sweep keeps of a run's record: its status, test accuracy, duration and where it is."""
    return {
        "status": record.status,
        "test_acc": record.test_acc,
        "wall_time_s": record.wall_time_s,
        "record_path": record.record_path,
    }


def plan(
    specs: list[Spec], variants: str, seeds: int, protocols: list[str], base: RunOptions, results: Path
) -> list[Task]:
    """Every run the sweep asks for, teachers first; common-protocol runs once per distinct network."""
    tasks: list[Task] = []
    seen_common: set[tuple[str, int]] = set()
    wanted = None if variants == "all" else [v.strip() for v in variants.split(",") if v.strip()]
    for spec in specs:
        names = list(spec.variants) if wanted is None else [v for v in wanted if v in spec.variants]
        if wanted is not None and not names:
            continue
        resolved = {protocol: resolve_protocol(spec, protocol) for protocol in protocols}  # read each file once
        teachers = set()
        for n in names:  # students that will train their teacher: it runs first, in its own job
            linked, distill = spec.teacher_of(spec.variants[n]), spec.variants[n].recipe.train.distill
            if linked and linked[0] is spec and distill is not None and distill.teacher_checkpoint is None:
                teachers.add(linked[1].name)
        for name in dict.fromkeys([*teachers, *names]):  # a student's teacher joins the sweep
            for protocol in protocols:
                variant = with_protocol(spec, spec.variants[name], resolved[protocol])
                if protocol != "own" and name not in names:
                    continue  # a teacher that joined for its students matters under their own recipe only
                for seed in range(seeds):
                    if protocol != "own":
                        if (variant.spec_hash, seed) in seen_common:
                            continue  # the same network under the same shared recipe: run it once
                        seen_common.add((variant.spec_hash, seed))
                    options = dataclasses.replace(base, seed=seed, protocol=protocol, resume=True)
                    wave = 0 if protocol == "own" and name in teachers else 1
                    tasks.append(Task(str(spec.path), spec.name, name, options, str(results), wave))
    return sorted(tasks, key=lambda t: t.wave)


def run_device_type(device: str, executor: str, gpus_per_run: int) -> str:
    """The device type the sweep's runs will resolve `--device` to: on Slurm, `auto` with GPUs is CUDA."""
    if device != "auto":
        return device
    if executor == "slurm":
        return "cuda" if gpus_per_run > 0 else "cpu"
    return resolve_device("auto").type


def finished(specs: list[Spec], tasks: list[Task], data: str | None, device_type: str) -> dict[Task, dict[str, Any]]:
    """The tasks whose record already exists (complete, same identity), so a re-issued sweep skips them."""
    data_sha = load_cifar10(data).sha256
    by_path = {str(spec.path): spec for spec in specs}
    protocols = {(t.spec_path, t.options.protocol) for t in tasks}
    resolved = {(path, p): resolve_protocol(by_path[path], p) for path, p in protocols}  # each file read once
    done = {}
    for task in tasks:
        spec = by_path[task.spec_path]
        variant = with_protocol(spec, spec.variants[task.variant], resolved[(task.spec_path, task.options.protocol)])
        budget = make_budget(variant.recipe, task.options.profile, task.options.epochs, task.options.subset)
        try:
            identity = identify(spec, variant, task.options, budget, data_sha, device_type)
        except RunError:
            continue  # e.g. a missing teacher checkpoint: the run fails in its own job, reported with the rest
        record = find_record(Path(task.results), identity)
        if record is not None:
            done[task] = summary(record)
    return done


@dataclass
class Slot:
    task: Task
    attempts: int = 0
    job: Any = None
    started: float = 0.0
    state: str = "pending"  # pending, running, complete, diverged, failed, skipped
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def make_executor(kind: str, folder: Path, parallel: int, slurm: dict[str, Any]) -> submitit.Executor:
    """submitit's local executor, or its Slurm executor with the sweep's job parameters."""
    if kind == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=slurm.get("time", 60 * 24 * 7))
        return executor
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=slurm.get("retries", 3))
    executor.update_parameters(**slurm_parameters(slurm, parallel))
    return executor


def slurm_parameters(options: dict[str, Any], parallel: int) -> dict[str, Any]:
    """The sbatch options of one run of the array; `parallel` caps how many run at once (%K)."""
    params: dict[str, Any] = {
        "job_name": "harness-sweep",
        "time": options.get("time", 24 * 60),
        "cpus_per_task": options.get("cpus", 8),
        "array_parallelism": parallel,
        # the warning before the limit: time to stop cleanly, after which submitit requeues the run (a quarter
        # of a short limit, at most 3 minutes; Slurm checks limits every 30 s or so)
        "signal_delay_s": min(180, max(15, options.get("time", 24 * 60) * 60 // 4)),
        "stderr_to_stdout": True,
    }
    if options.get("gpus"):
        params["gpus_per_node"] = options["gpus"]
    if options.get("partition"):
        params["partition"] = options["partition"]
    return params


@dataclass(frozen=True)
class Pace:
    """How a sweep submits: runs at once, retries of a failed run, threads per run, one array per wave."""

    parallel: int = 1
    retries: int = 1
    threads: int | None = None
    as_array: bool = False  # Slurm: each wave one job array, which Slurm itself limits to `parallel`


class SweepStopped(KeyboardInterrupt):
    """The sweep was interrupted (Ctrl-C, SIGTERM); `running` are the runs it stopped or left running."""

    def __init__(self, running: list[Slot], cancelled: bool) -> None:
        super().__init__()
        self.running, self.cancelled = running, cancelled


def execute(
    tasks: list[Task],
    done: dict[Task, dict[str, Any]],
    executor: submitit.Executor,
    pace: Pace,
    progress: Callable[[str], None],
) -> list[Slot]:
    """Run the tasks wave by wave, at most `pace.parallel` at a time; a failure is retried, then reported.

    Interrupted, a local sweep stops its runs (their checkpoints keep the work; the same command resumes
    them); a Slurm sweep leaves its jobs to the cluster. Either way SweepStopped says which.
    """
    slots = [Slot(task) for task in tasks]
    for slot in slots:
        if slot.task in done:
            slot.state, slot.result = "skipped", done[slot.task]
    try:
        for wave in sorted({t.wave for t in tasks}):
            _run_wave(
                [s for s in slots if s.task.wave == wave and s.state == "pending"], slots, executor, pace, progress
            )
    except KeyboardInterrupt:
        running = [s for s in slots if s.state == "running"]
        if not pace.as_array:
            for slot in running:
                slot.job.cancel()  # SIGINT to submitit's local controller, which stops the run in turn
            deadline = time.monotonic() + 30
            while any(not s.job.done() for s in running) and time.monotonic() < deadline:
                time.sleep(0.2)
        raise SweepStopped(running, cancelled=not pace.as_array) from None
    return slots


def _run_wave(
    todo: list[Slot], slots: list[Slot], executor: submitit.Executor, pace: Pace, progress: Callable[[str], None]
) -> None:
    if pace.as_array and todo:
        with executor.batch():
            for slot in todo:
                _submit(executor, slot, pace.threads)
        array = str(todo[0].job.job_id).split("_")[0]
        progress(
            f"submitted job array {array} ({len(todo)} tasks); logs in {executor.folder}; watch: squeue -j {array}"
        )
    while True:
        running = [s for s in todo if s.state == "running"]
        waiting = [s for s in todo if s.state == "pending"]
        for slot in waiting[: max(0, pace.parallel - len(running))]:
            _submit(executor, slot, pace.threads)
        for slot in running:
            if slot.job.done():
                _collect(slot, executor, pace.retries, pace.threads)
        progress(_progress_line(slots))
        if not any(s.state in ("pending", "running") for s in todo):
            return
        time.sleep(POLL_SECONDS)


def _submit(executor: submitit.Executor, slot: Slot, threads: int | None) -> None:
    slot.attempts += 1
    slot.started = time.monotonic()
    slot.job = executor.submit(RunJob(slot.task, threads))
    slot.state = "running"


def _collect(slot: Slot, executor: submitit.Executor, retries: int, threads: int | None) -> None:
    try:
        slot.result = slot.job.result()
        slot.state = slot.result.get("status", "complete")
    except Exception as error:  # noqa: BLE001 - a run's failure must never stop the sweep
        slot.error = _first_line(error)
        if slot.attempts <= retries:
            _submit(executor, slot, threads)
        else:
            slot.state = "failed"


def _first_line(error: BaseException) -> str:
    """The run's own error line (e.g. `RunError: ...`) out of submitit's wrapped remote traceback."""
    text = str(error)
    raised = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)): (.*)$", text, flags=re.MULTILINE)
    if raised:
        kind, message = raised[-1]
        return f"{kind.rsplit('.', 1)[-1]}: {message}"[:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:300]


def _progress_line(slots: list[Slot]) -> str:
    count = {
        state: sum(s.state == state for s in slots)
        for state in ("complete", "diverged", "skipped", "running", "pending", "failed")
    }
    durations = [s.result.get("wall_time_s") for s in slots if s.state == "complete" and s.result.get("wall_time_s")]
    remaining = count["running"] + count["pending"]
    eta = ""
    if durations and remaining:
        running = max(1, count["running"])
        eta = f", ETA {statistics.fmean(durations) * remaining / running / 60:.1f} min"
    return (
        f"{count['complete'] + count['diverged']} done ({count['skipped']} skipped as already complete), "
        f"{count['running']} running, {count['pending']} waiting, {count['failed']} failed{eta}"
    )


@dataclass(frozen=True)
class SweepRequest:
    """A sweep as asked for: which runs, where their results go, and how they are submitted."""

    variants: str  # all, or a comma-separated list
    seeds: int
    protocols: tuple[str, ...]  # own and/or common
    results: Path
    executor: str  # local or slurm
    logs: Path  # submitit's job folder
    slurm: dict[str, Any]  # partition, gpus, cpus, time (minutes), retries
    pace: Pace


def prepare(
    specs: list[Spec], request: SweepRequest, base: RunOptions
) -> tuple[list[Task], dict[Task, dict[str, Any]]]:
    """Every task of the sweep, and those already complete; every variant name and budget checked first."""
    if request.variants != "all":
        names = {v.strip() for v in request.variants.split(",") if v.strip()}
        known = {name for spec in specs for name in spec.variants}
        unknown = sorted(names - known)
        if unknown:
            raise RunError(
                f"--variants: no variant {unknown[0]!r} in these specs{did_you_mean(unknown[0], sorted(known))}"
            )
    tasks = plan(specs, request.variants, request.seeds, list(request.protocols), base, request.results)
    for task in tasks:  # every budget is checked before anything is submitted
        spec = next(s for s in specs if str(s.path) == task.spec_path)
        make_budget(spec.variants[task.variant].recipe, base.profile, base.epochs, base.subset)
    device_type = run_device_type(base.device, request.executor, request.slurm.get("gpus", 0))
    return tasks, finished(specs, tasks, base.data, device_type)


def sweep_table(slots: list[Slot]) -> str:
    """Every run of the sweep with its status, test accuracy, attempts and error, then the counts."""
    body = [
        [
            s.task.report,
            s.task.variant,
            s.task.options.protocol,
            s.task.options.seed,
            s.state,
            "" if s.result.get("test_acc") is None else f"{s.result['test_acc']:.2f}",
            s.attempts,
            f"{s.error} ({s.job.paths.stdout})" if s.error and s.job is not None else s.error,
        ]
        for s in slots
    ]
    headers = ["report", "variant", "protocol", "seed", "status", "test acc", "attempts", "error (log)"]
    failed = sum(s.state in ("failed", "diverged") for s in slots)
    return (
        tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)
        + f"\n\n{len(slots)} runs: {sum(s.state == 'complete' for s in slots)} complete, "
        f"{sum(s.state == 'skipped' for s in slots)} skipped (already complete), {failed} failed or diverged"
    )
