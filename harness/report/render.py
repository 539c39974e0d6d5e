"""A study's facts written out: Markdown (for a repository or a pull request), one self-contained HTML page
(plots embedded as data URIs, a sortable leaderboard, no network), and a LaTeX table of claims against
results with BibTeX for the reports, to paste into a paper. Jinja2 templates (templates/) hold the text;
this module only fills them and writes the files.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from harness.common.files import atomic_write_text
from harness.results.table import REFERENCES, WIDE
from harness.results.validate import json_text

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
BOARD = (  # (table.py's wide column, row -> sort key): the cells are the table's own, the page only sorts them
    ("report", lambda r: r["report"]),
    ("variant", lambda r: r["variant"]),
    ("claim", lambda r: r["claim_value"]),
    ("rule", lambda r: r["rule_acc_mean"]),
    ("delta", lambda r: r["delta"]),
    ("verdict", lambda r: r["verdict"]),
    ("params", lambda r: r["params"]),
    ("macs", lambda r: r["macs"]),
    ("cpu", lambda r: r["cpu_latency_ms_b1"]),
    ("profile", lambda r: r["epochs"]),
    ("data", lambda r: r["data_source"]),
)
MARKDOWN_SPECIALS = re.compile(r"([\\`*_\[\]|<>#!~&])")  # characters Markdown (GFM) reads as markup
MARKDOWN_ENTITIES = {"<": "&lt;", ">": "&gt;", "&": "&amp;"}
SAFE_URL = re.compile(r"^https?://[^\s<>()\[\]{}\\\"'`|]+$")  # what a link may point to (spec.report checks the same)


class MarkdownSafe(str):
    """Text already written as Markdown (a link, a code span): the Markdown environment leaves it as it is."""


@dataclass(frozen=True)
class Outputs:
    """Where one report's study goes, and what it draws on beyond the study's facts."""

    out: Path  # the report's folder
    figures: list[dict[str, Any]]  # {"path", "caption"} of the PNGs already written under out/plots/
    left_out: list[str]  # a sentence for each figure left out, saying why
    leaderboard: list[dict[str, Any]]  # the rows the page's sortable table lists
    links: dict[str, dict[str, str]]  # report name -> its paper, code and study addresses


def environment(kind: str = "html") -> Environment:
    """The Jinja2 environment of one output kind, a missing fact an error: HTML autoescaped; Markdown with
    every value escaped as it is written (finalize), so that no field of a spec or record can start a
    table cell, a link, a heading or a tag; LaTeX and BibTeX through their filters."""
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=kind == "html",
        finalize=markdown if kind == "markdown" else None,
        undefined=StrictUndefined,  # a missing fact is an error, never an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        latex=latex, latex_url=latex_url, fmt=_fmt, pct=lambda v: _fmt(v, ".2f"), signed=lambda v: _fmt(v, "+.2f"),
        url=safe_url, link=markdown_link, code=markdown_code,
    )  # fmt: skip
    return env


def write_study(study: dict[str, Any], outputs: Outputs) -> list[Path]:
    """study.md, study.html, claims.tex and references.bib in `outputs.out`; returns their paths. Each file
    is written whole or not at all."""
    plots = [
        {"name": Path(f["path"]).stem, "path": MarkdownSafe(Path(f["path"]).relative_to(outputs.out).as_posix()),
         "data": _data_uri(Path(f["path"])), "caption": f["caption"]}  # fmt: skip
        for f in outputs.figures
    ]
    board = [_board_row(row, outputs.links) for row in outputs.leaderboard]
    context = {"s": study, "plots": plots, "left_out": outputs.left_out, "headings": [WIDE[k][0] for k, _ in BOARD],
               "board": board}  # fmt: skip
    facts = json_text(_page_facts(study, board), indent=None)  # strict: NaN is not JSON a browser parses
    files = {
        "study.md": environment("markdown").get_template("study.md.j2").render(context),
        "study.html": environment("html").get_template("study.html.j2").render({**context, "facts": facts}),
        "claims.tex": environment("latex").get_template("claims.tex.j2").render(context),
        "references.bib": environment("latex").get_template("references.bib.j2").render(context),
    }
    written = []
    for name, text in files.items():
        path = outputs.out / name
        atomic_write_text(path, text)  # whole or absent: a full disk leaves no page cut off mid-image
        written.append(path)
    return written


LATEX_TEXT_SPECIALS = {  # beyond LATEX_SPECIALS: what OT1 (LaTeX's default encoding) prints as ¡ ¿ —, and
    "<": r"\textless{}",  # brackets, which end an optional argument (\bibitem[...], a row's \\[...])
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "[": "{[}",
    "]": "{]}",
    "α": r"\ensuremath{\alpha}",  # pdflatex has no glyph for a Unicode α in text
}
# In a BibTeX field every brace must pair up, so a brace of the text is a command (\{ would open a group),
# and each escape is one braced "special character" ({\cs}): BibTeX's case changes, sorting and name
# splitting keep it whole, and LaTeX prints the original character.
BIBTEX_SPECIALS = {
    ch: "{" + escaped.removesuffix("{}") + "}" if escaped.startswith("\\") else escaped
    for ch, escaped in {
        **LATEX_SPECIALS,
        **LATEX_TEXT_SPECIALS,
        "{": r"\textbraceleft{}",
        "}": r"\textbraceright{}",
        "(": "{(}",  # natbib reads the label BibTeX writes as author(year): a name's own parentheses hidden
        ")": "{)}",
    }.items()
}
LIGATURES = ("-`',!?", "-`',")  # a pair of these would print as one glyph (-- – , `` “ , ,, „ , ?` ¿): split


def latex(value: Any, field: str = "text") -> str:
    """Text safe where it goes, printing as written: `text`, in a LaTeX document (a comment line too);
    `bibtex`, in a BibTeX field; `bibtex-title`, the same, braced so that no style changes its case;
    `bibtex-name`, one author of an `author` field (its commas and a word "and" no separator)."""
    text = " ".join(str(value).split())  # a line break would end a comment; a blank line, a table cell
    specials = {**LATEX_SPECIALS, **LATEX_TEXT_SPECIALS} if field == "text" else BIBTEX_SPECIALS
    escaped = "".join(
        specials.get(ch, ch) + ("{}" if ch in LIGATURES[0] and after and after in LIGATURES[1] else "")
        for ch, after in zip(text, [*text[1:], ""], strict=True)
    )
    if field in ("text", "bibtex"):
        return escaped
    if field == "bibtex-title":
        return "{" + escaped + "}"  # inside {{...}}: a group opening "{\" would be a special character, case-changed
    if field == "bibtex-name":
        return " ".join("{and}" if word.lower() == "and" else word for word in escaped.split(" ")).replace(",", "{,}")
    raise ValueError(f"latex: no field {field!r} (text, bibtex, bibtex-title, bibtex-name)")


def latex_url(value: Any) -> str:
    """An address safe inside \\url{}: its % and # escaped, braces and backslashes refused by the
    spec's own check never reach here."""
    return str(value).replace("%", r"\%").replace("#", r"\#")


