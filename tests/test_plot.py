"""Plots a reader can trust: labels that do not overlap, axes set by the claims, legends of what is drawn, no run
off the official CIFAR-10 pixels on a CIFAR-10 axis, text readable at the page's size, and a caption for each."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from harness.cli import main
from harness.results.identity import RESULTS_VERSION
from harness.results.plot import (
    claim_lines,
    curves_figure,
    entry_labels,
    learning_curves,
    pareto_caption,
    pareto_figure,
    pareto_plots,
)
from harness.results.record import Record
from harness.spec import load_specs
from tests.conftest import RECORDED, RECORDED_RECORD, SPECS_DIR

RECORD = RECORDED_RECORD  # a real run at the full budget on the JPEG copy, with the spec it ran under
JPEG = "cifar10-jpeg.tar.gz (JPEG image folders) (not the official CIFAR-10 pixels)"  # its data label
PAGE_PX = 520  # the study page's widest image


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def row(n: int, params: float, claim: float | None, acc: float | None, full: bool | None = True, **extra: Any) -> dict:
    """A leaderboard row (table.rows' keys): by default full budget on the official pixels."""
    ran = acc is not None
    return {
        "report": f"r{n}",
        "variant": "v",
        "role": "model",
        "params": params,
        "claim_value": claim,
        "test_acc_mean": acc,
        "n_seeds": 3 if ran else 0,
        "full_budget": full if ran else None,
        "official_data": True if ran else None,
        "data_source": "cifar10" if ran else None,
        "profile": "full" if full else "smoke",
        "epochs": 200 if full else 1,
        "train_images": None if full else 1024,
        "precision": "fp32",
        **extra,
    }


def run(seed: int, history: list[dict[str, Any]], official: bool = True) -> Record:
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
        data_source="cifar10" if official else JPEG,
        data={"source": "cifar10", "official": True} if official else {"source": JPEG.split(" (not")[0]},
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


def offsets(ax: Any) -> list[tuple[float, float]]:
    """Every point the axes' scatter collections draw (rounded: 0.2e6 params * 1e-6 is 0.19999999999999998)."""
    return [(round(float(x), 9), round(float(y), 9)) for c in ax.collections for x, y in c.get_offsets()]


def key_text(fig: Figure) -> str:
    return " ".join(" ".join(t.get_text().replace("\u00a0", " ").split()) for t in fig.texts)


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
    key = key_text(fig)
    assert "r1: 1 v" in key and "r6: 6 v" in key  # the numbered key under the plot


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
    main_ax, panel = fig.axes
    assert main_ax.get_label() == "main" and panel.get_label() == "apart"
    low, high = main_ax.get_ylim()
    assert 10.0 < low <= 90.0 and high >= 96.1  # the claims set the scale, not the smoke run
    main_ys = [y for _, y in offsets(main_ax)]
    assert 10.0 not in main_ys and 90.0 in main_ys and 95.8 in main_ys
    assert offsets(panel) == [(1.0, 10.0)]
    assert panel.get_title() == "1 drawn apart: not a reproduction"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "claimed (headline)",
        "reproduced on official CIFAR-10, full budget (mean over seeds)",
        "CIFAR-10, reduced (1 ep, 1,024 img)",  # the panel's point by its data and budget
    ]
    assert "3" in {t.get_text() for t in panel.texts}
    caption = pareto_caption(rows, "params")
    assert "reproduce no claim: 3 (r3/v, 3 seeds) at the reduced (1 ep, 1,024 img) budget" in caption


@pytest.mark.parametrize("official", [False, None], ids=["jpeg-copy", "data-not-said"])
def test_a_full_budget_run_off_the_official_pixels_is_never_on_the_cifar10_axes(official: bool | None) -> None:
    # like the committed record: the full 70 epochs on all images, on the JPEG copy
    jpeg = row(3, 0.2e6, 89.03, 85.16, official_data=official, data_source=JPEG)
    rows = [row(1, 4.7e6, 96.1, 95.8), row(2, 2.0e6, 93.0, 92.7), jpeg]
    fig = pareto_figure(rows, "params")
    fig.canvas.draw()
    main_ax = fig.axes[0]
    assert (0.2, 85.16) not in offsets(main_ax)  # never on the CIFAR-10 axes
    assert (0.2, 89.03) in offsets(main_ax)  # the claim stays: it is the report's own CIFAR-10 figure
    assert [offsets(ax) for ax in fig.axes[1:]] == [[(0.2, 85.16)]]  # in the panel, alone
    panel = fig.axes[1]
    assert "CIFAR-10" in main_ax.get_ylabel() and "CIFAR-10" not in panel.get_ylabel()
    assert panel.get_ylabel() == "accuracy\non cifar10-jpeg (%)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "cifar10-jpeg (not official CIFAR-10), full (200 ep, all img)" in legend
    caption = pareto_caption(rows, "params")
    assert "3 (r3/v, 3 seeds) at the full (200 ep, all img) budget on cifar10-jpeg.tar.gz" in caption
    assert "not the official CIFAR-10 figure" in caption


