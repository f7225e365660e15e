"""Pretraining a small BERT with the masked-LM objective, step by step (taught in 03_pretraining_bert).

Lesson 03 calls these functions one cell at a time, and `pretrain_bert` calls the same ones
in one go: that is how `course-bert` is rebuilt when a later lesson starts cold
(`llm_course.course_models`). `tests/test_lessons_agree.py` checks that the two agree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from llm_course.data.lm_data import token_counts, tokenize_lines
from llm_course.data.loaders import load
from llm_course.env.scale import preset, resolve_scale
from llm_course.models.configs import bert_config

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from llm_course.models.masked_lm import SparseHeadBertForMaskedLM
    from llm_course.training.config import TrainConfig
    from llm_course.training.history import History


def bert_data(tokenizer: PreTrainedTokenizerBase, scale: str | None = None) -> dict:
    """Lesson 03's data: corpus chunks and the MLM collator.

    Returns {"tokenizer", "train", "validation", "collator", "corpus"}.
    """
    from transformers import DataCollatorForLanguageModeling

    scale = resolve_scale(scale)
    max_length = preset("bert", scale)["max_length"]
    corpus = load("corpus", scale=scale)
    train = tokenize_lines(corpus["train"]["text"], tokenizer, max_length)
    valid = tokenize_lines(corpus["validation"]["text"], tokenizer, max_length)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0)
    return {"tokenizer": tokenizer, "train": train, "validation": valid, "collator": collator,
            "corpus": corpus}


def frozen_masks(dataset, tokenizer, seed: int = 1234):
    """`dataset` masked once with the 80/10/10 rule and a fixed seed, padded to one length.

    Evaluating on the same masks every time makes masked accuracy comparable between
    checkpoints and runs (the training collator draws new masks each time).
    """
    from datasets import Dataset
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=seed)
    batch = collator([{"input_ids": ids} for ids in dataset["input_ids"]])
    return Dataset.from_dict({k: v.tolist() for k, v in batch.items()}).with_format("torch")


def frequency_baseline(train, masked_valid, tokenizer) -> dict:
    """Accuracy on the masked positions of always guessing the most frequent training token."""
    counts = token_counts(train, len(tokenizer))
    counts[tokenizer.all_special_ids] = 0
    best = int(counts.argmax())
    labels = torch.as_tensor(masked_valid[:]["labels"])
    picked = labels[labels != -100]
    return {"token": tokenizer.convert_ids_to_tokens(best),
            "accuracy": float((picked == best).double().mean())}


def new_bert(scale: str | None = None, tokenizer=None, dropout: float = 0.0):
    """A fresh lesson-03 BERT of the preset size that scores only the blanks in training.

    Dropout is `dropout` in the modules (off by default: a short pretraining on a small
    corpus underfits, so it has nothing to regularise), while the config, and so every
    checkpoint saved from it, keeps BERT's usual 0.1 for the fine-tuning that follows.
    """
    from llm_course.models.masked_lm import SparseHeadBertForMaskedLM

    model = SparseHeadBertForMaskedLM(bert_config(scale, tokenizer=tokenizer))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    return model


def train_bert(config: TrainConfig, data: dict, masked_valid, scale: str | None = None
               ) -> tuple[SparseHeadBertForMaskedLM, History]:
    """Pretrain a fresh `new_bert` on `bert_data(...)`, evaluated on `masked_valid`
    (`frozen_masks` of the validation pieces): returns (model, history)."""
    from llm_course.training.loop import fit

    torch.manual_seed(config.seed)
    model = new_bert(scale, tokenizer=data["tokenizer"])
    return model, fit(model, data["train"], masked_valid, config=config,
                      collate_fn=data["collator"])


def pretrain_bert(tokenizer: PreTrainedTokenizerBase, scale: str | None = None,
                  **train_overrides) -> dict:
    """Lesson 03 in one call: returns {"model", "tokenizer", "history", "metrics"}."""
    from llm_course.training.config import recipe_config

    scale = resolve_scale(scale)
    data = bert_data(tokenizer, scale)
    masked_valid = frozen_masks(data["validation"], tokenizer, seed=1234)
    config = recipe_config("bert", scale, **train_overrides)
    model, history = train_bert(config, data, masked_valid, scale)
    final = history.final_eval
    metrics = {"mlm_loss": final["eval_loss"], "masked_accuracy": final.get("eval_accuracy")}
    return {"model": model, "tokenizer": tokenizer, "history": history, "metrics": metrics}
