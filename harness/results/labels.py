"""Entry numbers placed beside the points of a plot, none overlapping another (plot.py's fronts)."""

from __future__ import annotations

import math

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.text import Annotation

FONT_PT = 9.0  # as plot.FONT_PT: the smallest text a figure shows at the page's width
Point = tuple[float, float, int]  # x, y, entry number

MERGE_PT = 6.0  # points nearer than a marker's width read as one: they share a label
OFFSETS = (  # where a label may go, in points from its points' centre, in order of preference
    *((5, 3, "left", "bottom"), (5, -3, "left", "top"), (-5, 3, "right", "bottom"), (-5, -3, "right", "top")),
    *((0, 7, "center", "bottom"), (0, -7, "center", "top")),
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
        for offset in OFFSETS:
            label = _label(ax, text, centre, offset)
            box = label.get_window_extent(renderer).padded(1)
            hits = [k for k, other in enumerate(boxes) if box.overlaps(other)]
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if not hits and inside:
                break
            blocker = hits[0] if hits and blocker is None else blocker
            free = free or (None if hits else offset)
            label.remove()
        else:
            if free is None:  # every place beside it is taken: merge with a label in its way
                return labels, (g, blocker)
            label = _label(ax, text, centre, free)  # the only free places run past the axes' edge: better than a merge
            box = label.get_window_extent(renderer).padded(1)
        labels.append(label)
        boxes.append(box)
    return labels, None


def _label(ax: Axes, text: str, centre: tuple[float, float], offset: tuple[int, int, str, str]) -> Annotation:
    dx, dy, ha, va = offset
    return ax.annotate(text, centre, xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=FONT_PT)
