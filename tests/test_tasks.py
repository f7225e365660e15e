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


def _conll_like():
    """A few rows with CoNLL-2003's schema (what eriktks/conll2003 gives on the hub)."""
    import datasets

    from llm_course.data.sources import CONLL_NAMES

    features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                  "ner_tags": datasets.Sequence(datasets.ClassLabel(names=CONLL_NAMES))})
    rows = {"tokens": [["EU", "rejects", "German", "call", str(i)] for i in range(40)],
            "ner_tags": [[3, 0, 7, 0, 0] for _ in range(40)]}
    return datasets.DatasetDict({split: datasets.Dataset.from_dict(rows, features=features)
                                 for split in ("train", "validation", "test")})


def test_lesson_04_says_which_ner_copy_it_got_and_picks_its_band(monkeypatch):
    # issue #18: on Colab `load("ner")` returns CoNLL-2003; the text and band must follow
    from llm_course.data import loaders, sources
    from llm_course.env.record import check_band
    from llm_course.finetuning.tasks import NER_SOURCES, ner_source

    offline = loaders.load("ner", "smoke", source="offline")
    assert ner_source(offline) == "tweets"
    monkeypatch.setattr(loaders, "require_hub", lambda *a, **k: None)
    monkeypatch.setattr(sources, "hub_load", lambda repo_id, config=None: _conll_like())
    conll = loaders.load("ner", "smoke", source="hub")
    assert ner_source(conll) == "conll"
    assert "B-PER" in conll["train"].features["ner_tags"].feature.names
    # the tweets' laptop band is not applied to news: no band is measured for CoNLL here
    assert check_band("NER entity F1", 0.9, NER_SOURCES["tweets"]["bands"], "laptop") is False
    assert check_band("NER entity F1", 0.9, NER_SOURCES["conll"]["bands"], "laptop") is None
