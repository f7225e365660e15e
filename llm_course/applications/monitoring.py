"""Watching a news stream: route, score, alert (taught in 09b_news_monitoring).

A monitoring pipeline has three steps:

1. *route*: a topic classifier keeps the stories about business;
2. *score*: a sentiment classifier marks each kept story negative or positive;
3. *alert*: each day's share of negative stories is compared with the days before it as a
   z-score over a rolling window, z_t = (x_t - mean) / std; a z-score above a threshold
   raises an alert.

`predict_proba` runs any sequence classifier over texts. `simulate_stream` builds a
*simulated* timeline of stories with surges of bad news injected at known days, so the
alert can be scored: `alert_episodes` groups alert days into episodes and
`alert_precision_recall` says how many episodes were real surges (precision) and how many
surges were caught (recall). `finance_headlines` loads the hand-labelled business
headlines that measure the sentiment model's domain shift (`data/finance_headlines.tsv`);
`cross_fit` adapts the model to them so that every headline is scored by a model that
never trained on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import numpy as np
import pandas as pd
import torch

from llm_course.env import dry_run

_HEADLINES = "finance_headlines.tsv"


def finance_headlines() -> list[tuple[str, str]]:
    """09b's 66 real BBC business headlines as (headline, sentiment) pairs, in file order;
    sentiment is "negative" or "positive", labelled by hand for the course (see
    `data/README.md`). The file is tab-separated with a header line and no quoting."""
    path = files("llm_course.applications") / "data" / _HEADLINES
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    if header.split("\t") != ["headline", "sentiment"]:
        raise ValueError(f"{_HEADLINES}: unexpected header {header!r}")
    rows = []
    for line in lines:
        text, sentiment = line.split("\t")
        rows.append((text, sentiment))
    return rows


@torch.no_grad()
def predict_proba(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str],
                  batch_size: int = 64, max_length: int = 64) -> np.ndarray:
    """Class probabilities (n_texts, n_classes) from a sequence classifier, in text order.

    A dry run (`llm_course.env.dry_run`) scores one batch and repeats its rows for the rest.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts = list(texts)
    out = []
    try:
        for part in dry_run.batch_slices(len(texts), batch_size):
            enc = tokenizer(texts[part], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt").to(device)
            out.append(model(**enc).logits.float().softmax(-1).cpu().numpy())
    finally:
        model.train(was_training)
    n_classes = model.config.num_labels
    if not out:
        return np.zeros((0, n_classes), dtype=np.float32)
    return dry_run.fill_rows(np.concatenate(out), len(texts))


def rolling_zscore(values: Sequence[float], window: int = 14,
                   min_std: float = 0.05) -> np.ndarray:
    """z_t = (x_t - mean of the `window` values before t) / their std (at least `min_std`).

    The current value is never part of its own baseline, and the first `window` values
    have no baseline yet: their z is NaN. `min_std` keeps a quiet stretch (std near 0)
    from turning a tiny change into a huge z. NaN values (days with no story) are skipped
    in the baseline.
    """
    x = np.asarray(values, dtype=float)
    z = np.full(len(x), np.nan)
    for t in range(window, len(x)):
        past = x[t - window:t]
        past = past[~np.isnan(past)]
        if len(past) < 2 or np.isnan(x[t]):
            continue
        z[t] = (x[t] - past.mean()) / max(past.std(), min_std)
    return z


def alert_episodes(alerts: Sequence[bool]) -> list[tuple[int, int]]:
    """Runs of consecutive alert days as (first day, last day), both included."""
    episodes, start = [], None
    for day, on in enumerate(list(alerts) + [False]):
        if on and start is None:
            start = day
        elif not on and start is not None:
            episodes.append((start, day - 1))
            start = None
    return episodes


def alert_precision_recall(alerts: Sequence[bool], surges: Sequence[tuple[int, int]],
                           grace: int = 2) -> tuple[float, float]:
    """(precision, recall) of alert episodes against known surges.

    An episode is a hit when it overlaps a surge, counted from the surge's first day to
    `grace` days after its last (an alert can only fire once the surge has begun, and may
    fire a little late). Precision = hits / episodes (0 when there is no alert at all);
    recall = surges overlapped by at least one episode / surges.
    """
    episodes, start = [], None  # runs of consecutive alert days (as in alert_episodes)
    for day, on in enumerate(list(alerts) + [False]):
        if on and start is None:
            start = day
        elif not on and start is not None:
            episodes.append((start, day - 1))
            start = None
    windows = [(first, last + grace) for first, last in surges]

    def overlaps(ep: tuple[int, int], win: tuple[int, int]) -> bool:
        return ep[0] <= win[1] and win[0] <= ep[1]

    hits = sum(any(overlaps(ep, win) for win in windows) for ep in episodes)
    caught = sum(any(overlaps(ep, win) for ep in episodes) for win in windows)
    precision = hits / len(episodes) if episodes else 0.0
    recall = caught / len(windows) if windows else 0.0
    return precision, recall


def simulate_stream(business_negative: Sequence[bool], n_other: int, days: int = 120,
                    stories_per_day: float = 60.0, business_share: float = 0.25,
                    base_negative: float = 0.35, surge_negative: float = 0.8,
                    surges: Sequence[tuple[int, int]] = ((45, 47), (95, 96)),
                    seed: int = 0) -> pd.DataFrame:
    """A SIMULATED news timeline: one row per story.

    Stories are drawn (with replacement) from two pools: business stories whose true
    sentiment is known (`business_negative`, one flag per story) and `n_other` stories on
    other topics. Each day has Poisson(`stories_per_day`) stories, a `business_share` of
    them business; a business story is negative with probability `base_negative`, or
    `surge_negative` on the days of a surge ((first, last) day, both included).
    Columns: day, pool ("business" / "other"), item (index in its pool), true_negative
    (NaN for other topics), in_surge.
    """
    rng = np.random.default_rng(seed)
    flags = np.asarray(business_negative, dtype=bool)
    negatives, positives = np.flatnonzero(flags), np.flatnonzero(~flags)
    if len(negatives) == 0 or len(positives) == 0:
        raise ValueError("the business pool needs both negative and positive stories")
    rows = []
    for day in range(days):
        in_surge = any(start <= day <= end for start, end in surges)
        p_negative = surge_negative if in_surge else base_negative
        for _ in range(rng.poisson(stories_per_day)):
            if rng.random() < business_share:
                negative = rng.random() < p_negative
                item = int(rng.choice(negatives if negative else positives))
                rows.append((day, "business", item, float(negative), in_surge))
            else:
                rows.append((day, "other", int(rng.integers(n_other)), np.nan, in_surge))
    return pd.DataFrame(rows, columns=["day", "pool", "item", "true_negative", "in_surge"])


def daily_share(stream: pd.DataFrame, flag: str, days: int | None = None) -> pd.DataFrame:
    """Per day: how many rows, and the share where column `flag` is true (NaN: none)."""
    days = days if days is not None else int(stream["day"].max()) + 1
    grouped = stream.groupby("day")[flag].agg(["size", "mean"])
    out = grouped.reindex(range(days))
    out["size"] = out["size"].fillna(0).astype(int)
    return out.rename(columns={"size": "stories", "mean": "share"})


def few_shot_finetune(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str],
                      labels: Sequence[int], config: Any, max_length: int = 48) -> Any:
    """Fine-tune a sequence classifier in place on a few labelled texts; return the History.

    `config` is a `TrainConfig` (e.g. `recipe_config("finetune", scale, max_steps=30, lr=3e-5)`):
    with a few dozen examples, a few epochs at a small learning rate are enough.
    """
    from transformers import DataCollatorWithPadding

    from llm_course.training.loop import fit

    data = [dict(tokenizer(text, truncation=True, max_length=max_length), labels=int(label))
            for text, label in zip(texts, labels, strict=True)]
    return fit(model, data, None, config=config, collate_fn=DataCollatorWithPadding(tokenizer))


