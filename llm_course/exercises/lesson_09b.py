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

# ----------------------------------------------------------------------------------------------
# 09b_news_monitoring: the end-of-lesson quiz (plain data; `exercises.quiz("09b")` shows and
# checks it)

QUIZ = [
    {"question": "The sentiment model scores well on movie reviews but worse on business "
                 "headlines. What is the cause?",
     "choices": {
         "a": "The model overfitted the movie reviews during lesson 05.",
         "b": "Headlines are too short for a transformer to read.",
         "c": "A domain shift: the inputs changed. Business news has its own vocabulary, and the "
              "same words can flip meaning ('cuts' is bad for a film, often good for a company's "
              "costs), so the accuracy measured on reviews no longer holds.",
         "d": "The hand-written headline labels are wrong.",
     },
     "answer": "c",
     "why": {
         "a": "No. Its accuracy on held-out reviews is fine: it generalises within its domain, "
              "not across domains.",
         "b": "No. Review snippets are short too; the problem is what the words mean, not how "
              "many there are.",
         "c": "Right. A model's accuracy belongs to the distribution it was measured on; a new "
              "domain needs its own measurement, which is why the lesson labelled headlines by "
              "hand.",
         "d": "A few labels are arguable (one person wrote them), but that cannot explain a "
              "systematic drop; the lesson's examples of mistakes show domain vocabulary.",
     }},
    {"question": "For the monitor, which mistake of the topic router silently hides bad news?",
     "choices": {
         "a": "Low recall for business: business stories routed elsewhere are never scored.",
         "b": "Low precision for business: sport stories let through.",
         "c": "Low accuracy on the entertainment class.",
         "d": "Routing is never a problem, because the sentiment model reads every story anyway.",
     },
     "answer": "a",
     "why": {
         "a": "Right. A business story dropped by the router never reaches the sentiment model, "
              "so a surge among such stories would be invisible. Precision adds noise, recall "
              "loses signal.",
         "b": "That adds noise to the daily negative share (stories that are not business news), "
              "but nothing is hidden: those stories are scored and seen.",
         "c": "No. Entertainment mistakes matter only when they involve business: a story routed "
              "wrongly from or to business.",
         "d": "No. Only the stories routed to business are scored; that is the point of the "
              "router.",
     }},
    {"question": "In section 5's figure, what does a red alert marker far from every orange band "
                 "count against, and what does an orange band with no marker in it or just after "
                 "it count against?",
     "choices": {
         "a": "The first lowers recall, the second lowers precision.",
         "b": "Both lower precision.",
         "c": "Neither: only the height of the z-score matters.",
         "d": "The first lowers precision (a false alarm), the second lowers recall (a missed "
              "surge).",
     },
     "answer": "d",
     "why": {
         "a": "Swapped: precision is about the alerts raised, recall about the surges that "
              "happened.",
         "b": "No. A missed surge raises no alert at all, so it cannot change precision (hits "
              "over alert episodes); it lowers recall (surges caught over surges).",
         "c": "No. The z-score is how the alert decides; precision and recall are how we judge "
              "those decisions against the surges we injected.",
         "d": "Right. Consecutive alert days form one episode; an episode overlapping a surge (or "
              "its `grace` days after) is a hit. Precision = hits / episodes, recall = surges "
              "caught / surges.",
     },
     "figure": "the stream and z-score figure of section 5 (orange bands: injected surges)"},
    {"question": "The lesson also ran the stream through the *unadapted* model, whose negative "
                 "share sits at a different level from the true one. Why can its z-score alert "
                 "still catch a surge?",
     "choices": {
         "a": "The alert reads the true share, not the pipeline's.",
         "b": "The z-score compares each day with the stream's own recent days: a steady bias "
              "moves the baseline too and cancels out, while a sudden change still stands out.",
         "c": "It cannot: a biased model never raises a correct alert.",
         "d": "The threshold is adjusted automatically to the model's bias.",
     },
     "answer": "b",
     "why": {
         "a": "No. The true share is only known because the stream is simulated; the alert reads "
              "the pipeline's output, as a real monitor would.",
         "b": "Right. 'Is today unusual for this stream?' survives a constant offset. What the "
              "adapted model adds is a level you can read: a share close to the true one.",
         "c": "No. A z-score can catch sharp changes even through a biased model; the lesson "
              "scored both models' alerts.",
         "d": "No. `z_threshold` is a fixed parameter; the baseline's mean and spread follow the "
              "stream, the threshold does not.",
     }},
    {"question": "Why does the rolling baseline for day $t$ use only the $w$ days **before** it, "
                 "never day $t$ itself?",
     "choices": {
         "a": "It makes no difference with a 14-day window.",
         "b": "To save computation.",
         "c": "Because day $t$'s data arrives too late to be used.",
         "d": "A burst would hide in its own baseline: including today raises the mean and the "
              "spread, and shrinks today's z-score.",
     },
     "answer": "d",
     "why": {
         "a": "No. One extreme day in 15 moves both the mean and, more, the standard deviation: "
              "the z-score of a surge's first day can drop a lot.",
         "b": "No. One more day in a window costs nothing.",
         "c": "No. Day $t$ is known when its z-score is computed; it is kept out on purpose.",
         "d": "Right. The question is whether today differs from the days before; today cannot be "
              "part of the answer to that.",
     }},
    {"question": "With only 66 labelled headlines, how does the lesson measure the adapted "
                 "model's accuracy honestly?",
     "choices": {
         "a": "By cross-fitting: three folds, each predicted by a model fine-tuned on the other "
              "two, so every headline is scored by a model that never saw it.",
         "b": "By scoring it on the 66 headlines it was trained on.",
         "c": "By measuring it on movie reviews.",
         "d": "By holding out 6 headlines as a test set.",
     },
     "answer": "a",
     "why": {
         "a": "Right. All 66 count in the 'after' accuracy and none is scored by a model that "
              "trained on it. The stream of section 5 is scored the same way, each headline by "
              "the model that held it out, so its alerts are a test too.",
         "b": "No. That measures memory, not generalisation: a model can learn 66 labels by "
              "heart.",
         "c": "No. That measures the old domain (and whether adaptation cost anything there), not "
              "the new one.",
         "d": "Six headlines would make every one worth 17 points: far too noisy to tell "
              "anything.",
     }},
    {"question": "You lower `z_threshold` from 3 to 2. What happens to the alert's precision and "
                 "recall?",
     "choices": {
         "a": "Both rise: a lower threshold is simply more sensitive.",
         "b": "More alerts: recall can only stay or rise (more surges overlapped), while "
              "precision usually falls (more episodes on ordinary days).",
         "c": "Precision rises and recall falls.",
         "d": "Neither changes: the surges are the same.",
     },
     "answer": "b",
     "why": {
         "a": "No. More alerts catch more surges but also more ordinary fluctuations: precision "
              "counts those false alarms.",
         "b": "Right. Precision is hits over episodes, recall is surges caught over surges. Every "
              "day above 3 is also above 2, so no caught surge is lost; the extra episodes are "
              "mostly noise.",
         "c": "The other way round: a higher threshold trades recall for precision.",
         "d": "No. The surges are the same, but the alert days are not.",
     }},
]
