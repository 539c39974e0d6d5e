"""claims.tex and references.bib as pasted into a paper: a minimal `article` inputs the table and cites the
report from the BibTeX file (plainnat), pdflatex, bibtex, pdflatex, pdflatex compile it with no error, no
warning and no overfull line, and the PDF shows every field as written: the title's capitals kept, and
TeX's special characters printed, never run. CI installs TeX Live (.ci/run) and sets
HARNESS_REQUIRE_LATEX=1, so these tests never skip there."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from tests.conftest import RECORDED, RECORDED_RECORD, resnet10_as_recorded

RECORD = RECORDED_RECORD  # a real 70-epoch run, with the spec it ran under (recorded_spec)
TOOLS = ("pdflatex", "bibtex", "pdftoppm", "pdftotext")  # Debian: texlive-latex-*, poppler-utils
NEEDS_LATEX = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in TOOLS) and os.environ.get("HARNESS_REQUIRE_LATEX") != "1",
    reason="no pdflatex, bibtex or poppler here (.ci/run installs them; CI sets HARNESS_REQUIRE_LATEX=1: no skip)",
)
# Every character TeX or BibTeX reads as markup, a brace that pairs with none (BibTeX needs a field's braces
# balanced), a command that must print, not run, what OT1 would print as other glyphs, a ligature, and
# brackets and parentheses (natbib parses the author(year) label of \bibitem[...]).
HOSTILE = r"\{ $ & # ^ _ ~ % \textbf{x} <a|b> [c] (d) e--f"
AUTHORS = f"'Arushi {{ Arora(s)', 'Saaketh }} Koundinya and Co, Jr', '{HOSTILE} Agarwal'"  # a comma, an "and"
PAPER = r"""\documentclass{article}
%(fonts)s
\usepackage{booktabs}
\usepackage{tabularx}
\usepackage{natbib}
\usepackage{url}
\tracinglostchars=2
\begin{document}
\input{claims}
\clearpage
As \citet{%(key)s} report.
\bibliographystyle{plainnat}
\bibliography{references}
\end{document}
"""
TIMES = r"\usepackage[T1]{fontenc}\usepackage{mathptmx,courier}"  # T1: _ < > | are glyphs that pdftotext reads
# What matters in the last pdflatex log: an error, any LaTeX or package warning (an undefined citation, a
# float too large for the page, a missing font shape), a line wider than the text, a character dropped.
LOG_PROBLEMS = re.compile(r"^(!.*|.*(?i:warning).*|Overfull \\[hv]box.*|Missing character.*)$", re.MULTILINE)


def _report(spec: Path, results: Path, out: Path, *specs: str) -> Path:
    argv = ["report", str(spec), *specs, "--results", str(results), "--out", str(out), "--no-latency"]
    assert main(argv) == 0
    return out / "resnet10"


def _compile(study: Path, work: Path, fonts: str = "") -> tuple[str, str]:
    """The paper compiled in `work` as a user would: the PDF's text and the .bbl BibTeX wrote."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, f"{', '.join(missing)} not installed: .ci/run installs TeX Live and poppler-utils"
    work.mkdir()
    for name in ("claims.tex", "references.bib"):
        shutil.copy(study / name, work / name)
    key = re.match(r"@misc\{([^,]+),", (study / "references.bib").read_text()).group(1)
    (work / "paper.tex").write_text(PAPER % {"fonts": fonts, "key": key})
    # -no-mktex: a font that has no Type 1 outline is an error here, never a bitmap made on the fly
    latex = ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "-no-mktex=pk", "-no-mktex=tfm", "paper"]
    for command in (latex, ["bibtex", "paper"], latex, latex):
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout[-3000:]}"  # bibtex: 1 on a warning
    blg = (work / "paper.blg").read_text()
    assert not re.search(r"warning|error", blg.replace("warning$", ""), re.IGNORECASE), blg
    problems = LOG_PROBLEMS.findall((work / "paper.log").read_text(encoding="latin-1"))
    assert not problems, "\n".join(problems)
    text = subprocess.run(["pdftotext", "paper.pdf", "-"], cwd=work, capture_output=True, text=True, check=True)
    return text.stdout, (work / "paper.bbl").read_text()


def _flat(text: str) -> str:
    """Text as one line: a word hyphenated at a line end joined again."""
    return " ".join(re.sub(r"-\n", "", text).split())


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, recorded_spec: Path) -> Path:
    return _report(recorded_spec, RECORDED, tmp_path_factory.mktemp("studies"))


