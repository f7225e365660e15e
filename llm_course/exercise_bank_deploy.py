"""Exercises of 08_deployment and 09_applications (see `llm_course.exercises` for the mechanism).

Each exercise has a reference solution, hidden test inputs, typical mistakes and hints;
notebooks reach it with `llm_course.exercises.get(id)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from llm_course.exercises import Case, Exercise, register  # noqa: F401
from llm_course.monitoring import alert_precision_recall, rolling_zscore  # 09b
from llm_course.recommend import ndcg_at_k, user_profiles  # 09c
from llm_course.retrieval import cosine_top_k, top_k_accuracy  # 09a

# ==============================================================================================
# 09_applications (09a_faq_assistant, 09b_news_monitoring, 09c_recommendation)
# The references are the package's own functions (llm_course.retrieval / monitoring /
# recommend): `ex.solution()` prints their real source. Their imports are at the top.


def _compare_arrays(expected, got, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """Compare numbers, NumPy arrays (NaN equals NaN) and tuples of them."""
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"expected a tuple of {len(expected)} items, got {type(got).__name__}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            if (problem := _compare_arrays(e, g, rtol, atol)) is not None:
                return f"item {i}: {problem}"
        return None
    if isinstance(expected, np.ndarray):
        try:
            g = np.asarray(got, dtype=float)
        except (TypeError, ValueError):
            return f"expected an array of shape {expected.shape}, got {type(got).__name__}"
        if g.shape != expected.shape:
            return f"shape: expected {expected.shape}, got {g.shape}"
        e = expected.astype(float)
        if np.isnan(g).any() != np.isnan(e).any() or not np.array_equal(np.isnan(g),
                                                                         np.isnan(e)):
            where = np.flatnonzero(np.isnan(g).ravel() != np.isnan(e).ravel())[:5].tolist()
            return f"NaN in different places (flat positions {where})"
        close = np.isclose(g, e, rtol=rtol, atol=atol, equal_nan=True)
        if close.all():
            return None
        bad = np.argwhere(~close)[:5]
        lines = [f"{int((~close).sum())} of {e.size} values differ"]
        for pos in bad:
            idx = tuple(int(i) for i in pos)
            lines.append(f"  at {list(idx)}: expected {e[idx]:.6g}, got {g[idx]:.6g}")
        return "\n".join(lines)
    if isinstance(expected, float):
        try:
            value = float(got)
        except (TypeError, ValueError):
            return f"expected a number, got {type(got).__name__}"
        if math.isclose(value, expected, rel_tol=rtol, abs_tol=atol):
            return None
        return f"expected {expected:.6g}, got {value:.6g}"
    return None if got == expected else f"expected {expected!r}, got {got!r}"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------
# 09a_faq_assistant: nearest neighbours by cosine similarity


def _top_k_cases() -> Iterator[Case]:
    g = _rng(9)
    scales = g.uniform(0.2, 5.0, size=(12, 1))  # keys of very different lengths
    yield Case((g.normal(size=(3, 4)), g.normal(size=(12, 4)) * scales, 3),
               label="3 queries, 12 keys of different lengths, k = 3")
    yield Case((g.normal(size=(1, 8)) * 7.0, g.normal(size=(5, 8)), 1),
               label="a long query vector, k = 1")
    yield Case((g.normal(size=(4, 6)), g.normal(size=(30, 6)) * g.uniform(0.1, 9, (30, 1)), 5),
               label="4 queries, 30 keys, k = 5")


def _dot_top_k(q, c, k):
    sims = q @ c.T
    idx = np.argsort(-sims, axis=1)[:, :k]
    return np.take_along_axis(sims, idx, axis=1), idx


def _ascending_top_k(q, c, k):
    s, i = cosine_top_k(q, c, c.shape[0])
    return s[:, ::-1][:, :k], i[:, ::-1][:, :k]


def _keys_only_top_k(q, c, k):
    return _dot_top_k(q, c / np.linalg.norm(c, axis=1, keepdims=True), k)


register(Exercise(
    id="09a.cosine_top_k",
    title="The k nearest stored questions by cosine similarity",
    reference=cosine_top_k,
    cases=_top_k_cases,
    compare=_compare_arrays,
    mistakes={
        "a dot product without normalising: long vectors win whatever their direction":
            _dot_top_k,
        "normalised the keys but not the queries: the scores are not cosines": _keys_only_top_k,
        "sorted ascending: the first result must be the MOST similar": _ascending_top_k,
    },
    hints=[
        ("Cosine similarity is the dot product of unit-length vectors: divide each row by its "
         "norm (np.linalg.norm(x, axis=1, keepdims=True)), then queries @ keys.T."),
        ("np.argsort(-sims, axis=1)[:, :k] gives the best k columns per row; "
         "np.take_along_axis(sims, indices, axis=1) picks their scores."),
        "Return (scores, indices), both of shape (n_queries, k), best first.",
    ],
    setup="import numpy as np",
))


def _accuracy_cases() -> Iterator[Case]:
    ranked = np.array([[4, 2, 9, 1, 0], [3, 5, 6, 7, 8], [0, 1, 2, 3, 4], [9, 8, 7, 6, 5]])
    relevant = [{2}, {3}, {7}, {5, 6}]
    for k in (1, 2, 5):
        yield Case((ranked, relevant, k), label=f"4 queries, k = {k}")
    yield Case((ranked[:2], [{9, 4}, {1}], 3), label="several right answers for one query")


register(Exercise(
    id="09a.top_k_accuracy",
    title="Top-k retrieval accuracy",
    reference=top_k_accuracy,
    cases=_accuracy_cases,
    compare=_compare_arrays,
    mistakes={
        "looked only at position k (row[k - 1]) instead of the first k":
            lambda idx, rel, k: float(np.mean([row[k - 1] in r for row, r in zip(idx, rel)])),
        "looked at k + 1 results (row[:k + 1])":
            lambda idx, rel, k: float(np.mean([bool(set(row[:k + 1]) & r)
                                               for row, r in zip(idx, rel)])),
        "ignored k and used every result":
            lambda idx, rel, k: float(np.mean([bool(set(row) & r) for row, r in zip(idx, rel)])),
    },
    hints=[
        "A query counts as a hit when ANY of its first k results is relevant.",
        ("For each row: set(row[:k].tolist()) & relevant_set is non-empty for a hit; the "
         "accuracy is the mean of those booleans."),
    ],
    setup="from collections.abc import Sequence\n\nimport numpy as np",
))

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
# 09c_recommendation: NDCG@k and the user profile


def _ndcg_cases() -> Iterator[Case]:
    yield Case(([3, 1, 4, 5, 9], {3}, 5), label="the one relevant item ranked first")
    yield Case(([3, 1, 4, 5, 9], {4}, 5), label="the one relevant item ranked third")
    yield Case(([3, 1, 4, 5, 9, 2, 6], {1, 9, 7}, 5), label="three relevant, two found")
    yield Case(([0, 1, 2, 3], set(range(10, 30)), 4), label="20 relevant, none found")
    yield Case((list(range(20)), {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 19}, 10),
               label="more relevant items than k")


def _dcg_only(ranked, relevant, k=10):
    return sum(1.0 / math.log2(r + 2) for r, i in enumerate(list(ranked)[:k]) if i in relevant)


def _ideal_uncapped(ranked, relevant, k=10):
    ideal = sum(1.0 / math.log2(r + 2) for r in range(len(relevant)))
    return _dcg_only(ranked, relevant, k) / ideal if ideal else 0.0


def _ln_discount(ranked, relevant, k=10):
    dcg = sum(1.0 / math.log(r + 2) for r, i in enumerate(list(ranked)[:k]) if i in relevant)
    ideal = sum(1.0 / math.log(r + 2) for r in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


register(Exercise(
    id="09c.ndcg_at_k",
    title="NDCG@k",
    reference=ndcg_at_k,
    cases=_ndcg_cases,
    compare=_compare_arrays,
    mistakes={
        "returned the DCG without dividing by the ideal DCG": _dcg_only,
        ("the ideal DCG must count at most k relevant items: the best top k holds "
         "min(len(relevant), k) of them"): _ideal_uncapped,
    },
    hints=[
        ("DCG@k adds 1 / log2(rank + 1) for each relevant item in the top k, with ranks "
         "1, 2, 3, ...; in Python's 0-based enumerate that is 1 / math.log2(i + 2)."),
        ("The ideal DCG is the DCG of a perfect ranking: all relevant items first, so the "
         "first min(len(relevant), k) ranks each add 1 / log2(rank + 1)."),
        "NDCG = DCG / ideal DCG, and 0.0 when there is nothing relevant.",
    ],
    setup="import math\nfrom collections.abc import Sequence",
))


def _profile_cases() -> Iterator[Case]:
    g = _rng(11)
    vecs = g.normal(size=(10, 4)) * g.uniform(0.2, 6, size=(10, 1))
    yield Case((vecs, [[0, 1, 2], [5], [3, 9, 9, 4]]), label="3 users, items of very different "
               "lengths")
    yield Case((vecs, [[7, 8], []]), label="a user with no clicks gets a zero vector")
    yield Case((g.normal(size=(6, 3)), [[0, 1, 2, 3, 4, 5]]), label="one user who clicked all")


def _raw_mean_profiles(item_vecs, clicked):
    out = np.zeros((len(clicked), item_vecs.shape[1]))
    for u, items in enumerate(clicked):
        if len(items):
            m = item_vecs[list(items)].mean(0)
            out[u] = m / np.linalg.norm(m)
    return out


def _unnormalised_profiles(item_vecs, clicked):
    unit = item_vecs / np.linalg.norm(item_vecs, axis=1, keepdims=True)
    out = np.zeros((len(clicked), item_vecs.shape[1]))
    for u, items in enumerate(clicked):
        if len(items):
            out[u] = unit[list(items)].mean(0)
    return out


register(Exercise(
    id="09c.user_profiles",
    title="A user profile from past clicks",
    reference=user_profiles,
    cases=_profile_cases,
    compare=_compare_arrays,
    mistakes={
        ("averaged the raw vectors: make each item unit length first, or a long vector "
         "dominates the mean"): _raw_mean_profiles,
        "forgot to scale the mean back to unit length": _unnormalised_profiles,
    },
    hints=[
        ("Make every item vector unit length (divide by np.linalg.norm(..., axis=1, "
         "keepdims=True)), then average the rows of the items the user clicked."),
        "Divide the mean by its own norm; a user with no clicks keeps a row of zeros.",
    ],
    setup="from collections.abc import Sequence\n\nimport numpy as np",
))
