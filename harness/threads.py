"""How many CPU threads a command computes with: `--threads`, else `OMP_NUM_THREADS`, else the cores that
other processes leave free. Two processes that each take every core slow each other about tenfold (each
step's threads wait on cores the other holds: measured ~3 s -> ~30 s per ResNet-10 step on two cores)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from harness.lazy import lazy

torch = lazy("torch")

LOAD_WINDOW_S = 0.5  # long enough to see a busy process, short beside any run


def other_cpu_use(window_s: float = 0.2) -> float | None:
    """Share of all CPUs busy while this process sleeps for `window_s` (Linux /proc/stat; else None).

    Sleeping makes every busy jiffy someone else's, so no per-process accounting is needed.
    """

    def busy_total() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields) - idle, sum(fields)

    try:
        busy0, total0 = busy_total()
        time.sleep(window_s)
        busy1, total1 = busy_total()
    except (OSError, ValueError, IndexError):
        return None
    return (busy1 - busy0) / max(1, total1 - total0)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask; a Slurm allocation or taskset narrows it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    reason: str  # said when it is not simply every core


def choose_threads(requested: int | None, deterministic: bool = False) -> ThreadChoice:
    """--threads, else OMP_NUM_THREADS, else every core that other processes leave free (at least one).
    With --deterministic, every core whatever the load: a resumed run then computes with the same threads."""
    cores = usable_cores()
    if requested is not None:
        return ThreadChoice(requested, "")
    from_env = os.environ.get("OMP_NUM_THREADS", "")
    if from_env.isdigit() and int(from_env) > 0:
        return ThreadChoice(int(from_env), "")
    if deterministic:
        return ThreadChoice(cores, "")
    share = other_cpu_use(LOAD_WINDOW_S)
    if share is None:
        return ThreadChoice(cores, "")
    free = max(1, min(cores, round(cores * (1 - share))))
    if free == cores:
        return ThreadChoice(cores, "")
    return ThreadChoice(
        free,
        f"other processes keep {share:.0%} of the CPUs busy: computing with {free} of {cores} threads "
        "(--threads N or OMP_NUM_THREADS to choose)",
    )


def apply_threads(requested: int | None, deterministic: bool = False) -> str:
    """Set PyTorch's intra-op threads for this process; returns the line that says why, if any."""
    choice = choose_threads(requested, deterministic)
    torch.set_num_threads(choice.threads)
    return choice.reason
