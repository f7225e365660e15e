"""Lesson 05's main run, faster (issue #23): the recipe groups reviews by length, and the
notebook's run and the cold start of `course-sentiment` still make the same model."""

import copy
import json
from pathlib import Path

import pytest
import torch

from llm_course.finetuning.tasks import (
    by_length,
    classification_data,
    classifier_recipe,
    finetune_classifier,
    first,
)
from llm_course.models.loading import load_pretrained, quiet_loading
from llm_course.training.batches import epoch_order, length_grouped, padding_share
from llm_course.training.loop import fit

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "05_fine_tuning.ipynb"


def test_the_sentiment_recipe_groups_reviews_by_length_and_topics_does_not():
    for scale in ("smoke", "laptop", "gpu"):
        assert classifier_recipe("sentiment", scale)["config"].group_by_length
        # articles are cut at topics_max_length, so they are all about as long: nothing to gain,
        # and course-topics (lesson 09b) stays the model it was
        assert not classifier_recipe("topics", scale)["config"].group_by_length
    # the notebook's parameters still win over the recipe
    assert not classifier_recipe("sentiment", "smoke", group_by_length=False)["config"].group_by_length


def test_grouping_removes_most_of_the_padding_of_review_like_lengths():
    g = torch.Generator().manual_seed(0)
    lengths = (torch.randn(3000, generator=g) * 9 + 27).clamp(5, 64).round().int().tolist()
    order = epoch_order(len(lengths), seed=0, epoch=0)
    random = padding_share(lengths, [order[i:i + 32] for i in range(0, len(order), 32)])
    grouped = length_grouped(order, lengths, 32, seed=0, epoch=0)
    assert sorted(i for b in grouped for i in b) == list(range(len(lengths)))  # each once
    # measured: about 40 % padding drawn at random, about 1 % grouped
    assert random > 0.3 and padding_share(lengths, grouped) < 0.05, (random, grouped)
    assert padding_share([3, 3], [[0, 1]]) == 0
    assert padding_share([1, 3], [[0, 1]]) == pytest.approx(1 / 3)  # 2 of 6 positions


def test_by_length_keeps_the_examples_and_sorts_them():
    import datasets

    split = datasets.Dataset.from_dict({"input_ids": [[1, 2, 3], [1], [1, 2], [4]],
                                        "labels": [0, 1, 0, 1]})
    ordered = by_length(split)
    assert [len(x) for x in ordered["input_ids"]] == [1, 1, 2, 3]
    assert ordered["labels"] == [1, 1, 0, 0]  # ties keep their order; labels travel along


def _notebook_code() -> str:
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_the_notebook_trains_course_sentiment_with_the_recipe():
    code = _notebook_code()
    assert 'classifier_recipe("sentiment", scale, lr=lr, max_steps=max_steps, seed=seed)' in code
    assert 'save_course_model("course-sentiment", full_model' in code
    assert "model = make_classifier()" in code and "config=cfg" in code


def test_lesson_05s_run_and_the_cold_start_make_the_same_model(tmp_path):
    # course-sentiment must be the same model whichever path made it: lesson 05's cells (a deep
    # copy of one seeded load, TensorBoard logging on) or `finetune_classifier` (the cold start
    # of lessons 08 and 09b). Bit for bit, at smoke, on a few steps.
    cold = finetune_classifier("minilm", "sentiment", "smoke", max_steps=3, progress=False,
                               plot=False, verbose=False)
    torch.manual_seed(0)  # the notebook's parameters cell, then its loading cell
    with quiet_loading():
        base, tokenizer = load_pretrained("minilm", task="sequence-classification",
                                          label_names=["negative", "positive"], scale="smoke")
    data = classification_data("sentiment", tokenizer, "smoke")
    recipe = classifier_recipe("sentiment", "smoke", max_steps=3, seed=0, progress=False,
                               plot=False, verbose=False)
    model = copy.deepcopy(base)
    cfg = recipe["config"].replace(log_to="tensorboard", log_dir=str(tmp_path / "tb"))
    fit(model, data["train"], by_length(first(data["validation"], recipe["eval_examples"])),
        config=cfg, collate_fn=data["collator"])
    theirs = cold["model"].state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, theirs[name]), name
