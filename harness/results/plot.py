"""PNG plots, each returned with a caption: Pareto fronts of accuracy against size, compute and latency, and
learning curves with the report's claims as lines.

Only a run at the full budget on the official CIFAR-10 pixels stands on an axis of CIFAR-10 accuracy; any other
run is drawn apart and named by its data and budget. A figure with nothing to draw is left out, with the reason.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from harness.common.files import write_figure
from harness.results.identity import budget_name, budget_text, cohort_id, file_label
from harness.results.labels import FONT_PT, Point, entry_labels
from harness.results.record import Record
from harness.results.verdict import cohorts

if TYPE_CHECKING:
    from harness.spec import Claim, Spec

# The study page shows a figure at most 520 px wide. 5.2 in wide, it shows at 100 px per inch, about a page's
# 96: text keeps its set size there (9 pt is about 12 px) instead of shrinking. 200 dpi (1,040 px) keeps it sharp
# on a 2x screen. Labels are placed in pixels, so a figure is drawn at the resolution it is saved at.
WIDTH_IN = 5.2
DPI = 200
TITLE_PT = 10.0
KEY_CHARS = 76  # a line of the key at FONT_PT across WIDTH_IN
NOT_OFFICIAL = "not the official CIFAR-10 pixels"


@dataclass(frozen=True)
class Drawn:
    """A figure written to `path`, and the sentences that say what it shows."""

    path: Path
    caption: str


class Axis(NamedTuple):
    label: str
    name: str  # in the title and in why the figure is left out
    scale: float  # row value to axis value
    stem: str  # file name part
    needs: str  # what an entry lacks when none is drawn, and how to get it


LATENCY_HINT = "a CPU latency (run `harness measure` on a quiet machine)"
AXES = {  # row key: x axis
    "params": Axis("parameters (millions)", "parameters", 1e-6, "params", "a parameter count"),
    "macs": Axis("MACs per image (millions)", "MACs", 1e-6, "macs", "a MAC count"),
    "cpu_latency_ms_b1": Axis("CPU latency, batch 1 (ms)", "CPU latency", 1.0, "latency", LATENCY_HINT),
}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (lower x, higher y), sorted by x."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or y > front[-1][1]:
            front.append((x, y))
    return front


def drawn_apart(row: dict[str, Any]) -> bool:
    """Whether a row's reproduced figure stays off the CIFAR-10 axes: unless the row positively says its runs
    are at the full budget and on the official pixels, it is no CIFAR-10 reproduction."""
    return not (row.get("full_budget") is True and row.get("official_data") is True)


class Group(NamedTuple):
    """Reproduced figures drawn apart, of one data source and budget."""

    source: str  # short, for an axis label
    legend: str
    caption: str
    points: list[Point]


class Front(NamedTuple):
    """What one Pareto figure draws; entries are numbered from 1 in list order."""

    entries: list[dict[str, Any]]
    claimed: list[Point]
    measured: list[Point]  # full budget on the official pixels: the main axes
    apart: list[Group]  # any other reproduced figure: the lower panel


def front_of(rows: list[dict[str, Any]], key: str) -> Front:
    scale = AXES[key].scale
    entries = [row for row in rows if row.get(key) is not None and row.get("role") == "model"]
    numbered = list(enumerate(entries, 1))
    claimed = [(r[key] * scale, r["claim_value"], i) for i, r in numbered if r.get("claim_value")]
    found = [((r[key] * scale, r["test_acc_mean"], i), r) for i, r in numbered if r.get("test_acc_mean") is not None]
    groups: dict[tuple[str, bool, str], list[tuple[Point, dict[str, Any]]]] = {}
    for point, r in found:
        if drawn_apart(r):
            by = (r.get("data_source") or "", r.get("official_data") is True, budget_text(r))
            groups.setdefault(by, []).append((point, r))
    measured = [point for point, r in found if not drawn_apart(r)]
    return Front(entries, claimed, measured, [_group(*by, members) for by, members in groups.items()])


def _group(source: str, official: bool, budget: str, members: list[tuple[Point, dict[str, Any]]]) -> Group:
    data = "the official CIFAR-10 pixels" if official else f"{_data_name(source)}, {NOT_OFFICIAL}"
    seeds = [(p[2], r, _count(r.get("n_seeds") or 0, "seed", "seeds")) for p, r in members]
    names = ", ".join(f"{i} ({r['report']}/{r['variant']}, {n})" for i, r, n in seeds)
    short = "CIFAR-10" if official else _data_name(source, short=True)
    legend = f"{short}{'' if official else ' (not official CIFAR-10)'}, {budget}"
    return Group(short, legend, f"{names} at the {budget} budget on {data}", [p for p, _ in members])


def _data_name(source: str, short: bool = False) -> str:
    """A data label without its note, e.g. `cifar10-jpeg.tar.gz (JPEG image folders)`; short: `cifar10-jpeg`."""
    name = source.removesuffix(f" ({NOT_OFFICIAL})") or "unnamed data"
    return name.split(" (")[0].removesuffix(".tar.gz") if short else name


def pareto_plots(rows: list[dict[str, Any]], out: Path) -> tuple[list[Drawn], list[str]]:
    """One PNG per axis with something to draw (see pareto_figure), and a sentence for each one left out."""
    out.mkdir(parents=True, exist_ok=True)
    drawn, left_out = [], []
    for key, axis in AXES.items():
        front, name = front_of(rows, key), f"The accuracy against {axis.name} figure (pareto_{axis.stem}.png)"
        if not (front.claimed or front.measured or front.apart):  # empty axes would say nothing
            lacks = axis.needs if not front.entries else "a claimed or reproduced accuracy"
            left_out.append(f"{name} is left out: no entry has {lacks}.")
            continue
        fig = pareto_figure(rows, key)
        path = out / f"pareto_{axis.stem}.png"
        write_figure(fig, path, dpi=fig.dpi)  # whole or absent, even on a full disk; and closed
        drawn.append(Drawn(path, pareto_caption(rows, key)))
    return drawn, left_out


def pareto_caption(rows: list[dict[str, Any]], key: str) -> str:
    """What pareto_figure(rows, key) shows, in sentences."""
    axis, front = AXES[key], front_of(rows, key)
    parts = [f"Accuracy against {axis.label} of {_count(len(front.entries), 'entry', 'entries')}, numbered in the key."]
    if front.claimed:
        parts.append("Hollow blue circles: the reports' headline claims, with their front.")
    parts.append(
        "Filled red circles: the CIFAR-10 test accuracy reproduced at the full budget on the official pixels, mean "
        "over seeds, with its front; a grey line joins each to its claim."
        if front.measured
        else "No entry was run at the full budget on the official CIFAR-10 pixels: no reproduction is drawn."
    )
    if front.apart:
        groups = "; ".join(g.caption for g in front.apart)
        parts.append(f"Drawn apart in the lower panel, means over seeds that reproduce no claim: {groups}.")
    if any(g.source != "CIFAR-10" for g in front.apart):
        parts.append("Accuracy on other data than the official CIFAR-10 pixels is not the official CIFAR-10 figure.")
    busy = sum(bool(r.get("cpu_latency_busy")) for r in front.entries) if key == "cpu_latency_ms_b1" else 0
    if busy:
        parts.append(f"{busy} of the latencies were measured while other processes used the CPUs: inflated.")
    return " ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


CLAIMED = {"facecolors": "none", "edgecolors": "tab:blue"}
MEASURED = {"facecolors": "tab:red", "edgecolors": "tab:red"}
APART = (("s", "tab:gray"), ("D", "tab:brown"), ("^", "tab:olive"), ("v", "tab:purple"), ("P", "tab:cyan"))


def pareto_figure(rows: list[dict[str, Any]], key: str) -> Figure:
    """Claimed headline accuracy (hollow) and reproduced mean (filled) against one AXES key, with fronts.

    Entries are numbered, with the key under the plot: names at the points would overlap, since several variants
    share one network and one claim. Figures off the full budget or the official pixels go to a panel of their
    own (fig.axes[1]): none reads as CIFAR-10 accuracy, and a 10% smoke run does not squash the main axes
    (fig.axes[0]), whose scale the claims and reproductions alone set."""
    axis, front = AXES[key], front_of(rows, key)
    keys = _key_lines(front.entries)
    strip = 0.25 + 0.21 * (1 + bool(front.measured) + len(front.apart)) + 0.155 * len(keys)  # legend, key: inches
    height = (5.0 if front.apart else 3.6) + strip
    fig = plt.figure(figsize=(WIDTH_IN, height), dpi=DPI)
    ax, low = fig.subplots(2, 1, sharex=True, height_ratios=(2.4, 1)) if front.apart else (fig.add_subplot(), None)
    ax.set_label("main")
    for points, style in ((front.claimed, CLAIMED), (front.measured, MEASURED)):
        if points:
            ax.scatter([p[0] for p in points], [p[1] for p in points], **style)
            line = pareto([(p[0], p[1]) for p in points])
            ax.step([p[0] for p in line], [p[1] for p in line], where="post", color=style["edgecolors"], alpha=0.4)
    by_entry = {i: (x, y) for x, y, i in front.measured}
    for x, y, i in front.claimed:  # claim to reproduction, so each pair reads as one entry
        if i in by_entry:
            ax.plot([x, by_entry[i][0]], [y, by_entry[i][1]], color="grey", alpha=0.25, linewidth=0.8)
    ax.set_ylabel("CIFAR-10 test accuracy (%)", fontsize=FONT_PT)
    ax.set_title(f"Accuracy against {axis.name}", fontsize=TITLE_PT)
    if low is not None:
        _draw_apart(low, front.apart)
    (low or ax).set_xlabel(axis.label, fontsize=FONT_PT)
    fig.tight_layout(rect=(0, strip / height, 1, 1))
    _legend_and_key(fig, front, keys, strip / height)
    for axes, points in ((ax, front.claimed + front.measured), (low, [p for g in front.apart for p in g.points])):
        if axes is not None:
            axes.grid(alpha=0.3)
            axes.tick_params(labelsize=FONT_PT)
            axes.set_xlim(axes.get_xlim())  # frozen before labels are placed in pixels
            axes.set_ylim(axes.get_ylim())
            entry_labels(axes, points)
    return fig


def _draw_apart(low: Axes, groups: list[Group]) -> None:
    """The panel of reproduced figures that are no CIFAR-10 reproduction: its axis names their data."""
    low.set_label("apart")
    low.margins(y=0.25)  # a lone point at the panel's edge reads as cut off
    for (marker, colour), group in zip(APART * len(groups), groups):
        low.scatter([p[0] for p in group.points], [p[1] for p in group.points], marker=marker, color=colour)
    sources = {g.source for g in groups}
    where = f"on {sources.pop()}" if len(sources) == 1 else "by data source"
    low.set_ylabel(f"accuracy\n{where} (%)", fontsize=FONT_PT)
    count = sum(len(g.points) for g in groups)
    low.set_title(f"{count} drawn apart: not {'a reproduction' if count == 1 else 'reproductions'}", fontsize=FONT_PT)


def _key_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Entry numbers and names by report, e.g. `resnet10: 6 resnet10-onecycle, 7 resnet10-as-written`."""
    by_report: dict[str, list[str]] = {}
    for i, row in enumerate(entries, 1):
        by_report.setdefault(row["report"], []).append(f"{i}\u00a0{row['variant']}")  # a number stays by its name
    lines = [f"{report}: {', '.join(names)}" for report, names in by_report.items()]
    wrap = textwrap.TextWrapper(KEY_CHARS, subsequent_indent="    ", break_on_hyphens=False)
    return [part for line in lines for part in wrap.wrap(line)]


