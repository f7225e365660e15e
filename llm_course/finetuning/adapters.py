"""Bottleneck adapters (Houlsby et al., 2019), as 06_peft compares them with LoRA (taught in 06_peft).

`peft` has no classic bottleneck adapter, so here is one in a few lines. An adapter is a
small two-layer network with a skip connection, inserted after a sublayer's output
projection:

    h  ->  h + W_up GELU(W_down h)        W_down: d -> m,  W_up: m -> d,  m << d

`W_up` starts at zero, so a model with adapters starts exactly equal to the base model.
Only the adapters (and a new head, and optionally the LayerNorms) are trained: about
2 * d * m numbers per adapter instead of the whole layer.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from llm_course.models.parameters import module_matches

# In a BERT layer, `attention.output.dense` projects the attention heads back to the hidden
# size and `output.dense` is the feed-forward block's second layer: Houlsby's two places.
BERT_TARGETS = ("attention.output.dense", "output.dense")


class BottleneckAdapter(nn.Module):
    """h + up(GELU(down(h))): down-project to `bottleneck` numbers and back, plus a skip."""

    def __init__(self, hidden: int, bottleneck: int = 64, dropout: float = 0.0):
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"bottleneck must be at least 1, got {bottleneck}")
        self.down = nn.Linear(hidden, bottleneck)
        self.up = nn.Linear(bottleneck, hidden)
        nn.init.zeros_(self.up.weight)  # starts as the identity: the model is unchanged
        nn.init.zeros_(self.up.bias)
        self.act = nn.GELU()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(self.dropout(self.act(self.down(h))))


class WithAdapter(nn.Module):
    """A frozen layer followed by a trainable adapter on its output."""

    def __init__(self, layer: nn.Linear, bottleneck: int = 64, dropout: float = 0.0):
        super().__init__()
        self.layer = layer.requires_grad_(False)
        self.adapter = BottleneckAdapter(layer.out_features, bottleneck, dropout).to(
            device=layer.weight.device, dtype=layer.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapter(self.layer(x))


def add_adapters(model: nn.Module, bottleneck: int = 64, targets: Iterable[str] = BERT_TARGETS,
                 train_modules: Iterable[str] = ("classifier",), train_layernorm: bool = True,
                 dropout: float = 0.0) -> nn.Module:
    """Put an adapter after every `nn.Linear` named in `targets`; freeze the rest. In place.

    Trainable: the adapters, the modules named in `train_modules` (a new head) and, with
    `train_layernorm`, every LayerNorm (Houlsby et al. train them too; they are tiny).
    Returns the model.
    """
    targets, trained = tuple(targets), tuple(train_modules)
    model.requires_grad_(False)
    found = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and module_matches(n, targets)]
    if not found:
        raise ValueError(f"no nn.Linear matches {targets}")
    for name in found:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, WithAdapter(getattr(owner, child), bottleneck, dropout))
    for name, module in model.named_modules():
        if (trained and module_matches(name, trained)) or (
                train_layernorm and isinstance(module, nn.LayerNorm)):
            module.requires_grad_(True)
    return model


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changed: every trainable tensor (adapters, head, LayerNorms)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
