"""The `harness` command: the only module that reads argv, prints, or picks output paths."""

from __future__ import annotations

import os

# Before anything loads PyTorch's OpenMP runtime: idle threads sleep instead of spinning, so that a run
# sharing the CPUs with another process slows about twofold rather than tenfold (measured: a ResNet-12
# step on 2 busy cores took 2.3 s spinning, 0.42 s passive; 0.2 s either way on idle cores).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tabulate import tabulate

from harness.budget import PROFILES
from harness.spec import Protocol, Spec, SpecError, load_spec, load_specs

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_SPECS = "reproductions"
SHIPPED_RESULTS = "results"  # the committed records: changed only on purpose (--results results)
DEFAULT_RESULTS = "runs"  # where `run` and `sweep` write unless told otherwise (git-ignored)


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2, no traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block, so every bad input looks the same.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():  # restored on return: callers (and tests) keep their own handler
        warnings.showwarning = _one_line_warning
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; every expected failure becomes one line on stderr and an exit status."""
    try:
        return args.func(args)
    except SpecError as error:
        for problem in error.problems:
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    except UsageError as error:
        print(f"harness: error: {error}", file=sys.stderr)
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


def _one_line_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    print(f"harness: warning: {message}", file=sys.stderr)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Reproduce and compare compact CIFAR-10 ResNet reports.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = commands.add_parser("check", help="validate specs; exit 0 if all are valid, 2 otherwise")
    check.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    check.set_defaults(func=cmd_check)

    measure = commands.add_parser("measure", help="params, MACs and latency of every variant")
    measure.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    measure.add_argument("--variant", help="measure only this variant (default: all)")
    measure.add_argument("--json", action="store_true", help="print a JSON array, one object per variant")
    measure.add_argument("--no-latency", action="store_true", help="skip the timing (params and MACs only)")
    measure.add_argument("--rounds", type=_count, default=50, help="timed batch-1 calls (default 50)")
    measure.set_defaults(func=cmd_measure)

    run = commands.add_parser("run", help="train and evaluate one variant; writes a result record")
    run.add_argument("spec", type=Path, metavar="SPEC")
    run.add_argument("--variant", help="the variant to run (default: the spec's default_variant)")
    run.add_argument("--seed", type=_seed, default=0, help="the run's seed (default 0)")
    run.add_argument(
        "--profile",
        choices=PROFILES,
        default="full",
        help="full: the spec as written; short: a tenth of the epochs; smoke: a small subset, one epoch per phase",
    )
    run.add_argument("--epochs", type=_epochs, help="override the profile's epochs (schedules are compressed)")
    run.add_argument("--subset", type=_images, help="train on this many images (validation and test shrink too)")
    run.add_argument(
        "--data",
        help="local CIFAR-10: a torchvision folder, a folder of class subfolders, or a .tar.gz "
        "(default: $HARNESS_DATA, else torchvision's download)",
    )
    run.add_argument(
        "--results",
        type=_output_dir,
        default=Path(DEFAULT_RESULTS),
        help=f"where records and checkpoints go (default {DEFAULT_RESULTS}/)",
    )
    run.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    run.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (bit-exact resumes on CPU)")
    run.add_argument("--workers", type=_workers, default=0, help="data-loading worker processes (default 0)")
    run.add_argument(
        "--track-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also score the test set every epoch, for the record only: the figure a test-chosen claim's own "
        "rule gives (default: at the full budget, for variants with such a claim)",
    )
    run.add_argument("--teacher-checkpoint", help="load the distillation teacher from this file instead of training it")
    run.add_argument(
        "--protocol",
        default="own",
        help="own: the report's recipe (default); common: reproductions/common.toml; or a protocol file",
    )
    run.add_argument(
        "--robustness",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score the test set under 5 corruptions x 3 severities (default: only at the full budget)",
    )
    run.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 autocast on CUDA, fp32 elsewhere; bf16 also works on CPUs with AVX-512 BF16",
    )
    run.add_argument(
        "--channels-last",
        choices=("auto", "on", "off"),
        default="auto",
        help="memory layout (auto: channels_last on CUDA and CPU, unless the spec forbids it)",
    )
    run.add_argument(
        "--augment",
        choices=("auto", "batched", "torchvision"),
        default="auto",
        help="batched on the device, or torchvision's per-sample pipeline (auto: the spec's choice)",
    )
    run.add_argument("--compile", action="store_true", help="torch.compile the model (recorded as a deviation)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    sweep = commands.add_parser("sweep", help="specs x variants x seeds x protocols, locally or on Slurm")
    sweep.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    sweep.add_argument("--variants", default="all", help="all (default) or a comma-separated list of variant names")
    sweep.add_argument("--seeds", type=_count, default=1, help="seeds 0..N-1 of every run (default 1)")
    sweep.add_argument("--profile", choices=PROFILES, default="full")
    sweep.add_argument("--epochs", type=_epochs, help="override the profile's epochs")
    sweep.add_argument("--subset", type=_images, help="train on this many images")
    sweep.add_argument(
        "--protocol",
        choices=("own", "common", "both"),
        default="own",
        help="each report's own recipe, the common protocol, or both",
    )
    sweep.add_argument("--executor", choices=("local", "slurm"), default="local")
    sweep.add_argument("--parallel", type=_parallel, default=1, help="runs at once (default 1)")
    sweep.add_argument("--slurm-partition", help="Slurm partition of every run")
    sweep.add_argument("--gpus-per-run", type=_gpus, default=1, help="GPUs of each Slurm run (default 1)")
    sweep.add_argument(
        "--cpus-per-run",
        type=_cpus,
        help="CPU threads of each run (default: cores / parallel locally, 8 on Slurm)",
    )
    sweep.add_argument(
        "--time-limit",
        type=_minutes,
        default=24 * 60,
        help="minutes per Slurm run before it is requeued from its checkpoint (default 1440)",
    )
    sweep.add_argument("--retries", type=_retries, default=1, help="resubmissions of a failed run (default 1)")
    sweep.add_argument("--data", help="local CIFAR-10 (default: $HARNESS_DATA, else torchvision's download)")
    sweep.add_argument("--results", type=_output_dir, default=Path(DEFAULT_RESULTS), help=f"default {DEFAULT_RESULTS}/")
    sweep.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    sweep.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    sweep.add_argument("--logs", type=_output_dir, help="submitit's job folder (default: RESULTS/sweep-logs)")
    sweep.add_argument(
        "--track-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="as in harness run (default: at the full budget, for variants with a test-chosen claim)",
    )
    sweep.add_argument(
        "--robustness",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="as in harness run (default: only at the full budget)",
    )
    sweep.set_defaults(func=cmd_sweep)

    speed = commands.add_parser("speed", help="training throughput against the bare model and a naive loop")
    speed.add_argument("spec", type=Path, metavar="SPEC")
    speed.add_argument("--variant", help="the variant to time (default: the spec's default_variant)")
    speed.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    speed.add_argument("--steps", type=_count, default=4, help="timed training steps per loop (default 4)")
    speed.add_argument("--data", help="local CIFAR-10 to draw images from (default: $HARNESS_DATA, else random images)")
    speed.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    speed.add_argument("--json", action="store_true")
    speed.set_defaults(func=cmd_speed)

    table = commands.add_parser("table", help="the leaderboard of claims against measurements and results")
    _add_results_options(table)
    table.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    table.add_argument("--no-latency", action="store_true", help="leave the latency columns empty (no timing)")
    table.set_defaults(func=cmd_table)

    audit = commands.add_parser("audit", help="every protocol flag of a spec's variants, with its evidence")
    audit.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    audit.add_argument("--variant", help="only this variant")
    audit.set_defaults(func=cmd_audit)

    evaluate = commands.add_parser("eval", help="score a saved model on clean and corrupted test images")
    evaluate.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="final.pt or an epoch-NNNN.pt of a run")
    evaluate.add_argument("--data", help="local CIFAR-10 (default: $HARNESS_DATA, else torchvision's download)")
    evaluate.add_argument("--subset", type=_images, help="score only this many test images (a fixed subset)")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    evaluate.add_argument("--no-corruptions", action="store_true", help="clean accuracy only")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=cmd_eval)

    plot = commands.add_parser("plot", help="PNG Pareto fronts and learning curves")
    _add_results_options(plot)
    plot.add_argument(
        "--out", type=_output_dir, default=Path("plots"), help="folder for the PNG files (default plots/)"
    )
    plot.add_argument("--no-latency", action="store_true", help="skip the latency front (no timing)")
    plot.set_defaults(func=cmd_plot)

    compare = commands.add_parser("compare", help="Welch's t-test between two entries with 3+ seeds each")
    compare.add_argument("a", metavar="A", help="REPORT/VARIANT, e.g. resnet10/resnet12-grid")
    compare.add_argument("b", metavar="B", help="REPORT/VARIANT")
    _add_results_options(compare)
    compare.add_argument(
        "--protocol",
        choices=("own", "common"),
        default="own",
        help="compare runs under each report's own recipe (default) or the common protocol",
    )
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=cmd_compare)
    return parser


def _add_results_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--specs", nargs="+", type=Path, metavar="SPEC", help=f"default: {DEFAULT_SPECS}/*.toml")
    parser.add_argument(
        "--results",
        type=Path,
        action="append",
        help=f"a folder of result records; repeat for several (default: {SHIPPED_RESULTS}/ and {DEFAULT_RESULTS}/)",
    )
    parser.add_argument(
        "--common",
        type=Path,
        metavar="PROTOCOL",
        help=f"the common protocol (default: {DEFAULT_SPECS}/common.toml when it exists)",
    )


def _whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum], else one line saying what was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected a whole number from {minimum} to {maximum:,}, got {text!r}")
        return value

    return parse


_seed = _whole_number(0, 2**63 - 1)  # seeds feed 64-bit generators
_epochs = _whole_number(1, 100_000)
_images = _whole_number(1, 10_000_000)  # checked against the data by the budget
_count = _whole_number(1, 100_000)  # rounds, steps, seeds
_workers = _whole_number(0, 256)
_parallel = _whole_number(1, 10_000)
_gpus = _whole_number(0, 64)
_cpus = _whole_number(1, 4096)
_minutes = _whole_number(1, 525_600)  # a year
_retries = _whole_number(0, 100)


def _output_dir(text: str) -> Path:
    """An argparse type: a folder that exists or can be created here, never a file (checked before any work)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, expected a folder")
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {existing} is a file, so no folder can be made under it")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: no permission to write in {existing}")
    return path


