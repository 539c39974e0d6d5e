"""PNG plots: Pareto fronts of accuracy against size, compute and latency, and learning curves."""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

from harness.identity import budget_text, cohort_id
from harness.record import Record

AXES = {
    "params": ("parameters (millions)", 1e-6, "params"),  # row key: (axis label, scale, file name part)
    "macs": ("MACs per image (millions)", 1e-6, "macs"),
    "cpu_latency_ms_b1": ("CPU latency, batch 1 (ms)", 1.0, "latency"),
}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (lower x, higher y), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def pareto_plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per axis: claimed headline accuracy (hollow) and reproduced mean (filled), with fronts.

    Entries are numbered, with the key beside the plot: names written at the points overlap, since
    several variants share one network and one claim.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, (label, scale, stem) in AXES.items():
        fig, ax = plt.subplots(figsize=(11, 6))
        entries = [row for row in rows if row.get(key) is not None and row.get("role") == "model"]
        claimed = [(r[key] * scale, r["claim_value"], i) for i, r in enumerate(entries, 1) if r.get("claim_value")]
        measured = [(r[key] * scale, r["test_acc_mean"], i) for i, r in enumerate(entries, 1) if r.get("test_acc_mean")]
        for points, style in ((claimed, CLAIMED), (measured, MEASURED)):
            if not points:
                continue
            ax.scatter([p[0] for p in points], [p[1] for p in points], **style)
            front = pareto([(p[0], p[1]) for p in points])
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=style["edgecolors"], alpha=0.4)
            for (x, y), numbers in _coincident(points).items():
                ax.annotate(numbers, (x, y), fontsize=6, xytext=(4, 2), textcoords="offset points")
        by_entry = {i: (x, y) for x, y, i in measured}
        for x, y, i in claimed:  # claim to reproduction, so each pair reads as one entry
            if i in by_entry:
                ax.plot([x, by_entry[i][0]], [y, by_entry[i][1]], color="grey", alpha=0.25, linewidth=0.8)
        if not entries:
            ax.text(0.5, 0.5, f"no entry has {label}", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.set_ylabel("CIFAR-10 test accuracy (%)")
        ax.set_title(f"Accuracy against {label.split(' (')[0]}")
        ax.grid(alpha=0.3)
        if claimed or measured:
            handles = [ax.scatter([], [], **CLAIMED)] + ([ax.scatter([], [], **MEASURED)] if measured else [])
            names = ["claimed (headline)"] + (["reproduced (mean over seeds)"] if measured else [])
            fig.legend(handles, names, loc="upper left", bbox_to_anchor=(0.70, 0.97), fontsize=7, frameon=False)
            key_text = "\n".join(f"{i:>2}  {r['report']}/{r['variant']}" for i, r in enumerate(entries, 1))
            budgets = sorted({budget_text(r) for r in entries if r.get("test_acc_mean")})
            if any(r.get("verdict") == "not run at full budget" for r in entries if r.get("test_acc_mean")):
                key_text += "\n\n" + textwrap.fill(
                    f"Reproduced at: {'; '.join(budgets)}. Below the full budget or off the official "
                    "data a run is never a reproduction of its claim.",
                    48,
                )
            fig.text(0.70, 0.5, key_text, fontsize=7, va="center", family="monospace")
        fig.tight_layout(rect=(0, 0, 0.69, 1))
        path = out / f"pareto_{stem}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written


CLAIMED = {"facecolors": "none", "edgecolors": "tab:blue"}
MEASURED = {"facecolors": "tab:red", "edgecolors": "tab:red"}


def _coincident(points: list[tuple[float, float, int]]) -> dict[tuple[float, float], str]:
    """Entry numbers grouped by the point they share, e.g. {(4.7, 96.1): "1,2"}."""
    groups: dict[tuple[float, float], list[int]] = defaultdict(list)
    for x, y, i in points:
        groups[(round(x, 3), round(y, 2))].append(i)
    return {xy: ",".join(map(str, numbers)) for xy, numbers in groups.items()}


def _cohort_label(cohort: dict[str, Any]) -> str:
    """The protocol and budget of a cohort for a file name, e.g. `common-smoke-e5-n4096`."""
    prefix = "" if cohort["protocol"] == "own" else f"{cohort['protocol']}-"
    precision = "" if cohort.get("precision", "fp32") == "fp32" else f"-{cohort['precision']}"
    return f"{prefix}{cohort['profile']}-e{cohort['epochs']}-n{cohort['train_images'] or 'all'}{precision}"


def learning_curves(records: list[Record], out: Path) -> list[Path]:
    """One PNG per cohort (identity.py): loss and accuracy per epoch, a colour per seed.

    Runs of another recipe, protocol, budget, data set or precision are never drawn together: their
    curves do not compare.
    """
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str, str, str], list[Record]] = defaultdict(list)
    for record in records:
        if record.history:
            cohort = record.cohort
            key = (record.report, record.variant, _cohort_label(cohort), cohort_id(cohort)[:8])
            groups[key].append(record)
    labels = Counter((report, variant, label) for report, variant, label, _ in groups)
    written = []
    for (report, variant, label, sha), runs in sorted(groups.items()):
        fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
        for n, record in enumerate(sorted(runs, key=lambda r: r.seed)):
            colour = f"C{n % 10}"
            history = record.history
            epochs = [h["epoch"] + 1 for h in history]
            loss_ax.plot(
                epochs, [h["train_loss"] for h in history], marker=".", color=colour, label=f"seed {record.seed}"
            )
            vals = [h.get("val_acc") for h in history]
            if any(v is not None for v in vals):
                acc_ax.plot(epochs, vals, marker=".", color=colour)
            tests = [h.get("test_acc_monitor") for h in history]
            if any(t is not None for t in tests):
                acc_ax.plot(epochs, tests, linestyle=":", color=colour)
        loss_ax.set_xlabel("epoch")
        loss_ax.set_ylabel("training loss")
        loss_ax.legend(fontsize=7)
        acc_ax.set_xlabel("epoch")
        acc_ax.set_ylabel("accuracy (%)")
        styles = [Line2D([], [], color="black", marker="."), Line2D([], [], color="black", linestyle=":")]
        acc_ax.legend(styles, ["validation", "test (monitor only, --track-test)"], fontsize=7)
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
        budget = runs[0].budget
        images = f"{budget['train_images']:,}" if budget.get("train_images") else "all"
        fig.suptitle(
            f"{report}/{variant}: {runs[0].protocol} recipe, {runs[0].profile} budget "
            f"({budget.get('epochs')} epochs, {images} training images), {runs[0].data_source}",
            fontsize=8,
        )
        fig.tight_layout()
        suffix = f"-{sha}" if labels[(report, variant, label)] > 1 else ""
        path = out / f"curves_{report}_{variant}_{label}{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
