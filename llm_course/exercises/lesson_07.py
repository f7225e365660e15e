"""Exercises of 07_domain_adaptation (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from llm_course.exercises.registry import Case, Exercise, describe, register

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
