"""The fine-tuning data recipes (lessons 04 and 05)."""

import pytest

from llm_course.finetuning.tasks import align_labels, classification_data, token_data
from llm_course.models.loading import load_pretrained
from llm_course.training.config import recipe_config


@pytest.fixture(scope="module")
def tokenizer():
    return load_pretrained("minilm")[1]


def test_align_labels_tags_the_first_piece_of_each_word():
    # [CLS] new york ##er [SEP]: words 0, 1, 1, specials None
    assert align_labels([None, 0, 1, 1, None], [3, 4]) == [-100, 3, 4, -100, -100]
    assert align_labels([], []) == []


def test_classification_data_is_tokenized_and_capped(tokenizer):
    data = classification_data("sentiment", tokenizer, scale="smoke", max_length=24)
    assert data["label_names"] == ["negative", "positive"]
    assert set(data["train"].column_names) >= {"input_ids", "attention_mask", "labels"}
    assert max(len(x) for x in data["train"]["input_ids"]) <= 24
    batch = data["collator"]([data["train"][i] for i in range(4)])
    assert batch["input_ids"].shape[0] == 4 and batch["labels"].shape == (4,)


def test_token_data_labels_match_the_pieces(tokenizer):
    data = token_data(tokenizer, scale="smoke")
    row = data["train"][0]
    assert len(row["labels"]) == len(row["input_ids"])
    assert row["labels"][0] == -100 and row["labels"][-1] == -100  # [CLS], [SEP]
    words = data["raw"]["train"][0]["tokens"]
    assert sum(label != -100 for label in row["labels"]) == len(words)


def test_finetune_config_is_the_lesson_recipe():
    cfg = recipe_config("finetune", "smoke", lr=1e-4)
    assert cfg.lr == 1e-4 and cfg.schedule == "linear" and cfg.task == "classification"
