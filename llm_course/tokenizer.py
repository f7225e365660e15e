"""Training sub-word tokenizers with `tokenizers` (taught in 01_tokenizers).

Three kinds: `wordlevel` (whole words, a baseline), `bpe` (byte-level BPE, as in GPT-2:
no unknown tokens ever) and `wordpiece` (as in BERT: lower-cased, `##` continuation
pieces, `[UNK]` for what it cannot spell). `as_transformers` wraps a trained tokenizer so
that `transformers` uses it as a fast tokenizer; `course_tokenizer` gives lessons 02/03
the tokenizer of the current scale, training and saving it on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

KINDS = ("wordlevel", "bpe", "wordpiece")
GPT_SPECIALS = {"eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
BERT_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
                 "sep_token": "[SEP]", "mask_token": "[MASK]"}


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 8192,
                    min_frequency: int = 2) -> Tokenizer:
    """Train a `tokenizers.Tokenizer` of `kind` on `texts` (a list or any iterable)."""
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}: choose one of {', '.join(KINDS)}")
    if vocab_size < 64:
        raise ValueError(f"vocab_size={vocab_size} is too small: use at least 64 (typical 8192)")
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency,
            special_tokens=[GPT_SPECIALS["eos_token"]],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency,
            special_tokens=list(BERT_SPECIALS.values()), show_progress=False)
    else:
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=True)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency,
            special_tokens=["[PAD]", "[UNK]"], show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    if kind == "wordpiece":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def as_transformers(tok: Tokenizer, kind: str) -> PreTrainedTokenizerFast:
    """Wrap a trained tokenizer for `transformers` (never BertTokenizerFast(vocab_file=...):
    in transformers 5 that silently builds a 5-token vocabulary)."""
    if kind == "bpe":
        eos = GPT_SPECIALS["eos_token"]
        return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos,
                                       unk_token=eos, pad_token=eos)
    if kind == "wordpiece":
        return PreTrainedTokenizerFast(tokenizer_object=tok, **BERT_SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


def course_home() -> Path:
    """Where the course keeps what lessons build: $LLM_COURSE_HOME or ~/.cache/llm_course."""
    return Path(os.environ.get("LLM_COURSE_HOME") or Path.home() / ".cache" / "llm_course")


def tokenizer_dir(kind: str, scale: str | None = None) -> Path:
    from .scale import resolve_scale

    return course_home() / "tokenizers" / f"course-{kind}" / resolve_scale(scale)


def course_tokenizer(kind: str = "bpe", scale: str | None = None) -> PreTrainedTokenizerFast:
    """The course's `bpe` (GPT) or `wordpiece` (BERT) tokenizer for `scale`.

    Lesson 01 trains and saves it; when it is missing, it is trained here on the course
    corpus (a few seconds) so that any lesson can start cold.
    """
    from .scale import preset, resolve_scale

    scale = resolve_scale(scale)
    folder = tokenizer_dir(kind, scale)
    if (folder / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(folder))
    from .data import load

    print(f"No course-{kind} tokenizer for scale {scale!r} yet (lesson 01 makes it): "
          "training it now on the course corpus.")
    texts = load("corpus", scale=scale, source="offline")["train"]["text"]
    wrapped = as_transformers(train_tokenizer(texts, kind, preset("tokenizer", scale)["vocab_size"]),
                              kind)
    save_course_tokenizer(wrapped, kind, scale)
    return wrapped


def save_course_tokenizer(tokenizer: PreTrainedTokenizerFast, kind: str,
                          scale: str | None = None) -> Path:
    """Save `tokenizer` as the course-`kind` tokenizer of `scale`; returns the folder."""
    folder = tokenizer_dir(kind, scale)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return folder
