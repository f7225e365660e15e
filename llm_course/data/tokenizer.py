"""Training sub-word tokenizers with `tokenizers` (taught in 01_tokenizers).

Three kinds: `wordlevel` (whole words, a baseline), `bpe` (byte-level BPE, as in GPT-2:
no unknown tokens ever) and `wordpiece` (as in BERT: lower-cased, `##` continuation
pieces, `[UNK]` for what it cannot spell). `as_transformers` wraps a trained tokenizer so
that `transformers` uses it as a fast tokenizer; `save_course_tokenizer` keeps lesson 01's
tokenizers for lessons 02/03 (`llm_course.course_models.course_tokenizer` reads them back).
"""

from __future__ import annotations

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

from llm_course.env.paths import course_home

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



def tokenizer_dir(kind: str, scale: str | None = None) -> Path:
    from llm_course.env.scale import resolve_scale

    return course_home() / "tokenizers" / f"course-{kind}" / resolve_scale(scale)


def save_course_tokenizer(tokenizer: PreTrainedTokenizerFast, kind: str,
                          scale: str | None = None) -> Path:
    """Save `tokenizer` as the course-`kind` tokenizer of `scale`; returns the folder."""
    folder = tokenizer_dir(kind, scale)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def tokens_html(text: str, tokenizers: dict) -> str:
    """HTML that shows how each tokenizer in `tokenizers` ({name: tokenizer}) cuts `text`."""
    import html

    colours = ["#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe"]
    rows = []
    for name, tok in tokenizers.items():
        ids = tok(text)["input_ids"]
        pieces = tok.convert_ids_to_tokens(ids)
        spans = "".join(
            f'<span style="background:{colours[i % len(colours)]};padding:1px 3px;margin:1px;'
            f'border-radius:3px;font-family:monospace" title="id {i_d}">{html.escape(p)}</span>'
            for i, (p, i_d) in enumerate(zip(pieces, ids, strict=True)))
        rows.append(f"<p><b>{html.escape(name)}</b> ({len(ids)} tokens)<br>{spans}</p>")
    return "".join(rows)


def token_explorer(tokenizers: dict, text: str = "Tokenizers cut unbelievably long words."):
    """A text box; as you type, each tokenizer's pieces appear below (01_tokenizers)."""
    import ipywidgets as widgets

    box = widgets.Textarea(value=text, description="text", layout=widgets.Layout(width="95%"))
    shown = widgets.HTML(tokens_html(text, tokenizers))
    box.observe(lambda change: setattr(shown, "value", tokens_html(change["new"], tokenizers)),
                names="value")
    return widgets.VBox([box, shown])


def tokenizer_panel(texts, sizes, sample: str = "Tokenizers cut unbelievably long words."):
    """Pick a kind and a vocabulary size, press Train, see how the sample is cut (01)."""
    import ipywidgets as widgets

    kind = widgets.Dropdown(options=["bpe", "wordpiece", "wordlevel"], value="bpe",
                            description="kind")
    size = widgets.SelectionSlider(options=list(sizes), value=list(sizes)[-1],
                                   description="vocab size")
    button = widgets.Button(description="Train", button_style="primary")
    out = widgets.HTML("<i>Press Train to train a tokenizer with these settings.</i>")

    def train(_=None):
        tok = as_transformers(train_tokenizer(texts, kind.value, size.value), kind.value)
        out.value = tokens_html(sample, {f"{kind.value} {size.value}": tok})

    button.on_click(train)
    return widgets.VBox([widgets.HBox([kind, size, button]), out])
