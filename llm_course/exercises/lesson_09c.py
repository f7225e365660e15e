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

# ----------------------------------------------------------------------------------------------
# 09c_recommendation: the end-of-lesson quiz (plain data; `exercises.quiz("09c")` shows and
# checks it)

QUIZ = [
    {"question": "A new article has just been published and nobody has clicked it. Which "
                 "recommender can place it high on a reader's list, and why?",
     "choices": {
         "a": "Popularity, because new stories are what everyone wants.",
         "b": "The click model, because its popularity weight is learned.",
         "c": "Neither: no recommender can rank an item without clicks.",
         "d": "The text model: it needs only the article's text to embed it and compare it with "
              "the reader's profile; popularity gives it 0 clicks, tied with the least-read "
              "stories.",
     },
     "answer": "d",
     "why": {
         "a": "No. Popularity counts past clicks; a new article has none, so it sinks to the "
              "bottom for everyone (section 7's table).",
         "b": "Only through its text feature: the popularity feature of a new article is $\\log(1 "
              "+ 0) = 0$, which pulls it down. The going-further suggests giving new articles the "
              "median popularity instead.",
         "c": "No. Collaborative methods need clicks; a content-based model needs the content.",
         "d": "Right. That is the cold-start case for content-based recommendation, and news is "
              "mostly new articles: section 7 found the new articles near the top of their fans' "
              "lists.",
     }},
    {"question": "Why score recommendations with NDCG@10 rather than with the accuracy of "
                 "predicting 'click' or 'no click' for every article?",
     "choices": {
         "a": "Accuracy is harder to compute.",
         "b": "A reader sees a short list; what matters is whether their clicks are in it and how "
              "near the top. With thousands of articles and a few dozen clicks, 'no click' "
              "everywhere is almost 100 % accurate and useless.",
         "c": "NDCG also rewards articles the reader did not click.",
         "d": "Accuracy cannot be computed on held-out readers.",
     },
     "answer": "b",
     "why": {
         "a": "No. Accuracy is trivial to compute; it just measures the wrong thing.",
         "b": "Right. Almost every (reader, article) pair is a 'no click', so accuracy rewards "
              "predicting nothing. NDCG@10 looks only at the top 10, weights a hit by "
              "$1/\\log_2(r+1)$, and divides by the best possible DCG so 1 means perfect.",
         "c": "No. With binary relevance only held-out clicks earn gain; other articles score 0 "
              "wherever they are.",
         "d": "No. It could be computed; it would just say little.",
     }},
    {"question": "Two rankings each put 2 of a reader's held-out clicks in the top 10: ranking A "
                 "at ranks 1 and 2, ranking B at ranks 9 and 10. Compare them.",
     "choices": {
         "a": "Same recall@10 and same NDCG@10.",
         "b": "A has the higher recall@10; same NDCG@10.",
         "c": "Same recall@10; A has the higher NDCG@10.",
         "d": "Same recall@10; B has the higher NDCG@10, because it reached deeper.",
     },
     "answer": "c",
     "why": {
         "a": "No. Recall only counts hits in the top 10, but NDCG discounts each hit by its "
              "rank: $1 + 1/\\log_2 3 \\approx 1.63$ for A against $1/\\log_2 10 + 1/\\log_2 11 "
              "\\approx 0.59$ for B, before normalising.",
         "b": "No. Both have two hits in the top 10: recall@10 is equal.",
         "c": "Right. Both find 2 of the clicks, so recall@10 is the same; NDCG rewards A for "
              "putting them where a reader looks first.",
         "d": "No. The discount $1/\\log_2(r+1)$ falls with the rank: hits lower down count less.",
     }},
    {"question": "Why is the popularity baseline, the same list for everyone, hard to beat here?",
     "choices": {
         "a": "Because the simulator gives each article an *appeal*: some stories are clicked "
              "more by everyone, and popularity exploits exactly that.",
         "b": "Because popularity uses the article text too.",
         "c": "Because the test readers were chosen among the most active ones.",
         "d": "It is not: text alone beat it by a wide margin.",
     },
     "answer": "a",
     "why": {
         "a": "Right. Clicks come from (preference for the theme) x (appeal); popularity captures "
              "the shared part. The click model combines it with the reader's text profile and "
              "beats both.",
         "b": "No. It counts clicks only; that is why it cannot rank new articles.",
         "c": "No. Held-out readers are a random 20 %.",
         "d": "No. At `laptop` text alone only just beat popularity: a mean profile cannot tell a "
              "reader's favourite theme from one they clicked once.",
     }},
    {"question": "In section 6's bar chart (NDCG@10 on held-out readers), what does the "
                 "**oracle** bar show, and why is it below 1?",
     "choices": {
         "a": "The best real recommenders; it is below 1 because our models are small.",
         "b": "A model trained on the test readers' clicks, to show overfitting.",
         "c": "A ceiling: ranking by the simulator's true click probabilities, which no model can "
              "beat on average. It is below 1 because clicks are random draws (and 10 % noise): "
              "even the true tastes cannot say which articles a reader will pick.",
         "d": "The popularity baseline measured on training readers.",
     },
     "answer": "c",
     "why": {
         "a": "No. It is not a model at all; only a simulation can give it.",
         "b": "No. Nothing is trained on the test readers' clicks; the oracle reads the "
              "simulator's own probabilities.",
         "c": "Right. The gap between the click model's bar and the oracle's is what is left to "
              "learn; the gap between the oracle and 1 is chance that no model can remove.",
         "d": "No. Popularity has its own bar.",
     },
     "figure": "the NDCG@10 bar chart of section 6"},
    {"question": "The text-plus-popularity click model is a logistic regression on two features. "
                 "What does it learn from the training readers?",
     "choices": {
         "a": "New article embeddings.",
         "b": "How much to trust each signal: the weights on the cosine similarity to the "
              "reader's profile (what they like) and on $\\log(1 + n_i)$, $n_i$ the article's "
              "clicks (what everybody clicks).",
         "c": "Each held-out reader's own preferences.",
         "d": "The number of articles to recommend.",
     },
     "answer": "b",
     "why": {
         "a": "No. The embeddings come from the encoder (pretrained or fine-tuned on co-clicks); "
              "the click model only weighs two numbers per pair.",
         "b": "Right. Later clicks of training readers are positives, random articles negatives; "
              "the two learned weights say how to blend text and popularity.",
         "c": "No. Held-out readers enter only through their history profile at prediction time; "
              "nothing is fitted to them.",
         "d": "No. The list length, 10, is fixed by the evaluation.",
     }},
    {"question": "The readers and their clicks are simulated. What would a real click log such as "
                 "MIND most likely change?",
     "choices": {
         "a": "Nothing: a simulator with themes and appeal is a faithful model of readers.",
         "b": "Popularity would stop working, because real readers do not share tastes.",
         "c": "Higher numbers, because real readers are more predictable.",
         "d": "Lower and noisier numbers: real interests are messier, change over time, and what "
              "people are shown shapes what they click.",
     },
     "answer": "d",
     "why": {
         "a": "No. The simulator encodes our assumptions; the models are partly scored on how "
              "well they match them.",
         "b": "No. Real readers do share tastes (breaking news, popular stories); popularity is a "
              "standard, strong baseline on real logs too.",
         "c": "No. Nothing suggests that; the simulator leaves out most of what makes real clicks "
              "hard to predict.",
         "d": "Right. The simulated log shows the method and lets us know the true tastes (the "
              "oracle); real data removes that comfort.",
     }},
]
