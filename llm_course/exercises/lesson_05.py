"""Exercises of 05_fine_tuning (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from llm_course.exercises.registry import Case, Exercise, compare_tensors, register
from llm_course.finetuning.adversarial import fgm_perturbation

# ----------------------------------------------------------------------------------------------
# 05_fine_tuning: warmup, then linear decay


def warmup_linear_lr(step: int, peak_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate before optimizer step `step` (0-based): linear warmup from 0 to
    `peak_lr` over `warmup_steps`, then linear decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return peak_lr * step / warmup_steps
    return peak_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def _lr_cases() -> Iterator[Case]:
    for step, peak, warmup, total in [(0, 5e-5, 10, 100), (5, 5e-5, 10, 100),
                                      (10, 5e-5, 10, 100), (55, 5e-5, 10, 100),
                                      (100, 5e-5, 10, 100), (3, 1e-3, 0, 50),
                                      (7, 2e-4, 8, 8), (30, 1e-4, 6, 60)]:
        yield Case((step, peak, warmup, total),
                   label=f"step {step} of {total}, warmup {warmup}, peak {peak:g}")


register(Exercise(
    id="05.warmup_linear_lr",
    title="Learning rate with warmup and linear decay",
    reference=warmup_linear_lr,
    cases=_lr_cases,
    mistakes={
        "the decay runs from step 0, not from the end of warmup":
            lambda s, p, w, t: p * s / w if s < w else p * max(0.0, (t - s) / t),
        "no warmup: the rate starts at the peak":
            lambda s, p, w, t: p * max(0.0, (t - s) / t),
        "the rate never decays after warmup": lambda s, p, w, t: p * s / w if s < w else p,
    },
    hints=[
        "Two pieces: before warmup_steps the rate climbs in a straight line from 0 to peak_lr.",
        ("After warmup it falls in a straight line from peak_lr (at step warmup_steps) to 0 (at "
         "step total_steps): the fraction left is (total_steps - step) / (total_steps - "
         "warmup_steps)."),
        "Guard the divisions: warmup_steps can be 0, and total_steps can equal warmup_steps.",
    ],
))

# ----------------------------------------------------------------------------------------------
# 05_fine_tuning: the FGM perturbation


def _fgm_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(5)
    yield Case((torch.randn(2, 4, 3, generator=g), 1.0), label="2 examples, 4 tokens, dim 3")
    grad = torch.randn(3, 5, 8, generator=g)
    grad[1] *= 1000.0  # one example with a much larger gradient
    yield Case((grad, 0.5), label="3 examples, one with a 1000x larger gradient, epsilon 0.5")
    yield Case((torch.randn(1, 6, 4, generator=g) * 1e-3, 2.0),
               label="a tiny gradient, epsilon 2.0")


register(Exercise(
    id="05.fgm_perturbation",
    title="The FGM perturbation",
    reference=fgm_perturbation,
    cases=_fgm_cases,
    compare=compare_tensors,
    mistakes={
        "forgot to normalise: epsilon * grad has the gradient's size, not epsilon's":
            lambda g, e: e * g,
        "used the sign of the gradient (that is FGSM, the image version)":
            lambda g, e: e * g.sign(),
        "one norm over the whole batch: each example gets its own norm":
            lambda g, e: e * g / g.norm(),
        "normalised each token on its own: the norm is over all of an example's tokens":
            lambda g, e: e * g / g.norm(dim=-1, keepdim=True),
        "stepped against the gradient: the attack goes up the loss, along +grad":
            lambda g, e: -fgm_perturbation(g, e),
    },
    hints=[
        ("grad has shape (batch, tokens, dim). Each example's perturbation is its gradient "
         "scaled to length epsilon."),
        ("The length of example i's gradient is the L2 norm of all its numbers: "
         "grad.reshape(batch, -1).norm(dim=1)."),
        ("Reshape the norms to (batch, 1, 1) so they divide every token and dimension; clamp "
         "them away from zero."),
    ],
))

# ----------------------------------------------------------------------------------------------
# 05_fine_tuning: macro-F1


def macro_f1(predictions: list[int], labels: list[int], num_classes: int) -> float:
    """F1 of each class (that class against the rest), averaged with equal weight per class."""
    scores = []
    for c in range(num_classes):
        tp = sum(p == c and y == c for p, y in zip(predictions, labels, strict=True))
        fp = sum(p == c and y != c for p, y in zip(predictions, labels, strict=True))
        fn = sum(p != c and y == c for p, y in zip(predictions, labels, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return sum(scores) / num_classes


def _f1_cases() -> Iterator[Case]:
    yield Case(([0, 1, 1, 0, 1], [0, 1, 0, 0, 1], 2), label="two classes, one mistake")
    yield Case(([1] * 9 + [0], [1] * 8 + [0, 0], 2),
               label="mostly class 1: accuracy flatters, macro-F1 does not")
    yield Case(([0, 1, 2, 2, 1, 0, 2], [0, 1, 2, 1, 1, 2, 2], 3), label="three classes")
    yield Case(([1, 1, 1, 1], [0, 1, 1, 1], 3), label="a class never predicted, one never present")


register(Exercise(
    id="05.macro_f1",
    title="Macro-F1 from predictions",
    reference=macro_f1,
    cases=_f1_cases,
    mistakes={
        "that is the accuracy (micro-F1): average the per-class F1 scores instead":
            lambda p, y, k: sum(a == b for a, b in zip(p, y, strict=True)) / len(y),
        "weighted the classes by their size: macro gives each class the same weight":
            lambda p, y, k: sum(y.count(c) / len(y) * _f1_of(p, y, c) for c in range(k)),
        "the F1 of class 1 only (the 'positive' class)": lambda p, y, k: _f1_of(p, y, 1),
    },
    hints=[
        ("For each class c count true positives (predicted c, really c), false positives "
         "(predicted c, really not) and false negatives (really c, predicted not)."),
        ("F1 = 2 TP / (2 TP + FP + FN); when a class has no TP, FP or FN at all, count its F1 "
         "as 0."),
        "Average the num_classes scores with equal weight, however big each class is.",
    ],
))


def _f1_of(p: list[int], y: list[int], c: int) -> float:
    tp = sum(a == c and b == c for a, b in zip(p, y, strict=True))
    fp = sum(a == c and b != c for a, b in zip(p, y, strict=True))
    fn = sum(a != c and b == c for a, b in zip(p, y, strict=True))
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
