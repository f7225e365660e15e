"""Model configs of the preset sizes (used by `llm_course.pretraining`, lessons 02 and 03).

    config = gpt_config("smoke", tokenizer=tok)      # a small GPT-2 for lesson 02
    config = bert_config("laptop", tokenizer=tok)    # a small BERT for lesson 03

The sizes come from `llm_course.env.scale.PRESETS`; `gpt_parameters`/`bert_parameters` give
the exact parameter counts those sizes make (the asset catalogue prints them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_course.env.scale import preset

if TYPE_CHECKING:
    from transformers import BertConfig, GPT2Config


def _special_ids(tokenizer, *names: str) -> dict:
    out = {}
    for name in names:
        value = getattr(tokenizer, name, None) if tokenizer is not None else None
        if value is not None:
            out[name] = value
    return out


def gpt_config(scale: str | None = None, vocab_size: int | None = None, tokenizer=None,
               **overrides) -> GPT2Config:
    """A GPT-2 config of the preset size for `scale` (notebook 02).

    `vocab_size` defaults to `len(tokenizer)`, else the preset tokenizer size. The
    special ids default to 0 (where the course BPE tokenizer keeps <|endoftext|>) or come
    from `tokenizer`; GPT-2's own 50256 would be out of range. `n_positions` is the
    preset block size: crop longer inputs. Any GPT2Config field can be overridden.

    The activation is the exact GELU, x·Φ(x), one PyTorch kernel, as in BERT and nanoGPT
    (GPT-2's default "gelu_new" is a tanh approximation, within 0.0005 of it, spelt out in
    seven operations that each pass over memory: measured slower here). Attention is
    computed as the preset says ("eager" on a CPU, "sdpa" for GPUs; see
    `llm_course.env.scale`).
    """
    from transformers import GPT2Config

    p = preset("gpt", scale)
    vocab_size = vocab_size or (len(tokenizer) if tokenizer is not None
                                else preset("tokenizer", scale)["vocab_size"])
    ids = {"bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0}
    ids.update(_special_ids(tokenizer, "bos_token_id", "eos_token_id", "pad_token_id"))
    if tokenizer is not None and tokenizer.pad_token_id is None:
        ids["pad_token_id"] = ids["eos_token_id"]
    settings = dict(vocab_size=vocab_size, n_positions=p["block_size"], n_embd=p["n_embd"],
                    n_layer=p["n_layer"], n_head=p["n_head"],
                    activation_function="gelu",
                    attn_implementation=p.get("attention", "sdpa"), **ids)
    settings.update(overrides)
    _check_ids(settings, "vocab_size", ("bos_token_id", "eos_token_id", "pad_token_id"))
    return GPT2Config(**settings)


def bert_config(scale: str | None = None, vocab_size: int | None = None, tokenizer=None,
                **overrides) -> BertConfig:
    """A BERT config of the preset size for `scale` (notebook 03).

    Feed-forward width is 4x hidden; `max_position_embeddings` is the preset max_length.
    `pad_token_id` is 0 ([PAD] in the course WordPiece tokenizer) or the tokenizer's.
    Attention is computed as the preset says ("eager" on a CPU, "sdpa" for GPUs).
    """
    from transformers import BertConfig

    p = preset("bert", scale)
    vocab_size = vocab_size or (len(tokenizer) if tokenizer is not None
                                else preset("tokenizer", scale)["vocab_size"])
    ids = {"pad_token_id": 0}
    ids.update(_special_ids(tokenizer, "pad_token_id"))
    settings = dict(vocab_size=vocab_size, hidden_size=p["hidden_size"],
                    num_hidden_layers=p["num_hidden_layers"],
                    num_attention_heads=p["num_attention_heads"],
                    intermediate_size=4 * p["hidden_size"],
                    max_position_embeddings=p["max_length"],
                    attn_implementation=p.get("attention", "sdpa"), **ids)
    settings.update(overrides)
    _check_ids(settings, "vocab_size", ("pad_token_id",))
    return BertConfig(**settings)


def _check_ids(settings: dict, vocab_key: str, id_keys) -> None:
    for key in id_keys:
        value = settings.get(key)
        if value is not None and not 0 <= value < settings[vocab_key]:
            raise ValueError(f"{key}={value} is outside the vocabulary (size "
                             f"{settings[vocab_key]}): pass the tokenizer or {key}=...")


def gpt_parameters(scale: str) -> int:
    """Exact GPT-2 parameter count (tied embeddings) for the preset of `scale`."""
    p, v = preset("gpt", scale), preset("tokenizer", scale)["vocab_size"]
    d, layers = p["n_embd"], p["n_layer"]
    return (v + p["block_size"]) * d + layers * (12 * d * d + 13 * d) + 2 * d


def bert_parameters(scale: str) -> int:
    """Exact BertForMaskedLM parameter count (tied decoder) for `scale`."""
    p, v = preset("bert", scale), preset("tokenizer", scale)["vocab_size"]
    d, layers = p["hidden_size"], p["num_hidden_layers"]
    embeddings = (v + p["max_length"] + 2) * d + 2 * d
    encoder = layers * (12 * d * d + 13 * d)
    head = d * d + d + 2 * d + v  # transform dense, LayerNorm, decoder bias (no pooler)
    return embeddings + encoder + head
