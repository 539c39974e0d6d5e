"""Plots a reader can trust: labels that do not overlap, axes set by the claims, legends of what is drawn."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.text import Text

from harness.results.identity import RESULTS_VERSION
from harness.results.plot import BELOW_NOTE, curves_figure, entry_labels, learning_curves, pareto_figure, pareto_plots
from harness.results.record import Record


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def row(n: int, params: float, claim: float | None, acc: float | None, full: bool | None = True, **extra: Any) -> dict:
    return {
        "report": f"r{n}",
        "variant": "v",
        "role": "model",
        "params": params,
        "claim_value": claim,
        "test_acc_mean": acc,
        "full_budget": full if acc is not None else None,
        "profile": "full" if full else "smoke",
        "epochs": 200 if full else 1,
        "train_images": 45_000,
        "precision": "fp32",
        **extra,
    }


def run(seed: int, history: list[dict[str, Any]]) -> Record:
    identity = {
        "protocol": "own",
        "full_budget": False,
        "epochs": len(history),
        "train_images": 4096,
        "precision": "fp32",
    }
    return Record(
        report="dmsresnet",
        variant="as-coded",
        seed=seed,
        profile="smoke",
        status="complete",
        spec_hash="abc",
        identity={**identity, "seed": seed, "results_version": RESULTS_VERSION},
        run_id=f"run{seed}",
        budget={"epochs": len(history), "train_images": 4096},
        data_source="cifar10",
        history=history,
    )


def boxes(labels: list[Text]) -> list:
    renderer = labels[0].figure.canvas.get_renderer()
    return [label.get_window_extent(renderer) for label in labels]


def overlapping(labels: list[Text]) -> list[tuple[str, str]]:
    pairs = itertools.combinations(zip(labels, boxes(labels), strict=True), 2)
    return [(a.get_text(), b.get_text()) for (a, box_a), (b, box_b) in pairs if box_a.overlaps(box_b)]


def numbers(labels: list[Text]) -> list[int]:
    return sorted(int(n) for label in labels for n in label.get_text().split(","))


def test_labels_of_points_a_few_pixels_apart_merge_and_none_overlap() -> None:
    # 1 and 2: one network size, claims 0.05 points apart (a pixel or two); 3 and 4: sizes a hair apart
    rows = [
        row(1, 4.7e6, 96.10, 95.0),
        row(2, 4.7e6, 96.15, 94.0),
        row(3, 2.00e6, 93.0, 92.5),
        row(4, 2.02e6, 93.1, None),
        row(5, 9.0e6, 97.0, 96.9),
        row(6, 0.5e6, 90.0, 89.0),
    ]
    fig = pareto_figure(rows, "params")
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t for t in ax.texts]
    assert labels and overlapping(labels) == []
    texts = {label.get_text() for label in labels}
    assert {"1,2", "3,4"} <= texts  # merged, not printed over each other
    merged = next(label for label in labels if label.get_text() == "1,2")
    assert merged.xy == pytest.approx((4.7, 96.125))  # at the two claims, between them
    count = Counter(numbers(labels))
    assert set(count) == {1, 2, 3, 4, 5, 6}  # every entry keeps its number
    assert count[5] == 1  # claim and reproduction 0.1 apart: one label for both
    key = " ".join(t.get_text() for t in fig.texts)
    assert " 1  r1/v" in key and " 6  r6/v" in key  # the numbered key beside the plot


def test_a_crowd_of_points_gets_labels_that_do_not_overlap() -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    points = [(1.0 + 0.04 * k, 90.0 + 0.15 * (k % 4), k + 1) for k in range(24)]  # a dense cloud
    points += [(3.0, 80.0, 25), (3.0, 80.0, 26)]  # coincident
    ax.scatter([p[0] for p in points], [p[1] for p in points])
    ax.set_xlim(0.5, 3.5)
    ax.set_ylim(79, 91)
    labels = entry_labels(ax, points)
    fig.canvas.draw()
    assert overlapping(labels) == []
    assert numbers(labels) == list(range(1, 27))  # each number once, none lost in a merge
    assert "25,26" in {label.get_text() for label in labels}
    assert len(labels) < len(points)


def test_far_apart_points_keep_their_own_labels() -> None:
    _, ax = plt.subplots(figsize=(6, 4), dpi=120)
    points = [(1.0, 90.0, 1), (2.0, 92.0, 2), (3.0, 94.0, 3)]
    ax.set_xlim(0, 4)
    ax.set_ylim(85, 95)
    labels = entry_labels(ax, points)
    assert sorted(label.get_text() for label in labels) == ["1", "2", "3"]


def test_a_below_budget_point_does_not_stretch_the_main_axes() -> None:
    rows = [
        row(1, 4.7e6, 96.1, 95.8),
        row(2, 2.0e6, 93.0, 92.7),
        row(3, 1.0e6, 90.0, 10.0, full=False),  # a one-epoch smoke run
        row(4, 8.0e6, 95.0, None),
    ]
    fig = pareto_figure(rows, "params")
    fig.canvas.draw()
    main, panel = fig.axes
    assert main.get_label() == "main" and panel.get_label() == "below budget"
    low, high = main.get_ylim()
    assert 10.0 < low <= 90.0 and high >= 96.1  # the claims set the scale, not the smoke run
    main_ys = [y for c in main.collections for _, y in c.get_offsets()]
    assert 10.0 not in main_ys and 90.0 in main_ys and 95.8 in main_ys
    assert [tuple(p) for c in panel.collections for p in c.get_offsets()] == [(1.0, 10.0)]
    assert BELOW_NOTE in panel.get_title(loc="left") and panel.get_title(loc="left").startswith("1 ")
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "reproduced (mean over seeds)" in legend and BELOW_NOTE in legend
    key = " ".join(" ".join(t.get_text().split()) for t in fig.texts)
    assert "never a reproduction" in key  # below-budget runs are never presented as reproductions
    assert "3" in {t.get_text() for t in panel.texts}


def test_full_budget_figures_need_no_panel(tmp_path: Path) -> None:
    rows = [row(1, 4.7e6, 96.1, 95.8), row(2, 2.0e6, 93.0, 92.7), row(3, 1.0e6, 90.0, None)]
    fig = pareto_figure(rows, "params")
    assert len(fig.axes) == 1
    key = " ".join(t.get_text() for t in fig.texts)
    assert "never a reproduction" not in key
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["claimed (headline)", "reproduced (mean over seeds)"]
    written = pareto_plots(rows, tmp_path)
    assert [p.name for p in written] == ["pareto_params.png", "pareto_macs.png", "pareto_latency.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_a_one_epoch_run_is_drawn_as_points_with_a_legend_to_match(tmp_path: Path) -> None:
    runs = [run(seed, [{"epoch": 0, "train_loss": 2.1, "val_acc": 30.0 + seed}]) for seed in (0, 1)]
    fig = curves_figure(runs)
    loss_ax, acc_ax = fig.axes
    for ax in (loss_ax, acc_ax):
        assert len(ax.lines) == 2
        for line in ax.lines:
            assert line.get_linestyle() == "None" and line.get_marker() not in (None, "None", "")
        low, high = ax.get_xlim()
        assert low < 1 < high and high - low >= 1  # the point sits inside a readable axis
        assert 1 in ax.get_xticks() and all(float(t).is_integer() for t in ax.get_xticks())
    legend = acc_ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["validation"]  # no test monitor entry
    (handle,) = legend.legend_handles
    assert handle.get_linestyle() == "None" and handle.get_marker() == acc_ax.lines[0].get_marker()
    loss_handles = loss_ax.get_legend().legend_handles
    assert [h.get_linestyle() for h in loss_handles] == ["None", "None"]
    assert [t.get_text() for t in loss_ax.get_legend().get_texts()] == ["seed 0", "seed 1"]
    assert [p.name for p in learning_curves(runs, tmp_path)] == ["curves_dmsresnet_as-coded_reduced-e1-n4096.png"]


def test_a_longer_run_with_a_test_monitor_is_drawn_as_lines() -> None:
    history = [{"epoch": e, "train_loss": 2 / (e + 1), "val_acc": 50 + e, "test_acc_monitor": 49 + e} for e in range(3)]
    fig = curves_figure([run(0, history)])
    acc_ax = fig.axes[1]
    assert [line.get_linestyle() for line in acc_ax.lines] == ["-", ":"]
    legend = acc_ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["validation", "test (monitor only, --track-test)"]
    assert [h.get_linestyle() for h in legend.legend_handles] == ["-", ":"]


def test_a_single_test_monitor_point_is_drawn_and_named() -> None:
    history = [{"epoch": e, "train_loss": 1.0, "val_acc": 60 + e} for e in range(3)]
    history[-1]["test_acc_monitor"] = 61.0  # tracked at the last epoch only
    acc_ax = curves_figure([run(0, history)]).axes[1]
    styles = [(line.get_linestyle(), line.get_marker()) for line in acc_ax.lines]
    assert styles == [("-", "."), ("None", "x")]
    legend = acc_ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["validation", "test (monitor only, --track-test)"]
    assert [(h.get_linestyle(), h.get_marker()) for h in legend.legend_handles] == styles
