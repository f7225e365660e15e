"""Pretraining a small GPT, step by step (taught in 02_pretraining_gpt).

Lesson 02 calls these functions one cell at a time, and `pretrain_gpt` calls the same ones
in one go: that is how `course-gpt` is rebuilt when a later lesson starts cold
(`llm_course.course_models`). `tests/test_lessons_agree.py` checks that the two agree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from llm_course.data.lm_data import pack_blocks, token_counts, unigram_entropy
from llm_course.data.loaders import load
from llm_course.env.scale import preset, resolve_scale
from llm_course.models.configs import gpt_config

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

    from llm_course.models.causal_lm import ChunkedLossGPT2LMHeadModel
    from llm_course.training.config import TrainConfig
    from llm_course.training.history import History


def gpt_data(tokenizer: PreTrainedTokenizerBase, scale: str | None = None,
             block_size: int | None = None) -> dict:
    """Lesson 02's data: the corpus cut into blocks of `block_size` tokens (the preset's).

    Returns {"tokenizer", "train", "validation", "corpus"}.
    """
    scale = resolve_scale(scale)
    block_size = block_size or preset("gpt", scale)["block_size"]
    corpus = load("corpus", scale=scale)
    train = pack_blocks(corpus["train"]["text"], tokenizer, block_size)
    valid = pack_blocks(corpus["validation"]["text"], tokenizer, block_size)
    return {"tokenizer": tokenizer, "train": train, "validation": valid, "corpus": corpus}


def lm_unigram_entropy(train, valid, vocab_size: int) -> float:
    """Cross-entropy (nats/token) on `valid` of a unigram model fitted on `train`."""
    return unigram_entropy(token_counts(train, vocab_size), token_counts(valid, vocab_size))


def new_gpt(scale: str | None, tokenizer: PreTrainedTokenizerBase, seed: int | None = None,
            dropout: float = 0.0, **sizes) -> ChunkedLossGPT2LMHeadModel:
    """A fresh GPT-2 of the preset size (or `sizes`, e.g. n_layer=2), seeded when `seed` is given.

    It is a `ChunkedLossGPT2LMHeadModel` (`llm_course.models.causal_lm`): in training its
    loss never builds the full table of logits, which at vocabulary 8,192 is where a
    small GPT spends much of its step; it saves and loads as a plain `GPT2LMHeadModel`.
    Dropout is `dropout` in the modules (off by default: a short pretraining that reads
    its corpus two or three times underfits, and dropout's random masks cost time), while
    the config, and so every checkpoint saved from it, keeps GPT-2's 0.1 for fine-tuning.
    """
    from llm_course.models.causal_lm import ChunkedLossGPT2LMHeadModel

    if seed is not None:
        torch.manual_seed(seed)
    model = ChunkedLossGPT2LMHeadModel(gpt_config(scale, tokenizer=tokenizer, **sizes))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    return model


def train_gpt(config: TrainConfig, data: dict, scale: str | None = None
              ) -> tuple[GPT2LMHeadModel, History]:
    """Pretrain a fresh GPT on `gpt_data(...)` with `config`: returns (model, history)."""
    from llm_course.training.loop import fit

    model = new_gpt(scale, data["tokenizer"], seed=config.seed)
    return model, fit(model, data["train"], data["validation"], config=config)


def pretrain_gpt(tokenizer: PreTrainedTokenizerBase, scale: str | None = None,
                 **train_overrides) -> dict:
    """Lesson 02 in one call: returns {"model", "tokenizer", "history", "metrics"}."""
    from llm_course.training.config import recipe_config

    scale = resolve_scale(scale)
    data = gpt_data(tokenizer, scale)
    config = recipe_config("gpt", scale, **train_overrides)
    model, history = train_gpt(config, data, scale)
    loss = history.final_eval["eval_loss"]
    metrics = {"val_loss": loss, "val_perplexity": math.exp(loss),
               "unigram_entropy": lm_unigram_entropy(data["train"], data["validation"],
                                                     len(tokenizer))}
    return {"model": model, "tokenizer": tokenizer, "history": history, "metrics": metrics}
