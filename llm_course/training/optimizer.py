"""The optimizer and learning-rate schedule `fit` uses: AdamW (or Adafactor), warmup, then
cosine or linear decay.

Part of `fit` (llm_course.training.loop); the warmup schedule is an exercise in 05_fine_tuning,
which also compares AdamW with Adafactor.
"""

from __future__ import annotations

import torch

from llm_course.training.config import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device_type: str,
                   precision: str = "fp32") -> torch.optim.Optimizer:
    """AdamW (or `cfg.optimizer="adafactor"`) with weight decay on weight matrices only.

    Adafactor is transformers' implementation, at the config's fixed rate (no relative step):
    it keeps a row and a column average of the squared gradients of each matrix instead of
    AdamW's two full-size moments, so its state is a sliver of AdamW's.
    """
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # shared (tied) weights appear once
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    # fused: one kernel for the whole update, a little faster. Not with fp16: accelerate can
    # only see skipped (overflowing) steps of an unfused optimizer.
    if cfg.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        return Adafactor(groups, lr=cfg.lr, scale_parameter=False, relative_step=False,
                         warmup_init=False)
    fused = device_type in ("cuda", "cpu") and precision != "fp16"
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warmup, then linear or cosine decay to 0, or constant."""
    from transformers import get_scheduler

    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=cfg.warmup_for(total_steps),
                         num_training_steps=total_steps)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held by the optimizer's state tensors (AdamW: two per weight; Adafactor: less)."""
    return sum(v.numel() * v.element_size() for state in optimizer.state.values()
               for v in state.values() if torch.is_tensor(v) and v.ndim > 0)
