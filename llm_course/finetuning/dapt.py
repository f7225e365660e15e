"""Domain-adaptive pretraining helpers (taught in 07_domain_adaptation).

Continued pretraining takes an encoder that was pretrained on general text and runs the same
masked-LM objective on text from the target domain (here: movie-review snippets, labels
dropped) before fine-tuning. These helpers keep the notebook's cells short:

* `mlm_examples` cuts texts into masked-LM examples; `masked_eval_set` masks them once with a
  fixed seed, so "MLM loss before" and "after" are measured on the very same blanks;
* `classifier_from_mlm` puts a fresh classification head on a masked-LM model's encoder,
  with a seeded head, so fine-tuning with and without adaptation starts from the same head;
* the lesson's two training recipes are `recipe_config("dapt")` and
  `recipe_config("dapt_classifier")` (`llm_course.training.config`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from llm_course.data.lm_data import tokenize_lines
from llm_course.pretraining.bert import frozen_masks


def mlm_examples(texts: Sequence[str], tokenizer, max_length: int, min_tokens: int = 4):
    """`[CLS] piece [SEP]` examples of at most `max_length` tokens (short snippets kept)."""
    return tokenize_lines(list(texts), tokenizer, max_length, min_tokens=min_tokens)


def masked_eval_set(texts: Sequence[str], tokenizer, max_length: int, seed: int = 1234,
                    limit: int | None = None):
    """`texts` as masked-LM examples, masked once (80/10/10, fixed seed) for evaluation."""
    examples = mlm_examples(texts, tokenizer, max_length)
    if limit is not None and len(examples) > limit:
        examples = examples.select(range(limit))
    return frozen_masks(examples, tokenizer, seed=seed)


def classifier_from_mlm(mlm_model: torch.nn.Module, label_names: Sequence[str],
                        seed: int = 0) -> torch.nn.Module:
    """A sequence classifier with `mlm_model`'s encoder and a new head drawn from `seed`.

    The masked-LM head is dropped; the pooler (BertForMaskedLM has none) and the classifier
    start random, identically for every call with the same seed.
    """
    from transformers import AutoModelForSequenceClassification

    config = copy.deepcopy(mlm_model.config)
    config.num_labels = len(label_names)
    config.id2label = dict(enumerate(label_names))
    config.label2id = {name: i for i, name in enumerate(label_names)}
    config.architectures = None
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    state = {k: v for k, v in mlm_model.state_dict().items()
             if k.startswith(model.base_model_prefix + ".")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    prefix = model.base_model_prefix + "."
    body_missing = [k for k in missing if k.startswith(prefix) and ".pooler." not in k]
    if body_missing or unexpected:
        raise ValueError(f"encoder weights did not fit: missing {body_missing[:4]}, "
                         f"unexpected {unexpected[:4]}")
    return model
