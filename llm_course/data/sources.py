"""Readers for each course dataset: offline carriers and hub copies (used by `llm_course.data.loaders`).

Every reader returns plain pandas tables with the dataset's own columns plus two helper
columns that `llm_course.data.loaders` uses and then drops:

* `_key`: the text with its whitespace normalised; rows with the same key are duplicates.
* `_group`: rows of one group always land in the same split (a play, a Wikipedia
  article, all answers to one question); for most datasets a row is its own group.

Labels are kept as strings here (e.g. "positive", "B-person") and turned into
`ClassLabel` ids by `llm_course.data.loaders`. Offline readers are cached per process
(`functools.lru_cache`), so loading a dataset twice parses its files once.
"""

from __future__ import annotations

import bz2
import html
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

SENTIMENT_NAMES = ["negative", "positive"]
TOPIC_NAMES = ["business", "entertainment", "politics", "sport", "tech"]
CONLL_NAMES = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
CHUNK_CHARS = 1000  # Shakespeare: speeches are merged into chunks of about this many characters


def norm(text: str) -> str:
    """Collapse runs of whitespace to one space and strip: the key used to find duplicates."""
    return " ".join(str(text).split())


def _finish(frame: pd.DataFrame, key: pd.Series, group: pd.Series | None = None) -> pd.DataFrame:
    frame = frame.copy()
    frame["_key"] = list(key)
    frame["_group"] = list(group) if group is not None else list(key)
    return frame.reset_index(drop=True)


# ---------------------------------------------------------------- corpus (gensim) ---

WIKI_FILE = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_FILE = "test/test_data/lee_background.cor"
_END_SECTIONS = {"references", "external links", "see also", "further reading", "notes",
                 "bibliography", "sources", "citations", "footnotes", "notes and references",
                 "works cited", "works", "publications", "gallery"}
_HEADING = re.compile(r"^=+\s*(.*?)\s*=+$")
_EMPTY_PARENS = re.compile(r"\(\s*[,;:]?\s*\)")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?$")


def clean_wiki(text: str) -> list[str]:
    """Prose paragraphs of one article after gensim's `filter_wiki`.

    Drops headings, lists, gallery and table lines, the reference sections at the end,
    bold/italic quote marks and the empty brackets left where templates were removed.
    A paragraph is kept when it has at least 8 words and ends like a sentence.
    """
    paragraphs = []
    for line in text.splitlines():
        line = line.strip()
        heading = _HEADING.match(line)
        if heading:
            if heading.group(1).strip().lower() in _END_SECTIONS:
                break
            continue
        if not line or line[0] in "*#:;!|{}" or "|" in line:
            continue
        line = line.replace("'''", "").replace("''", "")
        line = re.sub(r"<[^>]*>", "", line)
        line = _EMPTY_PARENS.sub("", line)
        line = re.sub(r"\s+([,.;:])", r"\1", norm(line))
        if len(line.split()) >= 8 and _SENTENCE_END.search(line):
            paragraphs.append(line)
    return paragraphs


@lru_cache(maxsize=4)
def read_corpus(root: str) -> pd.DataFrame:
    """Wikipedia sample (one paragraph per row) plus Lee news stories (one story per row)."""
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    rows, groups = [], []
    with bz2.open(Path(root) / WIKI_FILE) as f:
        for title, wikitext, _pageid in extract_pages(f):
            for para in clean_wiki(filter_wiki(wikitext)):  # redirects yield no paragraph
                rows.append(para)
                groups.append(f"wiki:{title}")
    lee = (Path(root) / LEE_FILE).read_text(encoding="utf-8", errors="replace")
    for i, story in enumerate(lee.splitlines()):
        if norm(story):
            rows.append(norm(story))
            groups.append(f"lee:{i}")
    frame = pd.DataFrame({"text": rows})
    return _finish(frame, frame["text"], pd.Series(groups))


# ------------------------------------------------------------------- shakespeare ---

