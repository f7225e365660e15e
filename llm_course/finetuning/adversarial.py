"""Adversarial training with FGM on the word embeddings (taught in 05_fine_tuning).

The Fast Gradient Method (Goodfellow et al. 2015; for text, Miyato et al. 2017) nudges
each training example's word embeddings e in the direction that raises the loss most,

    r_adv = epsilon * g / ||g||,   g = d loss / d e,

and trains on the nudged copy as well as the clean one:

    loss = loss(e) + loss(e + r_adv)     (r_adv held constant).

The model learns to give the same answer in a small ball around each example, which
smooths it where few labels leave it free to be jagged.

`FGMModel(model, epsilon)` wraps a Hugging Face classifier so that its forward pass returns
that combined loss while training, and behaves exactly like the model in eval mode. It can
go straight into `fit`; a training step costs about 2.5 plain steps (one extra forward,
and a backward to find g).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def fgm_perturbation(grad: torch.Tensor, epsilon: float) -> torch.Tensor:
    """epsilon * grad / ||grad||, the norm taken over each example's (tokens x dim) block."""
    flat = grad.reshape(grad.shape[0], -1)
    norm = flat.norm(dim=1).clamp(min=1e-12)
    return epsilon * grad / norm.view(-1, *([1] * (grad.dim() - 1)))


class FGMModel(nn.Module):
    """`model` trained on clean and FGM-perturbed embeddings; plain `model` in eval mode.

    The wrapped model is `.module` (so `llm_course.training.evaluate` and `fit` see through the
    wrapper). `adversarial_weight` scales the second loss (1.0: the two count equally).
    `epsilon` 0.1: on MiniLM (word vectors of norm ~1.1) 1.0 and 0.3 made lesson 05's
    few-label run collapse to one class.
    """

    def __init__(self, model: nn.Module, epsilon: float = 0.1,
                 adversarial_weight: float = 1.0) -> None:
        super().__init__()
        self.module = model
        self.epsilon = epsilon
        self.adversarial_weight = adversarial_weight

    @property
    def config(self) -> Any:
        return self.module.config

    def forward(self, input_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **batch: Any) -> Any:
        if not self.training or labels is None or self.epsilon == 0:
            return self.module(input_ids=input_ids, labels=labels, **batch)
        embeds = self.module.get_input_embeddings()(input_ids)
        clean = self.module(inputs_embeds=embeds, labels=labels, **batch)
        (grad,) = torch.autograd.grad(clean.loss, embeds, retain_graph=True)
        r_adv = fgm_perturbation(grad.detach().float(), self.epsilon).to(embeds.dtype)
        attacked = self.module(inputs_embeds=embeds + r_adv, labels=labels, **batch)
        clean.loss = clean.loss + self.adversarial_weight * attacked.loss
        return clean