def _legend_and_key(fig: Figure, front: Front, keys: list[str], top: float) -> None:
    """The legend of what is drawn, and the key of entry numbers under it, below the plot."""
    handles = [Line2D([], [], linestyle="none", marker="o", markerfacecolor="none", markeredgecolor="tab:blue")]
    names = ["claimed (headline)"]
    if front.measured:
        handles.append(Line2D([], [], linestyle="none", marker="o", color="tab:red"))
        names.append("reproduced on official CIFAR-10, full budget (mean over seeds)")
    for (marker, colour), group in zip(APART * len(front.apart), front.apart):
        handles.append(Line2D([], [], linestyle="none", marker=marker, color=colour))
        names.append(group.legend)
    legend = fig.legend(handles, names, loc="upper left", bbox_to_anchor=(0.02, top), fontsize=FONT_PT, frameon=False)
    below = legend.get_window_extent(fig.canvas.get_renderer()).y0 / fig.bbox.height
    fig.text(0.03, below - 0.01, "\n".join(keys), fontsize=FONT_PT, va="top")


WORDS = {  # a claim's split and selection in its label; any other is written with spaces for hyphens
    **{"cifar10-test": "test", "validation-augmented": "augmented validation", "kaggle-hidden": "Kaggle hidden"},
    **{"best-val": "best-val", "best-epoch-test": "best test epoch", "test-early-stop": "stopped on test"},
    "unknown": "rule unknown",
}
ClaimLines = dict[tuple[str, str], list[tuple[str, float]]]  # (report, variant): [(label, accuracy %)]


