"""Tiny models and datasets shared by the tests."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

VOCAB = 64
SEQ = 16


def tiny_gpt(seed: int = 0, dropout: float = 0.0, n_embd: int = 32):
    """A 2-layer GPT-2 with a 64-token vocabulary (about 30 k parameters)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=n_embd, n_head=2, vocab_size=VOCAB, n_positions=SEQ,
                     bos_token_id=0, eos_token_id=0, resid_pdrop=dropout, embd_pdrop=dropout,
                     attn_pdrop=dropout)
    return GPT2LMHeadModel(cfg)


def tiny_bert_config(vocab_size: int = 100, hidden_size: int = 32, num_hidden_layers: int = 2,
                     num_attention_heads: int = 2, intermediate_size: int | None = None,
                     max_position_embeddings: int = 32, dropout: float | None = None, **overrides):
    """A small BertConfig; the feed-forward is 2 x hidden_size unless given.

    `dropout` sets both hidden and attention dropout (None keeps BERT's 0.1); any other
    BertConfig field (num_labels, id2label, ...) goes through `overrides`.
    """
    from transformers import BertConfig

    if dropout is not None:
        overrides.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return BertConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                      num_hidden_layers=num_hidden_layers, num_attention_heads=num_attention_heads,
                      intermediate_size=intermediate_size or 2 * hidden_size,
                      max_position_embeddings=max_position_embeddings, **overrides)


def tiny_bert(head: str = "sequence-classification", seed: int = 0,
              add_pooling_layer: bool = True, **config_overrides):
    """A tiny BERT from tiny_bert_config(**config_overrides), seeded, in train mode as built.

    head: "sequence-classification" (BertForSequenceClassification), "masked-lm"
    (BertForMaskedLM) or "base" (BertModel, the one `add_pooling_layer` applies to).
    """
    from transformers import BertForMaskedLM, BertForSequenceClassification, BertModel

    classes = {"sequence-classification": BertForSequenceClassification,
               "masked-lm": BertForMaskedLM, "base": BertModel}
    if head not in classes:
        raise ValueError(f"head must be one of {sorted(classes)}, not {head!r}")
    if head != "base" and not add_pooling_layer:
        raise ValueError("add_pooling_layer=False applies to head='base' only")
    config = tiny_bert_config(**config_overrides)
    torch.manual_seed(seed)
    if head == "base":
        return BertModel(config, add_pooling_layer=add_pooling_layer)
    return classes[head](config)


class TokenData(torch.utils.data.Dataset):
    """Random token sequences; with `ragged`, rows have 4..SEQ real tokens and padding."""

    def __init__(self, n: int, seed: int = 0, ragged: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, VOCAB, (n, SEQ), generator=g)
        self.mask = torch.ones(n, SEQ, dtype=torch.long)
        if ragged:
            lengths = torch.randint(4, SEQ + 1, (n,), generator=g)
            for i, length in enumerate(lengths.tolist()):
                self.mask[i, length:] = 0
                self.ids[i, length:] = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        labels = self.ids[i].masked_fill(self.mask[i] == 0, -100)
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": labels}


class VectorData(torch.utils.data.Dataset):
    """4-d points with 2 classes; `flip` swaps the labels (a set the model cannot fit too)."""

    def __init__(self, n: int, seed: int = 0, flip: bool = False) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 4, generator=g)
        self.y = (self.x[:, 0] > 0).long()
        if flip:
            self.y = 1 - self.y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "labels": self.y[i]}


class ToyClassifier(nn.Module):
    """A linear classifier with the HF calling convention; can return NaN at one call."""

    def __init__(self, seed: int = 0, nan_at_call: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.lin = nn.Linear(4, 2)
        self.norm = nn.LayerNorm(4)
        self.nan_at_call = nan_at_call
        self.calls = 0

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> SimpleNamespace:
        self.calls += 1
        logits = self.lin(self.norm(x))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels)
            if self.training and self.calls == self.nan_at_call:
                loss = loss * float("nan")
        return SimpleNamespace(loss=loss, logits=logits)


def quiet(**overrides):
    """A TrainConfig for tests: fp32, no bar, no plot, no compile."""
    from llm_course.training.config import TrainConfig

    base = dict(precision="fp32", progress=False, plot=False, compile=False)
    base.update(overrides)
    return TrainConfig(**base)
