"""Tiny models and datasets for the training-core tests (test_train*.py, resume_child.py)."""

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
    from llm_course.train_config import TrainConfig

    base = dict(precision="fp32", progress=False, plot=False, compile=False)
    base.update(overrides)
    return TrainConfig(**base)
