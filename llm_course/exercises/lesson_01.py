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


# ----------------------------------------------------------------------------------------------
# The end-of-lesson quiz (shown by `exercises.quiz("01")`)

QUIZ = [
    {
        "question": "On the validation text, the word-level tokenizer turns a share of the words "
                    "into `[UNK]`, while byte-level BPE turns none. Why?",
        "choices": {
            "a": "The validation text is harder than the training text.",
            "b": "A word missing from the word-level vocabulary has no id at all, while byte-level "
                 "BPE can always spell a word from smaller pieces, down to single bytes.",
            "c": "BPE has a bigger vocabulary than the word-level tokenizer.",
            "d": "BPE skips the words it does not know.",
        },
        "answer": "b",
        "why": {
            "a": "It is the same kind of text; what matters is that it holds words the tokenizer "
                 "never saw (names, numbers, typos).",
            "b": "Right: with the 256 bytes in its vocabulary, byte-level BPE can encode any text; "
                 "decoding even gives it back exactly.",
            "c": "Both were trained with the same vocabulary size here; the difference is in how "
                 "an unseen word is cut, not in the size.",
            "d": "No tokenizer in the lesson drops text: BPE cuts an unseen word into pieces.",
        },
    },
    {
        "question": "Start BPE from single letters on these word counts: *low* 5, *lower* 2, "
                    "*newest* 6, *widest* 3. Which pair does the first merge join (ties go to the "
                    "pair that sorts first, as in the lesson)?",
        "choices": {
            "a": "`l` + `o` (in *low* and *lower*)",
            "b": "`e` + `s`",
            "c": "`s` + `t`",
            "d": "`w` + `e`",
        },
        "answer": "b",
        "why": {
            "a": "`l o` occurs 5 + 2 = 7 times: frequent, but not the most frequent.",
            "b": "Right: `e s` occurs 6 (newest) + 3 (widest) = 9 times, tied with `s t`, and "
                 "`('e', 's')` sorts before `('s', 't')`.",
            "c": "`s t` also occurs 9 times, but the tie goes to the pair that sorts first, "
                 "`('e', 's')`.",
            "d": "`w e` occurs 2 (lower) + 6 (newest) = 8 times, one short of 9.",
        },
    },
    {
        "question": "In the plot of section 4, each doubling of the vocabulary adds less to the "
                    "characters per token, while the grey bars (embedding parameters) keep "
                    "doubling. What does that suggest for lesson 02's 5 M-parameter GPT?",
        "figure": "characters per token against vocabulary size, section 4",
        "choices": {
            "a": "Take the biggest vocabulary you can: shorter sequences are always worth it.",
            "b": "Take characters: a tiny vocabulary leaves all parameters to the transformer.",
            "c": "A moderate vocabulary (about 8 k): beyond it, most of the model would sit in the "
                 "embedding table for a small gain in sequence length.",
            "d": "The vocabulary size does not matter for a small model.",
        },
        "answer": "c",
        "why": {
            "a": "The curve flattens while the cost doubles: at 5 M parameters a 50 k vocabulary "
                 "at width 256 alone would need 12.8 M.",
            "b": "Characters make sequences 3 to 4 times longer, so a fixed context sees far less "
                 "text: the left end of the curve is the expensive end in sequence length.",
            "c": "Right: the first doublings buy most of the gain. GPT-2 can afford 50 k tokens "
                 "because it has 124 M parameters.",
            "d": "It matters twice: for how much text a context holds and for how many parameters "
                 "sit in the embedding table.",
        },
    },
    {
        "question": "`chars_per_token` sums characters and tokens over all texts and divides once. "
                    "Why not average each text's own ratio?",
        "choices": {
            "a": "An average of ratios weighs a one-word text as much as a long paragraph, so a "
                 "few short texts could swing the result.",
            "b": "It is faster to compute.",
            "c": "The two give the same number anyway.",
            "d": "A text's own ratio is undefined when it has no spaces.",
        },
        "answer": "a",
        "why": {
            "a": "Right: the question is how long the tokens are over the whole text, so every "
                 "character should count once.",
            "b": "Both take one pass over the texts; speed is not the reason.",
            "c": "Only when every text has the same length; the exercise's hidden tests include "
                 "texts of very different lengths to catch this.",
            "d": "Spaces play no part: the ratio is characters over tokens.",
        },
    },
    {
        "question": "Why does the lesson measure characters per token on the validation text rather "
                    "than on the text the tokenizers were trained on?",
        "choices": {
            "a": "The validation text is longer.",
            "b": "The merges were learnt from the training text, so they fit it better than they "
                 "fit new text: a tokenizer, like a model, is judged on text it has not seen.",
            "c": "Tokenizers cannot encode their own training text.",
            "d": "It makes no difference.",
        },
        "answer": "b",
        "why": {
            "a": "It is shorter, in fact; length is not the point.",
            "b": "Right: a word-level vocabulary, for example, holds the training text's most "
                 "frequent words, so it meets far fewer `[UNK]` there than on new text.",
            "c": "They can, and they tokenize it with fewer, longer tokens than new text.",
            "d": "It does, most for word-level tokenizers, whose unknown-word rate is much lower on "
                 "their own training text.",
        },
    },
    {
        "question": "WordPiece puts `[CLS]` before every input and `[SEP]` after it. What are they "
                    "for?",
        "choices": {
            "a": "They mark capital letters.",
            "b": "They are padding, to make all inputs the same length.",
            "c": "They replace unknown words.",
            "d": "BERT classifies a text from the vector at `[CLS]`, and `[SEP]` marks where a "
                 "sentence ends, so that two sentences can be given as a pair.",
        },
        "answer": "d",
        "why": {
            "a": "This WordPiece lower-cases the text; no token marks capitals.",
            "b": "That is `[PAD]`, added only to fill short sequences in a batch.",
            "c": "That is `[UNK]`.",
            "d": "Right: the special-token mask printed in section 3 shows them at the edges of "
                 "each sentence of the pair.",
        },
    },
]
