"""Exercises of 02_pretraining_gpt (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from llm_course.exercises.registry import Case, Exercise, compare_tensors, register

# ----------------------------------------------------------------------------------------------
# 02_pretraining_gpt: next-token loss and perplexity


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting token t+1 from the logits at position t."""
    vocab_size = logits.size(-1)
    predictions = logits[:, :-1, :]  # positions 0 .. T-2 predict ...
    targets = input_ids[:, 1:]  # ... tokens 1 .. T-1
    return F.cross_entropy(predictions.reshape(-1, vocab_size), targets.reshape(-1))


def _loss_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(2)
    for b, t, v, scale, label in [
        (2, 7, 11, 1.0, "2 sequences of 7 tokens, vocabulary 11"),
        (1, 5, 3, 1.0, "1 sequence of 5 tokens, vocabulary 3"),
        (3, 16, 50, 2.0, "3 sequences of 16 tokens, vocabulary 50"),
        (2, 6, 8, 100.0, "a very confident model (logits of size ~100)"),
    ]:
        logits = (torch.randn(b, t, v, generator=g) * scale).requires_grad_()
        yield Case((logits, torch.randint(v, (b, t), generator=g)), label=label)


def _ce(logits: torch.Tensor, ids: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids.reshape(-1),
                           reduction=reduction)


def _explain_loss(fn: Callable, case: Case) -> list[str]:
    """Per-position losses of sequence 0, got by calling `fn` on each window (t, t+1)."""
    logits, ids = case.args
    lines = [("per-position loss of sequence 0 (position t predicts token t+1), from your "
              "function on each pair of positions t, t+1:"), "      t   expected      yours"]
    for t in range(min(ids.size(1) - 1, 6)):
        expected = F.cross_entropy(logits[0, t:t + 1].detach(), ids[0, t + 1:t + 2]).item()
        got = float(fn(logits[:1, t:t + 2].detach().clone(), ids[:1, t:t + 2].clone()))
        flag = "" if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-5) else "  <- differs"
        lines.append(f"    {t:3d} {expected:10.4f} {got:10.4f}{flag}")
    return lines if any(line.endswith("differs") for line in lines) else []


register(Exercise(
    id="02.next_token_loss",
    title="Next-token loss (cross-entropy with a shift by one)",
    reference=next_token_loss,
    cases=_loss_cases,
    compare=compare_tensors,
    mistakes={
        "no shift: position t is scored against token t instead of token t+1":
            lambda lg, ids: _ce(lg, ids),
        "shifted the wrong way: use logits[:, :-1] with input_ids[:, 1:]":
            lambda lg, ids: _ce(lg[:, 1:], ids[:, :-1]),
        "a sum instead of a mean over positions": lambda lg, ids: _ce(lg[:, :-1], ids[:, 1:], "sum"),
        "log(softmax(...)) underflows to log(0) = -inf for confident logits: use "
        "F.cross_entropy or F.log_softmax":
            lambda lg, ids: -torch.log(torch.softmax(lg[:, :-1], -1)).gather(
                -1, ids[:, 1:, None]).mean(),
    },
    explain=_explain_loss,
    hints=[
        ("The logits at position t are a guess for the NEXT token, input_ids[:, t+1]. "
         "So the last position has no target and the first token is never predicted."),
        ("Drop the last position of the logits (logits[:, :-1]) and the first token of the "
         "targets (input_ids[:, 1:])."),
        ("F.cross_entropy wants (N, V) logits and (N,) targets: flatten with .reshape(-1, V) "
         "and .reshape(-1). It works on logits directly (no softmax needed)."),
    ],
    setup="import torch\nimport torch.nn.functional as F",
))


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """Perplexity from a mean negative log-likelihood in nats (what cross-entropy gives): exp."""
    return math.exp(float(mean_nll))


def _perplexity_cases() -> Iterator[Case]:
    for value in [0.0, 0.5, 2.302585, 4.6, 7.0]:
        yield Case((value,), label=f"mean_nll = {value}")
    yield Case((torch.tensor(3.2),), label="a loss tensor, as a model returns it")


register(Exercise(
    id="02.perplexity",
    title="Perplexity from the loss",
    reference=perplexity,
    cases=_perplexity_cases,
    mistakes={
        "2 ** loss: that assumes bits, but cross-entropy in PyTorch uses the natural log":
            lambda x: 2 ** float(x),
        "exp(-loss): that is the geometric-mean probability, not the perplexity":
            lambda x: math.exp(-float(x)),
    },
    hints=[
        "Perplexity undoes the log of the mean negative log-likelihood.",
        "F.cross_entropy uses the natural logarithm, so the inverse is exp, not 2 ** x.",
        "math.exp(float(mean_nll)) works for a Python float and for a 0-d tensor.",
    ],
    setup="import math\n\nimport torch",
))