def claim_lines(specs: Iterable[Spec]) -> ClaimLines:
    """Each variant's accuracy claims as lines for its learning curves, e.g. ("claim 89.03% (test, best-val)",
    89.03). Claim values are percentages already (Claim.problems refuses one above 100; a figure the report
    writes as a fraction, text "0.890332", is stored as 89.0332); claims whose labels agree, one figure stated
    at two precisions, make one line."""
    lines: ClaimLines = {}
    for spec in specs:
        for variant in spec.variants:
            found: dict[str, float] = {}
            for claim in spec.claims_for(variant):
                if claim.metric == "accuracy":
                    found.setdefault(_claim_label(claim), claim.value)
            if found:
                lines[(spec.name, variant)] = list(found.items())
    return lines


def _claim_label(claim: Claim) -> str:
    value = f"{round(claim.value, 2):g}" + ("" if claim.upper is None else f"-{round(claim.upper, 2):g}")
    split, selection = (WORDS.get(word, word.replace("-", " ")) for word in (claim.split, claim.selection))
    return f"claim {value}% ({split}, {selection})"


def _cohort_label(cohort: dict[str, Any]) -> str:
    """The protocol, budget and precision of a cohort for a file name, e.g. `common-reduced-e5-n4096`."""
    precision = "" if cohort.get("precision", "fp32") == "fp32" else f"-{cohort['precision']}"
    return file_label(cohort["protocol"], budget_name(cohort), cohort["epochs"], cohort["train_images"]) + precision


