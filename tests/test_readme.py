"""The README's console examples run as written in a fresh checkout (the user's manual must not lie).

Every `$ harness ...` line of a ```console block is parsed by the real argument parser, with the files it
names present; the quick ones also run, in order, with `--data` at the JPEG archive, one part at a time (the
quick start, then each command's section), each in its own copy of a scratch folder beside the shipped specs
and records where the README's smoke run was made once. Those that take minutes to days (full and demo
budgets, sweeps, Slurm, timing, all corruptions) are only parsed: LONG says why for each.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.arguments import build_parser
from harness.cli import COMMANDS, main
from tests.conftest import REPO

README = REPO / "README.md"
README_DATA = "../shared/data/cifar10-jpeg.tar.gz"  # the path the README uses, relative to the project
RESULTS_DOCS = (REPO / "results/README.md", REPO / "docs/examples/README.md")  # what the shipped results say

LONG = {  # pattern in a command -> why it is only parsed here
    r"--profile (full|short|demo)": "a budget of minutes to days",
    r"^harness sweep": "a sweep of many runs",
    r"^harness speed": "times training loops for minutes",
    r"^harness measure(?!.*--no-latency)": "times every network",
    r"--latency": "times every network",
    r"^harness eval(?!.*--no-corruptions)": "scores 16 versions of the test set",
    r"^harness compare": "needs three seeds of two entries (a sweep)",
    r"--results /shared": "a cluster's shared folder",
    r"--cifar10c ~/": "CIFAR-10-C is a 2.7 GB download (tests/test_cifar10c.py scores a miniature)",
}


def console_commands(document: Path = README, part: str | None = None) -> list[str]:
    """The `$ ` lines of every console block, in order, with continuation lines joined; of one part only
    (README_PARTS) if asked."""
    commands, inside = [], False
    text = document.read_text(encoding="utf-8")
    lines = iter((readme_parts(text)[part] if part else text).splitlines())
    for line in lines:
        if line.startswith("```"):
            inside = line.strip() == "```console"
            continue
        if inside and line.startswith("$ "):
            command = line[2:]
            while command.rstrip().endswith("\\"):
                command = command.rstrip()[:-1] + " " + next(lines).strip()
            commands.append(command)
    return commands


def readme_parts(text: str) -> dict[str, str]:
    """The README in parts that each run in a scratch folder of their own (with the README's run already made
    there, `readme_run`): the quick start (all before "## Commands"), then each command's reference section by its
    heading's command (### `harness table ...`); a section's following text stays with it."""
    start, reference = text.split("\n## Commands\n", 1)
    parts = {"quick start": start}
    intro, *sections = re.split(r"(?m)^(?=### `harness [a-z]+)", reference)
    for i, section in enumerate(sections):
        name = re.match(r"### `(harness [a-z]+)", section).group(1)
        parts[name] = parts.get(name, "") + (intro if i == 0 else "") + section  # a command's two sections: one part
    return parts


README_PARTS = tuple(readme_parts(README.read_text(encoding="utf-8")))


def python_blocks(part: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", readme_parts(README.read_text(encoding="utf-8"))[part], re.DOTALL)


def quick(command: str) -> bool:
    """A harness command this test runs (the rest are only parsed: LONG)."""
    return command.startswith("harness ") and long_reason(command) is None


def long_reason(command: str) -> str | None:
    return next((why for pattern, why in LONG.items() if re.search(pattern, command)), None)


def test_the_readme_has_examples_for_every_command() -> None:
    used = {shlex.split(c, comments=True)[1] for c in console_commands() if c.startswith("harness ")}
    assert used >= set(COMMANDS), f"commands without a README example: {sorted(set(COMMANDS) - used)}"


def test_the_readme_parts_hold_every_command_once() -> None:
    parts = [console_commands(part=part) for part in README_PARTS]
    assert all(parts) and [c for part in parts for c in part] == console_commands()


@pytest.mark.parametrize("command", [c for c in console_commands() if c.startswith("harness ")])
def test_every_readme_command_parses_and_names_real_files(command: str) -> None:
    argv = shlex.split(command, comments=True)
    argv = argv[: argv.index(">")] if ">" in argv else argv
    args = build_parser(COMMANDS).parse_args(argv[1:])
    for path in (getattr(args, "specs", None) or []) + [getattr(args, "spec", None)]:
        if path is not None and "*" not in str(path):
            assert (REPO / path).is_file(), f"{command}: {path} does not exist"
    if getattr(args, "variant", None) and getattr(args, "spec", None):
        from harness.spec import load_spec

        load_spec(REPO / args.spec).variant(args.variant)  # raises for a variant the spec lacks


@pytest.fixture(scope="module")
def readme_run(jpeg_archive: Path, counted_sizes: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder in place of a fresh clone (the shipped specs and records, read only) in which the README's
    smoke run was made as written: the quick start and the command reference run the same one, and each part
    then reads it in a copy of its own."""
    [command] = {c for part in README_PARTS for c in console_commands(part=part) if quick(c) and " run " in f"{c} "}
    folder = tmp_path_factory.mktemp("readme-run")
    _run_line(command, folder, jpeg_archive)
    return folder