def test_the_recorded_jpeg_run_is_drawn_apart_from_the_leaderboard_it_makes(
    monkeypatch, recorded_spec: Path, tmp_path: Path
) -> None:
    import harness.results.table as table

    # sizes without building ten networks: the result columns are the real ones
    monkeypatch.setattr(table, "size_columns", lambda spec, name: {"params": 200_000, "role": spec.role(name)})
    specs, _ = load_specs([recorded_spec])
    record = Record.from_json(json.loads(RECORD.read_text()))
    board = table.rows(specs, [record], latency="none")
    (ran,) = [r for r in board if r["test_acc_mean"] is not None]
    assert (ran["variant"], ran["full_budget"], ran["official_data"]) == ("resnet12-grid", True, False)
    fig = pareto_figure(board, "params")
    assert round(ran["test_acc_mean"], 9) not in [y for _, y in offsets(fig.axes[0])]
    assert [[y for _, y in offsets(ax)] for ax in fig.axes[1:]] == [[round(ran["test_acc_mean"], 9)]]
    drawn, left_out = pareto_plots(board, tmp_path)
    assert [d.path.name for d in drawn] == ["pareto_params.png"]  # no MACs, no latency: left out, not empty
    assert "not the official CIFAR-10 figure" in drawn[0].caption
    assert "No entry was run at the full budget on the official CIFAR-10 pixels" in drawn[0].caption
    assert len(left_out) == 2


def test_full_budget_figures_need_no_panel(tmp_path: Path) -> None:
    rows = [row(1, 4.7e6, 96.1, 95.8), row(2, 2.0e6, 93.0, 92.7), row(3, 1.0e6, 90.0, None)]
    for r in rows:
        r.update(macs=r["params"] * 100, cpu_latency_ms_b1=r["params"] / 1e6)
    fig = pareto_figure(rows, "params")
    assert len(fig.axes) == 1
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["claimed (headline)", "reproduced on official CIFAR-10, full budget (mean over seeds)"]
    drawn, left_out = pareto_plots(rows, tmp_path)
    assert [d.path.name for d in drawn] == ["pareto_params.png", "pareto_macs.png", "pareto_latency.png"]
    assert left_out == []
    assert all(d.path.read_bytes()[:4] == b"\x89PNG" for d in drawn)
    assert drawn[0].caption.startswith("Accuracy against parameters (millions) of 3 entries")
    assert "drawn apart" not in drawn[0].caption and "CPU latency, batch 1 (ms)" in drawn[2].caption


def test_a_figure_with_nothing_to_draw_is_left_out_and_says_why(tmp_path: Path) -> None:
    rows = [row(1, 4.7e6, 96.1, 95.8, macs=None), row(2, 2.0e6, None, None, macs=3e8)]  # no latency at all
    drawn, left_out = pareto_plots(rows, tmp_path)
    assert [d.path.name for d in drawn] == ["pareto_params.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pareto_params.png"]  # nothing else written
    assert left_out == [
        "The accuracy against MACs figure (pareto_macs.png) is left out: no entry has a claimed or reproduced "
        "accuracy.",
        "The accuracy against CPU latency figure (pareto_latency.png) is left out: no entry has a CPU latency "
        "(run `harness measure` on a quiet machine).",
    ]


def shown_px(fig: Figure, text: Text) -> float:
    """How tall a text's font shows, in CSS pixels, where the page draws the figure PAGE_PX wide."""
    return text.get_fontsize() / 72 * fig.dpi * PAGE_PX / (fig.get_figwidth() * fig.dpi)


def written_texts(fig: Figure) -> list[Text]:
    fig.canvas.draw()
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def test_every_text_is_readable_at_the_width_the_page_shows() -> None:
    rows = [row(1, 4.7e6, 96.1, 95.8), row(2, 1.0e6, 90.0, 10.0, full=False)]
    rows.append(row(3, 2e6, 93.0, 80.0, official_data=False, data_source=JPEG))
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_acc": 50.0 + e} for e in range(1, 4)]
    curves = curves_figure([run(0, history), run(1, history)], [("claim 96.14% (test, last epoch)", 96.14)])
    for fig in (pareto_figure(rows, "params"), curves):
        texts = written_texts(fig)
        assert len(texts) > 15  # ticks, axis labels, legends, entry labels and the key were all found
        small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < 9]
        assert small == []  # 9 pt or more at the saved size
        assert min(shown_px(fig, t) for t in texts) >= 12.0  # and shown no smaller than 9 pt on a 96 px/in page


def test_claim_lines_are_each_variants_accuracy_claims_in_percent() -> None:
    specs, _ = load_specs([SPECS_DIR / "resnet10.toml", SPECS_DIR / "dmsresnet.toml"])
    lines = claim_lines(specs)
    # 89.03 and 89.0332 (written "0.890332" in the released log) are one figure: one line
    assert lines[("resnet10", "resnet12-grid")] == [
        ("claim 89.03% (test, best-val)", 89.03),
        ("claim 88% (test, rule unknown)", 88.0),
    ]
    assert lines[("dmsresnet", "as-coded")] == [
        ("claim 96.14% (test, last epoch)", 96.14),
        ("claim 96.3% (test, rule unknown)", 96.3),
        ("claim 52.9% (train mixed, last epoch)", 52.9),
        ("claim 86.9% (Kaggle hidden, last epoch)", 86.9),
    ]
    assert ("dmsresnet", "teacher") not in lines  # no accuracy claim: no line
    assert all(1 < value <= 100 for entries in lines.values() for _, value in entries)  # percent, never a fraction


