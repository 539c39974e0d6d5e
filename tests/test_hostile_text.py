"""Hostile text stays text: one spec and one record whose fields hold markup of every format the study is
written in (HTML tags and handlers, Markdown links, emphasis, table pipes and line breaks, LaTeX commands)
go through `harness report`; in Markdown (rendered by markdown-it, raw HTML allowed, as GitHub's renderer
allows some), HTML and LaTeX no tag, link, table row or command escapes, and the text reads as written."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from harness.cli import main
from tests.conftest import RECORDED_RECORD, resnet10_as_recorded

RECORD = RECORDED_RECORD
HOSTILE = (
    "x</td><script>alert(1)</script> [link](javascript:alert(1)) <img src=x onerror=alert(1)>\n"
    "| row | **bold** `tick` # h \\textbf{x} $&_^~%{"
)
SHOWN = " ".join(HOSTILE.split())  # one line: a line break would end a table row
FORBIDDEN_HTML = ("<script>alert", "<img src=x", 'href="javascript', "<strong>bold", "<code>tick")


def _toml(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string: quotes, backslashes and newlines escaped


@pytest.fixture(scope="module")
def hostile_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    spec = resnet10_as_recorded()
    spec = re.sub(r'^title = ".*"$', lambda _: f"title = {_toml(HOSTILE)}", spec, count=1, flags=re.MULTILINE)
    spec = spec.replace('authors = ["Arushi Arora"', f'authors = [{_toml(HOSTILE)}', 1)
    spec = re.sub(
        r'^communication = ".*"$', lambda _: f"communication = {_toml(HOSTILE)}", spec, count=1, flags=re.MULTILINE
    )
    spec = spec.replace('text = "89.74%"', f"text = {_toml(HOSTILE)}", 1)  # an untested claim: the appendix
    assert spec.count(HOSTILE.replace("\\", "\\\\").replace("\n", "\\n")[:20]) == 4
    (root / "resnet10.toml").write_text(spec)
    record = json.loads(RECORD.read_text())
    record["device"]["name"] = HOSTILE
    record["data"]["source"] = HOSTILE
    folder = root / "results/resnet10/resnet12-grid"
    folder.mkdir(parents=True)
    (folder / RECORD.name).write_text(json.dumps(record))
    args = ["report", str(root / "resnet10.toml"), "--results", str(root / "results"), "--out", str(root / "out")]
    assert main([*args, "--no-latency"]) == 0
    return root / "out/resnet10"


def test_markdown_keeps_hostile_text_as_text(hostile_study: Path) -> None:
    markdown = hostile_study.joinpath("study.md").read_text()
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown)
    for bad in FORBIDDEN_HTML:
        assert bad not in rendered
    shown = html.escape(SHOWN, quote=False).replace('"', "&quot;")
    # title, author, communication, the untested claim's text, the device and the data source, each whole
    assert rendered.count(shown) >= 6
    assert not re.search(r"<td>\s*row\s*</td>", rendered)  # the line break made no table row of its own
    for table in re.findall(r"<table>(.*?)</table>", rendered, re.DOTALL):
        widths = {len(re.findall(r"<t[hd][ >]", row)) for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)}
        assert len(widths) == 1  # every row as wide as its header: no pipe opened a cell


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_keeps_hostile_text_as_text(hostile_study: Path) -> None:
    page = _Page()
    page.feed(hostile_study.joinpath("study.html").read_text())
    scripts = [attrs for tag, attrs in page.tags if tag == "script"]
    assert scripts == [{"id": "facts", "type": "application/json"}, {}]  # the page's own two, nothing else
    assert not [tag for tag, attrs in page.tags if any(name.startswith("on") for name in attrs)]
    links = [attrs["href"] for tag, attrs in page.tags if tag == "a"]
    assert links and all(re.match(r"(https?://|\.\./[\w-]+/study\.html$)", href or "") for href in links)
    images = [attrs["src"] for tag, attrs in page.tags if tag == "img"]
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert sum(SHOWN in " ".join(chunk.split()) for chunk in page.text) >= 6


def test_latex_and_bibtex_keep_hostile_text_as_text(hostile_study: Path) -> None:
    for name in ("claims.tex", "references.bib"):
        text = hostile_study.joinpath(name).read_text()
        assert "\\textbf{x}" not in text  # the command arrives escaped, as text
    bib = hostile_study.joinpath("references.bib").read_text()
    assert bib.count("{") == bib.count("}")  # BibTeX needs balanced braces in every field


@pytest.mark.parametrize("address", ["javascript:alert(1)", "data:text/html,x", "http://x/<script>", "//evil.org", ""])
def test_a_page_links_only_to_http_addresses_whatever_reaches_it(address: str) -> None:
    """The spec refuses such addresses; the writers refuse them again, so a record or a future field cannot
    slip one through."""
    from harness.report.render import markdown_link, safe_url

    assert safe_url(address) == "" and "](" not in markdown_link(address)
    assert markdown_link("https://example.org/a_b", "paper") == "[paper](https://example.org/a_b)"