def _run_line(command: str, folder: Path, jpeg_archive: Path | None = None) -> None:
    """One console line through bash in `folder` (a scratch clone), `--data` at the JPEG archive if given."""
    line = command.replace(README_DATA, str(jpeg_archive)) if jpeg_archive else command
    done = subprocess.run(
        ["bash", "-c", line], cwd=folder, env=_scratch(folder), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"$ {command}\n{done.stderr[-2000:]}"


def test_every_kind_of_quick_command_runs_here() -> None:
    # LONG must not swallow what a reader can run in seconds: each of these commands runs in some part below
    kinds = {shlex.split(c)[1] for part in README_PARTS for c in console_commands(part=part) if quick(c)}
    assert kinds >= {"check", "measure", "run", "table", "audit", "plan", "eval", "plot", "report"}, kinds


@pytest.mark.parametrize("part", [p for p in README_PARTS if any(quick(c) for c in console_commands(part=p))])
def test_the_quick_readme_commands_run_as_written(
    jpeg_archive: Path, readme_run: Path, tmp_path: Path, part: str
) -> None:
    # In order, as a reader would type them, in a copy of the folder where the README's run was made; runs/ and
    # plots/ are written where a user's would be.
    shutil.copytree(readme_run, tmp_path, symlinks=True, dirs_exist_ok=True)
    for command in filter(quick, console_commands(part=part)):
        _run_line(command, tmp_path, jpeg_archive)
    for block in python_blocks(part):
        done = subprocess.run(
            [sys.executable, "-c", block],
            cwd=tmp_path,
            env=_scratch(tmp_path),
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{block}\n{done.stderr[-2000:]}"


def _scratch(tmp_path: Path) -> dict[str, str]:
    """A folder in place of a fresh clone: the shipped specs and records (read only); the environment's PATH
    finds this harness."""
    for name in ("reproductions", "results"):
        if not (tmp_path / name).is_symlink():
            (tmp_path / name).symlink_to(REPO / name)
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def test_the_readme_example_table_is_what_the_table_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's example leaderboard is the shipped records' table as the code prints it today."""
    command = "$ harness table --specs reproductions/resnet10.toml --results results"
    block = README.read_text(encoding="utf-8").split(command)[1].split("\n", 1)[1]
    shown = block.split("\n...\n")[0].splitlines()
    assert (
        main(["table", "--specs", str(REPO / "reproductions/resnet10.toml"), "--results", str(REPO / "results")]) == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert len(shown) > 10 and printed[: len(shown)] == shown


@pytest.mark.parametrize("document", RESULTS_DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_the_commands_beside_the_shipped_results_run_as_written(document: Path, tmp_path: Path) -> None:
    commands = [c for c in console_commands(document) if c.startswith("harness ")]
    assert commands
    for command in commands:
        _run_line(command, tmp_path)
