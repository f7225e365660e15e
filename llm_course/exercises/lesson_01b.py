"""Exercises and quiz of 01b_transformer (see `llm_course.exercises` for the mechanism).

The references are the package's own functions in `llm_course.models.attention`, which the
lesson's GPT and BERT blocks are built from: `ex.solution()` prints their real source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from llm_course.exercises.registry import Case, Exercise, compare_auto, register
from llm_course.models.attention import (
    causal_mask,
    multi_head_attention,
    scaled_dot_product_attention,
)

# ----------------------------------------------------------------------------------------------
# 01b_transformer: scaled dot-product attention


def _attention_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(11)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    yield Case((rand(3, 4), rand(5, 4), rand(5, 2)), label="3 queries, 5 keys, d_k = 4, no mask")
    yield Case((rand(2, 4, 6, 8), rand(2, 4, 6, 8), rand(2, 4, 6, 8), causal_mask(6)),
               label="batch 2, 4 heads, 6 positions, d_k = 8, with a causal mask")
    padding = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, :]  # (2, 1, 5)
    yield Case((rand(2, 5, 16), rand(2, 5, 16), rand(2, 5, 16), padding),
               label="2 sequences of 5, the second ends with 2 padding positions (mask (2, 1, 5))")
    yield Case((rand(4, 64), rand(7, 64), rand(7, 3)), label="d_k = 64: the scaling matters here")


def _masked_with_zero(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, 0.0)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def _attention_with(scale: Callable[[int], float], dim: int = -1, invert: bool = False):
    def wrong(q, k, v, mask=None):
        scores = q @ k.transpose(-2, -1) / scale(q.size(-1))
        if mask is not None:
            scores = scores.masked_fill(mask if invert else ~mask, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=dim)
        return weights @ v, weights
    return wrong


def _explain_attention(fn: Callable, case: Case) -> list[str]:
    """What is wrong with the learner's weights: rows that do not add up to 1, weight on
    masked keys."""
    a, k = case.fresh()
    got = fn(*a, **k)
    if not (isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], torch.Tensor)):
        return ["return a pair: (output, weights)"]
    weights = got[1].detach()
    if weights.shape != scaled_dot_product_attention(*a, **k)[1].shape:
        return []  # the comparison above already says what is wrong with the shapes
    lines = []
    sums = weights.sum(dim=-1)
    if not torch.allclose(sums, torch.ones_like(sums), atol=1e-4):
        lines.append(f"your weights' rows add up to {sums.min().item():.3g} .. "
                     f"{sums.max().item():.3g}; each query's weights over the keys must add up "
                     "to 1 (softmax over the last dimension)")
    mask = case.args[3] if len(case.args) > 3 else None
    if mask is not None:
        hidden = (weights * ~mask).abs().max().item()
        if hidden > 1e-6:
            lines.append(f"your weights put up to {hidden:.3g} on keys the mask hides: a hidden "
                         "key must get weight 0")
    return lines


register(Exercise(
    id="01b.attention",
    title="Scaled dot-product attention",
    reference=scaled_dot_product_attention,
    cases=_attention_cases,
    mistakes={
        "no scaling: divide the scores by sqrt(d_k)": _attention_with(lambda d: 1.0),
        "divided by d_k instead of its square root": _attention_with(lambda d: d),
        "softmax over the queries (dim=-2): each query's weights over the KEYS must add up to 1":
            _attention_with(math.sqrt, dim=-2),
        "the mask is ignored": lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v),
        "hidden scores set to 0: a score of 0 still gets weight e^0 after the softmax; use a "
        "very negative number (or -inf)": _masked_with_zero,
        "the mask is used the wrong way round: True means 'may attend'":
            _attention_with(math.sqrt, invert=True),
        "returned (weights, output): the output comes first":
            lambda q, k, v, mask=None: scaled_dot_product_attention(q, k, v, mask)[::-1],
    },
    explain=_explain_attention,
    hints=[
        ("Scores: q @ k.transpose(-2, -1) compares every query with every key, shape "
         "(..., T_q, T_k); divide them by math.sqrt(d_k), with d_k = q.size(-1)."),
        ("Masking: scores.masked_fill(~mask, value) with a very negative value "
         "(torch.finfo(scores.dtype).min, or float('-inf')) so the softmax gives those keys 0."),
        ("weights = torch.softmax(scores, dim=-1), so each query's weights add up to 1; "
         "then return weights @ v, weights."),
    ],
    setup="import torch",
))

# ----------------------------------------------------------------------------------------------
# 01b_transformer: the causal mask


def _mask_cases() -> Iterator[Case]:
    for size in (4, 1, 2, 7):  # 4 first: there every typical mistake looks different
        yield Case((size,), label=f"size = {size}")


def _compare_mask(expected: torch.Tensor, got: object) -> str | None:
    if expected.dtype == torch.bool and isinstance(got, torch.Tensor) and got.dtype != torch.bool:
        return (f"dtype {got.dtype}: a mask must be torch.bool (True = may attend), so that "
                "~mask and masked_fill work; e.g. torch.ones(size, size, dtype=torch.bool)")
    return compare_auto(expected, got)


def _explain_mask(fn: Callable, case: Case) -> list[str]:
    got = fn(*case.fresh()[0])
    rows = ["".join("x" if bool(v) else "." for v in row) for row in got.tolist()]
    want = ["".join("x" if bool(v) else "." for v in row) for row in causal_mask(case.args[0])]
    return (["yours (x = may attend), rows are queries:  expected:"]
            + [f"    {r:<{len(r) + 12}}{w}" for r, w in zip(rows, want)])


register(Exercise(
    id="01b.causal_mask",
    title="The causal mask",
    reference=causal_mask,
    cases=_mask_cases,
    compare=_compare_mask,
    mistakes={
        "upper triangle: each position would see the future and not the past":
            lambda size, device=None: torch.ones(size, size, dtype=torch.bool).triu(),
        "the diagonal is missing: a position must see itself":
            lambda size, device=None: torch.ones(size, size, dtype=torch.bool).tril(-1),
        "True marks what to hide, but here True means 'may attend'":
            lambda size, device=None: torch.ones(size, size, dtype=torch.bool).triu(1),
        "a float mask: make it torch.bool":
            lambda size, device=None: torch.ones(size, size).tril(),
    },
    explain=_explain_mask,
    hints=[
        "Row i is query position i; column j is key position j. Position i may look at j <= i.",
        ("That is the lower triangle, diagonal included: torch.ones(size, size, "
         "dtype=torch.bool).tril()."),
    ],
    setup="import torch",
))

# ----------------------------------------------------------------------------------------------
# 01b_transformer: multi-head attention


def _heads_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(12)

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g)

    yield Case((rand(2, 5, 8), rand(2, 5, 8), rand(2, 5, 8), 2),
               label="batch 2, 5 positions, d = 8, 2 heads")
    yield Case((rand(1, 6, 12), rand(1, 6, 12), rand(1, 6, 12), 3, causal_mask(6)),
               label="6 positions, d = 12, 3 heads, causal mask")
    yield Case((rand(2, 1, 16), rand(2, 7, 16), rand(2, 7, 16), 4),
               label="1 query against 7 keys (as with a cache), d = 16, 4 heads")


def _heads_split_without_transpose(q, k, v, n_heads, mask=None):
    b, t, d = q.shape

    def split(x):
        return x.reshape(b, n_heads, x.size(1), d // n_heads)  # mixes positions and features

    out, weights = scaled_dot_product_attention(split(q), split(k), split(v), mask)
    return out.transpose(1, 2).reshape(b, t, d), weights


def _heads_merge_without_transpose(q, k, v, n_heads, mask=None):
    b, t, d = q.shape

    def split(x):
        return x.reshape(b, x.size(1), n_heads, d // n_heads).transpose(1, 2)

    out, weights = scaled_dot_product_attention(split(q), split(k), split(v), mask)
    return out.reshape(b, t, d), weights  # (B, H, T, d/H) read as (B, T, d): wrong order


def _heads_scaled_by_model_width(q, k, v, n_heads, mask=None):
    shrink = math.sqrt(q.size(-1) // n_heads) / math.sqrt(q.size(-1))  # 1/sqrt(d), not d/H
    return multi_head_attention(q * shrink, k, v, n_heads, mask)


register(Exercise(
    id="01b.multi_head_attention",
    title="Multi-head attention: split, attend, merge",
    reference=multi_head_attention,
    cases=_heads_cases,
    mistakes={
        "split with reshape(B, heads, T, d / heads) and no transpose: that cuts the positions, "
        "not the features; reshape to (B, T, heads, d / heads), then .transpose(1, 2)":
            _heads_split_without_transpose,
        "merged without transposing back: (B, heads, T, d / heads) must become (B, T, heads, "
        "d / heads) with .transpose(1, 2) before the reshape to (B, T, d)":
            _heads_merge_without_transpose,
        "scaled by the square root of the model width d: each head scales by its own width, "
        "d / heads": _heads_scaled_by_model_width,
        "one head of width d: n_heads was ignored":
            lambda q, k, v, n_heads, mask=None: scaled_dot_product_attention(q, k, v, mask),
    },
    hints=[
        ("Split each of q, k, v: (B, T, d) -> reshape (B, T, heads, d / heads) -> .transpose(1, "
         "2) -> (B, heads, T, d / heads). Each head now owns a slice of the features."),
        ("Your scaled_dot_product_attention works on the last two dimensions, so it runs all "
         "heads at once; the mask broadcasts over the heads."),
        ("Merge: out.transpose(1, 2) -> (B, T, heads, d / heads), then .reshape(B, T, d). Return "
         "(output, weights) with weights (B, heads, T_q, T_k)."),
    ],
    setup="import torch\n\nfrom llm_course.models.attention import scaled_dot_product_attention",
))

# ----------------------------------------------------------------------------------------------
# 01b_transformer: the quiz (plain data; the quiz mechanism shows it and checks the answers)

QUIZ = [
    {
        "question": "Why does attention divide the scores $q \\cdot k$ by $\\sqrt{d_k}$?",
        "choices": {
            "a": "So that each query's attention weights add up to 1.",
            "b": ("Because the dot product of two random $d_k$-dimensional vectors has a "
                  "variance of about $d_k$: unscaled, wide heads push the softmax to a "
                  "near one-hot choice whose gradients almost vanish."),
            "c": "To save computation in wide heads.",
            "d": "To stop a token from attending to later tokens.",
        },
        "answer": "b",
        "why": {
            "a": "The softmax makes the weights add up to 1 whatever the scale of the scores.",
            "b": ("Right: dividing by $\\sqrt{d_k}$ brings the scores back to a variance of about "
                  "1, so the softmax stays soft and trainable. The saturation plot shows the "
                  "largest weight creeping to 1 without the scaling."),
            "c": "A division costs as much as it saves; nothing is skipped.",
            "d": "That is the causal mask's job, not the scaling's.",
        },
        "figure": "the softmax-saturation plot of section 1",
    },
    {
        "question": ("In a GPT (causal attention), you change the 7th token of a 10-token input. "
                     "Which positions' outputs can change?"),
        "choices": {
            "a": "All ten.",
            "b": "Only the 7th.",
            "c": "The 7th and the ones after it.",
            "d": "Only the six before it.",
        },
        "answer": "c",
        "why": {
            "a": "That is an encoder such as BERT, where every token sees every other one.",
            "b": "Later positions attend to the 7th token too, so their outputs change as well.",
            "c": ("Right: position i only sees positions 0..i, so positions before the 7th never "
                  "see it. The lesson checks this on the model: their outputs stay equal."),
            "d": "Those are exactly the positions that cannot see it.",
        },
    },
    {
        "question": ("A layer of width $d = 256$ uses 4 heads instead of 1. What changes in its "
                     "attention?"),
        "choices": {
            "a": "It has four times as many parameters.",
            "b": ("Each head compares queries and keys in its own 64-dimensional slice, so the "
                  "layer can attend to four different things at once; the parameter count stays "
                  "the same."),
            "c": "Each head reads a quarter of the tokens.",
            "d": "The four heads share one attention pattern and average their values.",
        },
        "answer": "b",
        "why": {
            "a": ("The query, key, value and output projections are still $d \\times d$: the "
                  "heads split the projected features, they add no weights."),
            "b": ("Right: split, attend, merge. Every head sees every (allowed) token, through "
                  "its own 64 features, and the output projection mixes the heads' results."),
            "c": "Heads split the features, not the positions: each sees the whole sequence.",
            "d": "Each head has its own attention weights: the heatmaps show how different they are.",
        },
    },
    {
        "question": ("Look at the key/value-cache plot. Without the cache, tokens per second fall "
                     "as the text grows; with it they stay much flatter. Why?"),
        "choices": {
            "a": ("Without the cache each new token runs the model over the whole text again; "
                  "with it only the new position is computed and the earlier keys and values are "
                  "read back."),
            "b": "The cache stores the model's weights in a faster format.",
            "c": "With the cache the MLP is skipped for the new token.",
            "d": "The cache makes the model predict several tokens per step.",
        },
        "answer": "a",
        "why": {
            "a": ("Right: without the cache the work per new token grows with the length; with "
                  "it, only the attention over the cached keys grows, and it is small. The "
                  "tokens are identical either way."),
            "b": "The weights are the same; what is stored is each layer's keys and values.",
            "c": "The new token goes through every layer in full, MLP included.",
            "d": "Still one token per step; each step is just cheaper.",
        },
        "figure": "the key/value-cache plot of section 6",
    },
    {
        "question": ("In MiniLM's heatmaps, one head puts most of almost every row's weight on "
                     "the first column, `[CLS]`. What is the usual reading of such a head?"),
        "choices": {
            "a": ("A resting place: when the head finds nothing useful to attend to, it puts its "
                  "weight on a token that carries little, such as `[CLS]` or `[SEP]`."),
            "b": "The mask is broken, so every token only sees `[CLS]`.",
            "c": "This head writes the meaning of the whole sentence into `[CLS]`.",
            "d": "All the tokens of the sentence are the same.",
        },
        "answer": "a",
        "why": {
            "a": ("Right: Clark et al. (2019) found BERT's heads parking their attention on "
                  "`[SEP]` this way; MiniLM's parking place is `[CLS]`. Such heads act close to "
                  "a no-op."),
            "b": "Other heads of the same layer attend elsewhere with the same mask.",
            "c": ("The arrow points the other way: row i shows where token i reads from. Here "
                  "every token reads from `[CLS]`."),
            "d": "The rows belong to different tokens; the tokens are printed on the axes.",
        },
        "figure": "the MiniLM attention heatmaps of section 5",
    },
    {
        "question": ("A MiniLM head links 'it' to 'animal' in 'The animal didn't cross the street "
                     "because it was too tired.' In '... because it was too wide.' the same head "
                     "still reads more from 'animal' than from 'street'. What does this tell you?"),
        "choices": {
            "a": "The head resolves references correctly; the second sentence is ambiguous.",
            "b": ("The head follows a rule of thumb (pronoun to subject noun), not the meaning; "
                  "one head's weights are a clue, not an explanation of what the model knows."),
            "c": "Eager attention computes different weights from SDPA.",
            "d": "MiniLM cannot represent the word 'wide'.",
        },
        "answer": "b",
        "why": {
            "a": "A street is wide, an animal is tired: the second 'it' is the street.",
            "b": ("Right: the pattern looks like coreference on one sentence and fails on its "
                  "twin. Other heads and layers may still carry the right answer."),
            "c": "Both compute the same weights; eager attention just returns them.",
            "d": "Its vocabulary has 'wide'; the point is which word the head looks at.",
        },
    },
    {
        "question": ("GPT-2 puts LayerNorm before each sublayer (pre-LN), BERT after each "
                     "residual sum (post-LN). What does pre-LN buy?"),
        "choices": {
            "a": "Fewer parameters.",
            "b": "It lets tokens see the future.",
            "c": ("A clean residual path from the embeddings to the output, so gradients reach "
                  "the early layers undisturbed and deep stacks train stably with less warm-up."),
            "d": "It makes the output exactly equal to BERT's.",
        },
        "answer": "c",
        "why": {
            "a": "Both place two LayerNorms per block; pre-LN adds one final LayerNorm.",
            "b": "LayerNorm acts on each position alone; masks decide what a token sees.",
            "c": ("Right: in post-LN every residual sum is normalised, so the signal and the "
                  "gradient pass through a LayerNorm at every layer; deep post-LN stacks need "
                  "a careful learning-rate warm-up."),
            "d": "They are different computations; the lesson checks each against its own library.",
        },
    },
    {
        "question": ("Which architecture fits classifying reviews or tagging names in a text, and "
                     "why?"),
        "choices": {
            "a": "Decoder-only: it is the newest design.",
            "b": ("Encoder-only (BERT-like): every token's vector is built from the words on both "
                  "sides, and a small head reads them."),
            "c": "Encoder-decoder: the task needs generated output.",
            "d": "It makes no difference which one is used.",
        },
        "answer": "b",
        "why": {
            "a": ("A decoder can do it (by prompting, or a head on its last token) but each token "
                  "sees only its left side; at small sizes an encoder does better per parameter."),
            "b": ("Right: lessons 04 and 05 use MiniLM this way; decoders (lesson 02, SmolLM2) are "
                  "for generating text, encoder-decoders (T5, BART) for text-to-text tasks such "
                  "as translation and summaries."),
            "c": "A label or a tag per token is not free text; no decoder is needed.",
            "d": "The attention mask decides what each token can use: it matters.",
        },
    },
]
