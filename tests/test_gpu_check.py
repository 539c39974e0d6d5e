"""`make gpu-check`'s script, proved on the CPU: its dry run does every step at tiny budgets (in two halves, by
--only) and writes its JSON, summary and rates; and it unpacks the carried wheels a GPU machine's Python lacks."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from harness.measure.gpu import gpu_rate
from tests.conftest import REPO

CHECK = REPO / "tests" / "gpu" / "check.py"


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_check", CHECK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_the_packages_python_lacks_are_unpacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check = load_check()
    wheels = tmp_path / "whl"
    wheels.mkdir()
    for name, module in (("Gpu_Check_Absent-1.0", "gpu_check_absent"), ("tabulate-0.1", "tabulate")):
        with zipfile.ZipFile(wheels / f"{name}-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{module}/__init__.py", "CARRIED = True\n")
    monkeypatch.setattr(check, "CARRIED", {"gpu_check_absent": "gpu_check_absent-", "tabulate": "tabulate-"})
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    site = tmp_path / "site"

    unpacked = check.unpack_missing(wheels, site)

    assert unpacked == ["Gpu_Check_Absent-1.0-py3-none-any.whl"]  # the name matched whatever its case
    assert (site / "gpu_check_absent" / "__init__.py").is_file() and not (site / "tabulate").exists()
    assert sys.path[0] == str(site) and os.environ["PYTHONPATH"].startswith(str(site))
    assert importlib.util.find_spec("gpu_check_absent") is not None


def _dry_run(jpeg_archive: Path, tmp_path: Path, only: str) -> tuple[dict, str, Path]:
    """The script's dry run of some steps (each half of the steps takes about 30 s on one idle core): its JSON,
    its summary and the folder they are in."""
    out = tmp_path / "out"
    argv = [sys.executable, str(CHECK), "--dry-run", "--data", str(jpeg_archive), "--out", str(out), "--only", only]
    argv += ["--wheels", str(tmp_path / "no-wheels")]
    scratch = tmp_path / "tmp"  # the script's own temporary folders
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900, check=False, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not list(scratch.glob("gpu-check-runs-*")), "the recipes' runs (their checkpoints) were left behind"
    return json.loads((out / "gpu-check.json").read_text()), (out / "gpu-check.txt").read_text(), out


def test_dry_run_of_the_tests_matmul_and_speed(jpeg_archive: Path, tmp_path: Path) -> None:
    report, summary, _ = _dry_run(jpeg_archive, tmp_path, "speed,tests,matmul")
    assert report["dry_run"] and report["machine"]["device"] == "cpu" and report["unpacked_wheels"] == []
    assert report["steps"] == ["tests", "matmul", "speed"] and "recipes" not in report  # in the script's order
    tests = report["cuda_tests"]
    assert tests["ok"] and tests.get("passed", 0) == 0 and tests["skipped"] >= 5  # no GPU here: all skip
    assert report["matmul_peak_tflops_bf16"] > 0
    [speed] = report["speed"]
    assert speed["ok"] and speed["harness_img_s"] > 0 and 0 < speed["mfu"] < 1.5
    assert "CUDA tests: 0 passed, 0 failed" in summary and "speed resnet10: " in summary
    assert "steps: tests, matmul, speed\n" in summary and "epochs at" not in summary


def test_dry_run_of_the_recipes_writes_their_rates(jpeg_archive: Path, tmp_path: Path) -> None:
    report, summary, out = _dry_run(jpeg_archive, tmp_path, "recipes")
    assert report["steps"] == ["recipes"] and not {"cuda_tests", "speed", "matmul_peak_tflops_bf16"} & set(report)
    assert [(r["spec"], r["variant"]) for r in report["recipes"]] == [
        ("resnet10", "resnet10-onecycle"),
        ("resnet443-se", "as-coded"),
    ]
    for recipe in report["recipes"]:
        assert recipe["ok"] and recipe["epochs_done"] == recipe["epochs"] == 1
        assert recipe["train_img_s"] > 0 and 0 <= recipe["test_acc"] <= 100
    assert "resnet443-se/as-coded: complete, 1/1 epochs" in summary and "CUDA tests" not in summary

    rates = out / "gpu-rates.json"
    assert set(json.loads(rates.read_text())["img_s"]) >= {"resnet10/resnet10-onecycle", "resnet443-se/as-coded"}
    # a CPU dry run's rates never stand in for a GPU's
    assert gpu_rate("resnet10/resnet10-onecycle", 2e9, rates).basis.startswith("assumed")


def test_every_step_runs_unless_some_are_named_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    check = load_check()
    assert check.parse_args([]).only == ("tests", "matmul", "speed", "recipes")
    out = tmp_path / "out"
    argv = [sys.executable, str(CHECK), "--dry-run", "--out", str(out), "--only", "recipes,speeds"]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and not out.exists()
    assert done.stderr.splitlines()[-1] == (
        "check.py: error: argument --only: unknown step 'speeds' (expected some of tests,matmul,speed,recipes)"
    )
