"""The course's three engines on Chinese text (taught in 10_chinese).

The capstone reuses the course's own parts on Chinese data (`llm_course.data.chinese`) and
adds only what Chinese needs:

* tokenizers compared: characters, jieba's words and byte-level BPE of several sizes, each
  measured by tokens per sentence and by the share of text it cannot spell (`measure`);
  `pieces` shows how each cuts a sentence;
* a character-level Chinese BERT: lesson 01's WordPiece (BERT's normaliser puts a space
  around every Chinese character, so its pieces are characters), lesson 03's model and
  training (`zh_bert_data` is `bert_data` for `zh_news`);
* a TF-IDF baseline on character n-grams (Chinese has no spaces, so words would need a
  segmenter), with the regularisation chosen on validation as in lesson 04;
* NER on characters: `zh_token_data` puts each character's tag on its token, and
  `EntityDictionary` is the baseline that a model must beat: every name seen in training,
  found again by longest match;
* with the hub reachable, `clue_finetune` fine-tunes `bert-base-chinese` on a CLUE task;
  offline, `clue_plan` says what it would do.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from llm_course.data.chinese import split_sentences
from llm_course.data.lm_data import tokenize_lines
from llm_course.finetuning.probes import Probe, tfidf_probe
from llm_course.finetuning.tasks import encode_token_data

CHAR_TFIDF_CS = (0.3, 1.0, 3.0, 10.0, 30.0)
HUB_MODEL = "google-bert/bert-base-chinese"
CLUE = ("clue/clue", "tnews")  # 15 news-headline topics; its test labels are hidden
EXAMPLE = "江泽民在北京人民大会堂会见了来自乌鲁木齐的代表。"


# --------------------------------------------------------------------- tokenizing ---

def sentences(texts: Sequence[str]) -> list[str]:
    """The sentences of `texts` (paragraphs), cut after 。！？ as the NER data is."""
    out = []
    for text in texts:
        chars = list(text)
        out += ["".join(c) for c, _ in split_sentences(chars, ["O"] * len(chars)) if c]
    return out


def jieba_cut(texts: Sequence[str]) -> list[list[str]]:
    """Each text cut into words by jieba (its default dictionary and HMM for new words)."""
    try:
        import jieba
    except ImportError:
        raise ImportError("lesson 10 needs jieba, the Chinese word segmenter: "
                          "pip install jieba==0.42.1") from None
    jieba.setLogLevel(logging.WARNING)  # "Building prefix dict ..." on first use
    return [jieba.lcut(text) for text in texts]


def char_cut(texts: Sequence[str]) -> list[list[str]]:
    """Each text as a list of characters (spaces dropped)."""
    return [[c for c in text if not c.isspace()] for text in texts]


def hf_cut(tokenizer, readable: bool = False) -> Callable[[Sequence[str]], list[list[str]]]:
    """A cutter for a `transformers` tokenizer: its tokens as strings.

    `readable=True` decodes each token on its own, so byte-level BPE shows 江泽民 rather than
    the characters that stand for its bytes (a token that ends inside a character shows �);
    slower, for showing pieces rather than counting them.
    """
    def cut(texts: Sequence[str]) -> list[list[str]]:
        ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        if readable:
            return [[tokenizer.decode([i]) for i in row] for row in ids]
        return [tokenizer.convert_ids_to_tokens(row) for row in ids]
    return cut


def measure(name: str, cut: Callable, eval_texts: Sequence[str], vocab: set | int,
            unknown: str | None = None) -> dict[str, Any]:
    """Tokens per sentence, characters per token and the unknown share of one tokenizer.

    `vocab` is the vocabulary (a set: tokens not in it count as unknown) or its size (then
    tokens equal to `unknown`, e.g. "[UNK]", count as unknown).
    """
    cut_texts = cut(eval_texts)
    n_tokens = sum(len(t) for t in cut_texts)
    n_chars = sum(len("".join(text.split())) for text in eval_texts)
    if isinstance(vocab, set):
        unknown_n = sum(tok not in vocab for row in cut_texts for tok in row)
        size = len(vocab)
    else:
        unknown_n = sum(tok == unknown for row in cut_texts for tok in row) if unknown else 0
        size = int(vocab)
    return {"tokenizer": name, "vocab_size": size,
            "tokens_per_sentence": n_tokens / max(len(eval_texts), 1),
            "chars_per_token": n_chars / max(n_tokens, 1),
            "unknown_share": unknown_n / max(n_tokens, 1)}


def vocabulary(cut_texts: Sequence[Sequence[str]]) -> set:
    """Every token a tokenizer produced on the training text: a word-level vocabulary."""
    return {tok for row in cut_texts for tok in row}


def pieces(text: str, cutters: dict[str, Callable]) -> dict[str, str]:
    """{tokenizer: its pieces of `text`, separated by " | "}."""
    return {name: " | ".join(cut([text])[0]) for name, cut in cutters.items()}


# ------------------------------------------------------------------ Chinese BERT ---

def zh_bert_data(news, tokenizer, max_length: int) -> dict:
    """Lesson 03's `bert_data` for the People's Daily text (`news`, `load("zh_news")`):
    pieces of at most `max_length` characters with [CLS] and [SEP], and the MLM collator."""
    from transformers import DataCollatorForLanguageModeling

    train = tokenize_lines(news["train"]["text"], tokenizer, max_length)
    valid = tokenize_lines(news["validation"]["text"], tokenizer, max_length)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=0)
    return {"tokenizer": tokenizer, "train": train, "validation": valid, "collator": collator}


# -------------------------------------------------------------------- sentiment ---

def char_tfidf_probe(train_texts: Sequence[str], train_y: Sequence[int],
                     valid_texts: Sequence[str], valid_y: Sequence[int],
                     ngram_range: tuple[int, int] = (1, 3),
                     Cs: Sequence[float] = CHAR_TFIDF_CS) -> Probe:
    """TF-IDF of character n-grams + logistic regression, C chosen on validation.

    Lesson 04's `tfidf_probe` counts words; Chinese is written without spaces, so here the
    features are runs of 1 to 3 characters, which need no segmenter. The pipeline takes raw
    texts: `fitted.accuracy(test_texts, test_y)`.
    """
    return tfidf_probe(train_texts, train_y, valid_texts, valid_y, Cs=Cs, ngram_range=ngram_range,
                       analyzer="char", min_df=2)


# -------------------------------------------------------------------------- NER ---

def zh_token_data(raw, tokenizer, max_length: int = 128) -> dict:
    """{"train", "validation", "test", "collator", "label_names"} for character NER.

    `raw` is `load("zh_ner")`: each character is a "word", so with the character-level
    WordPiece each gets one token and its own tag (`align_labels`, as in lesson 04).
    """
    return encode_token_data(raw, tokenizer, max_length)


def entities(chars: Sequence[str], tags: Sequence[str]) -> list[tuple[str, str]]:
    """(name, type) of each entity in one BIO-tagged sentence: B-PER 江 I-PER 泽 I-PER 民
    gives ("江泽民", "PER")."""
    found, current, kind = [], "", None
    for char, tag in [*zip(chars, tags, strict=True), ("", "O")]:
        if current and not (tag.startswith("I-") and tag[2:] == kind):
            found.append((current, kind))
            current, kind = "", None
        if tag.startswith("B-"):
            current, kind = char, tag[2:]
        elif tag.startswith("I-") and tag[2:] == kind:
            current += char
    return found


def longest_match(text: str, names: dict[str, str], min_chars: int = 2) -> list[str]:
    """BIO tags for `text` from a dictionary `names` ({name: type}) by forward maximum matching.

    Read left to right; at each character take the longest name of `names` (of at least
    `min_chars` characters) that starts there, tag it B-type I-type ..., and go on after it;
    where no name starts, tag the character O and move one on. This is also the oldest way
    to cut Chinese into words, with a word list as the dictionary.
    """
    longest = max(map(len, names), default=0)
    tags, i = [], 0
    while i < len(text):
        for n in range(min(longest, len(text) - i), max(min_chars, 1) - 1, -1):
            kind = names.get(text[i:i + n])
            if kind:
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (n - 1)
                i += n
                break
        else:
            tags.append("O")
            i += 1
    return tags


class EntityDictionary:
    """The baseline NER: every name of the training split, found again by `longest_match`.

    `fit` keeps each name of at least `min_chars` characters with the type it had most often
    in training; `tag` tags a sentence (a list of characters) with them.
    """

    def __init__(self, min_chars: int = 2):
        self.min_chars = min_chars
        self.types: dict[str, str] = {}

    def fit(self, sentences_chars: Sequence[Sequence[str]],
            sentences_tags: Sequence[Sequence[str]]) -> EntityDictionary:
        counts: dict[str, Counter] = {}
        for chars, tags in zip(sentences_chars, sentences_tags, strict=True):
            for name, kind in entities(chars, tags):
                if len(name) >= self.min_chars:
                    counts.setdefault(name, Counter())[kind] += 1
        self.types = {name: c.most_common(1)[0][0] for name, c in counts.items()}
        return self

    def tag(self, chars: Sequence[str]) -> list[str]:
        if any(len(c) != 1 for c in chars):
            raise ValueError("tag() takes one character per token")
        return longest_match("".join(chars), self.types, self.min_chars)


def entity_f1(true_tags: Sequence[Sequence[str]], pred_tags: Sequence[Sequence[str]]) -> dict:
    """Entity-level precision, recall and F1 (seqeval: a name counts only if found whole,
    with its type), as `evaluate` reports for a model."""
    from seqeval.metrics import f1_score, precision_score, recall_score

    true_tags, pred_tags = [list(t) for t in true_tags], [list(p) for p in pred_tags]
    return {"f1": float(f1_score(true_tags, pred_tags, zero_division=0)),
            "precision": float(precision_score(true_tags, pred_tags, zero_division=0)),
            "recall": float(recall_score(true_tags, pred_tags, zero_division=0))}


# ---------------------------------------------------------------- with the hub ---

def clue_plan(steps: int) -> str:
    """What `clue_finetune` would do, in words (printed when the hub is not reachable)."""
    return (f"With the hub reachable, this cell would load {HUB_MODEL} (110 M parameters, "
            f"a 21,128-token vocabulary of single characters and a few word pieces) and "
            f"fine-tune it for {steps} steps on CLUE's {CLUE[1]} task (news headlines, 15 "
            "topics; `datasets.load_dataset(\"clue/clue\", \"tnews\")`), then report its "
            "validation accuracy (CLUE keeps the test labels). Offline, nothing was downloaded.")


def clue_finetune(scale: str, steps: int, batch_size: int = 32, max_length: int = 64,
                  lr: float = 3e-5) -> dict:
    """Fine-tune `bert-base-chinese` on CLUE tnews for `steps` steps (needs the hub).

    Returns {"model", "accuracy", "label_names"}; the validation split is the score, since
    CLUE's test labels are hidden (-1).
    """
    import datasets

    from llm_course.env.hub import require_hub
    from llm_course.models.loading import load_pretrained
    from llm_course.training.config import recipe_config
    from llm_course.training.evaluate import evaluate
    from llm_course.training.loop import fit

    require_hub(f"clue_finetune({scale!r})", "run it where the hub is reachable (e.g. Colab)")
    raw = datasets.load_dataset(*CLUE)
    names = raw["train"].features["label"].names
    model, tokenizer = load_pretrained(HUB_MODEL, task="sequence-classification",
                                       label_names=names)

    def encode(batch):
        return tokenizer(batch["sentence"], truncation=True, max_length=max_length)

    keep = ["input_ids", "attention_mask", "token_type_ids", "labels"]
    data = raw.map(encode, batched=True).rename_column("label", "labels")
    data = data.remove_columns([c for c in data["train"].column_names if c not in keep])
    from transformers import DataCollatorWithPadding

    collator = DataCollatorWithPadding(tokenizer)
    config = recipe_config("finetune", scale, max_steps=steps, batch_size=batch_size, lr=lr,
                           eval_every=max(1, steps // 4))
    fit(model, data["train"], data["validation"].select(range(500)), config=config,
        collate_fn=collator)
    result = evaluate(model, data["validation"], task="classification", collate_fn=collator,
                      batch_size=64)
    return {"model": model, "accuracy": result["accuracy"], "label_names": names}


def dictionary_coverage(dictionary: EntityDictionary, test_names: Sequence[str]) -> float:
    """Share of the test split's names that the dictionary holds: the ceiling of its recall."""
    names = list(test_names)
    return float(np.mean([n in dictionary.types for n in names])) if names else float("nan")