def _load(paths: Sequence[Path]) -> list[Spec]:
    specs, problems = load_specs(paths)
    if problems:
        raise SpecError(problems)
    return specs


def _default_specs() -> list[Path]:
    from harness.spec import is_protocol_file

    paths = [p for p in sorted(Path(DEFAULT_SPECS).glob("*.toml")) if not is_protocol_file(p)]
    if not paths:
        raise UsageError(f"no specs in {DEFAULT_SPECS}/ (run from the project root, or pass --specs)")
    return paths


def cmd_check(args: argparse.Namespace) -> int:
    from harness.spec import is_protocol_file, load_protocol

    problems, lines = [], []
    for path in args.specs:
        try:
            if is_protocol_file(path):
                protocol = load_protocol(path)
                lines.append(f"{path}: ok (protocol '{protocol.name}')")
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
    import torch

    from harness.measure import device_name, store_timing, time_model, timing_devices, timing_dict
    from harness.models import build_model
    from harness.table import budget_cell, size_columns

    specs = _load(args.specs)
    entries = (
        [(spec, spec.variant(args.variant).name) for spec in specs]
        if args.variant
        else [(spec, name) for spec in specs for name in spec.variants]
    )
    devices = timing_devices()
    timings: dict[tuple[Any, str], Any] = {}
    out = []
    for spec, name in entries:
        model_cfg = spec.variants[name].recipe.model
        row: dict[str, Any] = {"report": spec.name, "report_id": spec.report.id, "variant": name}
        row.update(size_columns(spec, name))
        row["flops"] = 2 * row["macs"]
        for device in devices:
            key = (model_cfg, device.type)
            if not args.no_latency and key not in timings:
                print(f"timing {spec.name}/{name} on {device_name(device)} ...", file=sys.stderr)
                timings[key] = time_model(build_model(model_cfg), device, rounds_b1=args.rounds)
                store_timing(model_cfg, device, timings[key])
                if timings[key].busy:
                    print(
                        f"warning: other processes used {timings[key].other_cpu_use:.0%} of the CPUs while "
                        f"{spec.name}/{name} was timed: its latency is inflated and was not cached",
                        file=sys.stderr,
                    )
            row.update(timing_dict(timings.get(key), device.type))
        row["latency_ms_b1"] = row["cpu_latency_ms_b1"]
        out.append(row)
    if args.json:
        print(json.dumps(out, indent=2))
        return EXIT_OK
    headers = ["report", "variant", "params", "claimed", "match", "MACs (M)", "FLOPs (G) = 2 x MACs", "<= budget"]
    if not args.no_latency:
        headers += ["CPU b1 median (ms)", "CPU b1 p90 (ms)", "CPU b256 (img/s)"]
        if len(devices) > 1:
            headers += ["GPU b1 median (ms)", "GPU b256 (img/s)"]
    body = []
    for row in out:
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
        if not args.no_latency:
            line += [
                f"{row['cpu_latency_ms_b1']:.2f}",
                f"{row['cpu_latency_ms_b1_p90']:.2f}",
                f"{row['cpu_throughput_img_s_b256']:.0f}",
            ]
            if len(devices) > 1:
                line += [f"{row['cuda_latency_ms_b1']:.2f}", f"{row['cuda_throughput_img_s_b256']:.0f}"]
        body.append(line)
    print(tabulate(body, headers=headers, tablefmt="github", disable_numparse=True))
    print(
        "\nMACs: multiply-accumulates of conv/linear layers for one 3x32x32 image (fvcore, checked against "
        "torch.utils.flop_counter); FLOPs = 2 x MACs."
    )
    if not args.no_latency:
        print(
            f"Latency: eval-mode forward, inference_mode, after warm-up; {args.rounds} batch-1 calls; "
            f"CPU threads: {torch.get_num_threads()}."
        )
    return EXIT_OK


