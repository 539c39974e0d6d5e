"""The run lock is exclusive: two processes racing for one run's folder thousands of times are never both
inside; a second process is refused in one line naming the folder and the holder's pid; a holder that has
not yet written its pid is still a holder; a lock left by a killed process is free; a failed run leaves
no empty folders."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.train import checkpoint
from tests.conftest import REPO

RACER = r"""
import json, os, sys
from pathlib import Path
from harness.train import checkpoint

folder, root, marker, rounds = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()  # both start together
held = overlaps = 0
refusals, errors = [], []
for _ in range(rounds):
    try:
        with checkpoint.run_lock(folder, root):
            held += 1
            try:  # the shared check: only one process can create the marker, and it removes its own
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                overlaps += 1
                continue
            (folder / "epoch-0001.pt").write_bytes(b"x")  # some work inside, as a run writes its checkpoints
            (folder / "epoch-0001.pt").unlink()
            try:
                os.unlink(marker)
            except FileNotFoundError:  # the other process removed ours: it was inside too
                overlaps += 1
    except checkpoint.LockError as error:
        refusals.append(str(error))
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")
print(json.dumps({"pid": os.getpid(), "held": held, "overlaps": overlaps,
                  "refusals": refusals, "errors": errors[:5], "n_errors": len(errors)}))
"""


def _start(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize(
    ("rounds", "kept"),
    [
        (10_000, True),  # the done-when: a run's folder, which holds its checkpoint meanwhile
        (1_000, False),  # a run that writes nothing: each release also removes the folders, up to the results
    ],
    ids=["10000-rounds", "1000-rounds-folders-removed"],
)
def test_two_processes_racing_for_one_run_are_never_both_inside_its_lock(
    tmp_path: Path, rounds: int, kept: bool
) -> None:
    root = tmp_path / "results"
    folder = root / "checkpoints" / "r" / "v" / "run"
    if kept:
        folder.mkdir(parents=True)
        (folder / "epoch-0000.pt").write_bytes(b"x")
    marker = tmp_path / "inside"
    racers = [_start(RACER, str(folder), str(root), str(marker), str(rounds)) for _ in range(2)]
    for racer in racers:
        assert racer.stdout.readline().strip() == "ready", racer.stderr.read()
    for racer in racers:
        racer.stdin.write("go\n")
        racer.stdin.flush()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=600)
        assert racer.returncode == 0, err
        results.append(json.loads(out))
    for mine, other in (results, results[::-1]):
        assert mine["overlaps"] == 0, f"both processes held the lock at once {mine['overlaps']} times"
        assert mine["n_errors"] == 0, mine["errors"]
        assert mine["held"] + len(mine["refusals"]) == rounds
        holder = rf"^{re.escape(str(folder))}: this run is already in progress \(process ({other['pid']}|unknown)"
        assert all(re.match(holder, line) for line in mine["refusals"]), mine["refusals"][:3]
    # They did race: each was refused while the other held the lock (hundreds of times in practice).
    assert all(r["refusals"] for r in results), [len(r["refusals"]) for r in results]
    assert not marker.exists()
    if kept:
        assert sorted(p.name for p in folder.iterdir()) == ["epoch-0000.pt"]
    else:  # the results folder stays only where the other process had made it when this one started
        assert not root.exists() or not list(root.iterdir())


HOLDER = r"""
import sys
from pathlib import Path
from harness.train import checkpoint

with checkpoint.run_lock(Path(sys.argv[1]), Path(sys.argv[2])):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_a_second_process_is_refused_in_one_line_naming_the_folder_and_the_holder(tmp_path: Path) -> None:
    root, folder = tmp_path / "results", tmp_path / "results" / "checkpoints" / "run"
    holder = _start(HOLDER, str(folder), str(root))
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        with pytest.raises(checkpoint.LockError) as caught, checkpoint.run_lock(folder, root):
            pass
        assert str(caught.value) == f"{folder}: this run is already in progress (process {holder.pid})"
        assert (folder / "run.lock").exists()  # the refused process took nothing away
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0
    with checkpoint.run_lock(folder, root):
        assert (folder / "run.lock").read_text() == str(os.getpid())
    assert not root.exists()  # nothing was written: no folder is left behind


def test_a_holder_that_has_not_yet_written_its_pid_is_not_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    fd = os.open(folder / "run.lock", os.O_CREAT | os.O_EXCL | os.O_RDWR)  # created and locked, still empty
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        refused = pytest.raises(checkpoint.LockError, match=r"already in progress \(process unknown")
        with refused, checkpoint.run_lock(folder, tmp_path):
            pass
        assert os.stat(folder / "run.lock").st_ino == os.fstat(fd).st_ino  # not deleted as stale
    finally:
        os.close(fd)


def test_a_lock_left_by_a_killed_process_is_free(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    holder = _start(HOLDER, str(folder), str(tmp_path))
    assert holder.stdout.readline().strip() == "held", holder.stderr.read()
    holder.kill()
    holder.communicate(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    assert (folder / "run.lock").read_text() == str(holder.pid)  # left behind, with a dead pid in it
    with checkpoint.run_lock(folder, tmp_path):
        (folder / "epoch-0000.pt").write_bytes(b"x")
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0000.pt"]


def test_a_failed_run_leaves_no_empty_folders_and_no_lock(tmp_path: Path) -> None:
    root = tmp_path / "results"
    folder = root / "checkpoints" / "r" / "v" / "run"
    with pytest.raises(RuntimeError), checkpoint.run_lock(folder, root):
        raise RuntimeError("the run failed before writing anything")
    assert not root.exists()


def test_a_file_system_without_file_locks_is_one_line_saying_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    refused = pytest.raises(
        checkpoint.LockError, match=r"run\.lock: cannot take a file lock here \(No locks available\)"
    )
    with refused, checkpoint.run_lock(tmp_path / "run", tmp_path):
        pass
