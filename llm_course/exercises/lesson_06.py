"""Exercises of 06_peft (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from llm_course.exercises.registry import Case, Exercise, compare_tensors, register

# ----------------------------------------------------------------------------------------------
# 06_peft: the LoRA forward pass (llm_course.finetuning.lora is the full module)


def lora_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 lora_A: torch.Tensor, lora_B: torch.Tensor, alpha: float,
                 r: int) -> torch.Tensor:
    """A frozen linear layer plus its low-rank update: x W^T + b + (alpha / r) x A^T B^T."""
    frozen = x @ weight.T + bias
    update = x @ lora_A.T @ lora_B.T  # (..., in) -> (..., r) -> (..., out)
    return frozen + (alpha / r) * update


def _lora_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(6)
    for x_shape, d_in, d_out, r, alpha in [((3,), 8, 6, 2, 16), ((2, 4), 8, 5, 4, 8),
                                           ((5,), 16, 12, 8, 32), ((2,), 4, 4, 1, 3)]:
        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g)

        yield Case((rand(*x_shape, d_in), rand(d_out, d_in), rand(d_out),
                    rand(r, d_in).requires_grad_(), rand(d_out, r).requires_grad_(), alpha, r),
                   label=f"x {(*x_shape, d_in)}, W ({d_out}, {d_in}), r = {r}, alpha = {alpha}")


register(Exercise(
    id="06.lora_forward",
    title="The LoRA forward pass",
    reference=lora_forward,
    cases=_lora_cases,
    compare=compare_tensors,
    mistakes={
        "forgot the scaling alpha / r on the LoRA path":
            lambda x, w, b, a, bb, alpha, r: x @ w.T + b + x @ a.T @ bb.T,
        "scaled by r / alpha instead of alpha / r":
            lambda x, w, b, a, bb, alpha, r: x @ w.T + b + (r / alpha) * (x @ a.T @ bb.T),
        "scaled by alpha alone (divide by r too)":
            lambda x, w, b, a, bb, alpha, r: x @ w.T + b + alpha * (x @ a.T @ bb.T),
        "scaled the whole output: only the LoRA update gets alpha / r":
            lambda x, w, b, a, bb, alpha, r: (alpha / r) * (x @ w.T + b + x @ a.T @ bb.T),
        "forgot the bias": lambda x, w, b, a, bb, alpha, r: x @ w.T + (alpha / r) * (
            x @ a.T @ bb.T),
    },
    hints=[
        ("Two paths add up: the frozen layer x @ W.T + b, and the low-rank update "
         "x @ A.T @ B.T."),
        ("Shapes: x is (..., in), A is (r, in), B is (out, r). x @ A.T is (..., r); then @ B.T "
         "gives (..., out), like the frozen path."),
        "Scale only the update, by alpha / r: it keeps the update's size steady when you change r.",
    ],
))

# ----------------------------------------------------------------------------------------------
# 06_peft: merging a LoRA update into the frozen weight


def merge_weight(weight: torch.Tensor, lora_A: torch.Tensor, lora_B: torch.Tensor,
                 alpha: float, r: int) -> torch.Tensor:
    """The merged weight W + (alpha / r) B A: one plain matrix, the same outputs as W plus LoRA."""
    return weight + (alpha / r) * (lora_B @ lora_A)  # (out, r) @ (r, in) -> (out, in)


def _merge_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(7)
    for d_out, d_in, r, alpha in [(6, 8, 2, 16), (5, 5, 4, 8), (12, 16, 8, 32), (3, 4, 1, 3)]:
        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g)

        yield Case((rand(d_out, d_in), rand(r, d_in), rand(d_out, r), alpha, r),
                   label=f"W ({d_out}, {d_in}), A ({r}, {d_in}), B ({d_out}, {r}), "
                         f"alpha = {alpha}, r = {r}")


register(Exercise(
    id="06.merge_weight",
    title="Merge the LoRA update into the weight",
    reference=merge_weight,
    cases=_merge_cases,
    compare=compare_tensors,
    mistakes={
        "returned only the update (alpha / r) B A: add the frozen weight W":
            lambda w, a, b, alpha, r: (alpha / r) * (b @ a),
        "forgot the scaling alpha / r": lambda w, a, b, alpha, r: w + b @ a,
        "scaled by r / alpha instead of alpha / r":
            lambda w, a, b, alpha, r: w + (r / alpha) * (b @ a),
        "the update is transposed: B A has the shape of W, (out, in); A.T B.T is (in, out)":
            lambda w, a, b, alpha, r: w + (alpha / r) * (a.T @ b.T),
    },
    hints=[
        ("The LoRA layer computes x W^T + (alpha / r) x A^T B^T = x (W + (alpha / r) B A)^T. "
         "So the merged weight is W + (alpha / r) B A."),
        "Shapes: B is (out, r) and A is (r, in), so B @ A is (out, in), like W.",
    ],
))
