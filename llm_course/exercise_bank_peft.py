"""Exercises of 06_peft and 07_domain_adaptation (see `llm_course.exercises` for the mechanism).

Each exercise has a reference solution, hidden test inputs, typical mistakes and hints;
notebooks reach it with `llm_course.exercises.get(id)`. (06's first exercise, the LoRA
forward pass "06.lora_forward", lives in `exercise_bank`.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

from llm_course.exercises import Case, Exercise, compare_tensors, describe, register

# ----------------------------------------------------------------------------------------------
# 06_peft: merging a LoRA update into the frozen weight


def merge_weight(weight: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor,
                 alpha: float, r: int) -> torch.Tensor:
    """The merged weight W + (alpha / r) B A: one plain matrix, the same outputs as W plus LoRA."""
    return weight + (alpha / r) * (lora_B @ lora_A)  # (out, r) @ (r, in) -> (out, in)


def _merge_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(7)
    for d_out, d_in, r, alpha in [(6, 8, 2, 16), (5, 5, 4, 8), (12, 16, 8, 32), (3, 4, 1, 3)]:
        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g)

        yield Case((rand(d_out, d_in), rand(r, d_in), rand(d_out, r), alpha, r),
                   label=f"W ({d_out}, {d_in}), A ({r}, {d_in}), B ({d_out}, {r}), "
                         f"alpha = {alpha}, r = {r}")


register(Exercise(
    id="06.merge_weight",
    title="Merge the LoRA update into the weight",
    reference=merge_weight,
    cases=_merge_cases,
    compare=compare_tensors,
    mistakes={
        "returned only the update (alpha / r) B A: add the frozen weight W":
            lambda w, a, b, alpha, r: (alpha / r) * (b @ a),
        "forgot the scaling alpha / r": lambda w, a, b, alpha, r: w + b @ a,
        "scaled by r / alpha instead of alpha / r":
            lambda w, a, b, alpha, r: w + (r / alpha) * (b @ a),
        "the update is transposed: B A has the shape of W, (out, in); A.T B.T is (in, out)":
            lambda w, a, b, alpha, r: w + (alpha / r) * (a.T @ b.T),
    },
    hints=[
        ("The LoRA layer computes x W^T + (alpha / r) x A^T B^T = x (W + (alpha / r) B A)^T. "
         "So the merged weight is W + (alpha / r) B A."),
        "Shapes: B is (out, r) and A is (r, in), so B @ A is (out, in), like W.",
    ],
))

# ----------------------------------------------------------------------------------------------
# 07_domain_adaptation: how far is the domain from the pretraining text?

def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def unseen_word_rate(domain_texts: list[str], general_texts: list[str]) -> float:
    """Share of the word occurrences in `domain_texts` whose word never occurs in `general_texts`.

    Words are `re.findall(r"\\w+", text.lower())`; every occurrence counts (not distinct words).
    """
    known = set()
    for text in general_texts:
        known.update(re.findall(r"\w+", text.lower()))
    seen = unseen = 0
    for text in domain_texts:
        for word in re.findall(r"\w+", text.lower()):
            seen += 1
            unseen += word not in known
    return unseen / seen if seen else 0.0


def _unseen_cases() -> Iterator[Case]:
    general = ["The film was released in 1999 by the studio.",
               "The studio's director moved to London, where the film premiered."]
    yield Case((["A gorgeous, witty film.", "The studio film bored me."], general),
               label="two reviews against two general sentences")
    yield Case((["Great great great film", "Dull DULL dull"], general),
               label="repeated words: every occurrence counts")
    yield Case((["The Film, THE film; the film!"], general),
               label="capitals and punctuation: lower-case, words only")
    yield Case((["Nothing here is known", "the film"], ["the film"]), label="a tiny vocabulary")


def _distinct_words(domain: list[str], general: list[str]) -> float:
    known = {w for t in general for w in _words(t)}
    kinds = {w for t in domain for w in _words(t)}
    return len(kinds - known) / len(kinds)


def _no_lower(domain: list[str], general: list[str]) -> float:
    known = {w for t in general for w in re.findall(r"\w+", t)}
    found = [w for t in domain for w in re.findall(r"\w+", t)]
    return sum(w not in known for w in found) / len(found)


def _split(domain: list[str], general: list[str]) -> float:
    known = {w for t in general for w in t.lower().split()}
    found = [w for t in domain for w in t.lower().split()]
    return sum(w not in known for w in found) / len(found)


register(Exercise(
    id="07.unseen_word_rate",
    title="How much of the domain's text did pretraining never see?",
    reference=unseen_word_rate,
    cases=_unseen_cases,
    mistakes={
        "counted distinct words, not occurrences: a word used 5 times counts 5 times":
            _distinct_words,
        'forgot to lower-case: "The" and "the" are the same word here': _no_lower,
        'split on spaces: "film." and "film" are the same word here; use re.findall(r"\\w+", ...)':
            _split,
        "swapped the two corpora": lambda d, g: unseen_word_rate(g, d),
        "returned the share of SEEN words (1 - the answer)":
            lambda d, g: 1 - unseen_word_rate(d, g),
    },
    hints=[
        ("Make a set of the general corpus's words first (fast lookups); then go through every "
         "word occurrence of the domain texts."),
        ('Words: re.findall(r"\\w+", text.lower()). The answer is '
         "(occurrences not in the set) / (all occurrences)."),
    ],
    setup="import re",
))

# ----------------------------------------------------------------------------------------------
# 07_domain_adaptation: replay, mixing general text back in against forgetting


def mix_corpora(domain: list, general: list, general_share: float) -> list:
    """All of `domain` plus enough of `general` (cycled if short) to make `general_share` of the mix.

    With n domain items and k general ones, k / (n + k) = general_share, so
    k = round(n * general_share / (1 - general_share)). Order does not matter (fit shuffles).
    """
    if not 0 <= general_share < 1:
        raise ValueError(f"general_share={general_share} must be in [0, 1)")
    k = round(len(domain) * general_share / (1 - general_share))
    return list(domain) + [general[i % len(general)] for i in range(k)]


def _mix_cases() -> Iterator[Case]:
    domain = [f"review {i}" for i in range(12)]
    general = [f"wiki {i}" for i in range(40)]
    yield Case((domain, general, 0.25), label="12 domain items, general share 0.25")
    yield Case((domain, general, 0.5), label="12 domain items, general share 0.5")
    yield Case((domain, general, 0.0), label="general share 0: the domain alone")
    yield Case((domain, general[:3], 0.6), label="only 3 general items for 18 places: cycle them")
    yield Case(([[1, 2], [3]], [[7, 8, 9]], 0.5), label="items that are token-id lists")


def _compare_mix(expected: list, got: Any) -> str | None:
    if not isinstance(got, list):
        return f"expected a list, got {describe(got)}"
    if len(got) != len(expected):
        return f"expected {len(expected)} items in the mix, got {len(got)}"
    if sorted(map(repr, got)) != sorted(map(repr, expected)):
        return "right length, but not the right items: keep every domain item, add general ones"
    return None


register(Exercise(
    id="07.mix_corpora",
    title="Mix general text back in (replay)",
    reference=mix_corpora,
    cases=_mix_cases,
    compare=_compare_mix,
    mistakes={
        "took general_share of the DOMAIN size: the share is of the whole mix, k / (n + k)":
            lambda d, g, s: list(d) + [g[i % len(g)] for i in range(round(len(d) * s))],
        "did not cycle: when general is shorter than k, start again from its beginning":
            lambda d, g, s: list(d) + list(g[:round(len(d) * s / (1 - s))]),
        "replaced domain items instead of adding general ones":
            lambda d, g, s: list(d[:len(d) - round(len(d) * s)])
            + [g[i % len(g)] for i in range(round(len(d) * s))],
    },
    hints=[
        ("If k general items join n domain items, the general share is k / (n + k). "
         "Solve for k."),
        ("k = round(n * s / (1 - s)); the general items are general[i % len(general)] for i "
         "in range(k), so a short list is reused."),
    ],
    setup="",
))
