"""Metrics as JSON lines, and the loss-curve PNG drawn from them."""
from __future__ import annotations

import json
from pathlib import Path


class MetricsLog:
    """Append-only JSONL log of finite numbers (strict JSON: no NaN/Infinity); on resume, rows after the resumed step
    are dropped so the file matches a clean run."""

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            keep = [line for line, row in self._parsed() if row.get("step", 0) <= resume_step]
            self.path.write_text("".join(line + "\n" for line in keep))

    def _parsed(self) -> list[tuple[str, dict]]:
        """(line, row) pairs; a last line cut short by a killed process is dropped, any other bad line is an error."""
        lines = [line for line in self.path.read_text().splitlines() if line]
        out = []
        for i, line in enumerate(lines):
            try:
                out.append((line, json.loads(line)))
            except json.JSONDecodeError as err:
                if i == len(lines) - 1:
                    break  # the write a SIGKILL interrupted
                raise ValueError(f"{self.path}: line {i + 1} is not JSON ({err}); the run folder was edited") from err
        return out

    def write(self, row: dict) -> None:
        """Append one row (flushed at once so a crash keeps what was logged)."""
        with self.path.open("a") as f:
            f.write(json.dumps(row, allow_nan=False) + "\n")

    def rows(self) -> list[dict]:
        """All rows logged so far."""
        return [row for _, row in self._parsed()]


def plot_loss_curve(rows: list[dict], out_png: str | Path, title: str = "") -> Path | None:
    """Draw loss (and lr on a second axis) against step; returns the PNG path, or None if nothing was logged."""
    rows = [r for r in rows if "loss" in r]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], color="tab:blue", label="loss")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    if all("lr" in r for r in rows):
        ax2 = ax.twinx()
        ax2.plot([r["step"] for r in rows], [r["lr"] for r in rows], color="tab:gray", alpha=0.5, linestyle="--")
        ax2.set_ylabel("learning rate", color="tab:gray")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)
    return Path(out_png)
