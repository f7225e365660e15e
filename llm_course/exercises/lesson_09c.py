"""Exercises of 09c_recommendation (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from llm_course.applications.recommend import ndcg_at_k, user_profiles
from llm_course.exercises.lesson_09a import _compare_arrays, _rng
from llm_course.exercises.registry import Case, Exercise, register

# The references are the package's own functions (llm_course.applications.recommend):
# `ex.solution()` prints their real source.

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
