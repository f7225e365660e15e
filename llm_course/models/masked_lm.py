"""A BERT for masked-LM pretraining that scores only the blanks (lesson 03's `new_bert` builds
it; taught in 07_domain_adaptation, which wraps a loaded BERT with it).

In masked-LM training about 15 % of the positions carry a label; the other 85 % are
ignored by the loss. `BertForMaskedLM` still runs its vocabulary-sized output layer on
every position, and in a small BERT with an 8k vocabulary that layer is a large share of
the compute. `SparseHeadBertForMaskedLM` runs the head only on the labelled positions
while training, which gives the same loss. Evaluation and inference run the ordinary
forward pass, the weights are the same, and checkpoints load as plain `BertForMaskedLM`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM
from transformers.modeling_outputs import MaskedLMOutput


class SparseHeadBertForMaskedLM(BertForMaskedLM):
    """`BertForMaskedLM` whose training loss scores only the masked positions."""

    def forward(self, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs) -> MaskedLMOutput:
        if labels is None or not self.training:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, labels=labels, **kwargs)
        hidden = self.bert(input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        blanks = labels != -100                      # the ~15 % of positions with a label
        logits = self.cls(hidden[blanks])            # (n_blanks, vocab): the head runs here only
        loss = F.cross_entropy(logits.float(), labels[blanks])
        return MaskedLMOutput(loss=loss, logits=logits)

    @classmethod
    def from_model(cls, model: BertForMaskedLM) -> SparseHeadBertForMaskedLM:
        """A sparse-head copy of a loaded `BertForMaskedLM` (`model` itself is left as it is)."""
        sparse = cls(copy.deepcopy(model.config))
        sparse.load_state_dict(model.state_dict())
        return sparse.to(model.device)

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """Save as a plain `BertForMaskedLM`, so any transformers install loads it."""
        super().save_pretrained(save_directory, **kwargs)
        self.config.architectures = ["BertForMaskedLM"]
        self.config.save_pretrained(save_directory)
