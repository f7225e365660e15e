"""Recommending articles from their text (taught in 09c_recommendation).

The pieces of a small content-based recommender:

* `text_themes` groups the articles into finer themes (k-means on TF-IDF), which the
  simulated users have preferences for;
* `simulate_clicks` makes a SIMULATED click log: users with topic preferences plus noise,
  articles with an appeal of their own (some are simply more popular). Real logs (e.g.
  the MIND news-click data set) would replace it; the notebook says so.
* `split_users` holds out whole users, and for each of them the later part of their
  clicks: the model sees a user's history and must find what they clicked next.
* `popularity` is the baseline: recommend what most people clicked.
* `user_profiles` is the text model's view of a user: the mean embedding of their past
  clicks; `cosine_scores` scores every article against it.
* `ClickModel` learns, with a logistic regression, how much to trust text similarity and
  popularity when predicting a click.
* `ndcg_at_k`, `recall_at_k` and `evaluate_ranking` score a ranking against held-out
  clicks: NDCG@k = DCG@k / ideal DCG@k, with DCG@k = sum over ranks r <= k of
  rel_r / log2(r + 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def text_themes(texts: Sequence[str], n_themes: int = 30, seed: int = 0
                ) -> tuple[np.ndarray, list[list[str]]]:
    """Group texts into `n_themes` finer themes: k-means on TF-IDF word weights.

    The simulation's users like themes, which are finer than the five BBC topics (football
    and tennis rather than "sport"). Using word counts here, not the encoder that the
    recommender uses, keeps the simulation from handing the model its own view of the
    text. Returns (theme of each text, the top words of each theme).
    """
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2, max_df=0.5)
    x = vectorizer.fit_transform(texts)
    kmeans = KMeans(n_clusters=n_themes, n_init=4, random_state=seed).fit(x)
    words = vectorizer.get_feature_names_out()
    top = [[str(words[i]) for i in np.argsort(-center)[:5]] for center in kmeans.cluster_centers_]
    return kmeans.labels_.astype(int), top


def simulate_clicks(item_topics: Sequence[int], n_users: int, clicks: tuple[int, int] = (12, 30),
                    concentration: float = 0.3, noise: float = 0.1, appeal_sigma: float = 1.0,
                    exclude: Sequence[int] = (), seed: int = 0
                    ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A SIMULATED click log: (clicks, user topic preferences, item appeal).

    Each user's topic preferences come from a Dirichlet(`concentration`) draw (small
    values: a few favourite topics). Each article has an appeal, log-normal with
    `appeal_sigma`. A user clicks between clicks[0] and clicks[1] distinct articles, each
    drawn with probability (1 - noise) * pref[topic] * appeal / (total appeal of that
    topic) + noise / n_items. Articles in `exclude` (e.g. ones published later) are never
    clicked. `clicks` has columns user, item, position (0 = first click).
    """
    rng = np.random.default_rng(seed)
    topics = np.asarray(item_topics)
    n_items, n_topics = len(topics), int(topics.max()) + 1
    prefs = rng.dirichlet(np.full(n_topics, concentration), size=n_users)
    appeal = rng.lognormal(0.0, appeal_sigma, size=n_items)
    allowed = np.ones(n_items, dtype=bool)
    allowed[list(exclude)] = False
    topic_total = np.bincount(topics, weights=appeal * allowed, minlength=n_topics)
    within = np.where(allowed, appeal / np.maximum(topic_total[topics], 1e-12), 0.0)
    rows = []
    for user in range(n_users):
        p = (1 - noise) * prefs[user, topics] * within + noise * allowed / allowed.sum()
        p /= p.sum()
        n = int(rng.integers(clicks[0], clicks[1] + 1))
        for position, item in enumerate(rng.choice(n_items, size=n, replace=False, p=p)):
            rows.append((user, int(item), position))
    return pd.DataFrame(rows, columns=["user", "item", "position"]), prefs, appeal


def split_users(clicks: pd.DataFrame, test_share: float = 0.2, history_share: float = 0.5,
                seed: int = 0) -> dict[str, Any]:
    """Hold out `test_share` of the users; split their clicks into history and held-out.

    Returns {"train": clicks of the other users, "history": the first `history_share` of
    each held-out user's clicks, "heldout": the rest, "test_users": their ids}.
    """
    rng = np.random.default_rng(seed)
    users = np.array(sorted(clicks["user"].unique()))
    test_users = np.sort(rng.choice(users, size=max(1, round(test_share * len(users))),
                                    replace=False))
    is_test = clicks["user"].isin(test_users)
    test = clicks[is_test]
    n_clicks = test.groupby("user")["position"].transform("size")
    early = test["position"] < np.maximum(1, np.round(history_share * n_clicks))
    return {"train": clicks[~is_test].reset_index(drop=True),
            "history": test[early].reset_index(drop=True),
            "heldout": test[~early].reset_index(drop=True), "test_users": test_users}


def popularity(clicks: pd.DataFrame, n_items: int) -> np.ndarray:
    """How many times each item was clicked."""
    return np.bincount(clicks["item"].to_numpy(), minlength=n_items).astype(float)


