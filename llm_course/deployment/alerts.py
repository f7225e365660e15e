"""Operational alerts over a sliding window of requests (for 08_deployment).

A service logs one record per request: when it arrived (`t`, seconds), how long it took
(`latency_ms`) and whether it succeeded (`ok`). An alert rule looks at the last
`window_s` seconds every `step_s` seconds and fires when

- the window's p95 latency is over `latency_budget_ms`, or
- the window's error rate is over `error_rate_threshold`,

and only when the window holds at least `min_requests` requests, so that one failed
request in a quiet minute does not wake anybody up. With fewer requests the alert keeps
its state. An alert clears when the signal is back under `clear_ratio` times its
threshold: with 0.9 (hysteresis), a p95 hovering just around the budget does not fire
and clear on every evaluation.

The window makes every alert late, twice. A slowdown moves the window's p95 only once
slow requests fill 5 % of the window (3 s of a 60 s window), and the alert clears only
when they are back under 5 %, almost a full window after the slowdown ended. An error
burst at 30 % needs about 8 s of a 60 s window to push the error rate over 5 %. A shorter
window reacts faster and is noisier. `synthetic_traffic` builds traffic with an injected
slowdown and an error burst to see both effects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class AlertRule:
    """When to fire (see the module docstring); times in seconds."""

    latency_budget_ms: float = 200.0
    error_rate_threshold: float = 0.05
    window_s: float = 60.0
    step_s: float = 5.0
    min_requests: int = 20
    clear_ratio: float = 0.9  # 1.0: no hysteresis
    quantile: float = 0.95


def _next_state(active: bool, value: float, threshold: float, ratio: float) -> bool:
    """Fire above the threshold; once firing, clear only below ratio x threshold."""
    if active:
        return not value < ratio * threshold
    return value > threshold


def evaluate_alerts(records: pd.DataFrame, rule: AlertRule = AlertRule()
                    ) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Slide the window over `records` (columns t, latency_ms, ok).

    Returns a timeline with one row per evaluation (t, p95_ms, error_rate, n,
    latency_alert, error_alert), where row t covers the requests with t - window_s < time
    <= t, and the list of events: dicts with t, alert ("latency" or "error"), action
    ("fire" or "clear") and the value that triggered it.
    """
    records = records.sort_values("t")
    times = records["t"].to_numpy(float)
    latency = records["latency_ms"].to_numpy(float)
    failed = ~records["ok"].to_numpy(bool)
    if len(times) == 0:
        raise ValueError("no request records to evaluate")

    rows, events = [], []
    state = {"latency": False, "error": False}
    thresholds = {"latency": rule.latency_budget_ms, "error": rule.error_rate_threshold}
    first = np.floor(times[0] / rule.step_s) * rule.step_s + rule.window_s  # first full window
    for t in np.arange(first, times[-1] + rule.step_s, rule.step_s):
        lo, hi = np.searchsorted(times, [t - rule.window_s, t], side="right")
        n = int(hi - lo)
        values = {
            "latency": float(np.quantile(latency[lo:hi], rule.quantile)) if n else np.nan,
            "error": float(failed[lo:hi].mean()) if n else np.nan,
        }
        if n >= rule.min_requests:
            for name, value in values.items():
                new = _next_state(state[name], value, thresholds[name], rule.clear_ratio)
                if new != state[name]:
                    events.append({"t": float(t), "alert": name,
                                   "action": "fire" if new else "clear", "value": value})
                state[name] = new
        rows.append({"t": float(t), "p95_ms": values["latency"],
                     "error_rate": values["error"], "n": n,
                     "latency_alert": state["latency"], "error_alert": state["error"]})
    return pd.DataFrame(rows), events


def synthetic_traffic(duration_s: float = 600.0, rate_per_s: float = 20.0,
                      latency_ms: float = 40.0, slowdown: tuple[float, float] = (150.0, 240.0),
                      slowdown_factor: float = 6.0,
                      error_burst: tuple[float, float] = (360.0, 420.0),
                      error_rate: float = 0.01, burst_error_rate: float = 0.3,
                      seed: int = 0) -> pd.DataFrame:
    """Steady traffic with one injected slowdown and one error burst (seeded).

    Arrivals are Poisson at `rate_per_s`; latencies are log-normal around `latency_ms`
    (a right tail, like real services), multiplied by `slowdown_factor` for requests
    arriving inside `slowdown`; requests fail with probability `error_rate`, or
    `burst_error_rate` inside `error_burst`. Windows are (start, end) in seconds.
    """
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate_per_s * duration_s)
    t = np.sort(rng.uniform(0.0, duration_s, n))
    latency = latency_ms * rng.lognormal(mean=0.0, sigma=0.35, size=n)
    slow = (t >= slowdown[0]) & (t < slowdown[1])
    latency[slow] *= slowdown_factor
    in_burst = (t >= error_burst[0]) & (t < error_burst[1])
    failed = rng.random(n) < np.where(in_burst, burst_error_rate, error_rate)
    return pd.DataFrame({"t": t, "latency_ms": latency, "ok": ~failed})


def _alert_spans(t: np.ndarray, active: np.ndarray) -> list[tuple[float, float]]:
    """(fire, clear) times of the runs where `active` is true (clear: the last t if never)."""
    edges = np.diff(np.r_[0, active.astype(int), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(t[s], t[min(e, len(t) - 1)]) for s, e in zip(starts, ends)]


def plot_alerts(timeline: pd.DataFrame, rule: AlertRule = AlertRule(),
                injected: dict[str, tuple[float, float]] | None = None) -> Any:
    """Two aligned panels: window p95 vs the budget, window error rate vs the threshold.

    Periods where an alert is on are shaded red. `injected` (name -> (start, end)) marks
    the problems put into synthetic traffic (dotted lines at start and end), to compare with.
    """
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    t = timeline["t"].to_numpy()
    panels = [
        (top, "p95_ms", "latency_alert", rule.latency_budget_ms, "window p95 (ms)",
         "latency budget"),
        (bottom, "error_rate", "error_alert", rule.error_rate_threshold, "window error rate",
         "error threshold"),
    ]
    for ax, column, alert, threshold, ylabel, name in panels:
        ax.plot(t, timeline[column], color="C0", label=ylabel.replace(" (ms)", ""))
        ax.axhline(threshold, color="k", ls="--", lw=1, label=name)
        ax.axhline(threshold * rule.clear_ratio, color="grey", ls=":", lw=1,
                   label=f"clears below ({rule.clear_ratio:g} x)")
        for i, (start, end) in enumerate(_alert_spans(t, timeline[alert].to_numpy())):
            ax.axvspan(start, end, color="red", alpha=0.15, label="alert on" if i == 0 else None)
        for j, (label, (start, end)) in enumerate((injected or {}).items()):
            for x, line_label in ((start, f"injected: {label}"), (end, None)):
                ax.axvline(x, color=f"C{j + 1}", ls=":", lw=1.5, label=line_label)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    top.set_title(f"Alerts over a sliding {rule.window_s:g} s window, "
                  f"evaluated every {rule.step_s:g} s")
    bottom.set_xlabel("time (s), end of the window")
    fig.tight_layout()
    return fig
