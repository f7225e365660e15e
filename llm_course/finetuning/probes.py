"""Frozen features and linear probes (taught in 04_transfer_learning, reused in 05).

Transfer learning at its simplest: keep a pretrained encoder frozen, turn each text into
one vector, and train only a small classifier on those vectors (a *linear probe*).

    feats = embed(model, tokenizer, texts)            # (n, hidden), no gradients
    fitted = probe(feats[train], y[train], feats[valid], y[valid])
    fitted.accuracy(feats[test], y[test])

* `mean_pool` averages the hidden states of the real tokens (padding excluded);
* `embed` runs the encoder under `torch.no_grad`, in bf16 where the device is fast at it,
  batching texts of similar length together so little time goes on padding;
* `probe` fits a logistic regression for each regularisation strength `C` and keeps the
  one that scores best on the validation split (never the test split);
* `tfidf_probe` is the classic baseline: word and word-pair counts, TF-IDF weighted,
  with the same logistic regression on top;
* `random_twin` builds a model of the same shape with random weights: the control that
  tells what pretraining added;
* `subsample` draws a class-balanced set of n labelled examples for a learning curve;
* `token_features` does the same per word for NER: the hidden states of each word's first
  piece, from the last few layers side by side, computed once; `TokenHead` is the
  trainable tagger that reads them (with `pad_token_features` as its `collate_fn`, `fit`
  trains it in seconds, since the frozen encoder never runs again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from torch import nn

from llm_course.env import dry_run
from llm_course.env.device import autocast_context

DEFAULT_CS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # for standardised features
TFIDF_CS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of `hidden` (batch, tokens, dim) over the tokens where `attention_mask` is 1."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)


@torch.no_grad()
def embed(model: torch.nn.Module, tokenizer: Any, texts: Sequence[str], *,
          batch_size: int = 256, max_length: int = 128, layer: int = -1,
          precision: str = "auto") -> np.ndarray:
    """One vector per text: the mean-pooled hidden states of `layer` (-1: the last).

    `model` is an encoder (`AutoModel`, or a task model: its body is used). Returns a float32
    array of shape (len(texts), hidden_size) in the order of `texts`. A dry run
    (`llm_course.env.dry_run`) embeds one batch and repeats its rows for the other texts.
    """
    body = getattr(model, "base_model", model)
    device = next(body.parameters()).device
    was_training = body.training
    body.eval()
    texts = list(texts)
    lengths = [len(t) for t in texts]
    order = np.argsort(lengths, kind="stable")  # similar lengths together: less padding
    out = np.zeros((len(texts), body.config.hidden_size), dtype=np.float32)
    try:
        done = 0
        for part in dry_run.batch_slices(len(texts), batch_size):
            idx = order[part]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt").to(device)
            with autocast_context(device, precision):
                result = body(**enc, output_hidden_states=layer != -1)
            hidden = result.last_hidden_state if layer == -1 else result.hidden_states[layer]
            out[idx] = mean_pool(hidden.float(), enc["attention_mask"]).cpu().numpy()
            done += len(idx)
    finally:
        body.train(was_training)
    out[order] = dry_run.fill_rows(out[order[:done]], len(texts))
    return out


@dataclass
class Probe:
    """A fitted classifier, the C it was chosen with, and the validation score of each C."""

    model: Any
    C: float
    valid_accuracy: float
    scores: dict[float, float] = field(default_factory=dict)

    def predict(self, x: Any) -> np.ndarray:
        return self.model.predict(x)

    def accuracy(self, x: Any, y: Sequence[int]) -> float:
        """Accuracy on (x, y): call it once, on the test split, at the very end."""
        return float(np.mean(self.predict(x) == np.asarray(y)))


def _choose(make, train_x, train_y, valid_x, valid_y, Cs) -> Probe:
    """Fit one model per C, keep the best on validation (a dry run tries the first 2 Cs)."""
    scores, best = {}, None
    for C in dry_run.sweep(Cs):
        model = make(C).fit(train_x, train_y)
        scores[C] = float(np.mean(model.predict(valid_x) == np.asarray(valid_y)))
        if best is None or scores[C] > scores[best[0]]:
            best = (C, model)
    return Probe(model=best[1], C=best[0], valid_accuracy=scores[best[0]], scores=scores)


def probe(train_x: np.ndarray, train_y: Sequence[int], valid_x: np.ndarray,
          valid_y: Sequence[int], Cs: Sequence[float] = DEFAULT_CS) -> Probe:
    """A logistic-regression probe on frozen features, C chosen on the validation split.

    Features are standardised first (mean 0, variance 1 per dimension, from the training
    rows), so one grid of C suits every encoder. Smaller C means stronger regularisation.
    A dry run (`llm_course.env.dry_run`) tries the first 2 values of C.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make(C):
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))

    return _choose(make, train_x, train_y, valid_x, valid_y, Cs)


