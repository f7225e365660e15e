"""Exercises of 04_transfer_learning (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from llm_course.exercises.registry import Case, Exercise, compare_tensors, register
from llm_course.finetuning.probes import mean_pool
from llm_course.finetuning.tasks import align_labels

# ----------------------------------------------------------------------------------------------
# 04_transfer_learning: mean pooling over the real tokens


def _pool_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(4)
    yield Case((torch.randn(2, 5, 3, generator=g), torch.ones(2, 5, dtype=torch.long)),
               label="2 texts of 5 tokens, no padding")
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    yield Case((torch.randn(3, 6, 4, generator=g), mask), label="3 texts padded to 6 tokens")
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]])
    hidden = torch.randn(1, 8, 2, generator=g)
    hidden[:, 4:] = 100.0  # padding positions hold large junk values
    yield Case((hidden, mask), label="padding positions full of large values (100.0)")


register(Exercise(
    id="04.mean_pool",
    title="Mean pooling over the real tokens",
    reference=mean_pool,
    cases=_pool_cases,
    compare=compare_tensors,
    mistakes={
        "averaged over every position, padding included: multiply by the mask first":
            lambda h, m: h.mean(1),
        "summed without dividing by the number of real tokens":
            lambda h, m: (h * m.unsqueeze(-1)).sum(1),
        "zeroed the padding but divided by the padded length, not by the real tokens":
            lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1],
        "took the first token ([CLS]) instead of the mean": lambda h, m: h[:, 0],
    },
    hints=[
        ("hidden is (batch, tokens, dim) and attention_mask is (batch, tokens): give the mask a "
         "last axis, attention_mask.unsqueeze(-1), so it multiplies every dimension."),
        ("Zero the padding (hidden * mask), sum over the token axis (dim 1), then divide by the "
         "number of real tokens per text, mask.sum(1)."),
        "Convert the mask to the hidden states' dtype (.to(hidden.dtype)) before multiplying.",
    ],
))

# ----------------------------------------------------------------------------------------------
# 04_transfer_learning: word tags onto sub-word tokens


def _align_cases() -> Iterator[Case]:
    # [CLS] new york ##er [SEP]
    yield Case(([None, 0, 1, 1, None], [3, 4]), label="[CLS] new york ##er [SEP], tags [3, 4]")
    yield Case(([None, 0, 0, 0, 1, None], [1, 0]), label="a word cut into 3 pieces, then one")
    yield Case(([None, 0, 1, 2, 3, None, None], [0, 5, 6, 0]),
               label="one piece per word, then [SEP] and padding")
    yield Case(([None, 0, 1, 1, 2, 2, 2, 3, None], [7, 0, 2, 0]), label="a mix of long words")
    yield Case(([None, 0, 1, 1, None], [0, 0]), label="two words tagged O (0): the word tag, not -100")


register(Exercise(
    id="04.align_labels",
    title="Word tags onto sub-word tokens",
    reference=align_labels,
    cases=_align_cases,
    mistakes={
        "gave every piece of a word the word's tag: only the first piece is scored":
            lambda w, t: [-100 if i is None else t[i] for i in w],
        "tagged the special tokens ([CLS], [SEP]) with 0 (O) instead of -100":
            lambda w, t: [0 if i is None else v for i, v in zip(w, align_labels(w, t),
                                                                strict=True)],
        "put the tag on the last piece of each word instead of the first":
            lambda w, t: [t[i] if i is not None and (j + 1 == len(w) or w[j + 1] != i) else -100
                          for j, i in enumerate(w)],
    },
    hints=[
        ("word_ids gives, for each token, the index of the word it came from (None for [CLS], "
         "[SEP] and padding). Walk through it, remembering the previous word id."),
        ("A token starts a new word when its word id is not None and differs from the previous "
         "one: it gets word_tags[word_id]. Every other token gets -100."),
    ],
    setup="from collections.abc import Sequence",
))

# ----------------------------------------------------------------------------------------------
# 04_transfer_learning: counting trainable parameters


def count_trainable(model: nn.Module) -> int:
    """Number of trainable parameters (numbers, not tensors) in `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class TiedLM(nn.Module):
    """A tiny model whose output layer shares its weight with the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.head = nn.Linear(6, 20, bias=False)
        self.head.weight = self.embed.weight


def _count_cases() -> Iterator[Case]:
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    yield Case((mlp,), label="a small MLP, everything trainable")
    frozen_first = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    frozen_first[0].requires_grad_(False)
    yield Case((frozen_first,), label="the same MLP with its first layer frozen")
    head = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 3))
    head[0].requires_grad_(False)
    yield Case((head,), label="a frozen embedding under a trainable head")
    yield Case((TiedLM(),), label="tied weights: a shared parameter counts once")
    yield Case((nn.Linear(3, 3).requires_grad_(False),), label="a fully frozen layer")


register(Exercise(
    id="04.count_trainable",
    title="Count the trainable parameters",
    reference=count_trainable,
    cases=_count_cases,
    mistakes={
        "counted the frozen parameters too: keep only p.requires_grad":
            lambda m: sum(p.numel() for p in m.parameters()),
        "counted parameter tensors, not the numbers in them: use p.numel()":
            lambda m: sum(1 for p in m.parameters() if p.requires_grad),
        "counted the frozen parameters instead of the trainable ones":
            lambda m: sum(p.numel() for p in m.parameters() if not p.requires_grad),
    },
    hints=[
        "model.parameters() yields every weight tensor once (shared ones too).",
        "A tensor is trained when p.requires_grad is True; p.numel() is how many numbers it has.",
    ],
    setup="from torch import nn",
))
