"""Exercises of 01_tokenizers (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from llm_course.exercises.registry import Case, Exercise, register

# ----------------------------------------------------------------------------------------------
# 01_tokenizers: characters per token


def chars_per_token(encode: Callable[[str], list[int]], texts: list[str]) -> float:
    """Characters per token of `encode` over all `texts`: higher means fewer, longer tokens."""
    n_chars = sum(len(text) for text in texts)
    n_tokens = sum(len(encode(text)) for text in texts)
    return n_chars / n_tokens


def byte_encode(text: str) -> list[int]:
    """A toy tokenizer: one token per UTF-8 byte."""
    return list(text.encode("utf-8"))


def word_encode(text: str) -> list[int]:
    """A toy tokenizer: one token per whitespace-separated word."""
    return [len(word) for word in text.split()]


def pair_encode(text: str) -> list[int]:
    """A toy tokenizer: one token per two characters."""
    return [ord(text[i]) for i in range(0, len(text), 2)]


TEXTS = ["The cat sat on the mat.", "Tokenizers split text into pieces, then into ids.",
         "Grüße aus Köln!", "naïve café", "a", "Byte-pair encoding merges frequent pairs."]


def _chars_cases() -> Iterator[Case]:
    yield Case((byte_encode, TEXTS[:3]), label="a byte-level tokenizer (é, ü are 2 bytes)")
    yield Case((word_encode, TEXTS), label="a word-level tokenizer on 6 texts")
    yield Case((pair_encode, ["ab", "abcdefghijk"]), label="texts of very different lengths")


register(Exercise(
    id="01.chars_per_token",
    title="Characters per token",
    reference=chars_per_token,
    cases=_chars_cases,
    mistakes={
        "the ratio upside down (tokens per character)": lambda e, t: 1 / chars_per_token(e, t),
        "a mean of per-text ratios, which weighs a short text as much as a long one":
            lambda e, t: sum(len(x) / len(e(x)) for x in t) / len(t),
        "bytes instead of characters: len(text) counts characters":
            lambda e, t: sum(len(x.encode()) for x in t) / sum(len(e(x)) for x in t),
    },
    hints=[
        "Count two totals over all texts: characters (len(text)) and tokens (len(encode(text))).",
        ("Sum first and divide once at the end: a mean of per-text ratios gives a one-word text "
         "as much weight as a long paragraph."),
        "n_chars = sum(len(t) for t in texts); n_tokens = sum(len(encode(t)) for t in texts)",
    ],
    setup="from collections.abc import Callable",
))

# ----------------------------------------------------------------------------------------------
# 01_tokenizers: one step of byte-pair encoding


def bpe_merge_step(word_counts: dict[tuple[str, ...], int]) -> tuple[tuple[str, str], dict]:
    """Find the most frequent adjacent pair of symbols and merge it everywhere.

    `word_counts` maps a word, spelled as a tuple of symbols, to how often it occurs.
    Ties go to the pair that sorts first. Returns (the pair, the new word_counts).
    """
    pair_counts: dict[tuple[str, str], int] = {}
    for word, count in word_counts.items():
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + count
    best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
    merged = {}
    for word, count in word_counts.items():
        symbols, i = [], 0
        while i < len(word):
            if word[i:i + 2] == best:
                symbols.append(word[i] + word[i + 1])
                i += 2
            else:
                symbols.append(word[i])
                i += 1
        merged[tuple(symbols)] = merged.get(tuple(symbols), 0) + count
    return best, merged


def _bpe_cases() -> Iterator[Case]:
    yield Case(({("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w"): 6,
                 ("w", "i", "d", "e", "r"): 3},), label="the classic low/lower/new/wider")
    yield Case(({("a", "a", "a"): 1},), label="'aaa': merge left to right, without overlap")
    yield Case(({("b", "a"): 2, ("a", "b"): 2},), label="a tie: the pair that sorts first wins")
    yield Case(({("t", "h", "e"): 10, ("th", "e", "n"): 3, ("o", "th", "e", "r"): 4},),
               label="symbols that are already merges")


register(Exercise(
    id="01.bpe_merge_step",
    title="One step of byte-pair encoding",
    reference=bpe_merge_step,
    cases=_bpe_cases,
    hints=[
        ("Count every adjacent pair (word[i], word[i+1]) in every word, weighted by the word's "
         "count: zip(word, word[1:]) gives the pairs."),
        ("The best pair has the highest count; break ties with the smallest pair: "
         "min(pairs, key=lambda p: (-counts[p], p))."),
        ("Rewrite each word left to right: where the next two symbols are the best pair, emit "
         "their concatenation and skip two; otherwise emit one symbol and move one."),
    ],
))
