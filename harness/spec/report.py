"""The report half of a spec: where the claims come from, every claim, and how variants depart from it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from harness.common.schema import Section
from harness.spec.sections import NAME_PATTERN

Split = Literal["cifar10-test", "validation", "validation-augmented", "kaggle-hidden", "train", "train-mixed", "n/a"]
Selection = Literal["last-epoch", "best-epoch-test", "test-early-stop", "best-val", "unknown", "n/a"]
TEST_SELECTION = ("best-epoch-test", "test-early-stop")  # selections made on the test set
# A claim's code letters (table.CODES explains them): where it is stated, on what split, chosen how
WHERE = (("appendix", "P"), ("abstract", "A"), ("table", "T"), ("readme", "R"))  # anything else: text, X
SPLIT_CODE = {
    "cifar10-test": "t",
    "validation": "v",
    "validation-augmented": "a",
    "kaggle-hidden": "k",
    "train": "r",
    "train-mixed": "m",
}
# A web address: http:// or https://, a host, then anything but spaces, control characters, braces and
# backslashes (it becomes a link in the HTML study and goes into LaTeX's \url{}); or empty, for none.
URL_PATTERN = r"(?:https?://[A-Za-z0-9\[][^\s\x00-\x1f\x7f{}\\/?#]*(?:[/?#][^\s\x00-\x1f\x7f{}\\]*)?)?"  # empty, or http(s)://host[path]
URL_EXPECTED = "expected an absolute http:// or https:// address with a host, without spaces, braces or backslashes"
SELECTION_CODE = {"last-epoch": "L", "best-epoch-test": "B", "test-early-stop": "E", "best-val": "V", "unknown": "?"}


def _web_address(text: str) -> str:
    """A spec's address as written, if it is one (javascript:, data:, file: or a relative path is not); "" is none."""
    if not re.fullmatch(URL_PATTERN, text):
        raise ValueError(URL_EXPECTED)
    return text


WebAddress = Annotated[str, AfterValidator(_web_address)]
"""Every address field of a spec: empty, or an absolute http(s) address that is safe as a link and in \\url{}."""


class ReleaseItem(Section):
    """One item of the ML Code Completeness Checklist: whether the release has it, and the evidence."""

    present: bool
    note: str = Field(min_length=1, description="the files that show it, or what is missing")


class Release(Section):
    """`[report.release]`: the released repository against Papers with Code's ML Code Completeness
    Checklist, as facts read from the repository at `code_read`."""

    dependencies: ReleaseItem
    training_code: ReleaseItem
    evaluation_code: ReleaseItem
    pretrained_weights: ReleaseItem
    results_with_commands: ReleaseItem = Field(description="a results table with the commands that make it")


class Report(Section):
    """`[report]`: where the claims come from."""

    id: str = Field(pattern=r"^[a-z0-9-]{1,40}$", description="000 to 004 for the seed reports; any short name else")
    name: str = Field(pattern=NAME_PATTERN)
    title: str = Field(min_length=1)
    authors: tuple[str, ...] = Field(min_length=1)
    year: int = Field(ge=1990, le=2100)
    seed: str | None = Field(None, min_length=1, description="the report's file name in shared/seeds/, if it has one")
    url: WebAddress = Field("", description="where the paper (or README) is")
    code_url: WebAddress = Field("", description="where the released code is")
    code_read: str = Field("", description="repository and commit the as-coded values were read from")
    communication: str | None = Field(
        None, min_length=1, description="contact with the authors: 'none', or who was asked what, when, and the answer"
    )
    param_budget: int = Field(5_000_000, gt=0)
    release: Release | None = None


class Claim(Section):
    """`[[claims]]`: one figure as the report states it, where, on what split, chosen how."""

    id: str = Field(pattern=NAME_PATTERN)
    quantity: str = Field(pattern=NAME_PATTERN, description="claims of one quantity must agree")
    metric: Literal["accuracy", "params"]
    value: float = Field(ge=0)
    text: str = Field(min_length=1, description="the figure verbatim, e.g. '4.98M' or '96.14%'")
    resolution: float | None = Field(None, gt=0, description="the step the figure is stated to")
    upper: float | None = Field(None, description="for a stated range: its upper end (value is the lower)")
    stated_in: tuple[str, ...] = Field(min_length=1)
    split: Split
    selection: Selection
    runs_compared_on_test: bool = False
    variants: tuple[str, ...]
    headline: bool = False
    note: str = ""

    @property
    def step(self) -> float:
        return self.resolution or (1.0 if self.metric == "params" else 0.01)

    def describe(self) -> str:
        """The figure as written, where, on what split, chosen how."""
        return f"{self.text} ({'; '.join(self.stated_in)}; {self.split}; {self.selection})"

    @property
    def code(self) -> str:
        """Where, on what split and chosen how, in three letters, e.g. `A/t/L`."""
        first = self.stated_in[0].lower()
        where = next((code for word, code in WHERE if first.startswith(word)), "X")
        return f"{where}/{SPLIT_CODE.get(self.split, '-')}/{SELECTION_CODE.get(self.selection, '-')}"

    def summary(self) -> dict[str, Any]:
        """The claim's figure and protocol, for tables and JSON."""
        keys = ("id", "metric", "value", "text", "stated_in", "split", "selection", "runs_compared_on_test", "headline")
        return {key: list(v) if isinstance(v := getattr(self, key), tuple) else v for key in keys}

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.metric == "accuracy" and not (self.value <= 100 and (self.upper is None or self.upper <= 100)):
            found.append(("value", f"an accuracy is a percentage in [0, 100], got {self.value}"))
        if self.upper is not None and self.upper < self.value:
            found.append(("upper", f"the range's upper end {self.upper} is below its lower end {self.value}"))
        return found

    def agreement(self, measured: float) -> Literal["exact", "rounded", "truncated", "in range"] | None:
        """How `measured` agrees with the stated figure at its resolution, or None if it does not."""
        if self.upper is not None:
            return "in range" if self.value <= measured <= self.upper else None
        if measured == self.value:
            return "exact"
        units, stated = measured / self.step, round(self.value / self.step)
        if round(units) == stated:
            return "rounded"
        if int(units) == stated:
            return "truncated"
        return None


class Deviation(Section):
    """Where a variant departs from the report's text, or fills a gap in it, and of what kind.

    code-differs: the released code does something other than the text says (or leaves out).
    unstated: the text is silent here; the value comes from the code or is a stated guess.
    inferred: the run is not in the released code; this part of its recipe is inferred.
    harness: the harness's protocol departs from the report and its code (e.g. a held-out split).
    """

    kind: Literal["code-differs", "unstated", "inferred", "harness"]
    key: str = Field(min_length=1)
    note: str = Field(min_length=1)


VARIANT_META_KEYS = ("description", "extends", "deviations", "role")


class VariantMeta(Section):
    role: Literal["model", "reference"] = Field("model", description="reference: shown for comparison only")
    description: str = ""
    extends: str | None = Field(None, pattern=NAME_PATTERN)
    deviations: tuple[Deviation, ...] = ()


class Header(Section):
    """The rest of the file: report, claims and variants (the base recipe is validated apart)."""

    default_variant: str | None = None
    report: Report
    claims: tuple[Claim, ...] = ()
    variants: dict[Annotated[str, Field(pattern=NAME_PATTERN)], dict[str, Any]] = Field(default_factory=dict)
