"""Answering questions by nearest neighbour, with a hand-over to a human (taught in
09a_faq_assistant; 09c reuses it).

A retrieval assistant keeps a collection of (question, answer) pairs. Each question is
turned into a unit-length vector by an encoder (mean pooling, `llm_course.finetuning.probes`); a
customer's question is embedded the same way and gets the answer of the most similar
stored question, by cosine similarity. When even the best similarity is below a
threshold, the assistant does not guess: it hands the question over to a human.

* `cosine_top_k` finds the k most similar stored vectors for each query;
* `top_k_accuracy` scores a ranking: is a right answer among the first k?
* `choose_threshold` picks the hand-over threshold on tuning questions by weighing a
  right answer (+1), a wrong answer (-`wrong_cost`) and a hand-over (0);
* `handover_report` says what that threshold does on new questions;
* `PairEncoder` fine-tunes an encoder contrastively: each (anchor, positive) pair in a
  batch must find its partner among all the batch's positives (in-batch negatives);
* `faq_paraphrases` and `faq_out_of_scope` load the lesson's hand-written test questions
  (`data/faq_test_questions.json`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

_TEST_QUESTIONS = "faq_test_questions.json"


def _test_questions() -> dict[str, Any]:
    path = files("llm_course.applications") / "data" / _TEST_QUESTIONS
    return json.loads(path.read_text(encoding="utf-8"))


def faq_paraphrases() -> list[tuple[str, str]]:
    """09a's 100 test paraphrases, in file order: (a customer's wording, the stored question
    it means). Written by hand for the course; see `data/README.md`."""
    return [(wording, means) for wording, means in _test_questions()["paraphrases"]]


def faq_out_of_scope() -> list[str]:
    """09a's 24 test questions that the collection cannot answer, in file order. Written by
    hand for the course; see `data/README.md`."""
    return list(_test_questions()["out_of_scope"])


def cosine_top_k(queries: np.ndarray, keys: np.ndarray, k: int = 5
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, indices), each (n_queries, k): the k keys most cosine-similar to each query,
    best first."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(min=1e-12)
    c = keys / np.linalg.norm(keys, axis=1, keepdims=True).clip(min=1e-12)
    sims = q @ c.T
    k = min(k, sims.shape[1])
    indices = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, indices, axis=1), indices


def top_k_accuracy(indices: np.ndarray, relevant: Sequence[set[int]], k: int) -> float:
    """Share of queries with at least one relevant index among their first k results."""
    hits = [bool(set(row[:k].tolist()) & set(rel)) for row, rel in zip(indices, relevant,
                                                                         strict=True)]
    return float(np.mean(hits)) if hits else 0.0


def utility(best_scores: np.ndarray, correct: np.ndarray, threshold: float,
            wrong_cost: float = 2.0) -> float:
    """+1 per right answer, -wrong_cost per wrong one, 0 per hand-over (score < threshold).

    `correct` is False for questions the collection cannot answer (out of scope): answering
    them is always wrong.
    """
    answered = np.asarray(best_scores) >= threshold
    correct = np.asarray(correct, dtype=bool)
    return float((answered & correct).sum() - wrong_cost * (answered & ~correct).sum())


def choose_threshold(best_scores: np.ndarray, correct: np.ndarray, wrong_cost: float = 2.0,
                     grid: Sequence[float] | None = None) -> tuple[float, dict[float, float]]:
    """The threshold with the highest `utility` on tuning questions, and the whole curve.

    Ties go to the lowest threshold (hand over as little as possible).
    """
    grid = np.round(np.arange(0.0, 1.0001, 0.01), 2) if grid is None else np.asarray(grid)
    curve = {float(t): utility(best_scores, correct, float(t), wrong_cost) for t in grid}
    best = max(curve.values())
    return min(t for t, u in curve.items() if u == best), curve


def handover_report(best_scores: np.ndarray, correct: np.ndarray, in_scope: np.ndarray,
                    threshold: float) -> dict[str, float]:
    """What a threshold does on a set of questions.

    handover_rate: share of answerable (in-scope) questions sent to a human;
    answered_accuracy: share of the answered questions that got a right answer;
    out_of_scope_caught: share of unanswerable questions sent to a human.
    """
    scores = np.asarray(best_scores)
    correct, in_scope = np.asarray(correct, dtype=bool), np.asarray(in_scope, dtype=bool)
    answered = scores >= threshold
    return {
        "threshold": float(threshold),
        "handover_rate": float((~answered[in_scope]).mean()) if in_scope.any() else 0.0,
        "answered_accuracy": float(correct[answered].mean()) if answered.any() else 0.0,
        "out_of_scope_caught": float((~answered[~in_scope]).mean()) if (~in_scope).any()
        else 0.0,
        "handover_rate_all": float((~answered).mean()) if len(answered) else 0.0,
    }


class PairEncoder(torch.nn.Module):
    """Contrastive fine-tuning with in-batch negatives (what sentence encoders train with).

    A batch holds pairs (anchor i, positive i). Both are embedded (mean pooling, unit
    length); the score matrix S_ij = cos(anchor_i, positive_j) / temperature is a
    classification problem whose right answer for row i is column i, so the loss is
    cross_entropy(S, arange(batch)). `fit` trains it like any model: batches carry
    input_ids / attention_mask for the anchors and pos_input_ids / pos_attention_mask for
    the positives. The encoder is fine-tuned in place.
    """

    def __init__(self, encoder: torch.nn.Module, temperature: float = 0.05):
        super().__init__()
        self.encoder = encoder
        self.temperature = temperature
        self.config = encoder.config

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from llm_course.finetuning.probes import mean_pool

        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        return F.normalize(mean_pool(hidden.last_hidden_state.float(), attention_mask), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                pos_input_ids: torch.Tensor, pos_attention_mask: torch.Tensor,
                **_: Any) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        anchors = self.embed(input_ids, attention_mask)
        positives = self.embed(pos_input_ids, pos_attention_mask)
        logits = anchors @ positives.T / self.temperature
        labels = torch.arange(len(anchors), device=logits.device)
        return SequenceClassifierOutput(loss=F.cross_entropy(logits, labels), logits=logits)


def pair_collator(tokenizer: Any, max_length: int = 64):
    """A collate_fn for `PairEncoder`: items {"anchor": str, "positive": str} -> tensors."""

    def collate(items: list[dict[str, str]]) -> dict[str, torch.Tensor]:
        a = tokenizer([it["anchor"] for it in items], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt")
        p = tokenizer([it["positive"] for it in items], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt")
        return {"input_ids": a["input_ids"], "attention_mask": a["attention_mask"],
                "pos_input_ids": p["input_ids"], "pos_attention_mask": p["attention_mask"]}

    return collate
