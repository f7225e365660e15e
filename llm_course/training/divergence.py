"""Stopping a run that diverged: NaN or inf loss or gradients, or a loss that exploded.

Part of `fit` (llm_course.training.loop, which 00_setup shows): no update is applied, and the
error says what was seen (the loss or the gradient norm, at which step, before or after the
first update) and the likely causes, most likely first. A NaN before any update cannot come
from the learning rate: it comes from the data or the model. Only a failing step pays for
looking (at the weights and the step's inputs); healthy steps compare two numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

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
               task: str | None, step: int, skipped_in_a_row: int = 0, *,
               model: torch.nn.Module | None = None,
               batches: Sequence[Any] | None = None) -> str | None:
    """Why this step must not be applied (a sentence), or None if it looks healthy.

    NaN/inf loss or gradients stop the run at once (in fp16 only after many skipped steps:
    there the GradScaler skips overflowing steps and lowers its scale by itself). A
    cross-entropy loss that grows to 4x its starting value is also treated as divergence.
    `model` and `batches` (the step's micro-batches) let a NaN report say whether the
    weights or the inputs hold NaN/inf.
    """
    finite = math.isfinite(loss) and math.isfinite(grad_norm)
    if precision == "fp16" and skipped_in_a_row >= 20:
        return (f"20 steps in a row overflowed in fp16 (inf/NaN gradients) up to step {step}: "
                f"fp16 overflow (use precision='bf16' or 'fp32'), or {_lr_hint(cfg)}")
    if precision == "fp16" and not finite:
        return None  # the GradScaler skips this step and lowers its scale
    if not finite:
        return nan_report(loss, grad_norm, state, cfg, precision, step, model, batches)
    recent = state["recent_losses"]
    first = state.get("first_loss")
    if task in CE_TASKS and first is not None and len(recent) >= 5:
        avg = sum(recent[-5:]) / 5
        if avg > 4 * max(first, 1.0):
            return (f"the loss exploded: {first:.3g} at the start, {avg:.3g} on average over the "
                    f"last 5 steps (step {step}): {_lr_hint(cfg)}")
    return None


def _lr_hint(cfg: TrainConfig) -> str:
    return (f"the learning rate is probably too high (lr={cfg.lr:g}; try {cfg.lr / 10:g}, "
            "typical 1e-5 .. 1e-3)")


def nan_report(loss: float, grad_norm: float, state: dict, cfg: TrainConfig, precision: str,
               step: int, model: torch.nn.Module | None = None,
               batches: Sequence[Any] | None = None) -> str:
    """What was seen at a NaN/inf step, then the likely causes in order.

    Before any update the weights are the starting ones, so the learning rate cannot be the
    cause: the inputs, the starting weights or the forward pass are. After updates, weights
    that hold NaN/inf, or a finite model that stops being finite, point at the learning rate.
    """
    updates = step - 1  # optimizer steps already applied (the failing one is not)
    if not math.isfinite(loss):
        seen = f"the loss became {loss} at step {step}"
    else:
        seen = f"the gradient norm became {grad_norm} at step {step} (the loss, {loss:.4g}, was finite)"
    if updates == 0:
        seen += ", before any update"
    else:
        seen += f", after {updates} update{'s' * (updates != 1)}"
        first, recent = state.get("first_loss"), state.get("recent_losses") or []
        if first is not None and recent:
            seen += f" (loss {first:.3g} at the start, {recent[-1]:.3g} at the last good step)"
    bad_inputs = _nonfinite_inputs(batches) if batches is not None else None
    bad_weights = _nonfinite_weights(model) if model is not None else None
    checked = [what for what, found in (("inputs", bad_inputs), ("weights", bad_weights))
               if found == ""]
    if checked:
        seen += f"; the {' and '.join(checked)} are finite"

    lr = _lr_hint(cfg)
    forward = ("the model's forward pass: look for a log or division of 0, a sqrt of a negative "
               "number, exp of a large number, or an attention mask that hides every position; "
               "run out = model(**batch) on this batch and check out.loss and "
               "out.logits.isfinite().all()")
    if math.isfinite(loss):
        forward = ("the backward pass: a finite loss with an inf/NaN gradient comes from an "
                   "operation whose gradient is infinite at these inputs (sqrt or norm of 0, "
                   "log near 0); max_grad_norm cannot clip an inf")
    causes: list[str] = []
    if bad_inputs:
        causes.append(f"the data: {bad_inputs}: drop or fix those examples (fill missing values, "
                      "check the preprocessing) before training")
    if updates == 0:
        if bad_weights:
            causes.append(f"the starting weights: {bad_weights}: check how the model was built "
                          "or loaded")
        causes.append(f"{forward}. Not the learning rate: no update has been applied yet")
    else:
        if bad_weights:
            causes.append(f"{lr}: earlier updates broke the weights ({bad_weights})")
        else:
            causes.append(lr)
        causes.append(forward)
    if precision in ("bf16", "fp16"):
        causes.append(f"reduced precision ({precision}): rerun with precision='fp32' to rule it out")
    numbered = "; ".join(f"({i}) {c}" for i, c in enumerate(causes, 1))
    return f"{seen}. Likely causes, most likely first: {numbered}"


def _nonfinite_inputs(batches: Sequence[Any]) -> str:
    """'' if every float tensor of the batches is finite, else which fields hold NaN/inf."""
    found: dict[str, int] = {}
    for batch in batches:
        if not isinstance(batch, Mapping):
            continue
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                bad = int((~torch.isfinite(value)).sum())
                if bad:
                    found[key] = found.get(key, 0) + bad
    return ", ".join(f"{key!r} holds {n} NaN/inf value{'s' * (n != 1)}"
                     for key, n in found.items())


def _nonfinite_weights(model: torch.nn.Module) -> str:
    """'' if every parameter is finite, else how many tensors hold NaN/inf (the first names)."""
    bad = [name for name, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if not bad:
        return ""
    shown = ", ".join(bad[:3]) + (", ..." if len(bad) > 3 else "")
    return f"{len(bad)} weight tensor{'s' * (len(bad) != 1)} hold NaN/inf ({shown})"
