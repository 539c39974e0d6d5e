"""`make gpu-check`: what the harness does on CUDA, proved and measured on one NVIDIA GPU in about 9 minutes.

Runs on the GPU machine's own Python and PyTorch, from the project's root, with no network: the packages
that Python lacks are unpacked from the wheels `make gpu-prepare` put in .whl/ (pip is never asked for
anything). It writes everything it measured to OUT/gpu-check.json, a short summary to OUT/gpu-check.txt,
the measured rates to OUT/gpu-rates.json and the runs' records to OUT/records/:

1. the CUDA tests (`pytest -m cuda tests/test_cuda.py`);
2. a bf16 8192^3 matmul: the GPU's practical peak;
3. `harness speed` (bf16) for every spec's default variant: images per second and MFU, each stopped at
   2 minutes and skipped when the recipes need the time;
4. two recipes at their full budgets on the data carried along: resnet10 (resnet10-onecycle, 100 epochs)
   and resnet443-se (as-coded, 30 epochs), each stopped at its share of the time left if it runs long
   (its rate still measured from the epochs it finished).

The sizing (README, "Checking a GPU"): training costs 3 x 2 x MACs per image, so resnet10-onecycle is
100 x 45,000 x 1.97 GFLOP = 8.9 PFLOP and resnet443-se 30 x 45,000 x 4.79 GFLOP = 6.5 PFLOP, plus about
1.7 PFLOP of per-epoch evaluation: 17 PFLOP, 3 minutes at 10% of an H100-class GPU's 989 TFLOP/s bf16
peak. `--dry-run` does every step on the CPU at tiny budgets, to prove the script itself (CI runs it).
`--only STEP,...` runs some of the steps (tests, matmul, speed, recipes): a short session reruns one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DEADLINE_S = 9 * 60
DRY_RUN_DEADLINE_S = 30 * 60  # a loaded 2-core CPU takes minutes even for the tiny budgets
SPEED_TIMEOUT_S = 120
RECIPES_RESERVE_S = 240  # speed checks are skipped sooner than the recipes' time is cut
SITE = Path("/tmp/gpu-check-site")
# import name -> wheel name prefix, for what a GPU machine's Python may lack (make gpu-prepare downloads them)
CARRIED = {
    "pydantic": "pydantic-", "pydantic_core": "pydantic_core-", "annotated_types": "annotated_types-",
    "typing_inspection": "typing_inspection-", "typing_extensions": "typing_extensions-", "submitit": "submitit-",
    "cloudpickle": "cloudpickle-", "fvcore": "fvcore-", "iopath": "iopath-", "yacs": "yacs-", "termcolor": "termcolor-",
    "portalocker": "portalocker-", "yaml": "PyYAML-", "tabulate": "tabulate-", "tqdm": "tqdm-", "tomli_w": "tomli_w-",
    "pytest": "pytest-", "pluggy": "pluggy-", "iniconfig": "iniconfig-", "packaging": "packaging-", "pygments": "pygments-",
}  # fmt: skip
SPECS = ("dmsresnet", "resnet443-se", "se-resnet3343", "resnet10", "resnet4323-se")
RECIPES = (("resnet10", "resnet10-onecycle"), ("resnet443-se", "as-coded"))
STEPS = ("tests", "matmul", "speed", "recipes")
DRY_RUN_SPEED_VARIANT = "resnet12-grid"  # resnet10's cheapest network (29 MMACs): a dry run proves the step, not a rate


def main() -> int:
    args = parse_args(sys.argv[1:])
    unpacked = unpack_missing(args.wheels)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "dry_run": args.dry_run}
    report["machine"] = machine()
    report["unpacked_wheels"] = unpacked
    report["steps"] = list(args.only)
    if "tests" in args.only:
        report["cuda_tests"] = cuda_tests(args, started)
    if "matmul" in args.only:
        report["matmul_peak_tflops_bf16"] = matmul_peak(args.dry_run)
    if "speed" in args.only:
        report["speed"] = [speed(spec, args, started) for spec in (SPECS[3:4] if args.dry_run else SPECS)]
    if "recipes" in args.only:
        report["recipes"] = [recipe(spec, variant, args, started) for spec, variant in RECIPES]
    report["wall_s"] = time.monotonic() - started
    (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu-rates.json").write_text(json.dumps(rates(report), indent=2) + "\n")
    (args.out / "gpu-check.txt").write_text(summary(report))
    print(summary(report))
    checked = [report.get("cuda_tests", {"ok": True}), *report.get("speed", []), *report.get("recipes", [])]
    return 0 if all(part["ok"] for part in checked) else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-check-out")))
    parser.add_argument("--data", default=".data/cifar10-jpeg.tar.gz", help="the CIFAR-10 copy carried along")
    parser.add_argument("--wheels", type=Path, default=Path(".whl"), help="wheels of the packages this Python may lack")
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny budgets")
    parser.add_argument(
        "--only", type=_steps, default=STEPS, help=f"some of the steps, in their order: {','.join(STEPS)}"
    )
    return parser.parse_args(argv)


def _steps(text: str) -> tuple[str, ...]:
    asked = [step.strip() for step in text.split(",") if step.strip()]
    unknown = [step for step in asked if step not in STEPS]
    if unknown or not asked:
        raise argparse.ArgumentTypeError(
            f"unknown step {', '.join(map(repr, unknown))} (expected some of {','.join(STEPS)})"
        )
    return tuple(step for step in STEPS if step in asked)


def unpack_missing(wheels: Path, site: Path = SITE) -> list[str]:
    """Unpack the wheel of every carried package this Python cannot import (or, for pydantic, older than 2)
    into `site`, put it first on the path for this process and its children, and name what was unpacked."""
    import importlib.metadata
    import importlib.util
    import zipfile

    def missing(module: str) -> bool:
        if importlib.util.find_spec(module) is None:
            return True
        return module == "pydantic" and int(importlib.metadata.version("pydantic").split(".")[0]) < 2

    unpacked = []
    for module, prefix in CARRIED.items():
        found = sorted(w for w in wheels.glob("*.whl") if re.match(re.escape(prefix.lower()) + r"\d", w.name.lower()))
        if found and missing(module):
            # a pure or matching-ABI wheel is a zip of the installed tree: unpacking it is all an import needs
            zipfile.ZipFile(found[-1]).extractall(site)
            unpacked.append(found[-1].name)
    sys.path.insert(0, str(site))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(site), os.getcwd(), os.environ.get("PYTHONPATH", "")])
    return unpacked


def machine() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "capability": list(torch.cuda.get_device_capability()) if cuda else None,
    }


def harness(argv: list[str], timeout: float) -> tuple[int | None, str, float]:
    """(exit status, or None if stopped at its timeout; output; seconds) of a `harness` command."""
    start = time.monotonic()
    # one file for both streams, unbuffered, so that a command stopped at its timeout leaves every line it printed
    with tempfile.TemporaryFile(mode="w+") as log:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        child = subprocess.Popen([sys.executable, "-m", "harness.cli", *argv], stdout=log, stderr=log, env=env)
        try:
            status: int | None = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.terminate()  # SIGTERM: the run stops as a user's Ctrl-C would
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            status = None
        log.seek(0)
        return status, log.read(), time.monotonic() - start


def time_left(started: float, args: argparse.Namespace) -> float:
    return (DRY_RUN_DEADLINE_S if args.dry_run else DEADLINE_S) - (time.monotonic() - started)


def cuda_tests(args: argparse.Namespace, started: float) -> dict[str, Any]:
    # addopts cleared: the project's pytest options name plugins (pytest-benchmark) the GPU machine may lack
    argv = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-o",
        "addopts=",
        "-p",
        "no:cacheprovider",
        "-m",
        "cuda",
        "tests/test_cuda.py",
    ]
    env = {**os.environ, "HARNESS_TEST_ARCHIVE": str(Path(args.data).resolve())}
    start = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=240, check=False)
        status, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        status, out = None, "stopped after 240 s"
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", out)}
    return {
        "ok": status == 0,
        "exit_status": status,
        **counts,
        "seconds": round(time.monotonic() - start, 1),
        "tail": out[-2000:],
    }


def matmul_peak(dry_run: bool) -> float:
    """TFLOP/s of a bf16 square matmul (8192 on the GPU; 256 on the CPU in a dry run: a CPU without bf16 units
    takes seconds for one 1024 bf16 matmul)."""
    import torch

    device, size = ("cpu", 256) if dry_run else ("cuda", 8192)
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * 10 / (time.perf_counter() - start) / 1e12


def speed(spec: str, args: argparse.Namespace, started: float) -> dict[str, Any]:
    """`harness speed` at bf16 (fp32 in a dry run: most CPUs emulate bf16 slowly), unless the recipes need the time."""
    budget = time_left(started, args) - (RECIPES_RESERVE_S if "recipes" in args.only else 0)
    if not args.dry_run:  # a dry run's speed figures mean nothing, so a loaded CPU must not make it fail
        budget = min(SPEED_TIMEOUT_S, budget)
    if budget < 30 and not args.dry_run:
        return {"spec": spec, "ok": True, "skipped": "out of time: the recipes come first", "seconds": 0}
    device, precision = ("cpu", "fp32") if args.dry_run else ("cuda", "bf16")
    argv = ["speed", f"reproductions/{spec}.toml", "--precision", precision, "--device", device, "--json"]
    argv += ["--steps", "1", "--variant", DRY_RUN_SPEED_VARIANT] if args.dry_run else ["--steps", "20"]
    argv += ["--data", args.data]
    status, out, seconds = harness(argv, timeout=max(budget, 30))
    result: dict[str, Any] = {"spec": spec, "ok": status == 0, "seconds": round(seconds, 1)}
    if status != 0:
        return {**result, "tail": out[-1500:]}
    figures = json.loads(out[out.index("{") : out.rindex("}") + 1])
    keys = (
        "variant",
        "harness_img_s",
        "bare_img_s",
        "naive_img_s",
        "mfu",
        "matmul_peak_flops",
        "train_flops_per_image",
    )
    return {**result, **{k: figures[k] for k in keys}}


def recipe(spec: str, variant: str, args: argparse.Namespace, started: float) -> dict[str, Any]:
    """The recipe at its full budget (a tiny one in a dry run), stopped at its share of the time left; its
    record (not its checkpoints, too big to bring back) is copied to OUT/records."""
    following = len(RECIPES) - 1 - RECIPES.index((spec, variant))
    share = max(60.0, time_left(started, args) / (1 + following) - 5)
    (args.out / "records").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-runs-") as folder:  # its checkpoints go with it
        runs = Path(folder)
        argv = ["run", f"reproductions/{spec}.toml", "--variant", variant, "--data", args.data, "--quiet"]
        argv += ["--results", str(runs), "--device", "cpu" if args.dry_run else "cuda"]
        argv += ["--profile", "smoke", "--subset", "64"] if args.dry_run else ["--profile", "full"]
        status, out, seconds = harness(argv, timeout=share)
        for record in sorted(runs.glob("**/*.json")):
            shutil.copy(record, args.out / "records" / f"{spec}-{variant}-{record.name}")
    epochs = re.findall(r"^epoch (\d+)/(\d+) .* ([\d.]+) img/s", out, flags=re.MULTILINE)
    done = re.search(r"^complete: test accuracy ([\d.]+)%", out, flags=re.MULTILINE)
    return {
        "spec": spec,
        "variant": variant,
        "ok": status in (0, None),  # stopped at its share is a sizing miss, reported, not a failure
        "stopped_at_time_share": status is None,
        "time_share_s": round(share),
        "epochs_done": int(epochs[-1][0]) if epochs else 0,
        "epochs": int(epochs[-1][1]) if epochs else None,
        "train_img_s": statistics.median(float(e[2]) for e in epochs) if epochs else None,
        "test_acc": float(done.group(1)) if done else None,
        "seconds": round(seconds, 1),
        "tail": out[-1500:],
    }


def rates(report: dict[str, Any]) -> dict[str, Any]:
    """Measured training rates, with their device and date, for the estimates `harness run` prints."""
    recipes = report.get("recipes", [])
    measured = {f"{r['spec']}/{r['variant']}": r["train_img_s"] for r in recipes if r["train_img_s"]}
    achieved = []
    for s in report.get("speed", []):
        if "harness_img_s" in s:
            measured.setdefault(f"{s['spec']}/{s['variant']}", s["harness_img_s"])
            achieved.append(s["harness_img_s"] * s["train_flops_per_image"])
    return {
        "device": report["machine"]["device"],
        "date": report["started"][:10],
        "source": "make gpu-check" + (" --dry-run (CPU: not a GPU figure)" if report["dry_run"] else ""),
        "flops_per_s": statistics.median(achieved) if achieved else None,  # for specs without a rate of their own
        "img_s": measured,
    }


def summary(report: dict[str, Any]) -> str:
    host = report["machine"]
    head = f"gpu-check {report['started']} on {host['device']} (torch {host['torch']}), {report['wall_s']:.0f} s"
    lines = [f"{head}, steps: {', '.join(report['steps'])}"]
    if "cuda_tests" in report:
        tests = report["cuda_tests"]
        lines.append(
            f"CUDA tests: {tests.get('passed', 0)} passed, {tests.get('failed', 0)} failed, {tests.get('skipped', 0)} skipped"
            + ("" if tests["ok"] else f" (pytest exit status {tests['exit_status']})")
        )
    if "matmul_peak_tflops_bf16" in report:
        lines.append(f"bf16 matmul: {report['matmul_peak_tflops_bf16']:.0f} TFLOP/s")
    for s in report.get("speed", []):
        rate = f"{s['harness_img_s']:.0f} img/s, MFU {s['mfu']:.2f}" if "mfu" in s else s.get("skipped", "FAILED")
        lines.append(f"speed {s['spec']}: {rate}")
    for r in report.get("recipes", []):
        state = (
            "FAILED"
            if not r["ok"]
            else f"stopped at its {r['time_share_s']} s share"
            if r["stopped_at_time_share"]
            else "complete"
        )
        acc = f", test {r['test_acc']:.2f}%" if r["test_acc"] is not None else ""
        lines.append(
            f"{r['spec']}/{r['variant']}: {state}, {r['epochs_done']}/{r['epochs']} epochs at {r['train_img_s']} img/s{acc}, {r['seconds']:.0f} s"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