def markdown(value: Any) -> str:
    """Any value as Markdown text that reads as itself: one line, every markup character escaped."""
    if value is None:
        return ""
    if isinstance(value, MarkdownSafe):
        return value
    text = " ".join(str(value).split())  # a line break would end a table row
    return MARKDOWN_SPECIALS.sub(lambda m: MARKDOWN_ENTITIES.get(m.group(1), "\\" + m.group(1)), text)


def safe_url(value: Any) -> str:
    """An http(s) address fit to be a link, else the empty string: a page never links anywhere else."""
    text = str(value or "")
    return text if SAFE_URL.match(text) else ""


def markdown_link(url: Any, text: Any = None) -> MarkdownSafe:
    """`[text](url)` for an http(s) address; the escaped text alone for anything else."""
    address = safe_url(url)
    shown = markdown(text if text is not None else url)
    return MarkdownSafe(f"[{shown}]({address})" if address else shown)


def markdown_code(value: Any) -> MarkdownSafe:
    """A code span holding `value` verbatim: fenced by one more backtick than the longest run inside."""
    text = " ".join(str(value).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return MarkdownSafe(f"{fence}{pad}{text}{pad}{fence}")


def _board_row(row: dict[str, Any], links: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {
        "cells": [{"text": WIDE[key][1](row), "key": sort(row)} for key, sort in BOARD],
        "ran": row["rule_n"] > 0 or row["n_seeds"] > 0,
        "links": links.get(row["report"], {}),
    }


def _page_facts(study: dict[str, Any], board: list[dict[str, Any]]) -> dict[str, Any]:
    """What the page's script and a test may read back: counts, never prose."""
    return {"report": study["report"]["name"], "claims": len(study["claims"]), "runs": len(study["runs"]),
            "board_rows": len(board), "board_rows_run": sum(row["ran"] for row in board)}  # fmt: skip


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_report(spec: Any, every_row: list[dict[str, Any]], records: list[Any], out: Path, board: Board) -> list[Path]:
    """One report's study in `out/<report name>/`: its learning curves (the claims drawn on them) and the
    accuracy/size/compute fronts of every entry (PNG, under plots/), then the four files."""
    from harness.report.study import StudyInputs, build_study
    from harness.results.plot import claim_lines, learning_curves, pareto_plots

    study = build_study(StudyInputs(spec, every_row, records, writer()))
    folder = out / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    used = {path for row in every_row if row["report"] == spec.name for path in row["records_used"]}
    curves = learning_curves([r for r in records if r.record_path in used], folder / "plots", claims=claim_lines([spec]))
    fronts, left_out = pareto_plots(every_row, folder / "plots")
    figures = [{"path": d.path, "caption": d.caption} for d in [*curves, *fronts]]
    return write_study(study, Outputs(folder, figures, left_out, board.rows, board.links))


@dataclass(frozen=True)
class Board:
    """The leaderboard the study page lists, and each report's addresses (paper, code, its study's page)."""

    rows: list[dict[str, Any]]
    links: dict[str, dict[str, str]]


def board_of(specs: list[Any], rows: list[dict[str, Any]]) -> Board:
    """The page's leaderboard of `rows`, each report linked to its paper, code and study (a sibling folder
    of the study that lists it, where `harness report` writes each report's study)."""
    links = {
        s.name: {
            "paper": safe_url(s.report.url),
            "code": safe_url(s.report.code_url),
            "study": "" if s.path.parent.name == REFERENCES else f"../{s.name}/study.html",  # no study of a reference
        }
        for s in specs
    }
    return Board(rows, links)


def writer() -> dict[str, Any]:
    """The harness that writes a study: its commit, its libraries' versions and the date (the appendix)."""
    from harness.common.environment import git_state, versions

    return {**git_state(Path(__file__).parent), "versions": versions(), "date": datetime.now(UTC).date().isoformat()}
