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

# ----------------------------------------------------------------------------------------------
# 09a_faq_assistant: the end-of-lesson quiz (plain data; `exercises.quiz("09a")` shows and
# checks it)

QUIZ = [
    {"question": "This assistant never writes a sentence of its own: it returns a stored answer "
                 "(retrieval), where a language model would write a new one (generation). What "
                 "does that buy, and what does it cost?",
     "choices": {
         "a": "It buys nothing: retrieval is only a cheap stand-in until a generator is trained.",
         "b": "It can answer any question, because a nearest neighbour always exists.",
         "c": "Every reply is an answer a person wrote and can check, and the similarity score "
              "says how good the match is; but it can only answer what is stored, so questions "
              "outside the collection need a hand-over.",
         "d": "Its answers need no evaluation, because people wrote them.",
     },
     "answer": "c",
     "why": {
         "a": "No. For customer service, vetted answers and a score to decide when not to answer "
              "are exactly what is wanted; a generator can produce a fluent wrong instruction.",
         "b": "No. A nearest neighbour always exists, which is precisely the danger: for 'I want "
              "a refund' it still finds *some* stored question, and its answer is wrong.",
         "c": "Right. The collection bounds what it can say, for better and worse: no invented "
              "answers, and no answers beyond the collection. That is why section 4 adds the "
              "hand-over threshold.",
         "d": "No. The answers are right for their own questions; whether the *matching* picks "
              "the right one is what top-1 accuracy measures.",
     }},
    {"question": "Read section 4's figure (left: best similarity of answerable and unanswerable "
                 "tuning questions; right: utility against the threshold). If you raise "
                 "`wrong_cost`, where does the chosen threshold go?",
     "choices": {
         "a": "Up: each wrong answer now costs more, so the best threshold moves right; the "
              "assistant answers less often and is right more often when it does.",
         "b": "Down: a higher cost means the assistant must answer more questions to make up for "
              "it.",
         "c": "Nowhere: the threshold depends only on the similarity histograms, not on costs.",
         "d": "To 1.0 always: any positive cost makes handing everything over the best choice.",
     },
     "answer": "a",
     "why": {
         "a": "Right. The utility counts right answers minus `wrong_cost` times wrong ones. Where "
              "the two histograms overlap, answering gains +1 on some questions and loses the "
              "cost on others; a higher cost tips that trade towards handing over.",
         "b": "No. Answering more means more wrong answers, each now more expensive.",
         "c": "No. The histograms say where the questions lie; the costs decide where to cut. The "
              "right panel is the utility curve, and it changes shape with the cost.",
         "d": "No. A right answer still earns +1; as long as the high-similarity questions are "
              "mostly answerable, answering them beats handing them over.",
     },
     "figure": "the threshold figure of section 4 (similarity histograms, utility curve)"},
    {"question": "Why does the assistant compare embeddings by cosine similarity rather than by "
                 "the raw dot product?",
     "choices": {
         "a": "Cosine ignores word order, the dot product does not.",
         "b": "The dot product cannot be computed for vectors of size 384.",
         "c": "Cosine is always larger, which makes the threshold easier to set.",
         "d": "Cosine compares directions, not lengths: a question does not win just because its "
              "vector is long.",
     },
     "answer": "d",
     "why": {
         "a": "No. Both act on the same pooled vectors; word order is handled (or not) by the "
              "encoder before either is computed.",
         "b": "No. Any two vectors of the same size have a dot product.",
         "c": "No. Cosine lies in [-1, 1]; the dot product is unbounded. A bounded score does "
              "make a threshold easier to reason about, but not because it is larger.",
         "d": "Right. Dividing by both norms leaves only the angle, which is what the encoder was "
              "trained to make meaningful.",
     }},
    {"question": "TF-IDF word overlap scored far below MiniLM at top-1. What kind of test "
                 "question does word overlap get wrong?",
     "choices": {
         "a": "Questions the collection cannot answer.",
         "b": "Paraphrases in other words, such as 'the display keeps blinking' for 'my screen is "
              "flickering'.",
         "c": "Very short questions, because TF-IDF needs long texts.",
         "d": "Questions with capital letters.",
     },
     "answer": "b",
     "why": {
         "a": "Those are a problem for every method (that is the hand-over's job); top-1 is "
              "measured on answerable paraphrases.",
         "b": "Right. With no shared words there is nothing to overlap, while the encoder maps "
              "both wordings to nearby vectors.",
         "c": "No. The stored questions are short too, and TF-IDF handles short texts; what it "
              "needs is shared words.",
         "d": "No. TF-IDF lower-cases by default.",
     }},
    {"question": "Fine-tuning the encoder on pairs of questions from the **same category** made "
                 "retrieval worse. Why?",
     "choices": {
         "a": "It teaches that all questions of a category are alike, which is exactly what "
              "retrieval must not believe: it has to tell the questions of one category apart.",
         "b": "The learning rate was too high for this signal.",
         "c": "Category labels in the collection are wrong.",
         "d": "Any fine-tuning of a pretrained sentence encoder makes retrieval worse.",
     },
     "answer": "a",
     "why": {
         "a": "Right. The training signal decides what 'similar' means. Pairing a question with "
              "its own answer teaches what a good match is, and did not hurt.",
         "b": "No. Both fine-tunes used the same steps and learning rate; only the pairs "
              "differed, and only the category pairs hurt.",
         "c": "No. The categories are fine as categories; they are the wrong notion of similarity "
              "for finding one specific question.",
         "d": "No. Fine-tuning on question-answer pairs kept or slightly raised top-1.",
     }},
    {"question": "The threshold and the deployed encoder are chosen on the **tuning** half of the "
                 "test questions, and results are reported on the other half. Why?",
     "choices": {
         "a": "The tuning half is easier, so the threshold comes out more cautious.",
         "b": "To double the number of test questions.",
         "c": "Whatever is chosen on a set fits that set's quirks; reporting on the same set "
              "would make the numbers too good.",
         "d": "Because the tuning half contains no unanswerable questions.",
     },
     "answer": "c",
     "why": {
         "a": "No. The halves are split alternately from the same questions; neither is meant to "
              "be easier.",
         "b": "No. Splitting halves the questions each number rests on; that is the price of an "
              "honest estimate.",
         "c": "Right. Choosing is a form of fitting; the test half stays untouched so that its "
              "numbers estimate what new customers would see.",
         "d": "No. Both halves hold answerable and unanswerable questions: the threshold needs "
              "both to be chosen.",
     }},
    {"question": "The contrastive loss of section 5 trains with **in-batch negatives**. Where do "
                 "the negatives come from?",
     "choices": {
         "a": "From a separate list of wrong answers written for each question.",
         "b": "There are none: the loss only pulls pairs together.",
         "c": "From random noise vectors added to the embeddings.",
         "d": "From the other pairs in the batch: each anchor must pick its own partner out of "
              "all $B$ positives, so the other $B - 1$ act as its negatives.",
     },
     "answer": "d",
     "why": {
         "a": "No. Nobody wrote negatives; that is the point of the trick.",
         "b": "No. A loss that only pulls pairs together is satisfied by mapping every text to "
              "the same vector; the softmax over the batch also pushes the others away.",
         "c": "No. That would be a kind of augmentation, not this loss.",
         "d": "Right. It is a cross-entropy over the batch, with the other pairs as the wrong "
              "classes: larger batches give more negatives for free.",
     }},
]
