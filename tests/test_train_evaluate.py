"""Evaluation metrics on tiny known inputs, and item counting (llm_course.training.evaluate)."""

from __future__ import annotations

import math

import pytest
import torch
from testkit import TokenData, ToyClassifier, VectorData, tiny_gpt

from llm_course.training.evaluate import (
    classification_metrics,
    count_items,
    evaluate,
    infer_task,
    is_causal_lm,
    perplexity,
    token_classification_metrics,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_accuracy_and_macro_f1_by_hand():
    m = classification_metrics([0, 1, 1, 2], [0, 1, 2, 2])
    assert m["accuracy"] == pytest.approx(0.75)
    # F1 per class: 1, 2/3 (P 1/2, R 1), 2/3 (P 1, R 1/2)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    assert classification_metrics([1, 0], [1, -100])["accuracy"] == 1.0  # -100 ignored


def test_entity_f1_ignores_minus_100_positions():
    id2label = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC"}
    labels = [[1, 2, 0, -100, 3]]
    preds = [[1, 2, 0, 3, 0]]  # PER found; the B-LOC at the ignored position does not count
    m = token_classification_metrics(preds, labels, id2label)
    assert m["precision"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert token_classification_metrics([[0, 0]], [[0, 0]], id2label)["f1"] == 0.0  # all-O


def test_perplexity_is_exp_of_loss():
    assert perplexity(math.log(10)) == pytest.approx(10)
    assert perplexity(1e4) == math.inf


def test_count_items_follows_the_loss():
    labels = torch.tensor([[5, 6, -100, -100], [7, 8, 9, -100]])
    assert count_items({"labels": labels}, causal=True) == 1 + 2  # shifted by one
    assert count_items({"labels": labels}, causal=False) == 2 + 3
    assert count_items({"labels": torch.tensor([1, 0, 1])}, causal=False) == 3
    assert count_items({"input_ids": torch.zeros(4, 3)}, causal=True) == 4  # no labels: examples


def test_task_is_inferred_from_the_model_class():
    gpt = tiny_gpt()
    assert is_causal_lm(gpt) and infer_task(gpt) == "lm"
    assert infer_task(ToyClassifier()) is None


def test_lm_eval_loss_is_the_mean_over_tokens_not_batches():
    model = tiny_gpt(seed=0).eval()
    data = TokenData(6, seed=4, ragged=True)
    everything = {k: torch.stack([data[i][k] for i in range(6)]) for k in data[0]}
    with torch.no_grad():
        expected = model(**everything).loss.item()
    got = evaluate(model, data, batch_size=4)  # batches of 4 and 2 with different token counts
    assert got["loss"] == pytest.approx(expected, abs=1e-5)
    assert got["perplexity"] == pytest.approx(math.exp(expected), rel=1e-4)
    assert 0 <= got["accuracy"] <= 1


def test_user_metrics_get_logits_or_predictions():
    seen = {}

    def from_logits(logits, labels):
        seen["logits"] = logits.shape
        return 1.0

    def from_predictions(predictions, labels):
        seen["predictions"] = predictions.shape
        return {"n": len(labels)}

    result = evaluate(ToyClassifier(), VectorData(10), task="classification", batch_size=4,
                      metrics={"a": from_logits, "b": from_predictions})
    assert seen == {"logits": (10, 2), "predictions": (10,)}
    assert result["a"] == 1.0 and result["n"] == 10
    assert {"loss", "accuracy", "macro_f1"} <= set(result)


@pytest.mark.parametrize("precision, dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_precision_sets_the_evaluation_dtype(precision, dtype):
    fp32 = evaluate(ToyClassifier(), VectorData(10), task="classification", batch_size=4)
    model, seen = ToyClassifier(), set()
    model.lin.register_forward_hook(lambda module, args, out: seen.add(out.dtype))
    result = evaluate(model, VectorData(10), task="classification", batch_size=4,
                      precision=precision)
    assert seen == {dtype}
    assert result["loss"] == pytest.approx(fp32["loss"], rel=0.02)
