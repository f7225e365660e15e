"""Counting parameters and finding layers by name (taught in 02_pretraining_gpt; 04-08 use it).

`count_parameters(model)` returns `(total, trainable)`, counting a weight that two modules
share (GPT-2's tied embedding and output layer) once. `module_matches` is peft's rule for
naming target layers, which lesson 06's LoRA and adapters share.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameters, counting tied (shared) weights once."""
    seen: set = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def module_matches(name: str, targets: Iterable[str]) -> bool:
    """peft's rule for `target_modules`: a module matches a target when it is named exactly
    so, or its name ends in "." + target ("encoder.layer.0.attention.self.query" matches
    "query"). LoRA and the adapters of lesson 06 both pick their layers with it."""
    return any(name == t or name.endswith("." + t) for t in targets)


def replace_module(model: torch.nn.Module, name: str, new: torch.nn.Module) -> None:
    """Put `new` where the submodule called `name` (a dotted path) was."""
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
