"""`History`: what `fit` returns (every training notebook reads it).

`history.df` is a pandas DataFrame with one row per logged step (train loss, learning rate,
gradient norm, tokens/s) and the eval metrics where an evaluation ran; `history.plot()`
draws the curves; `history.best`, `history.receipt`, `history.precision` and
`history.stopped_reason` say what happened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class History:
    """The record of one `fit` run."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    precision: str = "fp32"
    precision_reason: str = ""
    compiled: bool = False
    compile_reason: str = ""
    steps: int = 0
    total_steps: int = 0
    best: dict[str, Any] = field(default_factory=dict)  # metric, value, step, restored
    stopped_reason: str = ""
    receipt: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)  # the estimate, before training
    optimizer_state_bytes: int = 0  # measured at the end (AdamW's moments, Adafactor's factors)
    config: Any = None

    def log(self, step: int, **values: Any) -> None:
        """Add values for `step` (merged into the last row when it is the same step)."""
        if self.rows and self.rows[-1]["step"] == step:
            self.rows[-1].update(values)
        else:
            self.rows.append({"step": step, **values})

    @property
    def df(self):
        """The rows as a pandas DataFrame indexed by step."""
        import pandas as pd

        if not self.rows:
            return pd.DataFrame(columns=["train_loss"]).rename_axis("step")
        return pd.DataFrame(self.rows).set_index("step")

    @property
    def eval_rows(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if "eval_loss" in r or any(k.startswith("eval_") for k in r)]

    @property
    def final_eval(self) -> dict[str, float]:
        """The metrics of the last evaluation (empty without an eval set)."""
        rows = self.eval_rows
        return {k: v for k, v in rows[-1].items() if k.startswith("eval_")} if rows else {}

    @property
    def train_loss(self) -> float:
        """The last logged training loss (NaN before any step)."""
        for r in reversed(self.rows):
            if "train_loss" in r:
                return r["train_loss"]
        return math.nan

    def plot(self, title: str | None = None):
        """Draw the loss and metric curves; returns the matplotlib Figure (shown in notebooks)."""
        import matplotlib.pyplot as plt

        from llm_course.training.live_plot import draw_history

        ncols = 2 if any(k.startswith("eval_") and k not in ("eval_loss", "eval_perplexity")
                         for r in self.rows for k in r) else 1
        fig = plt.figure(figsize=(5.2 * ncols, 3.4), layout="constrained")
        return draw_history(self.rows, fig, title)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for JSON, `record`, or a checkpoint)."""
        return {
            "rows": [dict(r) for r in self.rows], "precision": self.precision,
            "precision_reason": self.precision_reason, "compiled": self.compiled,
            "steps": self.steps, "total_steps": self.total_steps, "best": dict(self.best),
            "stopped_reason": self.stopped_reason, "receipt": dict(self.receipt),
        }

    def __repr__(self) -> str:
        last = self.final_eval
        shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items()) if last else "no eval"
        return (f"History(steps={self.steps}/{self.total_steps}, train_loss={self.train_loss:.4g}, "
                f"{shown}, precision={self.precision!r}, stopped={self.stopped_reason!r})")
