"""PNG plots: Pareto fronts of accuracy against size, compute and latency, and learning curves."""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation

from harness.results.identity import budget_name, budget_text, cohort_id, file_label
from harness.results.record import Record
from harness.results.verdict import cohorts

AXES = {
    "params": ("parameters (millions)", 1e-6, "params"),  # row key: (axis label, scale, file name part)
    "macs": ("MACs per image (millions)", 1e-6, "macs"),
    "cpu_latency_ms_b1": ("CPU latency, batch 1 (ms)", 1.0, "latency"),
}
PARETO_DPI = 120  # labels are placed in pixels: the figure is drawn at the resolution it is saved at
BELOW_NOTE = "below the full budget: not a reproduction"

Point = tuple[float, float, int]  # x, y, entry number


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (lower x, higher y), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def below_budget(row: dict[str, Any]) -> bool:
    """Whether a row's reproduced figure comes from runs below the full budget or off the official data."""
    return row.get("full_budget") is False


def pareto_plots(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """One PNG per axis (see pareto_figure)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, (_, _, stem) in AXES.items():
        fig = pareto_figure(rows, key)
        path = out / f"pareto_{stem}.png"
        fig.savefig(path, dpi=fig.dpi)
        plt.close(fig)
        written.append(path)
    return written


def pareto_figure(rows: list[dict[str, Any]], key: str) -> Figure:
    """Claimed headline accuracy (hollow) and reproduced mean (filled) against one AXES key, with fronts.

    Entries are numbered, with the key beside the plot: names written at the points overlap, since
    several variants share one network and one claim. Figures below the full budget go to a panel of
    their own (fig.axes[1]), so that a smoke run at 10% does not squash the claims on the main axes
    (fig.axes[0]), whose scale the claims and full-budget reproductions alone set.
    """
    label, scale, _ = AXES[key]
    entries = [row for row in rows if row.get(key) is not None and row.get("role") == "model"]
    claimed = [(r[key] * scale, r["claim_value"], i) for i, r in enumerate(entries, 1) if r.get("claim_value")]
    reproduced = [(r[key] * scale, r["test_acc_mean"], i) for i, r in enumerate(entries, 1)]
    reproduced = [p for p in reproduced if p[1] is not None]
    below = [p for p in reproduced if below_budget(entries[p[2] - 1])]
    measured = [p for p in reproduced if p not in below]
    fig = plt.figure(figsize=(11, 6), dpi=PARETO_DPI)
    if below:
        ax, low = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    else:
        ax, low = fig.add_subplot(), None
    ax.set_label("main")
    for points, style in ((claimed, CLAIMED), (measured, MEASURED)):
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], **style)
            front = pareto([(p[0], p[1]) for p in points])
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=style["edgecolors"], alpha=0.4)
    by_entry = {i: (x, y) for x, y, i in measured}
    for x, y, i in claimed:  # claim to reproduction, so each pair reads as one entry
        if i in by_entry:
            ax.plot([x, by_entry[i][0]], [y, by_entry[i][1]], color="grey", alpha=0.25, linewidth=0.8)
    if not entries:
        ax.text(0.5, 0.5, f"no entry has {label}", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("CIFAR-10 test accuracy (%)")
    ax.set_title(f"Accuracy against {label.split(' (')[0]}")
    if low is not None:
        low.set_label("below budget")
        low.scatter([p[0] for p in below], [p[1] for p in below], **BELOW)
        low.set_title(f"{len(below)} drawn apart, {BELOW_NOTE}", fontsize=8, loc="left")
        low.set_ylabel("accuracy (%)", fontsize=7)
    (low or ax).set_xlabel(label)
    if claimed or reproduced:
        _legend_and_key(fig, entries, bool(measured), bool(below))
    fig.tight_layout(rect=(0, 0, 0.69, 1))
    for axes, points in ((ax, claimed + measured), (low, below)):
        if axes is not None:
            axes.grid(alpha=0.3)
            axes.set_xlim(axes.get_xlim())  # frozen before labels are placed in pixels
            axes.set_ylim(axes.get_ylim())
            entry_labels(axes, points)
    return fig


CLAIMED = {"facecolors": "none", "edgecolors": "tab:blue"}
MEASURED = {"facecolors": "tab:red", "edgecolors": "tab:red"}
BELOW = {"facecolors": "tab:gray", "edgecolors": "tab:gray", "marker": "s"}


def _legend_and_key(fig: Figure, entries: list[dict[str, Any]], measured: bool, below: bool) -> None:
    """The legend of what is drawn, and the numbered key of entries, right of the plot."""
    handles = [Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="tab:blue")]
    names = ["claimed (headline)"]
    if measured:
        handles.append(Line2D([], [], linestyle="none", marker="o", color="tab:red"))
        names.append("reproduced (mean over seeds)")
    if below:
        handles.append(Line2D([], [], linestyle="none", marker="s", color="tab:gray"))
        names.append(BELOW_NOTE)
    fig.legend(handles, names, loc="upper left", bbox_to_anchor=(0.70, 0.97), fontsize=7, frameon=False)
    key_text = "\n".join(f"{i:>2}  {r['report']}/{r['variant']}" for i, r in enumerate(entries, 1))
    if below:
        budgets = sorted({budget_text(r) for r in entries if r.get("test_acc_mean") is not None})
        key_text += "\n\n" + textwrap.fill(
            f"Reproduced at: {'; '.join(budgets)}. Below the full budget or off the official "
            "data a run is never a reproduction of its claim.",
            48,
        )
    fig.text(0.70, 0.5, key_text, fontsize=7, va="center", family="monospace")


MERGE_PT = 6.0  # points nearer than a marker's width read as one: they share a label
OFFSETS = (  # where a label may go, in points from its points' centre, in order of preference
    (5, 3, "left", "bottom"),
    (5, -3, "left", "top"),
    (-5, 3, "right", "bottom"),
    (-5, -3, "right", "top"),
    (0, 7, "center", "bottom"),
    (0, -7, "center", "top"),
)


def entry_labels(ax: Axes, points: list[Point]) -> list[Annotation]:
    """Entry numbers at the points, no label overlapping another.

    Points nearer than a marker share one label (a claim and its reproduction at one spot read "3");
    a group whose label finds no free place beside it joins the group in its way, and all are placed
    again: a list of numbers reads better than numbers printed over each other.
    """
    renderer = ax.figure.canvas.get_renderer()
    groups = _clusters(ax, points, MERGE_PT * ax.figure.dpi / 72)
    while True:
        labels, clash = _place(ax, groups, renderer)
        if clash is None:
            return labels
        for label in labels:
            label.remove()
        moved, into = clash
        groups[into] += groups.pop(moved)  # moved > into: the index `into` still holds


def _clusters(ax: Axes, points: list[Point], radius_px: float) -> list[list[Point]]:
    """Points linked by gaps under radius_px in display space, each group in input order."""
    xy = ax.transData.transform([(x, y) for x, y, _ in points]) if points else []
    groups: list[list[int]] = []
    for k in range(len(points)):
        near = [g for g in groups if any(math.dist(xy[k], xy[m]) < radius_px for m in g)]
        groups = [g for g in groups if g not in near] + [sorted([k, *(m for g in near for m in g)])]
    return [[points[m] for m in g] for g in sorted(groups)]


def _place(
    ax: Axes, groups: list[list[Point]], renderer: RendererBase
) -> tuple[list[Annotation], tuple[int, int] | None]:
    """A label per group at the first free offset inside the axes; else (group, group in its way)."""
    frame = ax.get_window_extent(renderer)
    labels: list[Annotation] = []
    boxes = []
    for g, group in enumerate(groups):
        centre = (sum(p[0] for p in group) / len(group), sum(p[1] for p in group) / len(group))
        text = ",".join(str(i) for i in sorted({p[2] for p in group}))
        free, blocker = None, None
        for dx, dy, ha, va in OFFSETS:
            label = ax.annotate(text, centre, xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=6)
            box = label.get_window_extent(renderer).padded(1)
            hits = [k for k, other in enumerate(boxes) if box.overlaps(other)]
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if not hits and inside:
                break
            blocker = hits[0] if hits and blocker is None else blocker
            free = free or (None if hits else (dx, dy, ha, va))
            label.remove()
        else:
            if free is None:  # every place beside it is taken: merge with a label in its way
                return labels, (g, blocker)
            dx, dy, ha, va = free  # the only free places run past the axes' edge: better than a merge
            label = ax.annotate(text, centre, xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=6)
            box = label.get_window_extent(renderer).padded(1)
        labels.append(label)
        boxes.append(box)
    return labels, None


def _cohort_label(cohort: dict[str, Any]) -> str:
    """The protocol, budget and precision of a cohort for a file name, e.g. `common-reduced-e5-n4096`."""
    precision = "" if cohort.get("precision", "fp32") == "fp32" else f"-{cohort['precision']}"
    return file_label(cohort["protocol"], budget_name(cohort), cohort["epochs"], cohort["train_images"]) + precision


def learning_curves(records: list[Record], out: Path) -> list[Path]:
    """One PNG per cohort (identity.py): loss and accuracy per epoch, a colour per seed.

    Runs of another recipe, protocol, budget, data set or precision are never drawn together: their
    curves do not compare.
    """
    out.mkdir(parents=True, exist_ok=True)
    groups: dict[tuple[str, str, str, str], list[Record]] = {}
    for found in cohorts(records, finished_only=False):  # one curve per seed, however many folders hold it
        drawn = [r for r in found.runs if r.history]
        if drawn:
            first, cohort = drawn[0], drawn[0].cohort
            groups[(first.report, first.variant, _cohort_label(cohort), cohort_id(cohort)[:8])] = drawn
    labels = Counter((report, variant, label) for report, variant, label, _ in groups)
    written = []
    for (report, variant, label, sha), runs in sorted(groups.items()):
        fig = curves_figure(runs)
        suffix = f"-{sha}" if labels[(report, variant, label)] > 1 else ""
        path = out / f"curves_{report}_{variant}_{label}{suffix}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


# A series of two or more values is a line; of one, a marker alone, since a line through one point draws nothing.
SERIES = {  # history key: (legend name, line style, one-point style)
    "train_loss": ("training loss", {"marker": ".", "linestyle": "-"}, {"marker": "o", "linestyle": "none"}),
    "val_acc": ("validation", {"marker": ".", "linestyle": "-"}, {"marker": "o", "linestyle": "none"}),
    "test_acc_monitor": (
        "test (monitor only, --track-test)",
        {"marker": None, "linestyle": ":"},
        {"marker": "x", "linestyle": "none"},
    ),
}


def curves_figure(runs: list[Record]) -> Figure:
    """Training loss (left) and accuracy (right) per epoch of one cohort's runs, a colour per seed.

    The accuracy legend names only the series drawn, each in the style it is drawn in.
    """
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 4))
    drawn: set[tuple[str, int]] = set()  # (history key, 1 for a line or 2 for points alone): SERIES index
    last = 1
    for n, record in enumerate(sorted(runs, key=lambda r: r.seed)):
        colour = f"C{n % 10}"
        epochs = [h["epoch"] + 1 for h in record.history]
        last = max([last, *epochs])
        _series(
            loss_ax, epochs, [h.get("train_loss") for h in record.history], "train_loss", colour, f"seed {record.seed}"
        )
        for key in ("val_acc", "test_acc_monitor"):
            form = _series(acc_ax, epochs, [h.get(key) for h in record.history], key, colour)
            if form:
                drawn.add((key, form))
    loss_ax.set_ylabel("training loss")
    if loss_ax.lines:
        loss_ax.legend(fontsize=7)
    acc_ax.set_ylabel("accuracy (%)")
    if drawn:
        shown = sorted(drawn, key=lambda d: (list(SERIES).index(d[0]), d[1]))
        handles = [Line2D([], [], color="black", **SERIES[key][form]) for key, form in shown]
        acc_ax.legend(handles, [SERIES[key][0] for key, _ in shown], fontsize=7)
    else:
        acc_ax.text(0.5, 0.5, "no accuracy per epoch recorded", ha="center", va="center", transform=acc_ax.transAxes)
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, last + 0.5)  # one epoch gets an axis around it, not a zero-width one
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)  # one epoch: tick 1 alone
    first = runs[0]
    images = f"{first.budget['train_images']:,}" if first.budget.get("train_images") else "all"
    fig.suptitle(
        f"{first.report}/{first.variant}: {first.protocol} recipe, {first.profile} budget "
        f"({first.budget.get('epochs')} epochs, {images} training images), {first.data_source}",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def _series(ax: Axes, epochs: list[int], values: list[Any], key: str, colour: str, label: str | None = None) -> int:
    """Draw one run's SERIES[key]: 1 when drawn as a line, 2 as a point alone, 0 when it has no value."""
    known = [(e, v) for e, v in zip(epochs, values, strict=True) if v is not None]
    if not known:
        return 0
    form = 1 if len(known) > 1 else 2
    ax.plot([e for e, _ in known], [v for _, v in known], color=colour, label=label, **SERIES[key][form])
    return form