def by_user(clicks: pd.DataFrame, users: Sequence[int]) -> list[list[int]]:
    """The items each of `users` clicked, in click order."""
    groups = clicks.sort_values("position").groupby("user")["item"].apply(list)
    return [groups.get(user, []) for user in users]


def user_profiles(item_vecs: np.ndarray, clicked: Sequence[Sequence[int]]) -> np.ndarray:
    """One vector per user: the mean of the unit-length vectors of their clicked items,
    scaled back to unit length (a user with no clicks gets zeros)."""
    unit = item_vecs / np.linalg.norm(item_vecs, axis=1, keepdims=True).clip(min=1e-12)
    profiles = np.zeros((len(clicked), item_vecs.shape[1]), dtype=float)
    for u, items in enumerate(clicked):
        if len(items):
            mean = unit[list(items)].mean(axis=0)
            profiles[u] = mean / max(np.linalg.norm(mean), 1e-12)
    return profiles


def cosine_scores(profiles: np.ndarray, item_vecs: np.ndarray) -> np.ndarray:
    """Cosine similarity of every user profile with every item: (n_users, n_items)."""
    unit = item_vecs / np.linalg.norm(item_vecs, axis=1, keepdims=True).clip(min=1e-12)
    return profiles @ unit.T


def ndcg_at_k(ranked: Sequence[int], relevant: set[int] | Sequence[int], k: int = 10) -> float:
    """NDCG@k with binary relevance: DCG of the top k over the best possible DCG."""
    relevant = set(relevant)
    dcg = sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(list(ranked)[:k])
              if item in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg / ideal if ideal > 0 else 0.0


def recall_at_k(ranked: Sequence[int], relevant: set[int] | Sequence[int], k: int = 10) -> float:
    """Share of the relevant items found in the top k."""
    relevant = set(relevant)
    if not relevant:
        return 0.0
    return len(relevant & set(list(ranked)[:k])) / len(relevant)


def top_k(scores: np.ndarray, exclude: Sequence[Sequence[int]], k: int = 10) -> np.ndarray:
    """The k best items per user (best first), never one the user already clicked.

    Ties are broken by item id, so a score that is the same for every item (a new
    article's popularity, 0) gives a stable, arbitrary order.
    """
    scores = np.array(scores, dtype=float, copy=True)
    for u, items in enumerate(exclude):
        scores[u, list(items)] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def evaluate_ranking(scores: np.ndarray, history: Sequence[Sequence[int]],
                     heldout: Sequence[Sequence[int]], k: int = 10) -> dict[str, float]:
    """Mean NDCG@k and recall@k over users: `scores` is (n_users, n_items)."""
    ranked = top_k(scores, history, k)
    ndcg = [ndcg_at_k(r, h, k) for r, h in zip(ranked, heldout, strict=True)]
    recall = [recall_at_k(r, h, k) for r, h in zip(ranked, heldout, strict=True)]
    return {f"ndcg{k}": float(np.mean(ndcg)), f"recall{k}": float(np.mean(recall))}


def percentile_rank(scores: np.ndarray, item: int) -> np.ndarray:
    """Per user, the share of items scored strictly above `item` (0 = ranked first)."""
    return (scores > scores[:, [item]]).mean(axis=1)


@dataclass
class ClickModel:
    """P(click) = sigmoid(w_text * cosine(profile, item) + w_pop * log(1 + clicks) + b)."""

    model: Any

    @staticmethod
    def features(similarity: np.ndarray, item_popularity: np.ndarray) -> np.ndarray:
        """The two features for every (user, item) pair, shaped (..., 2)."""
        pop = np.broadcast_to(np.log1p(item_popularity), similarity.shape)
        return np.stack([similarity, pop], axis=-1)

    @classmethod
    def fit(cls, profiles: np.ndarray, item_vecs: np.ndarray, item_popularity: np.ndarray,
            clicked: Sequence[Sequence[int]], negatives: int = 20, seed: int = 0) -> ClickModel:
        """Learn from users' clicks (positives) and `negatives` random items per click."""
        from sklearn.linear_model import LogisticRegression

        rng = np.random.default_rng(seed)
        sims = cosine_scores(profiles, item_vecs)
        x, y = [], []
        for u, items in enumerate(clicked):
            for item in items:
                others = rng.integers(0, item_vecs.shape[0], size=negatives)
                for j, label in [(item, 1)] + [(int(o), 0) for o in others]:
                    x.append((sims[u, j], math.log1p(item_popularity[j])))
                    y.append(label)
        return cls(LogisticRegression(max_iter=1000).fit(np.array(x), np.array(y)))

    def scores(self, profiles: np.ndarray, item_vecs: np.ndarray,
               item_popularity: np.ndarray) -> np.ndarray:
        """The click logit for every user and item: (n_users, n_items)."""
        feats = self.features(cosine_scores(profiles, item_vecs), item_popularity)
        return feats @ self.model.coef_[0] + self.model.intercept_[0]

    @property
    def weights(self) -> dict[str, float]:
        w = self.model.coef_[0]
        return {"text": float(w[0]), "popularity": float(w[1])}