def learning_curves(records: list[Record], out: Path, claims: ClaimLines | None = None) -> list[Drawn]:
    """One PNG per cohort (identity.py): loss and accuracy per epoch, a colour per seed, and the variant's
    accuracy claims (claim_lines) as lines. Runs of another recipe, protocol, budget, data set or precision are
    never drawn together: their curves do not compare."""
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
        lines = (claims or {}).get((report, variant), [])
        fig = curves_figure(runs, lines)
        suffix = f"-{sha}" if labels[(report, variant, label)] > 1 else ""
        path = out / f"curves_{report}_{variant}_{label}{suffix}.png"
        write_figure(fig, path, dpi=fig.dpi)  # whole or absent, even on a full disk; and closed
        written.append(Drawn(path, curves_caption(runs, lines)))
    return written


# A series of two or more values is a line; of one, a marker alone, since a line through one point draws nothing.
SERIES = {  # history key: (legend name, line style, one-point style)
    "train_loss": ("training loss", {"marker": ".", "linestyle": "-"}, {"marker": "o", "linestyle": "none"}),
    "val_acc": ("validation", {"marker": ".", "linestyle": "-"}, {"marker": "o", "linestyle": "none"}),
    "test_acc_monitor": ("test (monitor only, --track-test)", {"linestyle": ":"}, {"marker": "x", "linestyle": "none"}),
}
CLAIM_COLOURS = ("black", "tab:purple", "tab:brown", "tab:olive", "tab:cyan", "tab:pink", "dimgray")


