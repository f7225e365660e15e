"""What the learner watches while `fit` runs: a live plot, or text lines (`fit` shows it;
00_setup explains it).

In Jupyter (JupyterLab, Colab, VS Code) the loss curves (train and eval) and the eval
metrics are redrawn in place: one output is created with `display(..., display_id=True)` and
updated. Inside an ipywidgets `Output` (a panel's *Train* button) the front end drops such
updates, so there the plot is an `ipywidgets.Image` whose value is replaced instead (the
panel says so with `inside_widget_output()`). Redrawing costs tens of milliseconds, so it
is throttled: never more often than every `min_interval` seconds (`LLM_COURSE_PLOT_INTERVAL`
overrides it), and never more than about 1 % of the elapsed time.

Without a notebook kernel (a script, a terminal, CI) the same information comes as a short
text line every `text_interval` seconds and after every evaluation.

`LLM_COURSE_PLOT=text` (or `none`) forces the text lines (or silence) anywhere.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

LOWER_IS_BETTER = ("loss", "perplexity")
_widget_output_depth = 0  # > 0 while code runs inside an ipywidgets Output (a button callback)


@contextlib.contextmanager
def inside_widget_output() -> Iterator[None]:
    """Mark code that runs inside an ipywidgets `Output`: live plots then draw into an
    `ipywidgets.Image`, because display updates made there never reach the page."""
    global _widget_output_depth
    _widget_output_depth += 1
    try:
        yield
    finally:
        _widget_output_depth -= 1


def in_notebook() -> bool:
    """True inside a Jupyter/Colab kernel (where rich output can be displayed and updated)."""
    ip = sys.modules.get("IPython")
    if ip is None:
        return False
    try:
        shell = ip.get_ipython()
    except AttributeError:
        return False
    return shell is not None and hasattr(shell, "kernel")


def draw_history(rows: Sequence[dict[str, Any]], fig: Any = None, title: str | None = None) -> Any:
    """Draw loss curves (left) and eval metrics other than loss (right) on a matplotlib Figure.

    `rows` are History rows: dicts with "step" and any of "train_loss", "eval_loss", "eval_*".
    Without `fig`, a new `matplotlib.figure.Figure` (not registered with pyplot) is made.
    """
    from matplotlib.figure import Figure

    metric_names = sorted({k for r in rows for k in r if k.startswith("eval_")
                           and k != "eval_loss" and k != "eval_perplexity"
                           and _finite(r.get(k))})
    ncols = 2 if metric_names else 1
    if fig is None:
        fig = Figure(figsize=(5.2 * ncols, 3.4), layout="constrained")
    fig.set_size_inches(5.2 * ncols, 3.4)  # eval metrics may appear after the first draw
    fig.clear()
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    ax = axes[0]
    for key, style, label in (("train_loss", "-", "train"), ("eval_loss", "o-", "eval")):
        pts = [(r["step"], r[key]) for r in rows if _finite(r.get(key))]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, style, label=label, markersize=3, linewidth=1.4)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(loc="best")
    if title:
        ax.set_title(title, fontsize=10)
    if metric_names:
        ax2 = axes[1]
        for key in metric_names:
            pts = [(r["step"], r[key]) for r in rows if _finite(r.get(key))]
            xs, ys = zip(*pts, strict=True)
            ax2.plot(xs, ys, "o-", label=key.removeprefix("eval_"), markersize=3)
        values = [r[k] for r in rows for k in metric_names if _finite(r.get(k))]
        if values and 0 <= min(values) and max(values) <= 1:  # shares: an axis from 0, so
            ax2.set_ylim(0, min(1.02, max(0.05, 1.15 * max(values))))  # noise looks flat
        ax2.set_xlabel("step")
        ax2.set_ylabel("eval metric")
        ax2.grid(alpha=0.3)
        ax2.legend(loc="best")
    return fig


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def format_row(row: dict[str, Any], total_steps: int | None = None) -> str:
    """One text line for a History row, e.g. 'step 120/1500 | loss 5.43 | lr 9.8e-04 | ...'."""
    step = f"step {row['step']}" + (f"/{total_steps}" if total_steps else "")
    parts = [step]
    if "epoch" in row:
        parts.append(f"epoch {row['epoch']:.2f}")
    if _finite(row.get("train_loss")):
        parts.append(f"loss {row['train_loss']:.4f}")
    if _finite(row.get("lr")):
        parts.append(f"lr {row['lr']:.2e}")
    if _finite(row.get("tokens_per_s")):
        parts.append(f"{row['tokens_per_s']:,.0f} tok/s")
    for k, v in row.items():
        if k.startswith("eval_") and _finite(v):
            parts.append(f"{k} {v:.4f}")
    return " | ".join(parts)


class LiveView:
    """Shows training progress: `update(rows)` often (cheap), `close(rows)` at the end.

    mode "plot": redraw a figure in place in the notebook; "text": print lines; "none".
    """

    def __init__(self, mode: str = "auto", total_steps: int | None = None, title: str | None = None,
                 min_interval: float = 2.0, text_interval: float = 15.0, write=print) -> None:
        forced = os.environ.get("LLM_COURSE_PLOT", "").strip().lower()
        if forced in ("text", "none", "plot"):
            mode = forced
        if mode == "auto":
            mode = "plot" if in_notebook() else "text"
        self.mode = mode
        self.total_steps = total_steps
        self.title = title
        interval = os.environ.get("LLM_COURSE_PLOT_INTERVAL", "").strip()
        self.min_interval = float(interval) if interval else min_interval
        self.text_interval = text_interval
        self.write = write
        self._start = time.perf_counter()
        self._last = -math.inf
        self._draw_cost = 0.0
        self._handle = None
        self._widget = None  # an ipywidgets.Image, inside a widget Output
        self._fig = None
        self._shown = None  # the (step, row count) last shown
        self._printed_eval = 0

    def _due(self, now: float) -> bool:
        interval = self.min_interval if self.mode == "plot" else self.text_interval
        interval = max(interval, 100 * self._draw_cost)  # drawing stays under ~1 % of the time
        return now - self._last >= interval

    def update(self, rows: Sequence[dict[str, Any]], force: bool = False) -> None:
        """Refresh the view if it is due (or `force`); rows are the History rows so far."""
        if self.mode == "none" or not rows:
            return
        now = time.perf_counter()
        n_eval = sum(1 for r in rows if "eval_loss" in r)
        new_eval = n_eval > self._printed_eval
        if not (force or new_eval or self._due(now)):
            return
        self._printed_eval = n_eval
        t0 = time.perf_counter()
        if self.mode == "plot":
            self._draw(rows)
        else:
            self.write(format_row(_merged_last(rows), self.total_steps))
        self._draw_cost = time.perf_counter() - t0
        self._last = time.perf_counter()
        self._shown = (rows[-1]["step"], len(rows), len(rows[-1]))

    def _draw(self, rows: Sequence[dict[str, Any]]) -> None:
        from IPython.display import Image, display

        self._fig = draw_history(rows, self._fig, self.title)
        buf = io.BytesIO()
        self._fig.savefig(buf, format="png", dpi=80)
        png = buf.getvalue()
        if self._widget is None and self._handle is None and _widget_output_depth > 0:
            import ipywidgets

            self._widget = ipywidgets.Image(value=png, format="png")
            display(self._widget)
        elif self._widget is not None:
            self._widget.value = png  # a widget update reaches the page from anywhere
        elif self._handle is None:
            self._handle = display(Image(data=png, format="png"), display_id=True)
        else:
            self._handle.update(Image(data=png, format="png"))

    def close(self, rows: Sequence[dict[str, Any]]) -> None:
        """Show the final state once more (always), then release the figure."""
        if rows and self.mode != "none" and self._shown != (rows[-1]["step"], len(rows),
                                                           len(rows[-1])):
            self.update(rows, force=True)
        self._fig = None


def _merged_last(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The last row, with the latest eval values (if any) filled in."""
    last = dict(rows[-1])
    if "eval_loss" not in last:
        for r in reversed(rows):
            if "eval_loss" in r:
                last.update({k: v for k, v in r.items() if k.startswith("eval_")})
                break
    return last
