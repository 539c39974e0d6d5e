"""PNG plots: Pareto fronts of accuracy against size, compute and latency, and learning curves."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt

AXES = {
    "params": ("parameters (millions)", 1e-6),
    "macs": ("MACs per image (millions)", 1e-6),
    "cpu_latency_ms_b1": ("CPU latency, batch 1 (ms)", 1.0),
}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (lower x, higher y), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def pareto_plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per axis: claimed headline accuracy (hollow) and reproduced mean (filled), with fronts."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, (label, scale) in AXES.items():
        fig, ax = plt.subplots(figsize=(8, 5.5))
        claimed, measured = [], []
        for row in rows:
            if row.get(key) is None or row.get("role") != "model":
                continue
            x = row[key] * scale
            name = f"{row['report']}/{row['variant']}"
            if row.get("claim_value") is not None:
                claimed.append((x, row["claim_value"], name))
            if row.get("test_acc_mean") is not None:
                measured.append((x, row["test_acc_mean"], name, row.get("profile")))
        if claimed:
            ax.scatter(
                [p[0] for p in claimed],
                [p[1] for p in claimed],
                facecolors="none",
                edgecolors="tab:blue",
                label="claimed (headline)",
            )
            front = pareto([(p[0], p[1]) for p in claimed])
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:blue", alpha=0.4)
            for x, y, name in claimed:
                ax.annotate(name, (x, y), fontsize=6, alpha=0.7, xytext=(3, 3), textcoords="offset points")
        if measured:
            profiles = sorted({str(p[3]) for p in measured})
            ax.scatter(
                [p[0] for p in measured],
                [p[1] for p in measured],
                color="tab:red",
                label=f"reproduced mean ({', '.join(profiles)} budget)",
            )
            front = pareto([(p[0], p[1]) for p in measured])
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="tab:red", alpha=0.4)
        if not claimed and not measured:
            ax.text(0.5, 0.5, f"no entry has {label}", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("CIFAR-10 test accuracy (%)")
        ax.set_title(f"Accuracy against {label.split(' (')[0]}")
        ax.grid(alpha=0.3)
        if claimed or measured:
            ax.legend(loc="lower right", fontsize=8)
        path = out / f"pareto_{key.split('_')[0] if key != 'cpu_latency_ms_b1' else 'latency'}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


def learning_curves(records: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per (report, variant, profile): training loss and validation accuracy, a line per seed."""
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("history"):
            groups[(record["report"], record["variant"], record["profile"])].append(record)
    written = []
    for (report, variant, profile), runs in sorted(groups.items()):
        fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
        for record in sorted(runs, key=lambda r: r["seed"]):
            epochs = [h["epoch"] + 1 for h in record["history"]]
            loss_ax.plot(
                epochs, [h["train_loss"] for h in record["history"]], marker=".", label=f"seed {record['seed']}"
            )
            vals = [h.get("val_acc") for h in record["history"]]
            if any(v is not None for v in vals):
                acc_ax.plot(epochs, vals, marker=".", label=f"seed {record['seed']} val")
            tests = [h.get("test_acc_monitor") for h in record["history"]]
            if any(t is not None for t in tests):
                acc_ax.plot(epochs, tests, linestyle=":", label=f"seed {record['seed']} test (monitor)")
        loss_ax.set_xlabel("epoch")
        loss_ax.set_ylabel("training loss")
        acc_ax.set_xlabel("epoch")
        acc_ax.set_ylabel("accuracy (%)")
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{report}/{variant} ({profile} budget, {runs[0].get('data_source', '')})", fontsize=9)
        fig.tight_layout()
        path = out / f"curves_{report}_{variant}_{profile}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
