"""LoRA from scratch, built before switching to the `peft` library (taught in 06_peft).

A frozen `nn.Linear` computes x W^T + b. LoRA adds a trainable low-rank update
(alpha / r) * x A^T B^T with A of shape (r, in) and B of shape (out, r): r * (in + out) numbers
to train instead of in * out. B starts at zero, so the wrapped model starts exactly equal to the
base model; after training, `merge` folds B A * alpha / r into W and the adapter disappears.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from llm_course.models.parameters import module_matches, replace_module


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update (`lora_A`, `lora_B`)."""

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16, dropout: float = 0.0):
        super().__init__()
        if r < 1:
            raise ValueError(f"rank r must be at least 1, got {r}")
        self.base = base.requires_grad_(False)  # the pretrained weights stay as they are
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **factory))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as peft (and nn.Linear) do
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., in) -> (..., out)
        return self.base(x) + self.scaling * update

    @torch.no_grad()
    def merge(self) -> nn.Linear:
        """A plain `nn.Linear` with W + (alpha / r) B A: the same outputs, no adapter."""
        base = self.base
        merged = nn.Linear(base.in_features, base.out_features, bias=base.bias is not None,
                           device=base.weight.device, dtype=base.weight.dtype)
        merged.weight.copy_(base.weight + self.scaling * (self.lora_B @ self.lora_A))
        if base.bias is not None:
            merged.bias.copy_(base.bias)
        return merged.requires_grad_(base.weight.requires_grad)

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}"


def apply_lora(model: nn.Module, target_modules: Iterable[str] = ("query", "value"), r: int = 8,
               alpha: float = 16, dropout: float = 0.0,
               train_modules: Iterable[str] = ()) -> nn.Module:
    """Wrap every `nn.Linear` named in `target_modules` in a `LoRALinear`, in place.

    Everything else is frozen, except the modules named in `train_modules` (e.g. a new
    classifier head: `train_modules=("classifier",)`), which stay fully trainable.
    Returns the model.
    """
    targets, trained = tuple(target_modules), tuple(train_modules)
    model.requires_grad_(False)
    found = [name for name, module in model.named_modules()
             if isinstance(module, nn.Linear) and module_matches(name, targets)]
    if not found:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"no nn.Linear matches {targets}; some names: {linears[:8]}")
    for name in found:
        replace_module(model, name, LoRALinear(model.get_submodule(name), r, alpha, dropout))
    for name, module in model.named_modules():
        if trained and module_matches(name, trained):
            module.requires_grad_(True)
    return model


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only what training changed: the LoRA matrices and any unfrozen (e.g. classifier) weights.

    Load it back with `model.load_state_dict(sd, strict=False)` on a model given `apply_lora`.
    """
    return {name: p.detach() for name, p in model.named_parameters()
            if p.requires_grad or ".lora_" in f".{name}"}


def merge_lora(model: nn.Module) -> nn.Module:
    """Replace every `LoRALinear` by its merged `nn.Linear`, in place; returns the model."""
    if isinstance(model, LoRALinear):
        return model.merge()
    for name in [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]:
        replace_module(model, name, model.get_submodule(name).merge())
    return model
