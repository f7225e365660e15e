"""Exercises of 09a_faq_assistant (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from llm_course.applications.retrieval import cosine_top_k, top_k_accuracy
from llm_course.exercises.registry import Case, Exercise, register

# The references are the package's own functions (llm_course.applications.retrieval):
# `ex.solution()` prints their real source.

# ----------------------------------------------------------------------------------------------
# Helpers shared with 09b and 09c (they import them from here)


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
