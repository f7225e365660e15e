"""The pretraining recipes of lessons 02 and 03, as functions.

The notebooks walk through these steps one cell at a time; here they are in one place so
that (a) the notebooks and the cold start share one recipe and (b) any later lesson can
get `course-gpt` or `course-bert` even if lessons 02/03 were never run:
`llm_course.models.load_pretrained("course-gpt")` calls `build_course_model` then.
"""

from __future__ import annotations

import math

import torch

from .data import load
from .lm_data import pack_blocks, token_counts, tokenize_lines, unigram_entropy
from .models import bert_config, gpt_config, save_course_model
from .scale import preset, resolve_scale
from .tokenizer import course_tokenizer
from .train_config import TrainConfig


def gpt_data(scale: str | None = None, tokenizer=None, block_size: int | None = None) -> dict:
    """Lesson 02's data: the course BPE tokenizer and the corpus packed into blocks."""
    scale = resolve_scale(scale)
    tokenizer = tokenizer or course_tokenizer("bpe", scale)
    block_size = block_size or preset("gpt", scale)["block_size"]
    corpus = load("corpus", scale=scale)
    train = pack_blocks(corpus["train"]["text"], tokenizer, block_size)
    valid = pack_blocks(corpus["validation"]["text"], tokenizer, block_size)
    return {"tokenizer": tokenizer, "train": train, "validation": valid, "corpus": corpus}


def gpt_train_config(scale: str | None = None, **overrides) -> TrainConfig:
    """Lesson 02's training settings for `scale` (AdamW, warmup, cosine decay).

    `compile=False`: whether torch.compile pays off depends on how fast the machine is at
    that moment, and a lesson's numbers must not depend on that (they must repeat).
    """
    p = preset("gpt", scale)
    settings = dict(lr=p["lr"], max_steps=p["max_steps"], batch_size=p["batch_size"],
                    weight_decay=0.1, betas=(0.9, 0.95), warmup_ratio=0.05, schedule="cosine",
                    task="lm", eval_batches=20, seed=0, compile=False)
    settings.update(overrides)
    return TrainConfig(**settings)


def lm_unigram_entropy(train, valid, vocab_size: int) -> float:
    """Cross-entropy (nats/token) on `valid` of a unigram model fitted on `train`."""
    return unigram_entropy(token_counts(train, vocab_size), token_counts(valid, vocab_size))


def pretrain_gpt(scale: str | None = None, **train_overrides) -> dict:
    """Lesson 02 in one call: returns {"model", "tokenizer", "history", "metrics"}."""
    from transformers import GPT2LMHeadModel

    from .train import fit

    scale = resolve_scale(scale)
    data = gpt_data(scale)
    config = gpt_train_config(scale, **train_overrides)
    torch.manual_seed(config.seed)  # the same model as lesson 02's notebook builds
    model = GPT2LMHeadModel(gpt_config(scale, tokenizer=data["tokenizer"]))
    history = fit(model, data["train"], data["validation"], config=config)
    loss = history.final_eval["eval_loss"]
    metrics = {"val_loss": loss, "val_perplexity": math.exp(loss),
               "unigram_entropy": lm_unigram_entropy(data["train"], data["validation"],
                                                     len(data["tokenizer"]))}
    return {"model": model, "tokenizer": data["tokenizer"], "history": history, "metrics": metrics}


def bert_data(scale: str | None = None, tokenizer=None) -> dict:
    """Lesson 03's data: the course WordPiece tokenizer, corpus chunks, and the MLM collator."""
    from transformers import DataCollatorForLanguageModeling

    scale = resolve_scale(scale)
    tokenizer = tokenizer or course_tokenizer("wordpiece", scale)
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


def bert_train_config(scale: str | None = None, **overrides) -> TrainConfig:
    """Lesson 03's training settings for `scale`."""
    p = preset("bert", scale)
    # BERT puts its layer norm after each block (post-LN) and is touchy about the rate: with
    # dropout on, 1e-3 kept it on the unigram plateau for 1,200 laptop steps; with dropout off
    # (new_bert) 1e-3 reached 11.7 % masked accuracy, 6e-4 11.1 %, 3e-4 10.1 % (one run each)
    settings = dict(lr=p["lr"], max_steps=p["max_steps"], batch_size=p["batch_size"],
                    weight_decay=0.01, warmup_ratio=0.1, schedule="cosine", task="lm",
                    eval_batches=20, seed=0, compile=False)
    settings.update(overrides)
    return TrainConfig(**settings)


def new_bert(scale: str | None = None, tokenizer=None, dropout: float = 0.0):
    """A fresh lesson-03 BERT of the preset size that scores only the blanks in training.

    Dropout is `dropout` in the modules (off by default: a short pretraining on a small
    corpus underfits, so it has nothing to regularise), while the config, and so every
    checkpoint saved from it, keeps BERT's usual 0.1 for the fine-tuning that follows.
    """
    from .masked_lm import SparseHeadBertForMaskedLM

    model = SparseHeadBertForMaskedLM(bert_config(scale, tokenizer=tokenizer))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    return model


def pretrain_bert(scale: str | None = None, **train_overrides) -> dict:
    """Lesson 03 in one call: returns {"model", "tokenizer", "history", "metrics"}."""
    from .train import fit

    scale = resolve_scale(scale)
    data = bert_data(scale)
    config = bert_train_config(scale, **train_overrides)
    torch.manual_seed(config.seed)  # the same model as lesson 03's notebook builds
    model = new_bert(scale, tokenizer=data["tokenizer"])
    history = fit(model, data["train"], data["validation"], config=config,
                  collate_fn=data["collator"])
    metrics = {"mlm_loss": history.final_eval["eval_loss"]}
    return {"model": model, "tokenizer": data["tokenizer"], "history": history, "metrics": metrics}


def build_course_model(name: str, scale: str | None = None):
    """Pretrain and save `course-gpt` or `course-bert` for `scale` (the cold start)."""
    recipes = {"course-gpt": pretrain_gpt, "course-bert": pretrain_bert}
    if name not in recipes:
        raise ValueError(f"no recipe for {name!r}: choose one of {', '.join(recipes)}")
    scale = resolve_scale(scale)
    result = recipes[name](scale)
    return save_course_model(name, result["model"], result["tokenizer"], scale,
                             metrics=result["metrics"])
