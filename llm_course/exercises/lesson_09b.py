"""Exercises of 09b_news_monitoring (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from llm_course.applications.monitoring import alert_precision_recall, rolling_zscore
from llm_course.exercises.lesson_09a import _compare_arrays, _rng
from llm_course.exercises.registry import Case, Exercise, register

# The references are the package's own functions (llm_course.applications.monitoring):
# `ex.solution()` prints their real source.

# ----------------------------------------------------------------------------------------------
# 09b_news_monitoring: rolling z-score and scoring the alerts


def _zscore_cases() -> Iterator[Case]:
    g = _rng(10)
    base = 0.35 + 0.05 * g.normal(size=40)
    surge = base.copy()
    surge[30:33] += 0.4
    yield Case((surge, 14, 0.05), label="40 days with a surge on days 30-32, window 14")
    yield Case((base[:12], 5, 0.05), label="12 days, window 5")
    flat = np.full(20, 0.3)
    flat[15] = 0.33
    yield Case((flat, 7, 0.05), label="a flat stretch (std 0) and a tiny bump: min_std matters")
    yield Case((base[:10], 3, 0.01), label="window 3, min_std 0.01")


def _zscore_with_current(values, window=14, min_std=0.05):
    x = np.asarray(values, dtype=float)
    z = np.full(len(x), np.nan)
    for t in range(window, len(x)):
        past = x[t - window:t + 1]
        z[t] = (x[t] - past.mean()) / max(past.std(), min_std)
    return z


def _zscore_no_floor(values, window=14, min_std=0.05):
    x = np.asarray(values, dtype=float)
    z = np.full(len(x), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for t in range(window, len(x)):
            past = x[t - window:t]
            z[t] = (x[t] - past.mean()) / past.std()
    return z


def _zscore_ddof1(values, window=14, min_std=0.05):
    x = np.asarray(values, dtype=float)
    z = np.full(len(x), np.nan)
    for t in range(window, len(x)):
        past = x[t - window:t]
        z[t] = (x[t] - past.mean()) / max(past.std(ddof=1), min_std)
    return z


register(Exercise(
    id="09b.rolling_zscore",
    title="A rolling z-score",
    reference=rolling_zscore,
    cases=_zscore_cases,
    compare=_compare_arrays,
    mistakes={
        "the current value is inside its own baseline (use values[t - window:t], not ...t + 1)":
            _zscore_with_current,
        "no floor on the standard deviation: divide by max(std, min_std)": _zscore_no_floor,
        "sample standard deviation (ddof=1): use np.std's default, ddof=0": _zscore_ddof1,
    },
    hints=[
        ("For each day t from `window` on, the baseline is the `window` values BEFORE t: "
         "values[t - window:t]. The first `window` days have no baseline: leave them NaN."),
        "z[t] = (x[t] - past.mean()) / max(past.std(), min_std)",
        "Start from z = np.full(len(x), np.nan) and fill in days window .. len(x) - 1.",
    ],
    setup="from collections.abc import Sequence\n\nimport numpy as np",
))


def _alerts(days: int, on: list[int]) -> list[bool]:
    flags = [False] * days
    for d in on:
        flags[d] = True
    return flags


def _pr_cases() -> Iterator[Case]:
    yield Case((_alerts(30, [10, 11, 12]), [(10, 12)], 2), label="one surge, caught exactly")
    yield Case((_alerts(30, [11, 12, 20]), [(10, 12)], 2),
               label="a surge caught late, and one false alarm")
    yield Case((_alerts(40, [14, 30, 31]), [(10, 12), (30, 31)], 2),
               label="two surges: one caught just inside the grace days, one on time")
    yield Case((_alerts(40, [14, 30, 31]), [(10, 12), (30, 31)], 0), label="the same, grace 0")
    yield Case((_alerts(20, []), [(5, 6)], 2), label="no alert at all")
    yield Case((_alerts(30, [3, 5, 6, 7, 20]), [(5, 7)], 1),
               label="three separate episodes")


def _per_day_pr(alerts, surges, grace=2):
    days = [d for d, on in enumerate(alerts) if on]
    windows = [(s, e + grace) for s, e in surges]
    inside = [any(s <= d <= e for s, e in windows) for d in days]
    caught = [any(s <= d <= e for d in days) for s, e in windows]
    return (sum(inside) / len(days) if days else 0.0,
            sum(caught) / len(windows) if windows else 0.0)


def _no_grace_pr(alerts, surges, grace=2):
    return alert_precision_recall(alerts, surges, 0)


register(Exercise(
    id="09b.alert_precision_recall",
    title="Precision and recall of alert episodes",
    reference=alert_precision_recall,
    cases=_pr_cases,
    compare=_compare_arrays,
    mistakes={
        "counted alert DAYS, not episodes: three alert days in a row are one alert":
            _per_day_pr,
        "ignored `grace`: a surge's window runs to `grace` days after its last day":
            _no_grace_pr,
    },
    hints=[
        ("First group the alert days into episodes: runs of consecutive True values, as "
         "(first day, last day)."),
        ("An episode (a, b) overlaps a window (s, e) when a <= e and s <= b; each surge's "
         "window is (first day, last day + grace)."),
        ("precision = episodes overlapping some window / episodes (0.0 with no episode); "
         "recall = windows overlapped by some episode / windows."),
    ],
    setup="from collections.abc import Sequence",
))
