"""The `harness` command: the only module that reads argv, prints, or picks output paths."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from tabulate import tabulate

from harness.spec import Spec, SpecError, load_specs

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
DEFAULT_SPECS = "reproductions"
DEFAULT_RESULTS = "results"


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2, no traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line instead of argparse's usage block, so every bad input looks the same.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
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
    measure.add_argument("--rounds", type=_positive_int, default=50, help="timed batch-1 calls (default 50)")
    measure.set_defaults(func=cmd_measure)

    run = commands.add_parser("run", help="train and evaluate one variant; writes a result record")
    run.add_argument("spec", type=Path, metavar="SPEC")
    run.add_argument("--variant", help="the variant to run (default: the spec's default_variant)")
    run.add_argument("--seed", type=_nonnegative_int, default=0, help="the run's seed (default 0)")
    run.add_argument(
        "--profile",
        choices=("full", "short", "smoke"),
        default="full",
        help="full: the spec as written; short: a tenth of the epochs; smoke: a small subset, one epoch per phase",
    )
    run.add_argument("--epochs", type=_positive_int, help="override the profile's epochs (schedules are compressed)")
    run.add_argument("--subset", type=_positive_int, help="train on this many images (validation and test shrink too)")
    run.add_argument(
        "--data",
        help="local CIFAR-10: a torchvision folder, a folder of class subfolders, or a .tar.gz "
        "(default: $HARNESS_DATA, else torchvision's download)",
    )
    run.add_argument("--results", type=Path, default=Path(DEFAULT_RESULTS), help="where records and checkpoints go")
    run.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    run.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    run.add_argument("--deterministic", action="store_true", help="deterministic kernels (bit-exact resumes on CPU)")
    run.add_argument("--workers", type=_nonnegative_int, default=0, help="data-loading worker processes (default 0)")
    run.add_argument(
        "--track-test",
        action="store_true",
        help="also score the test set every epoch, for the record only (the reports' selection rules)",
    )
    run.add_argument("--teacher-checkpoint", help="load the distillation teacher from this file instead of training it")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    table = commands.add_parser("table", help="the leaderboard of claims against measurements and results")
    table.add_argument("--specs", nargs="+", type=Path, metavar="SPEC", help=f"default: {DEFAULT_SPECS}/*.toml")
    table.add_argument("--results", type=Path, default=Path(DEFAULT_RESULTS), help="folder of result records")
    table.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    table.set_defaults(func=cmd_table)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def _load(paths: Sequence[Path]) -> list[Spec]:
    specs, problems = load_specs(paths)
    if problems:
        raise SpecError(problems)
    return specs


def _default_specs() -> list[Path]:
    paths = sorted(Path(DEFAULT_SPECS).glob("*.toml"))
    if not paths:
        raise UsageError(f"no specs in {DEFAULT_SPECS}/ (run from the project root, or pass --specs)")
    return paths


def cmd_check(args: argparse.Namespace) -> int:
    specs = _load(args.specs)
    for spec in specs:
        print(f"{spec.path}: ok ({len(spec.variants)} variants, {len(spec.claims)} claims)")
    return EXIT_OK


def cmd_measure(args: argparse.Namespace) -> int:
    import torch

    from harness.measure import device_name, time_model, timing_dict
    from harness.models import build_model
    from harness.table import budget_cell, size_columns

    specs = _load(args.specs)
    entries = (
        [(spec, spec.variant(args.variant).name) for spec in specs]
        if args.variant
        else [(spec, name) for spec in specs for name in spec.variants]
    )
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
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

    (spec,) = _load([args.spec])
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
    )
    try:
        record = run(spec, variant, options, args.results, ConsoleEvents(args.quiet))
    except (RunError, DataError, BudgetError, CheckpointError) as error:
        raise UsageError(str(error)) from None
    return EXIT_OK if record["status"] == "complete" else EXIT_FAILURE


def cmd_table(args: argparse.Namespace) -> int:
    from harness.record import load_records
    from harness.table import render, rows

    specs = _load(args.specs or _default_specs())
    records, problems = load_records(args.results)
    for problem in problems:
        print(f"harness: warning: {problem}", file=sys.stderr)
    print(render(rows(specs, records), args.format))
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
