"""Data mistakes caught at the first batch, with the fix (part of `fit`, which 00_setup shows).

Token ids beyond the vocabulary, sequences longer than the model's context, labels beyond
`num_labels` and unpadded examples of different lengths all reach torch today as an
IndexError or RuntimeError from deep inside the model. `fit` and `evaluate`
(llm_course.training.evaluate) look at their first batch before the first forward pass and
raise a `DataError` that names the mistake and the fix instead. Only the first batch is
looked at (a few tensor maxima: microseconds), so the training steps cost nothing extra.
What a model does not say (a plain `nn.Module` without a config) is not checked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

IGNORE = -100


class DataError(ValueError):
    """A batch the model cannot take: the message names the mistake and the fix."""


# -- unpadded examples: caught where the default collation stacks them -----------------------------
PAD_HINT = ("pad them, e.g. collate_fn=DataCollatorWithPadding(tokenizer) "
            "(DataCollatorForLanguageModeling(tokenizer, mlm=False) for a causal LM, "
            "DataCollatorForTokenClassification(tokenizer) for NER), or tokenize with "
            "padding='max_length', truncation=True, max_length=...")


def collate(examples: list) -> Any:
    """torch's `default_collate`, but examples of different lengths get a `DataError`.

    `fit` and `evaluate` use it when no `collate_fn` is given. The lengths are only looked at
    when stacking has already failed, so a good batch costs nothing extra.
    """
    from torch.utils.data import default_collate

    try:
        return default_collate(examples)
    except RuntimeError:
        ragged = _different_lengths(examples)
        if ragged is None:
            raise
        key, a, b = ragged
        where = f" in {key!r}" if key is not None else ""
        raise DataError(f"examples of different lengths ({a} and {b}){where} and no "
                        f"collate_fn: {PAD_HINT}") from None


def _length(value: Any) -> int | None:
    if isinstance(value, torch.Tensor | np.ndarray):
        return int(value.shape[0]) if value.ndim > 0 else None
    if isinstance(value, list | tuple):
        return len(value)
    return None


def _different_lengths(examples: list) -> tuple[Any, int, int] | None:
    """(field, one length, another) for the first field whose lengths differ, else None."""
    if not examples:
        return None
    first = examples[0]
    if isinstance(first, Mapping):
        keys: Sequence[Any] = list(first)
        rows = [[ex.get(k) if isinstance(ex, Mapping) else None for k in keys] for ex in examples]
    elif isinstance(first, list | tuple):
        keys = list(range(len(first)))
        rows = [list(ex) for ex in examples]
        if all(_length(v) is None for v in first):  # one sequence per example
            keys, rows = [None], [[ex] for ex in examples]
    else:
        keys, rows = [None], [[ex] for ex in examples]
    for j, key in enumerate(keys):
        lengths = [_length(row[j]) if j < len(row) else None for row in rows]
        seen = [n for n in lengths if n is not None]
        if seen and any(n != seen[0] for n in seen):
            return key, seen[0], next(n for n in seen if n != seen[0])
    return None


# -- the first batch: ids, positions, labels against the model's config ------------------------------
def model_limits(model: torch.nn.Module) -> dict[str, Any]:
    """What the model's config says about its inputs: vocabulary, context, labels.

    Read once per run; a plain `nn.Module` without a `config` gives an empty dict.
    """
    m = _unwrap(model)
    config = getattr(m, "config", None)
    if config is None:
        return {}
    limits: dict[str, Any] = {}
    vocab = getattr(config, "vocab_size", None)
    embeddings = getattr(m, "get_input_embeddings", None)
    try:
        table = embeddings() if callable(embeddings) else None
    except (NotImplementedError, AttributeError):
        table = None
    if isinstance(table, torch.nn.Embedding):
        vocab = table.num_embeddings  # the real limit (resize_token_embeddings changes it)
    if isinstance(vocab, int):
        limits["vocab_size"] = vocab
    context = _position_limit(m, config)
    if context is not None:
        limits["context"] = context
    types = getattr(config, "type_vocab_size", None)
    if isinstance(types, int) and types > 0:
        limits["type_vocab_size"] = types
    labels = getattr(config, "num_labels", None)
    if isinstance(labels, int):
        limits["num_labels"] = labels
    return limits


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The HF model under DDP, torch.compile and PEFT wrappers (evaluate.base_model, which
    imports this module, does the same)."""
    for _ in range(5):
        if isinstance(getattr(model, "module", None), torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "get_base_model"):
            model = model.get_base_model()
        else:
            break
    return model


def _position_limit(m: torch.nn.Module, config: Any) -> tuple[int, str] | None:
    """(longest sequence, config field) for models with a learned table of positions.

    GPT-2 and BERT fail past it; rotary models (Llama, SmolLM) run on, only worse, so they
    are not checked. RoBERTa-style tables reserve the first padding_idx + 1 rows.
    """
    for attr in ("n_positions", "max_position_embeddings"):
        if isinstance(getattr(config, attr, None), int):
            break
    else:
        return None
    for name, module in m.named_modules():
        if isinstance(module, torch.nn.Embedding) and ("position" in name or name.endswith("wpe")):
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            return module.num_embeddings - offset, attr
    return None