def test_the_learning_curves_carry_a_line_per_claim_and_a_caption(tmp_path: Path) -> None:
    history = [{"epoch": e, "train_loss": 2 / e, "val_acc": 50 + e} for e in range(1, 4)]  # epochs count from 1
    runs = [run(seed, history, official=False) for seed in (0, 1)]
    claims = {("dmsresnet", "as-coded"): [("claim 96.14% (test, last epoch)", 96.14), ("claim 52.9% (x, y)", 52.9)]}
    (drawn,) = learning_curves(runs, tmp_path, claims=claims)
    assert drawn.path.name == "curves_dmsresnet_as-coded_reduced-e3-n4096.png" and drawn.path.exists()
    acc_ax = curves_figure(runs, claims[("dmsresnet", "as-coded")]).axes[1]
    flat = [line for line in acc_ax.lines if line.get_linestyle() in ("--", "-.")]  # dashed: the claims
    assert [list(line.get_ydata()) for line in flat] == [[96.14, 96.14], [52.9, 52.9]]  # across the whole axis
    assert acc_ax.get_ylim()[1] > 96.14  # the claim is in view, above curves that end near 52%
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert legend == ["validation", "claim 96.14% (test, last epoch)", "claim 52.9% (x, y)"]
    assert drawn.caption.startswith("Training loss (top) and accuracy (bottom) per epoch of dmsresnet/as-coded, own")
    for said in ("2 runs (seed 0, 1)", "reduced (3 ep, 4,096 img)", "this variant, 96.14% (test, last epoch)"):
        assert said in drawn.caption
    assert "cifar10-jpeg.tar.gz (JPEG image folders)" in drawn.caption
    assert "not the official CIFAR-10 figure" in drawn.caption and "reproduce no claim" in drawn.caption
    (official,) = learning_curves([run(0, history)], tmp_path / "official")
    assert "on the official CIFAR-10 pixels" in official.caption and "not the official" not in official.caption


def test_a_one_epoch_run_is_drawn_as_points_with_a_legend_to_match(tmp_path: Path) -> None:
    runs = [run(seed, [{"epoch": 1, "train_loss": 2.1, "val_acc": 30.0 + seed}]) for seed in (0, 1)]
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
    assert [d.path.name for d in learning_curves(runs, tmp_path)] == ["curves_dmsresnet_as-coded_reduced-e1-n4096.png"]


def test_a_longer_run_with_a_test_monitor_is_drawn_as_lines() -> None:
    history = [{"epoch": e, "train_loss": 2 / e, "val_acc": 50 + e, "test_acc_monitor": 49 + e} for e in range(1, 4)]
    fig = curves_figure([run(0, history)])
    acc_ax = fig.axes[1]
    assert [line.get_linestyle() for line in acc_ax.lines] == ["-", ":"]
    assert [list(line.get_xdata()) for line in acc_ax.lines] == [[1, 2, 3], [1, 2, 3]]  # the epochs as recorded
    legend = acc_ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["validation", "test (monitor only, --track-test)"]
    assert [h.get_linestyle() for h in legend.legend_handles] == ["-", ":"]


def test_a_single_test_monitor_point_is_drawn_and_named() -> None:
    history = [{"epoch": e, "train_loss": 1.0, "val_acc": 60 + e} for e in range(1, 4)]
    history[-1]["test_acc_monitor"] = 61.0  # tracked at the last epoch only
    acc_ax = curves_figure([run(0, history)]).axes[1]
    styles = [(line.get_linestyle(), line.get_marker()) for line in acc_ax.lines]
    assert styles == [("-", "."), ("None", "x")]
    legend = acc_ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["validation", "test (monitor only, --track-test)"]
    assert [(h.get_linestyle(), h.get_marker()) for h in legend.legend_handles] == styles


def test_plot_prints_what_it_wrote_and_notes_what_it_left_out(
    capsys, monkeypatch, recorded_spec: Path, tmp_path: Path
) -> None:
    import harness.results.table as table

    monkeypatch.setattr(table, "size_columns", lambda spec, name: {"params": 200_000, "role": spec.role(name)})
    out = tmp_path / "plots"
    args = ["plot", "--specs", str(recorded_spec), "--results", str(RECORDED)]
    assert main([*args, "--out", str(out), "--no-latency"]) == 0
    printed, err = capsys.readouterr()
    names = ["pareto_params.png", "curves_resnet10_resnet12-grid_full-e70-nall.png"]
    assert printed.split() == [str(out / name) for name in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    notes = [line for line in err.splitlines() if line.startswith("harness: note: The accuracy against")]
    assert [n.split("(")[1].split(")")[0] for n in notes] == ["pareto_macs.png", "pareto_latency.png"]
