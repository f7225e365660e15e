"""Stopping a run that diverged: NaN or inf loss or gradients, or a loss that exploded.

Part of `fit` (llm_course.training.loop): no update is applied, and the error names the fix.
"""

from __future__ import annotations

import math
from typing import Any

from llm_course.training.config import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/inf, or the loss exploded; no update was applied.

    `.history` holds what was logged up to the failure.
    """

    def __init__(self, message: str, history: Any = None) -> None:
        super().__init__(message)
        self.history = history


CE_TASKS = ("lm", "classification", "token-classification")


def divergence(loss: float, grad_norm: float, state: dict, cfg: TrainConfig, precision: str,
               task: str | None, step: int, skipped_in_a_row: int = 0) -> str | None:
    """Why this step must not be applied (a sentence), or None if it looks healthy.

    NaN/inf loss or gradients stop the run at once (in fp16 only after many skipped steps:
    there the GradScaler skips overflowing steps and lowers its scale by itself). A
    cross-entropy loss that grows to 4x its starting value is also treated as divergence.
    """
    lr_hint = (f"the learning rate is probably too high (lr={cfg.lr:g}; try {cfg.lr / 10:g}, "
               "typical 1e-5 .. 1e-3)")
    finite = math.isfinite(loss) and math.isfinite(grad_norm)
    if precision == "fp16" and skipped_in_a_row >= 20:
        return (f"20 steps in a row overflowed in fp16 (inf/NaN gradients) up to step {step}: "
                f"fp16 overflow (use precision='bf16' or 'fp32'), or {lr_hint}")
    if precision == "fp16" and not finite:
        return None  # the GradScaler skips this step and lowers its scale
    if not finite:
        what = "loss" if not math.isfinite(loss) else "gradient norm"
        value = loss if not math.isfinite(loss) else grad_norm
        return f"the {what} became {value} at step {step}: {lr_hint}"
    recent = state["recent_losses"]
    first = state.get("first_loss")
    if task in CE_TASKS and first is not None and len(recent) >= 5:
        avg = sum(recent[-5:]) / 5
        if avg > 4 * max(first, 1.0):
            return (f"the loss exploded: {first:.3g} at the start, {avg:.3g} on average over the "
                    f"last 5 steps (step {step}): {lr_hint}")
    return None
