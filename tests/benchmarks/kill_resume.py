"""Kill-and-resume trials: SIGKILL `harness run` at random points after its first checkpoint, resume it,
and check that every resumed run ends with exactly the metrics of an uninterrupted one.

    python tests/benchmarks/kill_resume.py --trials 10 --data ../shared/data/cifar10-jpeg.tar.gz

The run is DMSResNet's se-mixup variant (Lookahead, clipping, mixup, dropout) at a smoke budget on the
CPU with --deterministic. tests/test_reliability.py runs one trial of the same procedure in CI, on a narrow
copy of the network (the same recipe and training state at a fortieth of the compute).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "reproductions" / "dmsresnet.toml"
RUN = [
    "run",
    "--variant",
    "se-mixup",
    "--profile",
    "smoke",
    "--subset",
    "128",
    "--epochs",
    "4",
    "--deterministic",
    "--quiet",
]


def _harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _record(results: Path) -> dict[str, Any]:
    (path,) = results.glob("dmsresnet/se-mixup/*.json")
    return json.loads(path.read_text())


def reference(data: Path, results: Path, spec: Path = SPEC) -> tuple[dict[str, Any], float]:
    """An uninterrupted run, and how long it ran after writing its first checkpoint."""
    proc = subprocess.Popen(
        _harness(RUN[0], str(spec), *RUN[1:], "--data", str(data), "--results", str(results)),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = _wait_for_checkpoint(proc, results)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the reference run failed: {err}")
    return _record(results), time.monotonic() - first


def _wait_for_checkpoint(proc: subprocess.Popen, results: Path) -> float:
    deadline = time.monotonic() + 900
    while not list(results.glob("checkpoints/**/epoch-0000.pt")):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the run ended or stalled before its first checkpoint")
        time.sleep(0.02)
    return time.monotonic()


def killed_and_resumed(data: Path, results: Path, delay: float, spec: Path = SPEC) -> dict[str, Any]:
    """Kill a run `delay` seconds after its first checkpoint with SIGKILL, then finish it with --resume.

    The kill must interrupt the run, and the resume must continue from a checkpoint: a run that ends before
    its kill lands (on a machine less busy than the reference's), or a resume that starts afresh or finds
    the record already written, would make any comparison of results vacuous. A run that outpaces its
    delay is tried again in a fresh folder with half the delay, then none, so the outcome never depends
    on the machine's load.
    """
    base = [RUN[0], str(spec), *RUN[1:], "--data", str(data)]
    for attempt, wait in enumerate((delay, delay / 2, 0.0)):
        where = results / f"attempt{attempt}"
        if _kill_after(_harness(*base, "--results", str(where)), where, wait):
            break
    else:
        raise RuntimeError("every run finished before its SIGKILL, even one killed at its first checkpoint")
    args = [*base, "--results", str(where), "--resume"]
    resumed = subprocess.run(_harness(*args), env=_env(), capture_output=True, text=True, check=False)
    if resumed.returncode != 0:
        raise RuntimeError(f"the resume failed: {resumed.stderr}")
    if "resuming dmsresnet/se-mixup after epoch" not in resumed.stdout:
        raise RuntimeError(f"the resume did not continue from a checkpoint: {resumed.stdout}")
    return _record(where)


def _kill_after(command: list[str], results: Path, delay: float) -> bool:
    """Start a run, SIGKILL it `delay` seconds after its first checkpoint; whether the kill interrupted it
    (the process died of the signal, before writing its record)."""
    proc = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_checkpoint(proc, results)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)  # a no-op when the run has already ended
    proc.wait()
    return proc.returncode == -signal.SIGKILL and not list(results.glob("dmsresnet/se-mixup/*.json"))


def same_result(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal test accuracy and per-epoch history (timings aside)."""

    def strip(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k not in ("seconds", "train_images_per_s")} for e in history]

    return a["test_acc"] == b["test_acc"] and strip(a["history"]) == strip(b["history"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill points")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        whole, span = reference(args.data, Path(tmp) / "whole")
        print(f"reference: test accuracy {whole['test_acc']:.2f}%, {span:.1f}s after its first checkpoint")
        passed = 0
        for trial in range(args.trials):
            delay = rng.uniform(0, span)
            result = killed_and_resumed(args.data, Path(tmp) / f"trial{trial}", delay)
            ok = same_result(whole, result)
            passed += ok
            print(
                f"trial {trial + 1}: SIGKILL {delay:.2f}s after the first checkpoint -> "
                f"{'same result' if ok else 'DIFFERENT result'} ({result['test_acc']:.2f}%)"
            )
    print(f"{passed}/{args.trials} killed runs resumed to the uninterrupted result")
    return 0 if passed == args.trials else 1


if __name__ == "__main__":
    raise SystemExit(main())