def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg header and footer when the text has them."""
    start = re.search(r"^\*\*\*\s*START OF.*$", text, flags=re.MULTILINE | re.IGNORECASE)
    if start:
        text = text[start.end():]
    end = re.search(r"^(\*\*\*\s*END OF|End of (the )?Project Gutenberg).*$", text,
                    flags=re.MULTILINE | re.IGNORECASE)
    if end:
        text = text[:end.start()]
    return text


def chunk_blocks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split at blank lines (speeches, stanzas) and merge blocks into chunks of ~`size` chars.

    Line breaks inside a block are kept: verse lines matter when a model learns to write.
    """
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))]
    blocks = ["\n".join(line.rstrip() for line in b.splitlines()) for b in blocks if b.strip()]
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for block in blocks:
        if current and length + len(block) > size:
            chunks.append("\n\n".join(current))
            current, length = [], 0
        current.append(block)
        length += len(block) + 2
    if current:
        chunks.append("\n\n".join(current))
    return chunks


@lru_cache(maxsize=4)
def read_shakespeare(root: str) -> pd.DataFrame:
    """The 42 Gutenberg texts, chunked; the group is the play, so no play spans two splits."""
    rows, groups = [], []
    for path in sorted((Path(root) / "texts").glob("*_gut.txt")):
        play = path.name[: -len("_gut.txt")]
        for chunk in chunk_blocks(strip_gutenberg(path.read_text(encoding="latin-1"))):
            rows.append(chunk)
            groups.append(play)
    frame = pd.DataFrame({"text": rows})
    return _finish(frame, frame["text"].map(norm), pd.Series(groups))


# --------------------------------------------------------------------- sentiment ---

@lru_cache(maxsize=4)
def read_sentiment(root: str) -> pd.DataFrame:
    """Rotten Tomatoes snippets: fresh -> positive, rotten -> negative (plot summaries dropped).

    HTML entities such as `&amp;` are decoded here and in the topics and ner readers.
    """
    raw = pd.read_csv(Path(root) / "data/rotten_tomatoes_corpus_full.csv.bz2")
    raw = raw[raw["category"].isin(["fresh", "rotten"])].dropna(subset=["text"])
    frame = pd.DataFrame({
        "text": raw["text"].astype(str).map(html.unescape).str.strip(),
        "label": raw["category"].map({"fresh": "positive", "rotten": "negative"}),
    })
    frame = frame[frame["text"] != ""]
    return _finish(frame, frame["text"].map(norm))


# ------------------------------------------------------------------------ topics ---

@lru_cache(maxsize=4)
def read_topics(root: str) -> pd.DataFrame:
    """BBC news articles: headline, blank line, body; the folder name is the label."""
    rows, labels = [], []
    for folder in sorted((Path(root) / "bbcnews/data").iterdir()):
        if not folder.is_dir():
            continue
        label = "sport" if folder.name == "sports" else folder.name
        for path in sorted(folder.glob("*.txt")):
            lines = html.unescape(path.read_text(encoding="latin-1")).strip().splitlines()
            headline, body = norm(lines[0]), [norm(x) for x in lines[1:] if norm(x)]
            rows.append(headline + "\n\n" + "\n\n".join(body))
            labels.append(label)
    frame = pd.DataFrame({"text": rows, "label": labels})
    return _finish(frame, frame["text"].map(norm))


# --------------------------------------------------------------------------- ner ---

def bio_names(tags) -> list[str]:
    """"O" first, then B-/I- pairs of every entity type in alphabetical order."""
    types = sorted({t[2:] for t in tags if t != "O"})
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