@dataclass
class CrossFit:
    """What `cross_fit` returns: out-of-fold predictions and the models that made them.

    `predictions[i]` comes from `models[fold[i]]`, which was fine-tuned on `trained_on[k]`
    (the texts of the other folds) and never on text i.
    """

    texts: list[str]
    predictions: np.ndarray
    fold: np.ndarray
    models: list[torch.nn.Module]
    trained_on: list[set[str]]

    def seen_in_training(self, items: Sequence[int]) -> int:
        """How many of `items` (indices into `texts`) the model that scores them trained on."""
        return sum(self.texts[i] in self.trained_on[self.fold[i]] for i in items)


def cross_fit(load_model: Any, tokenizer: Any, texts: Sequence[str], labels: Sequence[int],
              config: Any, folds: int = 3, max_length: int = 48, seed: int = 0) -> CrossFit:
    """Out-of-fold predicted labels: every text is predicted by a model that never saw it.

    The texts are split into `folds` stratified parts; for each part a fresh model
    (`load_model()`) is fine-tuned on the other parts (`few_shot_finetune`) and predicts
    this one. With few labels this uses all of them for testing, none twice; 09b also
    scores its simulated stream this way, each headline by the model that held it out.
    """
    from sklearn.model_selection import StratifiedKFold

    texts, labels = list(texts), np.asarray(labels)
    predictions, fold = np.full(len(texts), -1), np.full(len(texts), -1)
    models, trained_on = [], []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (train_idx, test_idx) in enumerate(splitter.split(texts, labels)):
        model = load_model()
        train_texts = [texts[i] for i in train_idx]
        few_shot_finetune(model, tokenizer, train_texts, labels[train_idx], config, max_length)
        probs = predict_proba(model, tokenizer, [texts[i] for i in test_idx],
                              max_length=max_length)
        predictions[test_idx], fold[test_idx] = probs.argmax(1), k
        models.append(model)
        trained_on.append(set(train_texts))
    return CrossFit(texts, predictions, fold, models, trained_on)
