"""Fine-tuning recipes: labelled data in, a task model out (taught in 04 and 05).

Lessons 04-09 share these steps:

* `classification_data` tokenizes a labelled dataset (`sentiment`, `topics`) for a
  sequence classifier; `DataCollatorWithPadding` pads each batch to its longest text;
* `token_data` does the same for NER, putting each word's tag on its first sub-token and
  -100 (ignored by the loss) on the others: `align_labels` is that rule, shown in lesson 04;
* `classifier_recipe` is lesson 05's main run (config, max length, validation size), and
  `finetune_classifier` runs it in one call (`llm_course.course_models.course_classifier`
  keeps its result as `course-sentiment` or `course-topics` for lessons 06b-09).
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


# Lesson 04's NER data is whichever copy `load("ner")` found: what the lesson says about it,
# and its bands, follow that copy. Bands are measured (tweets at laptop, frozen MiniLM features);
# None: not measured on that copy at that scale.
NER_SOURCES = {
    "tweets": {"what": "tweets (WNUT-16, the offline copy): person, company, geo-loc, product, ...",
               "unit": "tweets",
               "bands": {"smoke": (None, None), "laptop": (0.35, 0.50), "gpu": None}},
    "conll": {"what": "Reuters news sentences (CoNLL-2003, from the hub): PER, ORG, LOC, MISC",
              "unit": "sentences",
              "bands": {"smoke": (None, None), "laptop": None, "gpu": None}},
}


def ner_source(raw) -> str:
    """"tweets" or "conll": which copy of the NER data `load("ner")` returned (lesson 04)."""
    from llm_course.data.loaders import source_info

    return "tweets" if source_info(raw)["source"].startswith("offline") else "conll"


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
    raw = load("ner", scale=resolve_scale(scale), source=source)
    return {"raw": raw, **encode_token_data(raw, tokenizer, max_length)}


def encode_token_data(raw, tokenizer, max_length: int = 128) -> dict:
    """{"train", "validation", "test", "collator", "label_names"} from a loaded token
    dataset ("tokens", "ner_tags"): each word's first piece gets its tag (`align_labels`).
    Lesson 04's NER, and lesson 10's Chinese names."""
    from transformers import DataCollatorForTokenClassification

    def encode(batch):
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True,
                        max_length=max_length)
        enc["labels"] = [align_labels(enc.word_ids(i), tags)
                         for i, tags in enumerate(batch["ner_tags"])]
        return enc

    encoded = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    return {"train": encoded["train"], "validation": encoded["validation"],
            "test": encoded["test"], "collator": DataCollatorForTokenClassification(tokenizer),
            "label_names": raw["train"].features["ner_tags"].feature.names}


def classifier_recipe(dataset: str = "sentiment", scale: str | None = None,
                      **overrides) -> dict:
    """Lesson 05's main fine-tuning run for `dataset` ("sentiment" or "topics").

    {"config": TrainConfig, "max_length": tokens read per text, "eval_examples": size of the
    validation subset scored during training (None: all of it)}. Lesson 05 trains with it
    and so does `finetune_classifier`, the cold start of `course-sentiment` and
    `course-topics`: the saved model is the same whichever path made it. `overrides`
    change the config (the notebook's `lr` and `max_steps` parameters).
    """
    scale = resolve_scale(scale)
    lab = preset("finetune_lab", scale)
    if dataset == "topics":  # long articles: read more of each, smaller batches
        steps = overrides.pop("max_steps", None) or lab["topics_steps"]
        config = recipe_config("finetune", scale, max_steps=steps, batch_size=16,
                               eval_every=max(1, steps // 4), **overrides)
        return {"config": config, "max_length": lab["topics_max_length"], "eval_examples": None}
    steps = overrides.pop("max_steps", None) or preset("finetune", scale)["max_steps"]
    # Reviews of similar length share a batch, so little of the work is padding and an epoch
    # costs less (benchmarks/finetune_speed.py): the run takes more epochs in the time saved.
    # Evaluation (forward only) takes batches of 64.
    overrides = {"group_by_length": True, "eval_batch_size": 64, **overrides}
    config = recipe_config("finetune", scale, max_steps=steps, eval_every=max(2, steps // 6),
                           **overrides)
    return {"config": config, "max_length": preset("finetune", scale)["max_length"],
            "eval_examples": lab["eval_examples"]}


def first(split, n: int | None):
    """The first `n` rows of a dataset split (all of them when n is None or larger)."""
    return split if n is None else split.select(range(min(n, len(split))))


def by_length(split):
    """The same examples, shortest first: evaluation batches then pad to nearly their own
    length (lesson 05 evaluates on it; accuracy does not depend on the order). Take a subset
    with `first` before, never after: the first rows of a sorted split are its shortest."""
    lengths = [len(ids) for ids in split["input_ids"]]
    return split.select(sorted(range(len(lengths)), key=lengths.__getitem__))


def finetune_classifier(model_name: str = "minilm", dataset: str = "sentiment",
                        scale: str | None = None, **train_overrides) -> dict:
    """Lesson 05's main run for `dataset` (`classifier_recipe`), in one call.

    {"model", "tokenizer", "history", "test", "data"}. Seeds, loads the pretrained model,
    trains and tests exactly as the lesson's cells do.
    """
    import torch

    from llm_course.models.loading import load_pretrained
    from llm_course.training.evaluate import evaluate
    from llm_course.training.loop import fit

    scale = resolve_scale(scale)
    recipe = classifier_recipe(dataset, scale, **train_overrides)
    raw_names = load(dataset, scale=scale)["train"].features["label"].names
    torch.manual_seed(recipe["config"].seed)
    model, tokenizer = load_pretrained(model_name, task="sequence-classification",
                                       label_names=raw_names, scale=scale)
    data = classification_data(dataset, tokenizer, scale, max_length=recipe["max_length"])
    history = fit(model, data["train"], by_length(first(data["validation"], recipe["eval_examples"])),
                  config=recipe["config"], collate_fn=data["collator"])
    test = evaluate(model, by_length(data["test"]), task="classification",
                    collate_fn=data["collator"], batch_size=64, precision="auto")
    return {"model": model, "tokenizer": tokenizer, "history": history, "test": test,
            "data": data}
