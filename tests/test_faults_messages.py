"""Faults a hostile tester found (issue 27, item 5): each ends in one line that names the file, the
variable or the argument, says what was wrong and what to do, with a conventional exit status."""

from __future__ import annotations

import os
import pickle
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.cli import main
from harness.models import build_model
from harness.spec import load_spec
from tests.conftest import REPO, SPECS_DIR

DMS = SPECS_DIR / "dmsresnet.toml"
RESNET10 = SPECS_DIR / "resnet10.toml"
LONG = "a" * 300  # a name no file system takes as one path component (255 bytes)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


# The harness leaves a signal ignored if it was started so (nohup, a background job: the suite itself may run
# that way); the user's shell starts it with SIGINT handled, as this does.
SIGINT_HANDLED = "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
SIGINT_HANDLED += "from harness.cli import main; sys.exit(main())"


def _wait_for(found, what: str, process: subprocess.Popen, timeout: float = 600.0):
    """Poll until `found()` gives something; fail if the process ends first or the (generous) timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the run ended (status {process.returncode}) before {what}:\n{out}\n{err}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no {what} after {timeout:.0f} s")


# ---------------------------------------------------------------------------------------------------------
# 1. A signal ends a run with the epoch it reached and the command that resumes it.


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_a_run_with_its_epoch_and_the_resume_command(
    jpeg_archive: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    results = tmp_path / "results"
    argv = [
        "run", str(RESNET10), "--variant", "resnet12-grid", "--profile", "smoke", "--epochs", "8",
        "--subset", "256", "--data", str(jpeg_archive), "--results", str(results), "--threads", "1", "--quiet",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", SIGINT_HANDLED, *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    checkpoints = results / "checkpoints" / "resnet10" / "resnet12-grid"
    _wait_for(lambda: list(checkpoints.glob("*/epoch-0000.pt")), "its first checkpoint", process)
    process.send_signal(signum)
    out, err = process.communicate(timeout=600)
    assert process.returncode == 128 + signum, (process.returncode, out, err)
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"harness: stopped by {signum.name}: resnet10/resnet12-grid seed 0 reached epoch (\d) of 8 "
        r"\(its checkpoint is in (\S+)\); resume with: (harness run .* --resume)",
        last,
    )
    assert match, last
    saved = sorted(int(p.stem.split("-")[1]) for p in checkpoints.glob("*/epoch-*.pt"))
    assert int(match[1]) == saved[-1] + 1  # the last epoch whose checkpoint is on disk, counted from 1
    assert Path(match[2]).is_dir() and not list(results.glob("resnet10/resnet12-grid/*.json"))  # no record yet

    command = shlex.split(match[3])
    assert command[:2] == ["harness", "run"]
    resumed = subprocess.run(_harness(*command[1:]), check=False, capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming resnet10/resnet12-grid after epoch {match[1]} of 8" in resumed.stdout
    assert "complete: test accuracy" in resumed.stdout
    assert len(list(results.glob("resnet10/resnet12-grid/*.json"))) == 1


# ---------------------------------------------------------------------------------------------------------
# 2 and 3. A teacher checkpoint that cannot teach is refused before training, naming the file.


def _teacher_run(capsys, jpeg_archive: Path, results: Path, teacher: Path) -> tuple[int, str, str]:
    return cli(
        capsys, "run", str(DMS), "--variant", "as-coded", "--teacher-checkpoint", str(teacher),
        "--profile", "smoke", "--subset", "256", "--data", str(jpeg_archive), "--results", str(results),
        "--threads", "1", "--quiet",
    )  # fmt: skip


def test_a_teacher_of_another_architecture_is_refused_with_what_does_not_match(
    jpeg_archive: Path, tmp_path: Path, capsys
) -> None:
    other = build_model(load_spec(RESNET10).variant("resnet12-grid").recipe.model)  # not DMSResNet's teacher
    teacher = tmp_path / "resnet12.pt"
    torch.save({"model": other.state_dict()}, teacher)
    results = tmp_path / "results"
    code, _, err = _teacher_run(capsys, jpeg_archive, results, teacher)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"harness: error: teacher checkpoint {teacher}: ")
    assert "variant 'teacher'" in err and "dmsresnet.toml" in err  # what it was loaded as
    assert re.search(r"\d+ missing keys \(\S+", err) and re.search(r"\d+ shape mismatches \(\S+: \[", err), err
    assert "--teacher-checkpoint" in err  # what to do
    assert not results.exists()


def test_a_teacher_with_nan_weights_is_refused_before_training(jpeg_archive: Path, tmp_path: Path, capsys) -> None:
    model = build_model(load_spec(DMS).variant("teacher").recipe.model)
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and k.endswith("weight"))
    state[name][0] = float("nan")
    teacher = tmp_path / "diverged.pt"
    torch.save({"model": state}, teacher)
    results = tmp_path / "results"
    code, out, err = _teacher_run(capsys, jpeg_archive, results, teacher)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"harness: error: teacher checkpoint {teacher}: ") and name in err, err
    assert "NaN" in err and "epoch 1" not in out  # refused before any training
    assert not results.exists()


# ---------------------------------------------------------------------------------------------------------
# 4. `harness eval` on a file that is not a harness checkpoint.


def _not_checkpoints(folder: Path) -> list[Path]:
    import argparse

    text, plain, objects, weights = (folder / n for n in ("notes.txt", "plain.pkl", "objects.pt", "weights.pt"))
    text.write_text("hello\n")
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    torch.save(argparse.Namespace(x=1), objects)  # Python objects: PyTorch's weights_only advice
    torch.save({"w": torch.zeros(2)}, weights)  # tensors, but no model card
    return [text, plain, objects, weights]


def test_eval_of_a_file_that_is_not_a_checkpoint_says_so_in_one_line(tmp_path: Path, capsys) -> None:
    for path in _not_checkpoints(tmp_path):
        code, out, err = cli(capsys, "eval", str(path), "--no-corruptions")
        assert code == 2 and out == "" and err.count("\n") == 1, (path.name, err)
        assert err.startswith(f"harness: error: {path}: ") and "not a harness checkpoint" in err, err
        assert "final.pt" in err  # what it expects
        assert not re.search(r"weights.only|trust|\x1b", err, re.IGNORECASE), err  # none of PyTorch's advice


# ---------------------------------------------------------------------------------------------------------
# 5. A name that cannot become a file name is refused by `check`, and `run` writes nothing.


def _with_long_variant() -> str:
    return RESNET10.read_text() + f'\n[variants.{LONG}]\nextends = "resnet12-grid"\ndescription = "long"\n'


LONG_NAMES = {
    "variant": (_with_long_variant, r"variants\.a+\S*: .*300 characters.*at most \d+.*"),
    "report": (
        lambda: RESNET10.read_text().replace('name = "resnet10"', f'name = "{LONG}"', 1),
        r"report\.name: .*300 characters.*at most \d+.*",
    ),
    "grid cell": (
        lambda: RESNET10.read_text().replace('name = "{model}-{optimizer}-{lr}"', f'name = "{{model}}-{{optimizer}}-{{lr}}-{LONG}"', 1),
        r"grids\.table4\.name: .*characters.*at most \d+.*",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(LONG_NAMES))
def test_check_refuses_a_name_too_long_for_a_file_name(spec_copy, capsys, case: str) -> None:
    make, expected = LONG_NAMES[case]
    path = spec_copy(make())
    code, out, err = cli(capsys, "check", str(path))
    assert code == 2 and out == "", err
    lines = [line for line in err.splitlines() if re.fullmatch(rf"{re.escape(str(path))}:{expected}", line)]
    assert len(lines) == 1, err
    assert LONG not in err  # the line names the key without repeating 300 characters


@pytest.mark.parametrize("name", ['"a/b"', '".hidden"', '"a\\u0000b"', '"A"'])
def test_check_refuses_names_that_are_not_plain_file_names(spec_copy, capsys, name: str) -> None:
    path = spec_copy(RESNET10.read_text() + f'\n[variants.{name}]\nextends = "resnet12-grid"\ndescription = "x"\n')
    code, _, err = cli(capsys, "check", str(path))
    assert code == 2 and all(line.startswith(f"{path}:variants.") for line in err.splitlines()), err


def test_run_of_a_long_variant_name_writes_nothing(jpeg_archive: Path, tmp_path: Path, spec_copy, capsys) -> None:
    path = spec_copy(_with_long_variant())
    results = tmp_path / "results"
    code, _, err = cli(
        capsys, "run", str(path), "--variant", LONG, "--profile", "smoke", "--subset", "256",
        "--data", str(jpeg_archive), "--results", str(results), "--threads", "1",
    )  # fmt: skip
    assert code == 2 and "File name too long" not in err and f"{path}:variants." in err, err
    assert not results.exists()


def test_run_under_a_protocol_whose_name_makes_too_long_a_file_name_writes_nothing(
    jpeg_archive: Path, tmp_path: Path, capsys
) -> None:
    protocol = tmp_path / "long-protocol.toml"
    protocol.write_text((SPECS_DIR / "common.toml").read_text().replace('name = "common"', f'name = "{"p" * 250}"', 1))
    results = tmp_path / "results"
    code, _, err = cli(
        capsys, "run", str(RESNET10), "--variant", "resnet12-grid", "--protocol", str(protocol), "--profile", "smoke",
        "--subset", "256", "--data", str(jpeg_archive), "--results", str(results), "--threads", "1",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "File name too long" not in err, err
    assert f"{protocol}:protocol.name: " in err and "at most 64 characters" in err, err
    assert not results.exists()
    code, _, err = cli(capsys, "check", str(protocol))  # and `check` says so before any run
    assert code == 2 and err.startswith(f"{protocol}:protocol.name: ") and "at most 64 characters" in err, err
