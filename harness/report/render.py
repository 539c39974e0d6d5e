"""A study's facts written out: Markdown (for a repository or a pull request), one self-contained HTML page
(plots embedded as data URIs, a sortable leaderboard, no network), and a LaTeX table of claims against
results with BibTeX for the reports, to paste into a paper. Jinja2 templates (templates/) hold the text;
this module only fills them and writes the files.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from harness.results.identity import budget_text

LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
LEADERBOARD = (  # (heading, row -> shown text, row -> sort key); the page sorts by the key
    ("report", lambda r: f"{r['report']} ({r['report_id']})", lambda r: r["report"]),
    ("variant", lambda r: r["variant"], lambda r: r["variant"]),
    ("claim %", lambda r: _fmt(r["claim_value"], "g"), lambda r: r["claim_value"]),
    ("acc % (n)", lambda r: _acc(r), lambda r: r["rule_acc_mean"]),
    ("Δ", lambda r: _fmt(r["delta"], "+.2f"), lambda r: r["delta"]),
    ("verdict", lambda r: r["verdict"], lambda r: r["verdict"]),
    ("params", lambda r: f"{r['params']:,}", lambda r: r["params"]),
    ("MACs (M)", lambda r: f"{r['macs'] / 1e6:.1f}", lambda r: r["macs"]),
    ("CPU b1 ms", lambda r: _fmt(r["cpu_latency_ms_b1"], ".2f"), lambda r: r["cpu_latency_ms_b1"]),
    ("budget", lambda r: budget_text(r) if r["epochs"] else "-", lambda r: r["epochs"]),
    ("data", lambda r: r["data_source"] or "-", lambda r: r["data_source"]),
)


@dataclass(frozen=True)
class Outputs:
    """Where one report's study goes, and what it draws on beyond the study's facts."""

    out: Path  # the report's folder
    plots: list[Path]  # PNGs already written under out/plots/
    leaderboard: list[dict[str, Any]]  # the rows the page's sortable table lists


def environment() -> Environment:
    """The Jinja2 environment of the templates: HTML escaped, a missing fact an error, LaTeX filters."""
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),  # select_autoescape sees only ".j2"
        undefined=StrictUndefined,  # a missing fact is an error, never an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(latex=latex, latex_url=latex_url, cell=markdown_cell, fmt=_fmt, pct=lambda v: _fmt(v, ".2f"))
    return env


def write_study(study: dict[str, Any], outputs: Outputs) -> list[Path]:
    """study.md, study.html, claims.tex and references.bib in `outputs.out`; returns their paths."""
    env = environment()
    plots = [
        {"name": p.stem, "path": p.relative_to(outputs.out).as_posix(), "data": _data_uri(p)} for p in outputs.plots
    ]
    board = [_board_row(row) for row in outputs.leaderboard]
    context = {"s": study, "plots": plots, "headings": [h for h, _, _ in LEADERBOARD], "board": board}
    files = {
        "study.md": env.get_template("study.md.j2").render(context),
        "study.html": env.get_template("study.html.j2").render({**context, "facts": json.dumps(_page_facts(study))}),
        "claims.tex": env.get_template("claims.tex.j2").render(context),
        "references.bib": env.get_template("references.bib.j2").render(context),
    }
    written = []
    for name, text in files.items():
        path = outputs.out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def latex(value: Any) -> str:
    """Text safe inside a LaTeX document."""
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(value))


def latex_url(value: Any) -> str:
    """An address safe inside \\url{}: its % and # escaped, braces and backslashes refused by the
    spec's own check never reach here."""
    return str(value).replace("%", r"\%").replace("#", r"\#")


def markdown_cell(value: Any) -> str:
    """Text safe in one Markdown table cell: its pipes escaped, its line breaks made spaces."""
    return " ".join(str(value).split()).replace("|", "\\|")


def _board_row(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"text": show(row), "key": key(row)} for _, show, key in LEADERBOARD]


def _page_facts(study: dict[str, Any]) -> dict[str, Any]:
    """What the page's script and a test may read back: counts, never prose."""
    return {"report": study["report"]["name"], "claims": len(study["claims"]), "runs": len(study["runs"])}


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _acc(row: dict[str, Any]) -> str:
    if row["rule_acc_mean"] is None:
        return "-"
    return f"{row['rule_acc_mean']:.2f} ({row['rule_n']})"


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_report(
    spec: Any, every_row: list[dict[str, Any]], records: list[Any], out: Path, listed: list[dict[str, Any]]
) -> list[Path]:
    """One report's study in `out/<report name>/`: its learning curves and the accuracy/size/compute
    fronts of every entry (PNG, under plots/), then the four files."""
    from harness.report.study import StudyInputs, build_study
    from harness.results.plot import learning_curves, pareto_plots

    study = build_study(StudyInputs(spec, every_row, records))
    folder = out / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    used = {run["record"] for run in study["runs"]}
    plots = learning_curves([r for r in records if r.record_path in used], folder / "plots")
    plots += pareto_plots(every_row, folder / "plots")
    return write_study(study, Outputs(folder, plots, listed))
