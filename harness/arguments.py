"""The command line's grammar: every command's arguments, the options commands share defined once.
`RunOptions.from_arguments` (train/request.py) turns a run's or a sweep's arguments into its request."""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from harness.common.defaults import DEFAULT_RESULTS, DEFAULT_SPECS, PROFILES, SHIPPED_RESULTS

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block, so every bad input looks the same.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def resume_command(argv: Sequence[str]) -> str:
    """The command that continues a stopped `harness run`: the same arguments with --resume."""
    return shlex.join(["harness", *argv, *([] if "--resume" in argv else ["--resume"])])


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


def _points(text: str) -> float:
    """An argparse type: a positive, finite number of percentage points, else one line saying so."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"expected a number of points above 0 and at most 100, got {text!r}")
    return value


def _alpha(text: str) -> float:
    """An argparse type: a false-verdict rate above 0 and below 0.5, else one line saying so."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"expected a rate above 0 and below 0.5 (e.g. 0.05), got {text!r}")
    return value


_THREADS_HELP = "CPU threads to compute with (default: $OMP_NUM_THREADS, else the cores other processes leave free)"


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


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options `run` and `sweep` share: budget, data, where results go, device, what the record holds."""
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        help="full: the spec as written; short: a tenth of the epochs; demo: minutes on a laptop, learns visibly; "
        "smoke: a small subset, one epoch per phase (default: full on a GPU, smoke elsewhere)",
    )
    parser.add_argument("--epochs", type=_epochs, help="override the profile's epochs (schedules are compressed)")
    parser.add_argument("--subset", type=_images, help="train on this many images (validation and test shrink too)")
    parser.add_argument(
        "--data",
        help="local CIFAR-10: a torchvision folder, a folder of class subfolders, or a .tar.gz "
        "(default: $HARNESS_DATA, else torchvision's download)",
    )
    parser.add_argument(
        "--results",
        type=_output_dir,
        default=Path(DEFAULT_RESULTS),
        help=f"where records and checkpoints go (default {DEFAULT_RESULTS}/)",
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="auto: bf16 autocast on CUDA, fp32 elsewhere; bf16 also works on CPUs with AVX-512 BF16",
    )
    parser.add_argument(
        "--track-test",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also score the test set every epoch, for the record only: the figure a test-chosen claim's own "
        "rule gives (default: at the full budget, for variants with such a claim)",
    )
    parser.add_argument(
        "--robustness",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score the test set under 5 corruptions x 3 severities (default: only at the full budget)",
    )


def _add_results_options(parser: argparse.ArgumentParser) -> None:
    """The options of the commands that read records: table, plot, compare."""
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


def _add_latency_options(parser: argparse.ArgumentParser) -> None:
    latency = parser.add_mutually_exclusive_group()
    latency.add_argument(
        "--latency", action="store_true", help="time the networks whose latency is not cached yet (minutes on a CPU)"
    )
    latency.add_argument("--no-latency", action="store_true", help="no latency at all, not even cached figures")


def build_parser(handlers: dict[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The parser; each command's namespace carries `func`, its handler."""
    parser = _Parser(prog="harness", description="Reproduce and compare compact CIFAR-10 ResNet reports.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_spec_commands, _training_commands, _result_commands):
        add(commands, handlers)
    return parser


def _spec_commands(commands: Any, handlers: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """check, measure, audit, plan: what the specs say (plan: and what settling their claims costs)."""
    check = commands.add_parser("check", help="validate specs; exit 0 if all are valid, 2 otherwise")
    check.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    check.set_defaults(func=handlers["check"])

    measure = commands.add_parser("measure", help="params, MACs and latency of every variant")
    measure.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    measure.add_argument("--variant", help="measure only this variant (default: all)")
    measure.add_argument("--json", action="store_true", help="print a JSON array, one object per variant")
    measure.add_argument("--no-latency", action="store_true", help="skip the timing (params and MACs only)")
    measure.add_argument("--rounds", type=_count, default=50, help="timed batch-1 calls (default 50)")
    measure.set_defaults(func=handlers["measure"])

    audit = commands.add_parser("audit", help="every protocol flag of a spec's variants, with its evidence")
    audit.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    audit.add_argument("--variant", help="only this variant")
    audit.set_defaults(func=handlers["audit"])

    plan = commands.add_parser("plan", help="device-hours and seeds a decisive verdict on each claim needs")
    plan.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    plan.add_argument("--variants", default="all", help="all (default) or a comma-separated list of variant names")
    plan.add_argument(
        "--device",
        default="h100",
        help="a GPU of harness/measure/gpu_rates.json (measured) or of the datasheet peaks: h100 (default), "
        "h200, a100, l4, t4",
    )
    plan.add_argument(
        "--gap", type=_points, default=1.0, help="points between claim and mean the seeds must detect (default 1.0)"
    )
    plan.add_argument(
        "--results",
        type=Path,
        action="append",
        help=f"a folder of result records whose seeds give the spread; repeat for several (default: {SHIPPED_RESULTS}/)",
    )
    plan.add_argument("--format", choices=("markdown", "json"), default="markdown")
    plan.set_defaults(func=handlers["plan"])


def _until_decided_arguments(sweep: argparse.ArgumentParser) -> None:
    """`harness sweep --until-decided` and its options (harness/rounds.py)."""
    sweep.add_argument(
        "--until-decided",
        action="store_true",
        help="seeds in rounds until the sequential test decides every claim (README: harness sweep --until-decided)",
    )
    sweep.add_argument(
        "--max-seeds", type=_count, help="with --until-decided: the most seeds of a variant (default 10)"
    )
    sweep.add_argument(
        "--alpha", type=_alpha, help="with --until-decided: each false verdict's rate over all looks (default 0.05)"
    )
    sweep.add_argument(
        "--target",
        type=_points,
        metavar="PCT",
        help="with --until-decided: judge 'mean test accuracy at least PCT%%' at this budget instead of the claims",
    )


def _training_commands(commands: Any, handlers: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """run, sweep, speed: training."""
    run = commands.add_parser("run", help="train and evaluate one variant; writes a result record")
    run.add_argument("spec", type=Path, metavar="SPEC")
    run.add_argument("--variant", help="the variant to run (default: the spec's default_variant)")
    run.add_argument("--seed", type=_seed, default=0, help="the run's seed (default 0)")
    _add_run_options(run)
    run.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (bit-exact resumes on CPU)")
    run.add_argument("--workers", type=_workers, default=0, help="data-loading worker processes (default 0)")
    run.add_argument("--threads", type=_cpus, help=_THREADS_HELP)
    run.add_argument("--teacher-checkpoint", help="load the distillation teacher from this file instead of training it")
    run.add_argument(
        "--protocol",
        default="own",
        help="own: the report's recipe (default); common: reproductions/common.toml; or a protocol file",
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
    run.set_defaults(func=handlers["run"])

    sweep = commands.add_parser("sweep", help="specs x variants x seeds x protocols, locally or on Slurm")
    sweep.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    sweep.add_argument("--variants", default="all", help="all (default) or a comma-separated list of variant names")
    sweep.add_argument("--seeds", type=_count, default=1, help="seeds 0..N-1 of every run (default 1)")
    _add_run_options(sweep)
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
        "--cpus-per-run", type=_cpus, help="CPU threads of each run (default: cores / parallel locally, 8 on Slurm)"
    )
    sweep.add_argument(
        "--time-limit",
        type=_minutes,
        default=24 * 60,
        help="minutes per Slurm run before it is requeued from its checkpoint (default 1440)",
    )
    sweep.add_argument("--retries", type=_retries, default=1, help="resubmissions of a failed run (default 1)")
    sweep.add_argument("--logs", type=_output_dir, help="submitit's job folder (default: RESULTS/sweep-logs)")
    _until_decided_arguments(sweep)
    sweep.set_defaults(func=handlers["sweep"])

    speed = commands.add_parser("speed", help="training throughput against the bare model and a naive loop")
    speed.add_argument("spec", type=Path, metavar="SPEC")
    speed.add_argument("--variant", help="the variant to time (default: the spec's default_variant)")
    speed.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    speed.add_argument("--steps", type=_count, default=4, help="timed training steps per loop (default 4)")
    speed.add_argument("--data", help="local CIFAR-10 to draw images from (default: $HARNESS_DATA, else random images)")
    speed.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    speed.add_argument("--threads", type=_cpus, help=_THREADS_HELP)
    speed.add_argument("--json", action="store_true")
    speed.set_defaults(func=handlers["speed"])


def _result_commands(commands: Any, handlers: dict[str, Callable[[argparse.Namespace], int]]) -> None:
    """table, eval, plot, compare: what the records say."""
    table = commands.add_parser("table", help="the leaderboard of claims against measurements and results")
    _add_results_options(table)
    table.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    table.add_argument("--wide", action="store_true", help="every column in the markdown view (CSV and JSON have all)")
    table.add_argument(
        "--claims",
        action="store_true",
        help="one row per accuracy claim (every claim of every variant, each judged under its own rule)",
    )
    _add_latency_options(table)
    table.set_defaults(func=handlers["table"])

    evaluate = commands.add_parser("eval", help="score a saved model on clean and corrupted test images")
    evaluate.add_argument("checkpoint", type=Path, metavar="CHECKPOINT", help="final.pt or an epoch-NNNN.pt of a run")
    evaluate.add_argument("--data", help="local CIFAR-10 (default: $HARNESS_DATA, else torchvision's download)")
    evaluate.add_argument("--subset", type=_images, help="score only this many test images (a fixed subset)")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    evaluate.add_argument("--threads", type=_cpus, help=_THREADS_HELP)
    evaluate.add_argument("--no-corruptions", action="store_true", help="no built-in corruptions")
    evaluate.add_argument(
        "--cifar10c",
        type=Path,
        metavar="DIR",
        help="also score the official CIFAR-10-C in DIR (<corruption>.npy and labels.npy), every corruption and severity",
    )
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(func=handlers["eval"])

    plot = commands.add_parser("plot", help="PNG Pareto fronts and learning curves")
    _add_results_options(plot)
    plot.add_argument(
        "--out", type=_output_dir, default=Path("plots"), help="folder for the PNG files (default plots/)"
    )
    _add_latency_options(plot)
    plot.set_defaults(func=handlers["plot"])

    report = commands.add_parser("report", help="each report's reproduction study: Markdown, HTML, LaTeX and BibTeX")
    report.add_argument(
        "report_specs",
        nargs="*",
        type=Path,
        metavar="SPEC",
        help="the reports to write studies of; each takes the place of the shipped spec of its report",
    )
    report.add_argument("--all", action="store_true", help="every report's study, and every report in the leaderboard")
    _add_results_options(report)
    report.add_argument(
        "--out", type=_output_dir, default=Path("studies"), help="folder for one folder per report (default studies/)"
    )
    _add_latency_options(report)
    report.set_defaults(func=handlers["report"])

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
    compare.set_defaults(func=handlers["compare"])
