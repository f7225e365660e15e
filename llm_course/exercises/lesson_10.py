"""Exercises of 10_chinese (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Iterator

from llm_course.applications.chinese import longest_match
from llm_course.exercises.registry import Case, Exercise, register

# The reference is the package's own function (llm_course.applications.chinese):
# `ex.solution()` prints its real source.

# ----------------------------------------------------------------------------------------------
# 10_chinese: the dictionary baseline for NER, forward maximum matching

_NAMES = {"江泽民": "PER", "北京": "LOC", "北京市": "LOC", "人民大会堂": "LOC",
          "新华社": "ORG", "中共中央": "ORG", "中共": "ORG", "乌鲁木齐": "LOC"}


def _match_cases() -> Iterator[Case]:
    yield Case(("江泽民在北京会见了代表。", _NAMES), label="two names, one person and one place")
    yield Case(("北京市人民大会堂", _NAMES), label="北京 and 北京市 both start here: the longer wins")
    yield Case(("中共中央总书记", _NAMES), label="中共 is inside the longer 中共中央")
    yield Case(("今天天气很好。", _NAMES), label="no name at all")
    yield Case(("新华社乌鲁木齐电", _NAMES), label="two names side by side")
    yield Case(("", _NAMES), label="an empty text")


def _shortest_first(text, names, min_chars=2):
    longest = max(map(len, names), default=0)
    tags, i = [], 0
    while i < len(text):
        for n in range(max(min_chars, 1), min(longest, len(text) - i) + 1):
            kind = names.get(text[i:i + n])
            if kind:
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                i += n
                break
        else:
            tags.append("O")
            i += 1
    return tags


def _all_begin(text, names, min_chars=2):
    return [t.replace("I-", "B-") for t in longest_match(text, names, min_chars)]


register(Exercise(
    id="10.longest_match",
    title="Forward maximum matching: tag the names a dictionary knows",
    reference=longest_match,
    cases=_match_cases,
    mistakes={
        ("took the shortest name that starts at a position: 北京 inside 北京市, 中共 inside "
         "中共中央; try the longest length first and count down"): _shortest_first,
        ("every character of a name got B-: only the first is B-type, the rest are I-type, or "
         "seqeval counts one-character names"): _all_begin,
    },
    hints=[
        ("Keep a position i. At each i, try the lengths n from the longest name down to "
         "min_chars: the first text[i:i + n] found in `names` is the match."),
        ("A match of length n gives [f'B-{kind}'] + [f'I-{kind}'] * (n - 1) and moves i on "
         "by n; no match gives 'O' and moves i on by 1."),
        "Return one tag per character: len(tags) == len(text).",
    ],
    setup="",
))


# ----------------------------------------------------------------------------------------------
# 10_chinese: the end-of-lesson quiz (plain data; `exercises.quiz("10")` shows and checks it)

QUIZ = [
    {"question": "In section 2's plot (tokens per sentence against vocabulary size), the "
                 "byte-level BPE curve falls as its vocabulary grows, but the course's WordPiece "
                 "is a single point at about one token per character, however large a "
                 "vocabulary you ask for. Why?",
     "choices": {
         "a": "WordPiece's training stopped early on this small corpus.",
         "b": "BERT's normaliser puts a space around every Chinese character before WordPiece "
              "sees the text, so no piece can span two characters: its vocabulary is the set "
              "of characters (as in `bert-base-chinese`), plus pieces for Latin letters and "
              "digits.",
         "c": "WordPiece cannot learn pieces longer than two characters.",
         "d": "The plot draws WordPiece at one vocabulary size only to keep it readable.",
     },
     "answer": "b",
     "why": {
         "a": "No. It trained on the same text as BPE; asking for more pieces gives no more, "
              "because there is nothing left it may merge.",
         "b": "Right. `BertNormalizer(handle_chinese_chars=True)` makes each character its own "
              "word, and WordPiece merges only inside a word. That is a design choice: "
              "character-level Chinese BERTs never meet an unknown word.",
         "c": "No. In English it learns long pieces (`##ization`); in Chinese every 'word' it is "
              "given is one character long.",
         "d": "No. The lesson trains it at its preset size and reports the vocabulary it really "
              "got, which is smaller than the size asked for.",
     },
     "figure": "the tokenizer plot of section 2"},
    {"question": "Why does a byte-level BPE with a small vocabulary (a few hundred tokens) need "
                 "*more* than one token per Chinese character?",
     "choices": {
         "a": "It starts from the 256 bytes, and a Chinese character takes 3 bytes in UTF-8: "
              "until merges have rebuilt a character, it is spelled in pieces of it.",
         "b": "Because it adds a space before each character.",
         "c": "Because Chinese characters are rarer than English letters in its training data.",
         "d": "It does not: byte-level BPE always gives at least one character per token.",
     },
     "answer": "a",
     "why": {
         "a": "Right. GPT-2's byte-level trick means no text is ever unknown, at the price of "
              "long sequences for scripts outside ASCII until the vocabulary is large enough to "
              "hold their characters (several thousand in this newspaper).",
         "b": "No. Nothing is inserted; the characters are cut into their UTF-8 bytes.",
         "c": "No. The training text here is all Chinese; the point is bytes, not frequency.",
         "d": "No. At `laptop` the BPE with 500 tokens needed about 1.6 tokens per character "
              "(0.61 characters per token in section 2's table).",
     }},
    {"question": "jieba's words give the shortest sequences of all. Why do Chinese BERTs "
                 "still read characters (or sub-words) rather than jieba's words?",
     "choices": {
         "a": "jieba is too slow to run before a model.",
         "b": "A word vocabulary must be huge to cover the text, and still meets words it never "
              "saw (names, numbers, new terms: the unknown share in section 2's table); a "
              "segmentation error also becomes a token the model cannot undo. Characters are "
              "few and cover everything.",
         "c": "Words carry less meaning than characters in Chinese.",
         "d": "Because jieba's dictionary is in Traditional characters.",
     },
     "answer": "b",
     "why": {
         "a": "No. It cuts about half a million characters a second here; speed is not the "
              "reason.",
         "b": "Right. That is the trade-off of lesson 01 again: short sequences against a large "
              "vocabulary with unknown words. Whole-word masking (masking all characters of a "
              "jieba word together) is how Chinese BERTs use words without making them tokens.",
         "c": "No. Most Chinese words are two characters, and a word often means more than its "
              "characters do.",
         "d": "No. It segments Simplified Chinese, as the lesson shows.",
     }},
    {"question": "Why are the People's Daily paragraphs split into train, validation and test "
                 "by article, and not line by line?",
     "choices": {
         "a": "Articles are longer, so the split is more even.",
         "b": "To keep the validation split small.",
         "c": "The paragraphs of one article share its names and phrases: split by line, the "
              "test sentences would name the people and places the model (and the dictionary "
              "baseline) saw a few lines earlier in training, and the scores would flatter "
              "both.",
         "d": "Because the file has no line breaks.",
     },
     "answer": "c",
     "why": {
         "a": "No. The split is by hash of the article, about 80/10/10 either way.",
         "b": "No. The shares are the same; what changes is what the test can have seen.",
         "c": "Right. A leak like that inflates exactly what NER measures. Splitting the news "
              "and the NER data by the same article hash also keeps the NER test sentences out "
              "of the text the Chinese BERT pretrained on.",
         "d": "No. There is one paragraph per line; the article boundaries had to be recovered "
              "from the headlines.",
     }},
    {"question": "The dictionary baseline for NER holds every name of the training split. What "
                 "limits its recall on the test split, and what can a fine-tuned BERT do that "
                 "it cannot?",
     "choices": {
         "a": "Nothing limits it: every name in the news was in training.",
         "b": "Its recall is capped by the share of test names it has seen; a model reads the "
              "context (a title such as 总理 or 记者 before a name, 省 or 市 after a place) "
              "and can tag names it never saw.",
         "c": "Its precision is always 1, so only its recall matters.",
         "d": "It cannot tag names longer than two characters.",
     },
     "answer": "b",
     "why": {
         "a": "No. Section 5 prints the coverage: at `laptop` a quarter of the test names never "
              "appear in training.",
         "b": "Right. A newspaper repeats its names, so the dictionary is a strong baseline; the "
              "names it has never seen are where a model must earn its place (at `laptop` the "
              "small Chinese BERT is still far from that).",
         "c": "No. It tags a string wherever it appears, in any context, so a string that is a "
              "name in one sentence and not in another, or a place inside an organisation's name "
              "that the dictionary lacks, becomes a wrong name: section 5 prints its precision, "
              "below 1.",
         "d": "No. Longest match takes names of any length in the dictionary.",
     }},
    {"question": "In the corpus, 江泽民 is tagged as two words, 江/nr 泽民/nr. What would "
                 "happen if each `nr` word became its own person?",
     "choices": {
         "a": "Nothing: seqeval merges neighbouring names of the same type.",
         "b": "Every Chinese name would count as two persons, a surname and a given name, so a "
              "model that tags 江泽民 as one person would be scored wrong twice.",
         "c": "Persons would be easier to find, which is harmless.",
         "d": "The place names would break.",
     },
     "answer": "b",
     "why": {
         "a": "No. Two B-PER tags in a row are two entities; seqeval keeps them apart.",
         "b": "Right. `llm_course.data.chinese.entity_spans` joins a one-character surname (or "
              "a two-character one such as 欧阳) with the `nr` word that follows it.",
         "c": "No. The targets would be wrong, so a good model would be punished.",
         "d": "No. Places (`ns`) are single words in this corpus; only names of people are split.",
     }},
    {"question": "Section 4 fine-tunes the Chinese BERT on the reviews and trains its random "
                 "twin with the same recipe. What does the gap between the two measure?",
     "choices": {
         "a": "How much the reviews and the newspaper differ.",
         "b": "Only the effect of the random seed.",
         "c": "What the pretraining on newspaper text gave the model for reading reviews: the "
              "same architecture, data and steps, with or without it.",
         "d": "How good TF-IDF is.",
     },
     "answer": "c",
     "why": {
         "a": "Not directly: a domain gap lowers what transfers, but the comparison measures "
              "the transfer itself.",
         "b": "No. Both start from the same seed; the only difference is the pretrained "
              "weights (a difference under about 2.5 points would be noise at this test size).",
         "c": "Right. That is the transfer-learning question of lessons 04 and 05, asked in "
              "Chinese; section 4 prints the answer for this scale.",
         "d": "No. TF-IDF is a third, separate baseline.",
     }},
]
