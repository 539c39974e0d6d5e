"""The compact table's grids: a grid's cells that have nothing to show fold into one row per grid.

A grid (spec `[grids.NAME]`) can hold dozens of cells; 003's has 45. The compact view keeps a cell as its own
row when it has runs of its current recipe or carries a claim the report leads with (`headline = true`, e.g.
003's Table 3 cells), so no result and no headline claim is ever hidden; the rest, configurations no one has
run, become one `NAME: N more cells` row with the verdict they all share, `not run`. `--wide`, `--claims`,
CSV and JSON list every cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Folded:
    """The cells of one grid folded into one row of the compact view."""

    grid: str
    count: int = 0


def stands_out(row: dict[str, Any]) -> bool:
    """A cell keeps its own row: it has runs of its current recipe, or a claim the report leads with."""
    ran = bool(row.get("n_records") or row.get("n_diverged") or row.get("n_seeds"))
    return ran or row["headline_variant"] or any(claim["headline"] for claim in row["claims"])


def fold(group: list[dict[str, Any]]) -> tuple[list[dict[str, Any] | Folded], list[str]]:
    """One report's rows for the compact view, a grid's quiet cells folded where the first of them stood;
    and a note per folded grid."""
    shown: list[dict[str, Any] | Folded] = []
    folded: dict[str, Folded] = {}
    totals: dict[str, int] = {}
    for row in group:
        grid = row.get("grid")
        if grid is not None:
            totals[grid] = totals.get(grid, 0) + 1
        if grid is None or stands_out(row):
            shown.append(row)
            continue
        if grid not in folded:
            folded[grid] = Folded(grid)
            shown.append(folded[grid])
        folded[grid].count += 1
    notes = [
        f"{f.grid}: a grid of {totals[f.grid]} cells; the {f.count} without runs or a headline claim are one row "
        "here (--wide, --claims, CSV and JSON list every cell)."
        for f in folded.values()
    ]
    return shown, notes


def folded_cells(item: Folded, columns: list[str]) -> list[str]:
    """A folded grid's row: its name and count under `variant`, `not run` under `verdict`, the rest empty."""
    text = {"variant": f"{item.grid}: {item.count} more cells", "verdict": "not run"}
    return [text.get(column, "") for column in columns]
