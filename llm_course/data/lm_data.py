"""Turning raw text into language-model training examples (taught in 00_setup and
06_peft; lessons 02-03 use it through `llm_course.pretraining`).

GPT-style pretraining packs the token stream into fixed blocks, so no position is
wasted on padding. BERT-style pretraining keeps whole lines up to `max_length` and lets
`DataCollatorForLanguageModeling` mask them. `unigram_entropy` is the loss a model that
ignores context would get: the bar a language model must clear.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from datasets import Dataset


def pack_blocks(texts: Sequence[str], tokenizer, block_size: int) -> Dataset:
    """Tokenize `texts`, join them with the end-of-text token, cut into `block_size` blocks.

    Each row has `input_ids`, `attention_mask` (all ones) and `labels` (the same ids: the
    model shifts them itself).
    The tail that does not fill a block is dropped.
    """
    if block_size < 2:
        raise ValueError(f"block_size={block_size} is too small: use at least 2 (typical 128)")
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    # whole texts first, cut into pieces below: no "longer than the maximum" warning
    for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]:
        stream.extend(ids)
        if eos is not None:
            stream.append(eos)
    n_blocks = len(stream) // block_size
    if n_blocks == 0:
        raise ValueError(f"only {len(stream)} tokens: not enough text for one block of {block_size}")
    blocks = torch.tensor(stream[: n_blocks * block_size]).view(n_blocks, block_size)
    rows = blocks.tolist()
    ones = torch.ones_like(blocks).tolist()  # no padding: every position is real text
    return Dataset.from_dict({"input_ids": rows, "attention_mask": ones, "labels": rows}
                             ).with_format("torch")


def tokenize_lines(texts: Sequence[str], tokenizer, max_length: int, min_tokens: int = 8) -> Dataset:
    """Tokenize each text (cut into chunks of at most `max_length` tokens) for masked-LM."""
    body = max_length - 2  # room for [CLS] and [SEP]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    rows: list[list[int]] = []
    # whole texts first, cut into pieces below: no "longer than the maximum" warning
    for ids in tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]:
        for start in range(0, len(ids), body):
            chunk = ids[start:start + body]
            if len(chunk) >= min_tokens:
                rows.append([cls, *chunk, sep])
    if not rows:
        raise ValueError("no text long enough to make a masked-LM example")
    return Dataset.from_dict({"input_ids": rows})


def token_counts(dataset: Dataset, vocab_size: int, column: str = "input_ids") -> torch.Tensor:
    """How often each token id occurs in `dataset[column]` (a tensor of length vocab_size)."""
    counts: Counter = Counter()
    for ids in dataset[column]:
        counts.update(ids.tolist() if isinstance(ids, torch.Tensor) else ids)
    out = torch.zeros(vocab_size, dtype=torch.float64)
    for token, n in counts.items():
        out[int(token)] = n
    return out


def unigram_entropy(train_counts: torch.Tensor, eval_counts: torch.Tensor,
                    smoothing: float = 1.0) -> float:
    """Cross-entropy (nats/token) on eval data of a unigram model fitted on train data.

    The unigram model predicts every token with its training frequency, ignoring the
    context; add-`smoothing` counts keep unseen tokens finite.
    """
    probs = (train_counts + smoothing) / (train_counts.sum() + smoothing * len(train_counts))
    total = eval_counts.sum()
    return float(-(eval_counts * probs.log()).sum() / total) if total > 0 else math.nan