@lru_cache(maxsize=4)
def read_ner(root: str) -> pd.DataFrame:
    """Tagged tweets: `token<TAB>tag` lines; a line holding only a tab ends a sentence."""
    sentences: list[tuple[list[str], list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []
    for line in (Path(root) / "data/ner.txt").read_text(encoding="utf-8").split("\n"):
        parts = line.split("\t")
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            tokens.append(html.unescape(parts[0].strip()))  # tweets escape & < > "
            tags.append(parts[1].strip())
        elif tokens:  # the separator line (a lone tab) or the end of the file
            sentences.append((tokens, tags))
            tokens, tags = [], []
    if tokens:
        sentences.append((tokens, tags))
    frame = pd.DataFrame({"tokens": [s[0] for s in sentences], "ner_tags": [s[1] for s in sentences]})
    return _finish(frame, frame["tokens"].map(" ".join))


# --------------------------------------------------------------------------- faq ---

@lru_cache(maxsize=4)
def read_faq(root: str) -> pd.DataFrame:
    """ChatterBot exchanges: the first two turns of each conversation; category = file name.

    Rows are unique (question, answer) pairs; all answers to one question share a group,
    so a question is never in two splits.
    """
    import yaml

    rows = []
    for path in sorted((Path(root) / "data/english").glob("*.yml")):
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for turns in content.get("conversations") or []:
            if len(turns) >= 2 and norm(turns[0]) and norm(turns[1]):
                rows.append({"question": norm(turns[0]), "answer": norm(turns[1]),
                             "category": path.stem})
    frame = pd.DataFrame(rows)
    question = frame["question"].str.lower()
    return _finish(frame, question + "\t" + frame["answer"].str.lower(), question)


# ---------------------------------------------------------------------- hub copies ---

def hub_load(repo_id: str, config: str | None = None):
    """`datasets.load_dataset(repo_id, config)`; one place, so tests can replace it."""
    import datasets

    return datasets.load_dataset(repo_id, config) if config else datasets.load_dataset(repo_id)


def _splits(dsdict) -> dict[str, pd.DataFrame]:
    return {name: split.to_pandas() for name, split in dsdict.items()}


def _label_names(dsdict, column: str) -> list[str] | None:
    feature = next(iter(dsdict.values())).features[column]
    feature = getattr(feature, "feature", feature)  # List(ClassLabel) -> ClassLabel
    return list(feature.names) if hasattr(feature, "names") else None


def hub_corpus(dsdict) -> dict[str, pd.DataFrame]:
    """wikitext: one line per row; headings (" = Title = ") and short lines dropped."""
    out = {}
    for name, frame in _splits(dsdict).items():
        lines = frame["text"].map(norm)
        lines = lines[(lines.str.len() >= 40) & ~lines.str.match(r"^=.*=$")]
        part = pd.DataFrame({"text": lines})
        out[name] = _finish(part, part["text"])
    return out


def hub_shakespeare(dsdict) -> dict[str, pd.DataFrame]:
    """tiny_shakespeare: each split is one long text, chunked like the offline plays."""
    out = {}
    for name, frame in _splits(dsdict).items():
        chunks = [c for text in frame["text"] for c in chunk_blocks(text)]
        part = pd.DataFrame({"text": chunks})
        out[name] = _finish(part, part["text"].map(norm))
    return out


def hub_sentiment(dsdict) -> dict[str, pd.DataFrame]:
    """rotten_tomatoes / imdb: label 0 (neg) = negative, 1 (pos) = positive.

    imdb's unlabelled split (label -1) is dropped.
    """
    out = {}
    for name, frame in _splits(dsdict).items():
        if name not in ("train", "validation", "test"):
            continue
        part = pd.DataFrame({"text": frame["text"].astype(str).map(html.unescape).str.strip(),
                             "label": frame["label"].astype(int)})
        part = part[(part["text"] != "") & part["label"].isin([0, 1])]
        part["label"] = [SENTIMENT_NAMES[i] for i in part["label"]]
        out[name] = _finish(part, part["text"].map(norm))
    return out


def hub_topics(dsdict) -> dict[str, pd.DataFrame]:
    """SetFit/bbc-news: the `label_text` column names the topic ("sport", "tech", ...)."""
    out = {}
    for name, frame in _splits(dsdict).items():
        labels = frame["label_text"].astype(str).str.lower().replace({"sports": "sport"})
        part = pd.DataFrame({"text": frame["text"].astype(str).str.strip(), "label": labels})
        part = part[part["label"].isin(TOPIC_NAMES) & (part["text"] != "")]
        out[name] = _finish(part, part["text"].map(norm))
    return out


def hub_ner(dsdict) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """conll2003: integer tags turned into their names (PER, ORG, LOC, MISC in BIO)."""
    names = _label_names(dsdict, "ner_tags") or CONLL_NAMES
    out = {}
    for name, frame in _splits(dsdict).items():
        tokens = [list(map(str, t)) for t in frame["tokens"]]
        tags = [[names[int(i)] for i in t] for t in frame["ner_tags"]]
        part = pd.DataFrame({"tokens": tokens, "ner_tags": tags})
        part = part[part["tokens"].map(len) > 0]
        out[name] = _finish(part, part["tokens"].map(" ".join))
    return out, names
