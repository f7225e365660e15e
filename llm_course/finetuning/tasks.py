"""Fine-tuning recipes: labelled data in, a task model out (taught in 04 and 05).

Lessons 04-09 share these steps:

* `classification_data` tokenizes a labelled dataset (`sentiment`, `topics`) for a
  sequence classifier; `DataCollatorWithPadding` pads each batch to its longest text;
* `token_data` does the same for NER, putting each word's tag on its first sub-token and
  -100 (ignored by the loss) on the others: `align_labels` is that rule, shown in lesson 04;
* `finetune_classifier` runs the whole recipe (`llm_course.course_models.course_classifier`
  keeps its result as `course-sentiment` or `course-topics` for lessons 08 and 09).
"""

from __future__ import annotations

from collections.abc import Sequence

from llm_course.data.loaders import load
from llm_course.env.scale import preset, resolve_scale
from llm_course.training.config import recipe_config


def classification_data(name: str, tokenizer, scale: str | None = None,
                        max_length: int | None = None, source: str = "auto") -> dict:
    """{"raw", "train", "validation", "test", "collator", "label_names"} for a classifier."""
    from transformers import DataCollatorWithPadding

    scale = resolve_scale(scale)
    max_length = max_length or preset("finetune", scale)["max_length"]
    raw = load(name, scale=scale, source=source)
    label_names = raw["train"].features["label"].names

    def encode(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    encoded = raw.map(encode, batched=True, remove_columns=["text"])
    encoded = encoded.rename_column("label", "labels")
    return {"raw": raw, "train": encoded["train"], "validation": encoded["validation"],
            "test": encoded["test"], "collator": DataCollatorWithPadding(tokenizer),
            "label_names": label_names}


def align_labels(word_ids: Sequence[int | None], word_tags: Sequence[int]) -> list[int]:
    """Tags per sub-token: a word's tag on its first piece, -100 on the rest and on specials."""
    labels, previous = [], None
    for word in word_ids:
        if word is None or word == previous:
            labels.append(-100)
        else:
            labels.append(word_tags[word])
        previous = word
    return labels


def token_data(tokenizer, scale: str | None = None, max_length: int = 128,
               source: str = "auto") -> dict:
    """{"raw", "train", "validation", "test", "collator", "label_names"} for NER."""
    from transformers import DataCollatorForTokenClassification

    raw = load("ner", scale=resolve_scale(scale), source=source)
    label_names = raw["train"].features["ner_tags"].feature.names

    def encode(batch):
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True,
                        max_length=max_length)
        enc["labels"] = [align_labels(enc.word_ids(i), tags)
                         for i, tags in enumerate(batch["ner_tags"])]
        return enc

    encoded = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    return {"raw": raw, "train": encoded["train"], "validation": encoded["validation"],
            "test": encoded["test"], "collator": DataCollatorForTokenClassification(tokenizer),
            "label_names": label_names}


def finetune_classifier(model_name: str = "minilm", dataset: str = "sentiment",
                        scale: str | None = None, **train_overrides) -> dict:
    """Fine-tune `model_name` on `dataset`: {"model", "tokenizer", "history", "test", "data"}."""
    from llm_course.models.loading import load_pretrained
    from llm_course.training.evaluate import evaluate
    from llm_course.training.loop import fit

    scale = resolve_scale(scale)
    raw_names = load(dataset, scale=scale)["train"].features["label"].names
    model, tokenizer = load_pretrained(model_name, task="sequence-classification",
                                       label_names=raw_names, scale=scale)
    data = classification_data(dataset, tokenizer, scale)
    history = fit(model, data["train"], data["validation"],
                  config=recipe_config("finetune", scale, **train_overrides), collate_fn=data["collator"])
    test = evaluate(model, data["test"], task="classification", collate_fn=data["collator"],
                    batch_size=64)
    return {"model": model, "tokenizer": tokenizer, "history": history, "test": test,
            "data": data}