@NEEDS_LATEX
def test_the_study_compiles_in_a_minimal_article_and_its_table_fits_the_page(study: Path, tmp_path: Path) -> None:
    text, bbl = _compile(study, tmp_path / "paper")  # fails on an overfull line: a table wider than the text
    title = "Optimizing CIFAR10 Image Classification with Modified ResNet Architecture under Parameter Constraints"
    assert title in " ".join(bbl.split())  # braced: plainnat keeps the capitals of the title as written
    assert all(word in _flat(text) for word in title.split())
    assert "resnet12-grid" in text and "85.16" in text and "Arora et al." in text
    page_1 = ["pdftoppm", "-r", "50", "-png", "-singlefile", "paper.pdf", "page"]  # the table's page (\clearpage)
    subprocess.run(page_1, cwd=tmp_path / "paper", check=True, timeout=60)
    page = np.asarray(Image.open(tmp_path / "paper/page.png").convert("L"))
    assert page.shape[0] > page.shape[1] > 400 and (page < 200).mean() > 0.01  # drawn (3.5% of A4), not blank


@NEEDS_LATEX
def test_special_characters_in_every_field_print_as_written(tmp_path: Path) -> None:
    spec = resnet10_as_recorded()
    edits = (  # TOML literal strings: the backslashes are the text's own
        (r'(?m)^title = "(.*)"$', lambda m: f"title = '{HOSTILE} {m[1]}'"),
        (r"(?m)^authors = \[.*\]$", lambda m: f"authors = [{AUTHORS}]"),
        (r'(?m)^text = "89\.03%"$', lambda m: f"text = '89.03% {HOSTILE}'"),
    )
    for pattern, edit in edits:
        spec, count = re.subn(pattern, edit, spec, count=1)
        assert count == 1, f"resnet10.toml has no line {pattern}"
    (tmp_path / "resnet10.toml").write_text(spec, encoding="utf-8")
    record = json.loads(RECORD.read_text())
    record["data"]["source"] = f"cifar10 {HOSTILE}"  # a record's field reaches the caption
    copy = tmp_path / "results" / RECORD.relative_to(RECORDED)
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps(record))
    spec_file = tmp_path / "resnet10.toml"
    study = _report(spec_file, tmp_path / "results", tmp_path / "out", "--specs", str(spec_file))
    text, bbl = _compile(study, tmp_path / "paper", TIMES)
    flat = " ".join(text.split())
    assert f"89.03% {HOSTILE}; cifar10-test" in flat  # the claim's text, in the table
    assert f"runs on cifar10 {HOSTILE}: not the official" in flat  # the record's data source, in the caption
    assert f"Arushi {{ Arora(s), Saaketh }} Koundinya and Co, Jr, and {HOSTILE} Agarwal." in flat  # three authors
    assert f"{HOSTILE} Optimizing CIFAR10 Image Classification" in flat  # the title, its case kept
    assert "As Arora(s) et al. [2023] report." in flat  # the first author's last name, and the year


def test_latex_escapes_each_field_so_that_it_prints_as_written() -> None:
    from harness.report.render import latex

    assert latex("a <b|c>\n\n{d}") == r"a \textless{}b\textbar{}c\textgreater{} \{d\}"  # OT1 would print ¡ — ¿
    assert latex("{x} \\ 5%", "bibtex") == r"{\textbraceleft}x{\textbraceright} {\textbackslash} 5{\%}"  # paired
    assert latex("\\LaTeX", "bibtex-title") == r"{{\textbackslash}LaTeX}"  # one group, not a special character
    assert latex("Smith and Sons, Ltd", "bibtex-name") == "Smith {and} Sons{,} Ltd"  # one author, not two
    assert latex("[x] (y) a--b") == r"{[}x{]} (y) a-{}-b" and latex("(y)", "bibtex") == "{(}y{)}"


@NEEDS_LATEX
def test_a_sequential_verdict_prints_its_alpha(tmp_path: Path, capsys, monkeypatch) -> None:
    """The study's sequential verdict says α: pdflatex has no glyph for a Unicode α, so the table must spell it."""
    from tests.conftest import REPO, SPECS_DIR
    from tests.test_sequential import KD_SEEDS, _kd_table

    monkeypatch.chdir(REPO)
    _kd_table(tmp_path / "runs", KD_SEEDS, capsys)
    _report(SPECS_DIR / "dmsresnet.toml", tmp_path / "runs", tmp_path / "studies")
    text, _ = _compile(tmp_path / "studies" / "dmsresnet", tmp_path / "paper")
    assert "decided after 5 seeds (sequential, α = 0.05)" in _flat(text)