def tfidf_probe(train_texts: Sequence[str], train_y: Sequence[int], valid_texts: Sequence[str],
                valid_y: Sequence[int], Cs: Sequence[float] = TFIDF_CS,
                ngram_range: tuple[int, int] = (1, 2), analyzer: str = "word",
                min_df: int = 1) -> Probe:
    """TF-IDF of words and word pairs + logistic regression, C chosen on validation.

    The pipeline takes raw texts: `fitted.accuracy(test_texts, test_y)`. `analyzer="char"`
    counts runs of characters instead (lesson 10), and `min_df` drops n-grams seen in fewer
    training texts. A dry run (`llm_course.env.dry_run`) tries the first 2 values of C.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram_range, sublinear_tf=True,
                                 min_df=min_df)
    train_x = vectorizer.fit_transform(list(train_texts))  # the vocabulary comes from train only
    valid_x = vectorizer.transform(list(valid_texts))

    from sklearn.multiclass import OneVsRestClassifier

    # liblinear is the fastest on sparse text (10x lbfgs on 100k word pairs); it fits two
    # classes, so more classes get one-vs-rest: one classifier per class
    two_classes = len(set(np.asarray(train_y).tolist())) <= 2

    def make(C):
        model = LogisticRegression(C=C, solver="liblinear", max_iter=2000)
        return model if two_classes else OneVsRestClassifier(model)

    fitted = _choose(make, train_x, train_y, valid_x, valid_y, Cs)
    fitted.model = make_pipeline(vectorizer, fitted.model)
    return fitted


def random_twin(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """A model with the same class and config as `model`, but freshly random weights."""
    torch.manual_seed(seed)
    twin = type(model)(model.config)
    twin.eval()
    return twin


def subsample(labels: Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """Indices of `n` examples drawn with the class proportions of `labels` (sorted)."""
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    picked, _ = train_test_split(index, train_size=n, random_state=seed, stratify=labels)
    return np.sort(picked)


# ------------------------------------------------------------------- token features (NER) ---

@torch.no_grad()
def token_features(model: torch.nn.Module, dataset: Any, collate_fn: Callable[[list], dict], *,
                   layers: int = 4, batch_size: int = 64,
                   precision: str = "auto") -> list[dict[str, torch.Tensor]]:
    """Per example, the frozen features of its labelled positions (each word's first piece).

    `dataset` holds `input_ids`, `attention_mask` and `labels` (-100 where nothing is
    scored), as `llm_course.finetuning.tasks.token_data` makes it. Returns a list of
    {"features": (words, layers * hidden) float32, "labels": (words,)}: the last `layers`
    hidden states side by side, the feature-based recipe of the BERT paper. A dry run
    (`llm_course.env.dry_run`) encodes one batch; the other examples keep their own labels
    with zero features.
    """
    body = getattr(model, "base_model", model)
    device = next(body.parameters()).device
    was_training = body.training
    body.eval()
    out: list[dict[str, torch.Tensor]] = []
    try:
        for part in dry_run.batch_slices(len(dataset), batch_size):
            batch = collate_fn([dataset[i] for i in range(len(dataset))[part]])
            with autocast_context(device, precision):
                result = body(input_ids=batch["input_ids"].to(device),
                              attention_mask=batch["attention_mask"].to(device),
                              output_hidden_states=True)
            stacked = torch.cat(result.hidden_states[-layers:], dim=-1).float().cpu()
            for row in range(stacked.shape[0]):
                keep = batch["labels"][row] != -100
                out.append({"features": stacked[row][keep].clone(),
                            "labels": batch["labels"][row][keep].clone()})
    finally:
        body.train(was_training)
    for i in range(len(out), len(dataset)):  # only in a dry run
        labels = torch.as_tensor(dataset[i]["labels"])
        labels = labels[labels != -100]
        out.append({"features": torch.zeros(len(labels), out[0]["features"].shape[-1]),
                    "labels": labels})
    return out


def pad_token_features(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Pad a batch of `token_features` rows: features with 0, labels with -100."""
    width = max(len(e["labels"]) for e in examples)
    dim = examples[0]["features"].shape[-1]
    feats = torch.zeros(len(examples), width, dim)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for i, e in enumerate(examples):
        feats[i, :len(e["labels"])] = e["features"]
        labels[i, :len(e["labels"])] = e["labels"]
    return {"features": feats, "labels": labels}


class TokenHead(nn.Module):
    """A tagger on frozen token features: dropout, then a linear layer (or a small MLP).

    Its output looks like a Hugging Face token classifier's (`.loss`, `.logits`), and
    `config.id2label` names the tags, so `fit` and `llm_course.training.evaluate` work with it.
    """

    def __init__(self, in_features: int, label_names: Sequence[str], hidden: int = 0,
                 dropout: float = 0.1) -> None:
        super().__init__()
        names = list(label_names)
        self.config = SimpleNamespace(id2label=dict(enumerate(names)),
                                      label2id={n: i for i, n in enumerate(names)},
                                      num_labels=len(names))
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(dropout)]
            in_features = hidden
        layers.append(nn.Linear(in_features, len(names)))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        from transformers.modeling_outputs import TokenClassifierOutput

        logits = self.net(features)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                                               ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)
