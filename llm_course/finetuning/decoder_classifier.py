"""Fine-tuning a decoder as a classifier: SmolLM2 reads the prompt, a two-way head reads its last
token, and LoRA adapts the attention (taught in 06b_prompting).

Lesson 06 gave MiniLM a new head. A decoder can get one too (`AutoModelForSequenceClassification`
puts a linear layer, `score`, on the hidden state of the last real token), but here the head does
not start random: `head_from_label_words` copies into it the rows of the language-model head that
score the label words. Logits of " negative" and " positive" after the prompt are exactly
what zero-shot prompting compared, so at step 0 the classifier *is* the zero-shot classifier,
and training starts from its accuracy instead of from a coin toss.

* `prompted_classification_data` writes every review into the prompt template (the same one as
  zero-shot) and tokenizes it for `fit`;
* `head_from_label_words` sets the head from the label words;
* `lora_classifier` wraps the model with peft's LoRA (on `q_proj` and `v_proj`, Llama's
  query and value projections); peft's `SEQ_CLS` task keeps the head (`score`) trainable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from llm_course.finetuning.prompting import Template, label_token_ids


def prompted_classification_data(tokenizer: Any, raw: Any, template: Template,
                                  max_words: int | None = None) -> dict:
    """{"train", "validation", "test", "collator"}: each review written into `template`.

    `raw` is a DatasetDict (or a dict of Datasets) with `text` and `label`, e.g. from
    `llm_course.data.loaders.load("sentiment")`; labels become `labels`.
    """
    from transformers import DataCollatorWithPadding

    def encode(batch: dict) -> dict:
        prompts = [template.render(t, tokenizer=tokenizer, max_words=max_words)
                   for t in batch["text"]]
        return tokenizer(prompts)

    out = {}
    for name, split in raw.items():
        encoded = split.map(encode, batched=True, remove_columns=["text"])
        out[name] = encoded.rename_column("label", "labels")
    out["collator"] = DataCollatorWithPadding(tokenizer)
    return out


@torch.no_grad()
def head_from_label_words(classifier: torch.nn.Module, causal_lm: torch.nn.Module,
                          tokenizer: Any, label_texts: Sequence[str]) -> list[int]:
    """Set the classifier's head to the language-model head's rows of the label words.

    `label_texts` as they follow the prompt (" negative", " positive"); each must be one token.
    Returns their token ids.
    """
    ids = label_token_ids(tokenizer, label_texts)
    if any(len(i) != 1 for i in ids):
        raise ValueError(f"every label text must be one token to start the head from it; "
                         f"got {dict(zip(label_texts, ids, strict=True))}")
    rows = causal_lm.get_output_embeddings().weight[[i[0] for i in ids]]
    head = classifier.score
    if head.weight.shape != rows.shape:
        raise ValueError(f"the head is {tuple(head.weight.shape)}, the label rows "
                         f"{tuple(rows.shape)}: one label text per class")
    head.weight.copy_(rows.to(head.weight.dtype))
    if getattr(head, "bias", None) is not None:
        head.bias.zero_()
    return [i[0] for i in ids]


def lora_classifier(classifier: torch.nn.Module, r: int = 8, alpha: int = 16,
                    dropout: float = 0.05,
                    target_modules: Sequence[str] = ("q_proj", "v_proj")) -> torch.nn.Module:
    """The classifier with LoRA on `target_modules`; the head (`score`) trains in full."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="SEQ_CLS", r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(target_modules))
    return get_peft_model(classifier, config)