def curves_figure(runs: list[Record], claims: Sequence[tuple[str, float]] = ()) -> Figure:
    """Training loss (top) and accuracy (bottom) per epoch of one cohort's runs, a colour per seed, and a line
    per claim. The accuracy legend, under the plot, names only the series drawn, in the style drawn."""
    height = 4.3 + 0.21 * (len(claims) + 2)  # room for the legend under the plot
    fig, (loss_ax, acc_ax) = plt.subplots(2, 1, sharex=True, figsize=(WIDTH_IN, height), dpi=DPI, height_ratios=(2, 3))
    drawn: set[tuple[str, int]] = set()  # (history key, 1 for a line or 2 for points alone): SERIES index
    last = max([1, *(h["epoch"] for record in runs for h in record.history)])  # records count epochs from 1
    for n, record in enumerate(sorted(runs, key=lambda r: r.seed)):
        colour = f"C{n % 10}"
        _series(loss_ax, record, "train_loss", colour, f"seed {record.seed}")
        forms = {key: _series(acc_ax, record, key, colour) for key in ("val_acc", "test_acc_monitor")}
        drawn |= {(key, form) for key, form in forms.items() if form}
    loss_ax.set_ylabel("training loss", fontsize=FONT_PT)
    if loss_ax.lines:
        loss_ax.legend(fontsize=FONT_PT)
    acc_ax.set_ylabel("accuracy (%)", fontsize=FONT_PT)
    shown = sorted(drawn, key=lambda d: (list(SERIES).index(d[0]), d[1]))
    handles = [Line2D([], [], color="black", **SERIES[key][form]) for key, form in shown]
    names = [SERIES[key][0] for key, _ in shown]
    for n, (label, value) in enumerate(claims):  # two dash styles: claims a hair apart still both show
        style = {"color": CLAIM_COLOURS[n % len(CLAIM_COLOURS)], "linestyle": "--" if n % 2 else "-.", "linewidth": 1}
        acc_ax.axhline(value, **style)
        handles.append(Line2D([], [], **style))
        names.append(label)
    if claims:  # a claim of 100% is a line off the frame, not on it
        low, high = acc_ax.get_ylim()
        acc_ax.set_ylim(low, max(high, max(v for _, v in claims) + 0.04 * (high - low)))
    if not drawn:
        acc_ax.text(0.5, 0.5, "no accuracy per epoch recorded", ha="center", va="center", transform=acc_ax.transAxes)
    if handles:
        acc_ax.legend(handles, names, fontsize=FONT_PT, loc="upper left", bbox_to_anchor=(0, -0.22), frameon=False)
    for ax in (loss_ax, acc_ax):
        ax.set_xlim(0.5, last + 0.5)  # one epoch gets an axis around it, not a zero-width one
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=FONT_PT)
        ax.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)  # one epoch: tick 1 alone
    acc_ax.set_xlabel("epoch", fontsize=FONT_PT)
    fig.suptitle(_cohort_title(runs[0]), fontsize=FONT_PT)
    fig.tight_layout()
    return fig


def _cohort_title(first: Record) -> str:
    official = first.data.get("official") is True
    data = "official CIFAR-10" if official else f"{_data_name(first.data_source, short=True)}: {NOT_OFFICIAL}"
    return f"{first.report}/{first.variant}: {first.protocol} recipe, {budget_text(first.cohort)}\non {data}"


def curves_caption(runs: list[Record], claims: Sequence[tuple[str, float]]) -> str:
    """What curves_figure(runs, claims) shows, in sentences."""
    first, seeds = runs[0], ", ".join(str(r.seed) for r in sorted(runs, key=lambda r: r.seed))
    official = first.data.get("official") is True
    monitor = any(h.get("test_acc_monitor") is not None for r in runs for h in r.history)
    parts = [
        f"Training loss (top) and accuracy (bottom) per epoch of {first.report}/{first.variant}, {first.protocol} "
        f"recipe, at the {budget_text(first.cohort)} budget: {_count(len(runs), 'run', 'runs')} (seed {seeds}), "
        f"a colour per seed, on {'the official CIFAR-10 pixels' if official else _data_name(first.data_source)}.",
        f"Accuracy on the validation split{', and on the test set to monitor only (--track-test)' if monitor else ''}.",
    ]
    if claims:
        said = "; ".join(label.removeprefix("claim ") for label, _ in claims)
        parts.append(f"Horizontal lines: the report's accuracy claims for this variant, {said}.")
    if not official:
        parts.append(f"The data is {NOT_OFFICIAL}: these accuracies are not the official CIFAR-10 figure.")
    if budget_name(first.cohort) != "full":
        parts.append("Below the full budget: these runs reproduce no claim.")
    return " ".join(parts)


def _series(ax: Axes, record: Record, key: str, colour: str, label: str | None = None) -> int:
    """Draw one run's SERIES[key]: 1 when drawn as a line, 2 as a point alone, 0 when it has no value."""
    known = [(h["epoch"], h[key]) for h in record.history if h.get(key) is not None]
    if not known:
        return 0
    form = 1 if len(known) > 1 else 2
    ax.plot([e for e, _ in known], [v for _, v in known], color=colour, label=label, **SERIES[key][form])
    return form