def check_batch(model: torch.nn.Module, batch: Any, task: str | None, *, where: str = "training",
                limits: dict[str, Any] | None = None) -> None:
    """Raise `DataError` if `batch` holds ids, lengths or labels `model` cannot take.

    `where` ("training" or "evaluation") goes into the message; `limits` is
    `model_limits(model)` when the caller already has it.
    """
    if not isinstance(batch, Mapping):  # a dict, or the BatchEncoding of HF collators
        return
    limits = model_limits(model) if limits is None else limits
    if not limits:
        return
    place = f"the first {where} batch"
    ids = batch.get("input_ids")
    if _is_int_tensor(ids):
        _check_ids(ids, "input_ids", limits, place)
        context = limits.get("context")
        if context is not None and ids.dim() >= 2 and ids.shape[-1] > context[0]:
            n, (limit, attr) = int(ids.shape[-1]), context
            raise DataError(
                f"a sequence of {n} tokens in {place} is longer than the model's context of "
                f"{limit} ({attr}): cut the texts with max_length={limit} when tokenizing "
                f"(tokenizer(texts, truncation=True, max_length={limit})), or cut the token "
                f"stream into blocks of {limit}")
    types = batch.get("token_type_ids")
    if _is_int_tensor(types) and "type_vocab_size" in limits and types.numel():
        top = int(types.max())
        if top >= limits["type_vocab_size"] or int(types.min()) < 0:
            raise DataError(
                f"token_type_id {top} in {place} is outside 0 .. {limits['type_vocab_size'] - 1} "
                "(model.config.type_vocab_size): give token_type_ids only for sentence pairs "
                "(0 for the first text, 1 for the second), or leave them out")
    labels = next((batch[k] for k in ("labels", "label", "label_ids") if k in batch), None)
    if not _is_int_tensor(labels):
        return  # no labels, or float targets (regression, multi-label): nothing to compare
    if task == "lm":
        _check_ids(labels, "labels", limits, place, labels=True)
    elif task in ("classification", "token-classification") and not (
            _is_int_tensor(ids) and ids.dim() == 3):  # multiple choice: labels index choices
        _check_labels(labels, limits, place, token_level=task == "token-classification")


def check_first_batches(model: torch.nn.Module, batches: Sequence[Any], task: str | None,
                        where: str = "training") -> None:
    """`check_batch` on each of a few batches (a step's micro-batches), reading the config once."""
    limits = model_limits(model)
    if limits:
        for batch in batches:
            check_batch(model, batch, task, where=where, limits=limits)


def _is_int_tensor(value: Any) -> bool:
    return (isinstance(value, torch.Tensor) and not value.is_floating_point()
            and not value.is_complex() and value.dtype != torch.bool and value.numel() > 0)


def _check_ids(ids: torch.Tensor, name: str, limits: dict[str, Any], place: str,
               labels: bool = False) -> None:
    vocab = limits.get("vocab_size")
    if labels:
        ids = ids[ids != IGNORE]
        if ids.numel() == 0:
            return
    low, high = int(ids.min()), int(ids.max())
    if low < 0:
        if labels:
            raise DataError(f"label {low} in {place}: the only negative label is -100 (ignore "
                            "this position); labels of a language model are token ids")
        raise DataError(
            f"token id {low} in '{name}' of {place}: ids start at 0. -100 marks ignored "
            "positions in labels only; pad input_ids with the tokenizer's pad id "
            "(tokenizer.pad_token_id), e.g. with DataCollatorWithPadding(tokenizer)")
    if vocab is not None and high >= vocab:
        what = "label" if labels else "token id"
        raise DataError(
            f"{what} {high} >= vocab_size {vocab} (model.config.vocab_size) in '{name}' of "
            f"{place}: was the tokenizer trained with a bigger vocabulary than the model's "
            "config? Build the config from the tokenizer (gpt_config(tokenizer=...) or "
            "bert_config(tokenizer=...)); for a pretrained model use its own tokenizer, or call "
            "model.resize_token_embeddings(len(tokenizer)) after adding tokens")


def _check_labels(labels: torch.Tensor, limits: dict[str, Any], place: str,
                  token_level: bool) -> None:
    n = limits.get("num_labels")
    if n is None or n < 2:
        return  # num_labels=1 is regression
    kept = labels[labels != IGNORE]
    if kept.numel() == 0:
        return
    low, high = int(kept.min()), int(kept.max())
    what = "token label" if token_level else "label"
    ignored = " (positions labelled -100 are ignored)" if token_level else ""
    if low < 0:
        raise DataError(f"{what} {low} in {place}{ignored}: labels run 0 .. {n - 1}; -100 is "
                        "the only negative label (ignore this position)")
    if high >= n:
        build = ("AutoModelForTokenClassification.from_pretrained(name, num_labels=len(tags), "
                 "id2label=..., label2id=...)" if token_level else
                 "AutoModelForSequenceClassification.from_pretrained(name, num_labels=...)")
        raise DataError(
            f"{what} {high} >= num_labels {n} (model.config.num_labels) in {place}{ignored}: "
            f"the model has {n} classes, numbered 0 .. {n - 1}. Build it with one class per "
            f"label (at least {high + 1} here), e.g. {build}, or map the labels to 0 .. {n - 1}")