class ConsoleEvents:
    """Progress on stderr (a tqdm bar per epoch, with loss, accuracy and ETA); summaries on stdout."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def message(self, text: str) -> None:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stdout)
        sys.stdout.flush()

    @contextlib.contextmanager
    def progress(self, total: int, description: str) -> Iterator[Callable[..., None]]:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False, disable=self.quiet, dynamic_ncols=True)

        def advance(n: int, **postfix: str) -> None:
            bar.update(n)
            bar.set_postfix(postfix, refresh=False)

        try:
            yield advance
        finally:
            bar.close()


def cmd_run(args: argparse.Namespace) -> int:
    from harness.budget import BudgetError
    from harness.checkpoint import CheckpointError
    from harness.data import DataError
    from harness.train import RunError, RunOptions, run

    spec = load_spec(args.spec)  # a protocol file here is an error, not skipped as in globs
    variant = spec.variant(args.variant).name
    options = RunOptions(
        seed=args.seed,
        profile=args.profile,
        epochs=args.epochs,
        subset=args.subset,
        data=args.data,
        device=args.device,
        resume=args.resume,
        deterministic=args.deterministic,
        workers=args.workers,
        track_test=args.track_test,
        teacher_checkpoint=args.teacher_checkpoint,
        protocol=args.protocol,
        robustness=args.robustness,
        precision=args.precision,
        channels_last=args.channels_last,
        augment=args.augment,
        compile=args.compile,
    )
    try:
        record = run(spec, variant, options, args.results, ConsoleEvents(args.quiet))
    except (RunError, DataError, BudgetError, CheckpointError) as error:
        raise UsageError(str(error)) from None
    return EXIT_OK if record["status"] == "complete" else EXIT_FAILURE


def cmd_sweep(args: argparse.Namespace) -> int:
    from harness.budget import BudgetError, make_budget
    from harness.data import DataError
    from harness.sweep import default_threads, execute, finished, make_executor, plan, run_device_type
    from harness.train import RunOptions

    specs = _load(args.specs)
    if not specs:
        raise UsageError("no report specs among the given files")
    protocols = ["own", "common"] if args.protocol == "both" else [args.protocol]
    base = RunOptions(
        profile=args.profile,
        epochs=args.epochs,
        subset=args.subset,
        data=args.data,
        device=args.device,
        precision=args.precision,
        track_test=args.track_test,
        robustness=args.robustness,
    )
    if args.variants != "all":
        names = {v.strip() for v in args.variants.split(",") if v.strip()}
        known = {name for spec in specs for name in spec.variants}
        unknown = sorted(names - known)
        if unknown:
            from harness.registry import did_you_mean

            raise UsageError(
                f"--variants: no variant {unknown[0]!r} in these specs{did_you_mean(unknown[0], sorted(known))}"
            )
    tasks = plan(specs, args.variants, args.seeds, protocols, base, args.results)
    try:
        for task in tasks:  # every budget is checked before anything is submitted
            spec = next(s for s in specs if str(s.path) == task.spec_path)
            make_budget(spec.variants[task.variant].recipe, args.profile, args.epochs, args.subset)
        done = finished(specs, tasks, args.data, run_device_type(args.device, args.executor, args.gpus_per_run))
    except (BudgetError, DataError) as error:
        raise UsageError(str(error)) from None
    logs = args.logs or args.results / "sweep-logs"
    slurm = {
        "partition": args.slurm_partition,
        "gpus": args.gpus_per_run,
        "cpus": args.cpus_per_run or 8,
        "time": args.time_limit,
        "retries": args.retries,
    }
    executor = make_executor(args.executor, logs, args.parallel, slurm)
    threads = args.cpus_per_run or (default_threads(args.parallel) if args.executor == "local" else None)
    print(
        f"sweep: {len(tasks)} runs ({len(done)} already complete), {args.executor} executor, "
        f"{args.parallel} at a time; job logs in {logs}",
        file=sys.stderr,
    )
    last = [""]

    def progress(line: str) -> None:
        if line != last[0]:
            print(f"sweep: {line}", file=sys.stderr)
            last[0] = line

    slots = execute(
        tasks, done, executor, args.parallel, args.retries, threads, progress, as_array=args.executor == "slurm"
    )
    body = []
    for slot in slots:
        acc = slot.result.get("test_acc")
        body.append(
            [
                slot.task.report,
                slot.task.variant,
                slot.task.options.protocol,
                slot.task.options.seed,
                slot.state,
                "" if acc is None else f"{acc:.2f}",
                slot.attempts,
                slot.error,
            ]
        )
    print(
        tabulate(
            body,
            headers=["report", "variant", "protocol", "seed", "status", "test acc", "attempts", "error"],
            tablefmt="github",
            disable_numparse=True,
        )
    )
    failed = [s for s in slots if s.state in ("failed", "diverged")]
    print(
        f"\n{len(slots)} runs: {sum(s.state == 'complete' for s in slots)} complete, "
        f"{sum(s.state == 'skipped' for s in slots)} skipped (already complete), {len(failed)} failed or diverged"
    )
    return EXIT_FAILURE if failed else EXIT_OK


SPEED_IMAGES = 8192  # enough distinct images for every timed loop; the naive path keeps them as PIL


def cmd_speed(args: argparse.Namespace) -> int:
    import numpy as np

    from harness.data import DataError, load_cifar10
    from harness.speed import measure_speed
    from harness.train import RunError, resolve_device

    spec = load_spec(args.spec)
    variant = spec.variant(args.variant).name
    try:
        device = resolve_device(args.device)
        if args.data or os.environ.get("HARNESS_DATA"):
            data = load_cifar10(args.data)
            images, labels, label = data.train_x[:SPEED_IMAGES], data.train_y[:SPEED_IMAGES], data.label
        else:
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (SPEED_IMAGES, 32, 32, 3), dtype=np.uint8)
            labels, label = rng.integers(0, 10, SPEED_IMAGES), "random images"
    except (RunError, DataError) as error:
        raise UsageError(str(error)) from None
    print(
        f"timing {spec.name}/{variant} ({args.precision}) on {device.type}: five loops of {args.steps} steps ...",
        file=sys.stderr,
    )
    result = measure_speed(spec, variant, images, labels, label, device, args.precision, args.steps)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    rows = [
        ["(a) bare model step, resident tensors", f"{result['bare_img_s']:.1f}"],
        ["(b) harness training loop", f"{result['harness_img_s']:.1f}"],
        ["(c) naive loop (PIL DataLoader, 2 workers, NCHW fp32)", f"{result['naive_img_s']:.1f}"],
        ["(d) harness augmentation alone", f"{result['data_harness_img_s']:.0f}"],
        ["(e) naive DataLoader alone", f"{result['data_naive_img_s']:.0f}"],
    ]
    print(tabulate(rows, headers=["loop", "images/s"], tablefmt="github", disable_numparse=True))
    est = result["estimate"]
    print(
        f"harness/bare {result['harness_over_bare']:.3f}, harness/naive {result['harness_over_naive']:.2f}, "
        f"data/naive {result['data_over_naive']:.1f}; MFU {result['mfu']:.2f} "
        f"({result['achieved_flops'] / 1e9:.0f} GFLOP/s of a {result['matmul_peak_flops'] / 1e9:.0f} GFLOP/s "
        f"{result['matmul_dtype']} matmul)"
    )
    print(
        f"full recipe ({est['epochs']} epochs x {est['train_images']:,} images): about {est['hours_here']:.1f} h "
        f"here, {est['hours_h100']:.2f} h on an H100 (bf16, assuming {est['h100_assumed_mfu']:.0%} of its peak)"
    )
    return EXIT_OK


def _inputs(args: argparse.Namespace) -> tuple[list[Spec], Protocol | None, list[dict[str, Any]]]:
    """The specs, the common protocol (None when there is none) and the records: table, plot, compare."""
    from harness.record import load_records
    from harness.spec import load_protocol

    specs = _load(args.specs or _default_specs())
    common_path = args.common or Path(DEFAULT_SPECS) / "common.toml"
    common = load_protocol(common_path) if args.common or common_path.exists() else None
    records, problems = [], []
    for folder in args.results or [Path(SHIPPED_RESULTS), Path(DEFAULT_RESULTS)]:
        found, trouble = load_records(folder)
        records += found
        problems += trouble
    for problem in problems:
        print(f"harness: warning: {problem}", file=sys.stderr)
    return specs, common, records


def _leaderboard(
    args: argparse.Namespace, latency: bool
) -> tuple[list[Spec], list[dict[str, Any]], list[dict[str, Any]]]:
    """Specs, records and leaderboard rows for table and plot."""
    from harness.table import rows

    specs, common, records = _inputs(args)
    return specs, records, rows(specs, records, common, latency=latency)


def cmd_table(args: argparse.Namespace) -> int:
    from harness.table import render

    _, _, table = _leaderboard(args, latency=not args.no_latency)
    print(render(table, args.format))
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from harness.audit import audit
    from harness.measure import size_of

    for spec in _load(args.specs):
        names = [spec.variant(args.variant).name] if args.variant else list(spec.variants)
        for name in names:
            variant = spec.variants[name]
            print(f"## {spec.name} / {name}  ({spec.report.title}, {spec.report.year})")
            print(f"   {variant.description}")
            findings = audit(spec, name)
            if not findings:
                print("   no flags")
            for finding in findings:
                print(f"   [{finding.flag.code}] {finding.flag.name}: {finding.flag.meaning}")
                print(f"       {finding.detail}")
            params = size_of(variant.recipe.model).params
            for claim in spec.claims_for(name):
                status = ""
                if claim.metric == "params":
                    status = f" -> measured {params:,}: {claim.agreement(params) or 'does NOT reproduce'}"
                where = "; ".join(claim.stated_in)
                print(f"   claim {claim.id}: {claim.text} ({where}; {claim.split}; {claim.selection}){status}")
            for kind in ("code-differs", "unstated", "inferred", "harness"):
                for d in (d for d in variant.deviations if d.kind == kind):
                    print(f"   deviation [{kind}] {d.key}: {d.note}")
            print()
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from harness.checkpoint import CheckpointError
    from harness.data import DataError
    from harness.evaluate import evaluate_checkpoint
    from harness.train import RunError

    try:
        result = evaluate_checkpoint(args.checkpoint, args.data, args.subset, args.device, not args.no_corruptions)
    except (CheckpointError, DataError, RunError) as error:
        raise UsageError(str(error)) from None
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(f"{args.checkpoint}: {result['test_images']:,} test images of {result['data_source']}")
    print(f"clean accuracy: {result['test_acc']:.2f}%")
    robust = result.get("robustness")
    if robust:
        body = [
            [name, *(f"{acc:.2f}" for acc in by_severity.values())]
            for name, by_severity in robust["per_corruption"].items()
        ]
        print(tabulate(body, headers=["corruption", "severity 1", "severity 2", "severity 3"], tablefmt="github"))
        print(f"mean corrupted accuracy: {robust['mean']:.2f}%")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from harness.plot import learning_curves, pareto_plots

    _, records, table = _leaderboard(args, latency=not args.no_latency)
    written = pareto_plots(table, args.out) + learning_curves(records, args.out)
    for path in written:
        print(path)
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.identity import budget_text, cohort_of, comparison_key
    from harness.spec import load_protocol, with_protocol
    from harness.stats import welch
    from harness.table import evidence

    specs, common, records = _inputs(args)  # no leaderboard: compare needs no sizes, timings or audit
    folders = args.results or [Path(SHIPPED_RESULTS), Path(DEFAULT_RESULTS)]
    by_name = {spec.name: spec for spec in specs}
    protocol = None
    if args.protocol == "common":  # without a common.toml, load_protocol raises its own clear error
        protocol = common or load_protocol(Path(DEFAULT_SPECS) / "common.toml")
    sides = []
    for label in (args.a, args.b):
        report, _, variant = label.partition("/")
        if report not in by_name or not variant:
            raise UsageError(f"{label!r}: expected REPORT/VARIANT with REPORT one of {', '.join(by_name)}")
        spec = by_name[report]
        target = with_protocol(spec, spec.variant(variant), protocol)
        runs = evidence(
            [r for r in records if r["spec_hash"] == target.spec_hash and r.get("protocol", "own") == args.protocol]
        )
        if len(runs) < 3:
            raise UsageError(
                f"{label}: {len(runs)} finished seed(s) of one cohort in {', '.join(map(str, folders))}; "
                "Welch's test needs at least 3 for each side"
            )
        sides.append((label, runs))
    (label_a, runs_a), (label_b, runs_b) = sides
    cohort_a, cohort_b = cohort_of(runs_a[0]), cohort_of(runs_b[0])
    if comparison_key(cohort_a) != comparison_key(cohort_b):
        raise UsageError(
            f"{label_a} ran at {budget_text(cohort_a)} but {label_b} at {budget_text(cohort_b)} "
            "(or on other data): compare runs of one budget, data and precision"
        )
    result = welch([r["test_acc"] for r in runs_a], [r["test_acc"] for r in runs_b])
    full = cohort_a["profile"] == "full"
    out = {
        "a": label_a,
        "b": label_b,
        "profile": cohort_a["profile"],
        "epochs": None if full else cohort_a["epochs"],  # None: each recipe's own (full)
        "train_images": None if full else cohort_a["train_images"],
        "precision": cohort_a["precision"],
        "data_source": runs_a[0].get("data_source"),
        "n_a": result.a.n,
        "mean_a": result.a.mean,
        "std_a": result.a.std,
        "n_b": result.b.n,
        "mean_b": result.b.mean,
        "std_b": result.b.std,
        "difference": result.difference,
        "ci95": list(result.ci95),
        "t": result.t,
        "dof": result.dof,
        "p_value": result.p_value,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return EXIT_OK
    print(f"{label_a}: {result.a.mean:.2f} ± {result.a.std:.2f} % (n={result.a.n})")
    print(f"{label_b}: {result.b.mean:.2f} ± {result.b.std:.2f} % (n={result.b.n})")
    print(
        f"difference {result.difference:+.2f} points, 95% CI [{result.ci95[0]:+.2f}, {result.ci95[1]:+.2f}]; "
        f"Welch's t = {result.t:.3f}, dof = {result.dof:.1f}, p = {result.p_value:.4g}"
    )
    images = f"{out['train_images']:,}" if out["train_images"] else "all"
    size = "" if out["epochs"] is None else f": {out['epochs']} epochs on {images} training images"
    precision = "" if out["precision"] == "fp32" else f", {out['precision']}"
    print(f"({out['profile']} budget{size}{precision}; {out['data_source']})")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
