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


# ----------------------------------------------------------------------------------------------
# The end-of-lesson quiz (shown by `exercises.quiz("02")`)

QUIZ = [
    {
        "question": "`next_token_loss` compares the logits at position $t$ with the token at "
                    "$t+1$. What would go wrong if it compared them with the token at $t$?",
        "choices": {
            "a": "Nothing: both train a language model.",
            "b": "The shapes would not match.",
            "c": "Position $t$ already sees token $t$, so the model could learn to copy its input: "
                 "the loss would fall towards 0 and the model would learn nothing about what "
                 "comes next.",
            "d": "The loss would ignore the first token.",
        },
        "answer": "c",
        "why": {
            "a": "Only the shifted version asks a question whose answer is not in the input.",
            "b": "Without the shift the shapes match perfectly, which is why this bug runs "
                 "silently.",
            "c": "Right: the causal mask hides later tokens, not the current one; the shift by "
                 "one is what makes it a prediction.",
            "d": "It is the shifted loss that never predicts the first token (nothing comes before "
                 "it) and drops the last position's prediction (nothing follows it).",
        },
    },
    {
        "question": "`fit` starts with a short **warmup**: the learning rate climbs from near 0 to "
                    "its peak over the first few percent of the steps. Why?",
        "choices": {
            "a": "At the start the weights are random and AdamW's running averages of the "
                 "gradients rest on a handful of steps, so full-size steps can throw the model "
                 "somewhere bad or make it diverge; small steps first let those statistics "
                 "settle.",
            "b": "To save compute in the first steps.",
            "c": "Because a cosine schedule cannot start at its peak.",
            "d": "To stop the model from overfitting.",
        },
        "answer": "a",
        "why": {
            "a": "Right: it matters most for transformers, post-LN ones above all (lesson 03). "
                 "The divergence guard of `fit` is the safety net when it is not enough.",
            "b": "A step costs the same at any learning rate.",
            "c": "It can; warmup is added because large early steps are risky, not because of "
                 "the schedule's shape.",
            "d": "Overfitting is a late-training problem; warmup acts on the first few percent "
                 "of the steps.",
        },
    },
    {
        "question": "In the loss plot of section 4, at `laptop` scale, the validation loss ends "
                    "more than a nat below the red dashed line, the unigram entropy. What does the "
                    "part below the line show?",
        "figure": "the training and validation loss of section 4, with the unigram entropy",
        "choices": {
            "a": "That the model overfits the training text.",
            "b": "That the model uses the context: it predicts the next token better than a model "
                 "that only knows how frequent each token is.",
            "c": "That the learning rate has decayed.",
            "d": "That the model has memorised the validation text.",
        },
        "answer": "b",
        "why": {
            "a": "Overfitting would show as a validation loss that rises while the training loss "
                 "keeps falling.",
            "b": "Right: the unigram entropy is the best a context-blind model can do; every nat "
                 "below it is learnt from context.",
            "c": "The schedule changes the speed of the fall; it cannot by itself take a model "
                 "below what frequencies allow.",
            "d": "The model never trains on the validation blocks.",
        },
    },
    {
        "question": "Your validation loss falls from 7.0 to 6.0 nats per token. What happens to the "
                    "perplexity?",
        "choices": {
            "a": "It falls by 1.",
            "b": "It halves.",
            "c": "It falls by 1/7, like the loss.",
            "d": "It falls by a factor $e \\approx 2.7$, from about 1,100 to about 400.",
        },
        "answer": "d",
        "why": {
            "a": "That is the loss; perplexity is $\\exp$ of the loss, so a difference in loss "
                 "becomes a ratio in perplexity.",
            "b": "A factor of 2 would be a fall of $\\log 2 \\approx 0.69$ nats.",
            "c": "Perplexity is not proportional to the loss; it is its exponential.",
            "d": "Right: $e^7 / e^6 = e$. The model is now as unsure as if it chose among about "
                 "400 tokens instead of 1,100.",
        },
    },
    {
        "question": "Greedy decoding makes the small GPT loop, and temperature 1.5 makes it write "
                    "nonsense. Why does a temperature below 1 with top-k usually read best?",
        "choices": {
            "a": "It sharpens the distribution and cuts off the long tail of unlikely tokens, but "
                 "still samples, so it avoids both the loops and the junk.",
            "b": "It makes the model more accurate.",
            "c": "It always picks the likeliest token.",
            "d": "It makes generation faster.",
        },
        "answer": "a",
        "why": {
            "a": "Right: greedy removes all randomness (loops), a high temperature gives weight to "
                 "thousands of bad tokens (junk); the middle way keeps a little of each.",
            "b": "Decoding does not change the model or its loss; it only changes how we draw "
                 "from the same probabilities.",
            "c": "That is greedy decoding, which loops.",
            "d": "The model runs once per token either way; filtering costs a sort, not a speed-up.",
        },
    },
    {
        "question": "In the scaling plot of section 6 (at `laptop` scale), every model saw the "
                    "same number of tokens, and the bigger ones reached a lower validation loss. "
                    "What does the plot support?",
        "figure": "validation loss against non-embedding parameters, section 6",
        "choices": {
            "a": "A bigger model is better whatever the data and compute.",
            "b": "The loss depends only on the number of steps.",
            "c": "At a fixed number of tokens, more parameters give a lower loss, roughly a "
                 "straight line on a log scale, as long as data and compute keep up.",
            "d": "Small models learn faster per token.",
        },
        "answer": "c",
        "why": {
            "a": "The plot holds data fixed; with too little data a big model overfits, and with "
                 "too little compute it undertrains.",
            "b": "All sizes had the same steps and different losses, so it is not only steps.",
            "c": "Right: that is the power law of the scaling-law papers, seen at a tiny size "
                 "(at `laptop` each size trains 200 steps; at 100 the largest had not yet pulled ahead).",
            "d": "Per token seen, the bigger models learnt more here, not less.",
        },
    },
    {
        "question": "The GPT reads a whole block at once during training. What stops position $t$ "
                    "from looking at the token at $t+1$, the one it must predict?",
        "choices": {
            "a": "The loss ignores the later tokens.",
            "b": "The causal mask in attention: each position may attend only to itself and "
                 "earlier positions.",
            "c": "The tokenizer removes the next token.",
            "d": "Blocks are shuffled, so the next token is random.",
        },
        "answer": "b",
        "why": {
            "a": "The loss needs the later tokens as targets; hiding them from the *input side* "
                 "is attention's job.",
            "b": "Right: the mask sets the attention scores of later positions to $-\\infty$ "
                 "before the softmax (lesson 01b builds it).",
            "c": "The tokenizer runs before the model and keeps every token.",
            "d": "Shuffling changes the order of blocks, not the order of tokens inside one.",
        },
    },
]
