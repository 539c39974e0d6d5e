"""The `harness` command: argv -> one command; every expected failure is one line on stderr and exit 2.

Only this module (with console.py) reads argv, prints, or picks output paths. It imports the library
lazily, inside each command, so that `--help` and usage errors answer before PyTorch loads.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.arguments import DEFAULT_SPECS, build_parser, resume_command
from harness.common.errors import HarnessError, Stopped
from harness.results.validate import json_text  # strict JSON: NaN and Infinity become null

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
SPEED_IMAGES = 8192  # enough distinct images for every timed loop; the naive path keeps them as PIL


class UsageError(HarnessError):
    """Bad input from the user, found by the CLI itself."""


# Commands that train (or time training) share the CPUs with whatever else runs: their OpenMP threads
# sleep instead of spinning, so that a run beside another busy process slows about twofold rather than
# tenfold (measured: a ResNet-12 step on 2 busy cores took 2.3 s spinning, 0.42 s passive; 0.2 s either
# way on idle cores). Latency timings keep OpenMP's default, which batch-1 forward passes are faster with.
SHARING_COMMANDS = ("run", "sweep", "speed", "eval")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(COMMANDS).parse_args(argv)
    args.argv = argv  # as typed: a stopped run prints the command that resumes it
    if args.command in SHARING_COMMANDS:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read when PyTorch loads, which is after this
    with warnings.catch_warnings():  # restored on return: callers (and tests) keep their own handler
        warnings.showwarning = lambda message, *_, **__: print(f"harness: warning: {message}", file=sys.stderr)
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; every expected failure becomes one line on stderr and an exit status."""
    try:
        return args.func(args)
    except HarnessError as error:  # a spec error is one line per problem, FILE:KEY: message
        for line in getattr(error, "problems", None) or [f"harness: error: {error}"]:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`harness table | head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as error:  # the file system refused (permissions, a full disk): the path is the news
        where = f"{error.filename}: " if error.filename else ""
        print(f"harness: error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        if os.environ.get("HARNESS_TRACEBACK"):
            raise
        first = (str(error).splitlines() or [""])[0][:300]
        print(
            f"harness: internal error: {type(error).__name__}: {first} "
            "(a bug: please report it; HARNESS_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILURE


# ----------------------------------------------------------------------------------------------
# Commands


def _load(paths: Sequence[Path]) -> list[Any]:
    from harness.spec import SpecError, load_specs

    specs, problems = load_specs(paths)
    if problems:
        raise SpecError(problems)
    return specs


def cmd_check(args: argparse.Namespace) -> int:
    from harness.spec import SpecError, is_protocol_file, load_protocol, load_spec

    problems, lines = [], []
    for path in args.specs:
        try:
            if is_protocol_file(path):
                lines.append(f"{path}: ok (protocol '{load_protocol(path).name}')")
            else:
                spec = load_spec(path)
                lines.append(f"{spec.path}: ok ({len(spec.variants)} variants, {len(spec.claims)} claims)")
        except SpecError as error:
            problems += error.problems
    if problems:
        raise SpecError(problems)
    print("\n".join(lines))
    return EXIT_OK


def cmd_measure(args: argparse.Namespace) -> int:
    from harness.common.console import ConsoleEvents
    from harness.measure.summary import measure_rows, render_measure

    rounds = None if args.no_latency else args.rounds
    events = ConsoleEvents(after_s=2.0, messages_on_stderr=True)
    rows = measure_rows(_load(args.specs), args.variant, rounds, events)
    print(json_text(rows) if args.json else render_measure(rows, rounds))
    return EXIT_OK


def default_profile(device_type: str) -> tuple[str, str]:
    """Without --profile: the spec's full budget on a GPU; elsewhere smoke, since a forgotten --profile must not
    start days of CPU training. Returns the profile and the note that says so (printed once the work starts)."""
    if device_type == "cuda":
        return "full", ""
    return "smoke", (
        f"no --profile given: smoke budget on {device_type} "
        "(--profile demo learns visibly; --profile full runs the spec as written)"
    )


def cmd_run(args: argparse.Namespace) -> int:
    from harness.common.console import ConsoleEvents, stop_on_signals
    from harness.common.device import apply_threads, resolve_device
    from harness.spec import load_spec
    from harness.train.loop import run
    from harness.train.request import RunOptions

    spec = load_spec(args.spec)  # a protocol file here is an error, not skipped as in globs
    defaulted = ""
    if args.profile is None:
        args.profile, defaulted = default_profile(resolve_device(args.device).type)
    threads = apply_threads(args.threads, args.deterministic)
    events = ConsoleEvents(args.quiet, preface="\n".join(line for line in (defaulted, threads) if line))
    try:
        with stop_on_signals():
            record = run(spec, spec.variant(args.variant).name, RunOptions.from_arguments(args), args.results, events)
    except Stopped as stopped:  # one line: how far it got and how to go on; the shell's 128 + signal
        reached = stopped.reached or "before training started"
        name = signal.Signals(stopped.signum).name
        command = resume_command(getattr(args, "argv", sys.argv[1:]))  # argv as typed, from main()
        print(f"harness: stopped by {name}: {reached}; resume with: {command}", file=sys.stderr)
        return 128 + stopped.signum
    return EXIT_OK if record.status == "complete" else EXIT_FAILURE


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.common.console import note
    from harness.common.device import default_threads
    from harness.rounds import run_rounds, until_decided
    from harness.sweep import (
        Pace,
        SweepRequest,
        SweepStopped,
        execute,
        make_executor,
        prepare,
        run_device_type,
        sweep_table,
    )
    from harness.train.request import RunOptions

    specs = _load(args.specs)
    if not specs:
        raise UsageError("no report specs among the given files")
    local = args.executor == "local"
    pace = Pace(
        args.parallel, args.retries, args.cpus_per_run or (default_threads(args.parallel) if local else None), not local
    )
    slurm = {
        "partition": args.slurm_partition,
        "gpus": args.gpus_per_run,
        "cpus": args.cpus_per_run or 8,
        "time": args.time_limit,
        "retries": args.retries,
    }
    defaulted = ""
    if args.profile is None:
        args.profile, defaulted = default_profile(run_device_type(args.device, args.executor, args.gpus_per_run))
    protocols = ("own", "common") if args.protocol == "both" else (args.protocol,)
    logs = args.logs or args.results / "sweep-logs"
    request = SweepRequest(args.variants, args.seeds, protocols, args.results, args.executor, logs, slurm, pace)
    base = RunOptions.from_arguments(args, resume=True, protocol="own")
    rounds = until_decided(args, specs, request, base)  # None without --until-decided; refusals come first
    tasks, done = prepare(specs, request, base) if rounds is None else ([], {})
    if defaulted:
        note(defaulted)
    note(
        f"sweep: {len(tasks)} runs ({len(done)} already complete), {args.executor} executor, {args.parallel} at a time; job logs in {logs}"
        if rounds is None
        else f"sweep: seeds in rounds until decided ({rounds.design.name}, alpha {rounds.design.alpha:g}); job logs in {logs}"
    )
    shown = [""]

    def progress(line: str) -> None:
        if line != shown[0]:
            note(f"sweep: {line}")
            shown[0] = line

    # SIGTERM (a scheduler, `kill`) stops the sweep as Ctrl-C does, so that its local runs stop with it. A shell
    # starts background jobs (`nohup harness sweep ... &`) with SIGINT ignored, and the runs would inherit
    # that: handled here, SIGINT reaches them as the default again, so cancelling a run stops it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if rounds is not None:
            return run_rounds(rounds, make_executor(args.executor, logs, args.parallel, slurm), progress, print)
        slots = execute(tasks, done, make_executor(args.executor, logs, args.parallel, slurm), pace, progress)
    except SweepStopped as stopped:
        jobs = sorted({str(s.job.job_id).split("_")[0] for s in stopped.running})
        if stopped.cancelled:
            note(f"sweep: stopped {len(jobs)} runs; their checkpoints keep the work: the same command resumes them")
        else:
            note(f"sweep: stopped watching; {len(stopped.running)} runs go on on the cluster: scancel {' '.join(jobs)}")
        return 130
    print(sweep_table(slots))
    return EXIT_FAILURE if any(s.state in ("failed", "diverged") for s in slots) else EXIT_OK


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def cmd_speed(args: argparse.Namespace) -> int:
    import numpy as np

    from harness.common.console import note
    from harness.common.device import Runtime, apply_threads, resolve_device
    from harness.data.cifar10 import load_cifar10
    from harness.measure.speed import SpeedSetup, measure_speed, speed_text
    from harness.spec import load_spec
    from harness.train.request import resolve_layout

    spec = load_spec(args.spec)
    variant = spec.variant(args.variant).name
    device = resolve_device(args.device)
    if why := apply_threads(args.threads):
        note(why)
    if args.data or os.environ.get("HARNESS_DATA"):
        data = load_cifar10(args.data)
        images, labels, label = data.train_x[:SPEED_IMAGES], data.train_y[:SPEED_IMAGES], data.label
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (SPEED_IMAGES, 32, 32, 3), dtype=np.uint8)
        labels, label = rng.integers(0, 10, SPEED_IMAGES), "random images"
    layout = resolve_layout(spec.variants[variant].recipe, device.type)
    runtime = Runtime.for_device(device, args.precision, layout)
    print(
        f"timing {spec.name}/{variant} ({args.precision}) on {device.type}: five loops of {args.steps} steps ...",
        file=sys.stderr,
    )
    result = measure_speed(SpeedSetup(spec, variant, images, labels, label, runtime, args.steps))
    print(json_text(result) if args.json else speed_text(result))
    return EXIT_OK


def _inputs(args: argparse.Namespace, named: Sequence[Path] = ()) -> Any:
    """The specs, the common protocol and the records of table, plot, report and compare (results.gather);
    `named` spec files join --specs, or without it take the place of the shipped spec of their report."""
    from harness.results.dataframe import gather

    inputs = gather(args.specs, args.results, args.common, named)
    for note in inputs.notes:
        print(f"harness: note: {note}", file=sys.stderr)
    for problem in inputs.problems:
        print(f"harness: warning: {problem}", file=sys.stderr)
    return inputs


def _board(args: argparse.Namespace, inputs: Any) -> list[dict[str, Any]]:
    """The leaderboard rows, with a progress bar when building them means counting or timing networks."""
    from harness.common.console import ConsoleEvents
    from harness.results.table import rows

    latency = "none" if args.no_latency else ("measure" if args.latency else "cached")
    total = sum(len(spec.variants) for spec in inputs.specs)
    with ConsoleEvents(quiet=False, after_s=2.0).progress(total, "leaderboard", "row") as advance:
        return rows(inputs.specs, inputs.records, inputs.common, latency, lambda name: advance(1, at=name))


def cmd_table(args: argparse.Namespace) -> int:
    from harness.results.dataframe import leaderboard_frame, to_csv, to_json
    from harness.results.table import claim_rows, render, render_claims

    board = _board(args, _inputs(args))
    if args.claims:
        board = claim_rows(board)
    if args.format == "markdown":
        print(render_claims(board) if args.claims else render(board, wide=args.wide))
    else:
        frame = leaderboard_frame(board)
        print(to_csv(frame) if args.format == "csv" else to_json(frame), end="" if args.format == "csv" else "\n")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from harness.plan import PlanRequest, plan, read_records, render_plan

    specs = _load(args.specs)
    if not specs:
        raise UsageError("no report specs among the given files")
    records = read_records(args.results, lambda problem: print(f"harness: warning: {problem}", file=sys.stderr))
    result = plan(specs, records, PlanRequest(args.variants, args.device, args.gap))
    print(json_text(result) if args.format == "json" else render_plan(result))
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from harness.results.audit import audit_text

    for spec in _load(args.specs):
        for name in [spec.variant(args.variant).name] if args.variant else list(spec.variants):
            print(audit_text(spec, name))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.common.console import ConsoleEvents
    from harness.common.device import apply_threads
    from harness.measure.evaluation import EvalRequest, evaluate_checkpoint, evaluation_text

    events = ConsoleEvents(after_s=2.0, messages_on_stderr=True, preface=apply_threads(args.threads))
    request = EvalRequest(args.checkpoint, args.data, args.subset, args.device, not args.no_corruptions, args.cifar10c)
    result = evaluate_checkpoint(request, events)
    print(json_text(result) if args.json else evaluation_text(args.checkpoint, result))
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from harness.results.plot import claim_lines, learning_curves, pareto_plots

    inputs = _inputs(args)
    drawn, left_out = pareto_plots(_board(args, inputs), args.out)
    drawn += learning_curves(inputs.records, args.out, claims=claim_lines(inputs.specs))
    for figure in drawn:
        print(figure.path)
    for sentence in left_out:  # a figure with nothing to draw is not written: say why
        print(f"harness: note: {sentence}", file=sys.stderr)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.render import board_of, write_report
    from harness.spec import is_protocol_file

    if not args.report_specs and not args.all:
        raise HarnessError(
            "report: name the report specs to write studies of (e.g. reproductions/resnet10.toml), or --all"
        )
    for path in args.report_specs:
        if is_protocol_file(path):
            raise HarnessError(
                f"{path}: a protocol file, not a report spec; name a report (e.g. reproductions/resnet10.toml)"
            )
    inputs = _inputs(args, named=args.report_specs)  # a named report takes its shipped spec's place, never beside it
    board = _board(args, inputs)
    named = {path.resolve() for path in args.report_specs}
    chosen = [s for s in inputs.specs if (args.all and s.path.parent.name != "references") or s.path.resolve() in named]
    shown = {s.name for s in chosen}
    for spec in chosen:
        listed = board if args.all else [row for row in board if row["report"] in shown]
        for path in write_report(spec, board, inputs.records, args.out, board_of(inputs.specs, listed)):
            print(path)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.results.compare import compare, compare_text, entry_runs
    from harness.spec import load_protocol

    inputs = _inputs(args)  # no leaderboard: compare needs no sizes, timings or audit
    specs, common, records = inputs.specs, inputs.common, inputs.records
    protocol = None
    if args.protocol == "common":  # without a common.toml, load_protocol raises its own clear error
        protocol = common or load_protocol(Path(DEFAULT_SPECS) / "common.toml")
    sides = [(label, entry_runs(specs, records, label, protocol)) for label in (args.a, args.b)]
    out = compare(*sides)
    print(json_text(out) if args.json else compare_text(out))
    return EXIT_OK


COMMANDS = {
    "check": cmd_check,
    "measure": cmd_measure,
    "run": cmd_run,
    "sweep": cmd_sweep,
    "speed": cmd_speed,
    "table": cmd_table,
    "audit": cmd_audit,
    "plan": cmd_plan,
    "eval": cmd_eval,
    "plot": cmd_plot,
    "report": cmd_report,
    "compare": cmd_compare,
}

if __name__ == "__main__":
    raise SystemExit(main())
