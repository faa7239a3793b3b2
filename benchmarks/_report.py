"""Shared by the results benchmarks: mean ± std over seeds, a Markdown table and a bar chart with error bars.

Every results table in docs/results/ is written by one benchmark command through these three functions, so
the tables and plots of all modalities read the same way: one row per feature set (random init | method |
supervised bound ...), one column per protocol, each cell "mean ± std (n seeds)".
"""
from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value) of `values`."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    m = sum(values) / len(values)
    if len(values) == 1:
        return m, 0.0
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def cell(values: Sequence[float], digits: int = 3) -> str:
    """'mean ± std' of `values` for a table cell ('—' when there are none)."""
    if not values:
        return "—"
    m, s = mean_std(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def markdown_table(rows: Mapping[str, Mapping[str, Sequence[float]]], columns: Sequence[str],
                   first: str = "features", extra: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """A Markdown table: rows[name][column] = per-seed values; `extra[name][col]` adds preformatted columns."""
    extra = extra or {}
    extra_cols = sorted({c for r in extra.values() for c in r})
    head = [first, *columns, *extra_cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, by_col in rows.items():
        cells = [cell(by_col.get(c, [])) for c in columns] + [extra.get(name, {}).get(c, "") for c in extra_cols]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def bar_chart(path: Path, rows: Mapping[str, Mapping[str, Sequence[float]]], columns: Sequence[str], title: str,
              ylabel: str = "test accuracy", reference: Mapping[str, float] | None = None) -> Path:
    """Grouped bars (one group per row, one bar per column) at the seed mean with ±1 std error bars; PNG at `path`.

    `reference` draws dashed horizontal lines (e.g. {"chance": 1/26}). Written to a temp name, then renamed.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display on the machines that regenerate docs
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(rows)
    x = np.arange(len(names))
    width = 0.8 / max(1, len(columns))
    fig_width = max(6.0, 0.9 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(fig_width, 3.8), dpi=110)
    for j, col in enumerate(columns):
        stats = [mean_std(rows[n][col]) if rows[n].get(col) else (float("nan"), 0.0) for n in names]
        ax.bar(x + (j - (len(columns) - 1) / 2) * width, [m for m, _ in stats], width,
               yerr=[s for _, s in stats], capsize=3, label=col)
    for label, y in (reference or {}).items():
        ax.axhline(y, linestyle="--", linewidth=1, color="grey")
        ax.text(len(names) - 0.5, y, f" {label}", va="bottom", ha="right", fontsize=8, color="grey")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.0)
    ax.set_title(textwrap.fill(title, int(11 * fig_width)), fontsize=10)  # ~11 characters an inch at 10 pt: never cut off
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path



def page_wanted(argv: Sequence[str], out: str | Path, default_out: str | Path, explicit: Sequence[str] = ("--docs",)) -> bool:
    """Whether a test-split run may rewrite its docs/results page; when not, prints the one line that says why.

    Yes for the table's own run folder (the default --out) or when an option in `explicit` (e.g. --docs DIR) is on
    the command line. A one-method or one-seed job run into a scratch --out would otherwise replace the page with its
    own rows, silently dropping every other method's from the published table.
    """
    named = any(a == opt or a.startswith(opt + "=") for a in argv for opt in explicit)
    if named or Path(out).resolve() == Path(default_out).resolve():
        return True
    print(f"docs page left as it is: --out {out} is not the table's folder ({default_out}); "
          f"pass {' or '.join(explicit)} to write a page for these runs")
    return False
