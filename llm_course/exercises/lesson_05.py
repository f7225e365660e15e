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

# ----------------------------------------------------------------------------------------------
# 05_fine_tuning: the end-of-lesson quiz (plain data; `exercises.quiz("05")` shows and
# checks it)

QUIZ = [
    {"question": "Why does the fine-tuning recipe start with a **warmup**, the learning rate "
                 "rising from 0 over the first 10 % of steps?",
     "choices": {
         "a": "Because the pretrained weights need time to load before training starts.",
         "b": "To reach the peak rate faster than a constant schedule would.",
         "c": "So that the last steps use a higher rate than the first ones.",
         "d": "The new classifier head starts random, so its first gradients are large and noisy; "
              "a small rate at first keeps them from wrecking the pretrained body before the head "
              "has settled.",
     },
     "answer": "d",
     "why": {
         "a": "No. Loading has nothing to do with the schedule; the weights are all there before "
              "the first step.",
         "b": "No. A constant schedule is at the peak from step 0; warmup gets there later, on "
              "purpose.",
         "c": "No. After the warmup the rate decays linearly to 0, so the last steps are the "
              "smallest.",
         "d": "Right. Fine-tuning wants to adapt the pretrained solution, not leave it; the ramp "
              "limits how far the random head's first gradients can push the body.",
     }},
    {"question": "The 60-step sweep favours high peak rates ($3 \\times 10^{-4}$ and $10^{-4}$ in "
                 "our runs), as high as pretraining rates. Why is the main run's rate chosen with "
                 "runs as long as the main run instead, on the validation split?",
     "choices": {
         "a": "A short sweep rewards whatever moves fastest; over a full run a high rate moves the "
              "weights far from the pretrained solution. Only runs of the real length say which "
              "rate wins at that length.",
         "b": "Because the rate must be the one that scores best on the test split.",
         "c": "Lower rates always give higher accuracy, whatever the number of steps.",
         "d": "A rate above $10^{-4}$ cannot be used with warmup.",
     },
     "answer": "a",
     "why": {
         "a": "Right. With 60 steps the small rates were still answering one class; over two "
              "epochs $10^{-4}$ reached 83.7 % on validation, against 79.8 % for the earlier "
              "recipe ($5 \\times 10^{-5}$, 250 steps). The sweep's right panel shows the cost of "
              "large rates: the weights move far from pretraining.",
         "b": "No. Choosing on the test split turns it into a second validation split: its score "
              "would no longer be an honest estimate. The test split is scored once, for the "
              "chosen recipe.",
         "c": "No. In the sweep the smallest rates were the *worst*: they had barely moved after "
              "60 steps.",
         "d": "No. Warmup works with any peak rate; the sweep used it at every rate.",
     }},
    {"question": "In section 3's sweep figure, the run at $10^{-3}$ ends on the 'always positive' "
                 "line (left panel). What does the right panel, 'How far the weights moved', show "
                 "for it, and what happened?",
     "choices": {
         "a": "Its weights barely moved: the rate was too small for 60 steps.",
         "b": "Its weights moved no further than at $10^{-5}$; the collapse came from the warmup.",
         "c": "Its weights moved dozens of times further from the pretrained ones than at "
              "$10^{-5}$: large steps overwrote what pretraining had taught, and the model fell "
              "back to answering one class.",
         "d": "Only the classifier head moved; the body stayed as pretrained.",
     },
     "answer": "c",
     "why": {
         "a": "That describes the $10^{-5}$ line, the lowest in the right panel. $10^{-3}$ is the "
              "rate `course-bert` was *pretrained* with, far above a fine-tuning rate.",
         "b": "No. The two lines are far apart on the log scale; the warmup is the same 10 % of "
              "the steps at every rate.",
         "c": "Right. That is catastrophic forgetting at work: the training loss stays near $\\ln "
              "2 \\approx 0.69$, a coin flip's, and the model answers one class for everything.",
         "d": "No. The right panel measures the embeddings and each transformer layer, and at "
              "$10^{-3}$ every one of them moved.",
     },
     "figure": "the learning-rate sweep figure of section 3 (right panel: how far the weights "
                "moved)"},
    {"question": "Freezing most of the network (top-k, head only) cuts the 'weights + grads + "
                 "AdamW' memory of section 2's table. Why?",
     "choices": {
         "a": "Frozen weights are not loaded into memory.",
         "b": "Gradients and AdamW's two moments, 12 bytes per parameter, exist only for "
              "*trainable* parameters; a frozen weight costs its own 4 bytes only.",
         "c": "Freezing stores the weights in 8-bit integers.",
         "d": "Frozen layers are removed from the forward pass.",
     },
     "answer": "b",
     "why": {
         "a": "No. The frozen body still computes the features, so its weights are in memory.",
         "b": "Right. That is why head only needs almost nothing beyond the model itself. The "
              "saved activations shrink too: the backward pass stops at the lowest trained layer.",
         "c": "No. Freezing only sets `requires_grad=False`; the dtype does not change (lesson 08 "
              "quantises).",
         "d": "No. Every layer still runs forward; only gradients are skipped.",
     }},
    {"question": "Look at section 4's figure (200 labels). Compare the plain run's training loss "
                 "(left, log scale) with its validation accuracy (right). What do they show "
                 "together?",
     "choices": {
         "a": "Both keep improving: more steps would keep helping.",
         "b": "The training loss falls towards zero while the validation accuracy stops rising: "
              "the model learns the 200 reviews by heart, and that no longer carries over to new "
              "ones.",
         "c": "The training loss stays near $\\ln 2 \\approx 0.69$: the model collapsed to one "
              "class.",
         "d": "The validation accuracy rises while the training loss stalls: the model is too "
              "small to fit the data.",
     },
     "answer": "b",
     "why": {
         "a": "No. Read the right panel: the validation accuracy flattens early while the "
              "training loss keeps falling; more steps only memorise more.",
         "b": "Right. That is overfitting: a 22.7 M-parameter network can memorise 200 examples. "
              "The cures of section 4 (dropout, weight decay, early stopping, augmentation, FGM, "
              "LoRA) each attack that gap.",
         "c": "No. That is what a collapsed run looks like (the high-rate runs of section 3); "
              "here the training loss falls far below 0.69.",
         "d": "The other way round: the training loss keeps falling, so the model fits the "
              "training data all too well.",
     },
     "figure": "the few-labels figure of section 4 (training loss, validation accuracy)"},
    {"question": "FGM with $\\epsilon = 1$ made the run collapse to answering 'positive', while "
                 "$\\epsilon = 0.1$ trained normally. Why is FGM so touchy here?",
     "choices": {
         "a": "$\\epsilon = 1$ is the value for BERT-base, which has a different tokenizer.",
         "b": "A larger $\\epsilon$ always regularises more, and too much regularisation always "
              "collapses a model.",
         "c": "FGM runs two forward and backward passes, which doubles the effective learning "
              "rate.",
         "d": "A MiniLM word vector has a norm of about 1.1 and the gradient piles up on a few "
              "tokens, so $\\epsilon = 1$ can move one word's vector by its own length: the "
              "nudged copy is no longer the same review.",
     },
     "answer": "d",
     "why": {
         "a": "The tokenizer is not the point; the point is how large $\\epsilon$ is next to the "
              "embeddings it perturbs.",
         "b": "Not always: the lesson's explanation is specific, the nudge compared with the size "
              "of a word vector.",
         "c": "No. FGM adds a second loss on the nudged copy (costing about 2.3 times the "
              "compute), not a larger step.",
         "d": "Right. The size of an adversarial nudge only means something relative to the size "
              "of what it nudges; the model could not fit both the review and a different text "
              "with the same label.",
     }},
    {"question": "Why did weight decay barely matter in the few-label runs?",
     "choices": {
         "a": "Weight decay only acts on the classifier head.",
         "b": "AdamW ignores weight decay.",
         "c": "Each step shrinks the weights by the factor $1 - \\eta\\lambda \\approx 1 - "
              "10^{-5}$, so over 60 steps they shrink by well under a tenth of a percent; and "
              "decaying towards zero is the wrong target for a pretrained model.",
         "d": "Weight decay needs dropout to work.",
     },
     "answer": "c",
     "why": {
         "a": "No. It acts on every weight matrix that trains.",
         "b": "No. AdamW is the optimizer that applies weight decay *decoupled* from the "
              "gradient, $\\theta \\leftarrow \\theta - \\eta\\lambda\\theta$.",
         "c": "Right. Fine-tuning stays close to the pretrained weights anyway, which is already "
              "a strong regulariser; decay towards the pretrained weights (L2-SP) is the version "
              "that fits.",
         "d": "No. The two are independent regularisers.",
     }},
    {"question": "A model answers 'positive' to every test review, and 57.8 % of the reviews are "
                 "positive. About what is its macro-F1?",
     "choices": {
         "a": "About 0.37: the positive class has F1 $= 2 \\cdot 0.578 / 1.578 \\approx 0.73$, "
              "the negative class 0, and macro-F1 averages the two.",
         "b": "0.578, the same as its accuracy.",
         "c": "0.5, because there are two classes.",
         "d": "1.0 for the positive class, so 1.0.",
     },
     "answer": "a",
     "why": {
         "a": "Right. Positive: precision 0.578, recall 1, F1 about 0.73; negative: never "
              "predicted, F1 0. Macro-F1 weighs both classes equally, so a model that ignores one "
              "is caught.",
         "b": "No. Accuracy hides the ignored class; that is the reason to report macro-F1 too.",
         "c": "No. 0.5 would be a model about as good on both classes; this one is useless on one "
              "of them.",
         "d": "No. The positive class's precision is only 0.578 (every negative review is called "
              "positive), and the negative class scores 0.",
     }},
]
