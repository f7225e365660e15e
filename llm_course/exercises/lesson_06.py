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

# ----------------------------------------------------------------------------------------------
# 06_peft: the end-of-lesson quiz (plain data; `exercises.quiz("06")` shows and checks it)

QUIZ = [
    {"question": "LoRA starts $A$ at random and $B$ at **zero**. What does that start guarantee?",
     "choices": {
         "a": "Starting both $A$ and $B$ at zero would work just as well; $A$ is random only by "
              "convention.",
         "b": "The update $BA$ stays zero for the whole run, so in effect only the classifier "
              "head learns.",
         "c": "The wrapped model computes exactly what the pretrained model computes before the "
              "first step, so training starts from the pretrained solution and moves away "
              "smoothly.",
         "d": "The update stays small for the whole run, so a LoRA model cannot overfit.",
     },
     "answer": "c",
     "why": {
         "a": "No. The gradient of $B$ involves $A$ and the gradient of $A$ involves $B$: with "
              "both at zero, both gradients are zero and nothing ever moves. One factor must "
              "start random so that the other can learn.",
         "b": "No. $B$ is zero but its gradient is not: it is built from $xA^\\top$, and $A$ is "
              "random. $B$ moves at the first step, and the merge check in section 2 ran on an "
              "update that training had made non-zero.",
         "c": "Right. With $B = 0$ the product $BA$ is zero, so the LoRA path adds nothing: "
              "section 2 printed a largest difference of exactly 0 between the base and the "
              "wrapped outputs. The pretrained behaviour is the starting point, not something a "
              "random update has to recover from.",
         "d": "No. The zero start fixes only where training begins; the update then grows as far "
              "as the learning rate and the steps take it, and a LoRA model can overfit like any "
              "other (it has fewer numbers to do it with, not none).",
     }},
    {"question": "Why is the LoRA update scaled by $\\alpha / r$?",
     "choices": {
         "a": "So that the update starts at zero.",
         "b": "So that the size of the update's steps stays roughly the same when you change $r$: "
              "a learning rate found for one rank still works for another.",
         "c": "So that the merged weight equals the frozen weight exactly.",
         "d": "To reduce the number of trainable parameters.",
     },
     "answer": "b",
     "why": {
         "a": "That is $B = 0$'s job: the update starts at zero whatever $\\alpha$ and $r$ are.",
         "b": "Right. A larger $r$ adds more terms to $BA$; dividing by $r$ keeps the update's "
              "scale, and so its steps, comparable across ranks, and $\\alpha$ sets that scale "
              "once. Without it every change of $r$ would need a new learning-rate search.",
         "c": "No. After training the merged weight is $W + \\frac{\\alpha}{r}BA$, which differs "
              "from $W$: that difference is what was learned. Merging is exact because the LoRA "
              "path is linear, not because of the scale.",
         "d": "No. The trainable count is $r(d_\\text{in} + d_\\text{out})$ per matrix; $\\alpha$ "
              "does not appear in it.",
     }},
    {"question": "After training you merge the adapter: $W \\leftarrow W + \\frac{\\alpha}{r}BA$. "
                 "What does the merged model cost at inference, compared with the base model?",
     "choices": {
         "a": "A little extra time at every layer, like the bottleneck adapters.",
         "b": "One extra low-rank product per wrapped layer, $r(d_\\text{in} + d_\\text{out})$ "
              "multiplications per token.",
         "c": "Twice the memory, because $W$ and the update must both be kept.",
         "d": "Nothing extra per call: the same matrix shapes and the same multiplications. What "
              "you give up is switching: one merged copy serves one task.",
     },
     "answer": "d",
     "why": {
         "a": "No. Adapters add compute because they cannot be merged (a GELU sits between their "
              "two matrices); LoRA's path is linear, so it can.",
         "b": "That is the cost *before* merging, when the LoRA path runs beside the frozen "
              "layer. Merging folds it into $W$.",
         "c": "No. The merged weight replaces $W$; it has $W$'s shape. You may keep the small "
              "adapter file too, but the model that runs holds one matrix per layer.",
         "d": "Right. The merged layer is one ordinary `nn.Linear`; section 2 showed its outputs "
              "match the unmerged model up to float rounding and that no `LoRALinear` is left. "
              "Unmerged, one base model can carry several small adapters and switch between them; "
              "merged, each task needs its own full copy.",
     }},
    {"question": "In the **Memory** panel of section 3's comparison figure, compare LoRA's bar "
                 "with full fine-tuning's. Which part shrinks, and why?",
     "choices": {
         "a": "The light part (weights + gradients + AdamW) shrinks a lot, the dark part (saved "
              "activations) hardly at all: gradients and moments exist only for trainable "
              "parameters, but the backward pass still runs through every layer.",
         "b": "Both parts shrink in proportion to the trainable share, to a fraction of a percent "
              "of full fine-tuning's.",
         "c": "Only the dark part shrinks: frozen layers need no gradient, so their activations "
              "are not kept.",
         "d": "Neither: LoRA's memory equals full fine-tuning's; it only saves disk space.",
     },
     "answer": "a",
     "why": {
         "a": "Right. Section 1 counted 16 bytes per trainable parameter (weight, gradient, two "
              "moments) against 4 per frozen one. The gradient must still flow down to the lowest "
              "LoRA matrix, through every layer, so the activations it needs are saved as in full "
              "fine-tuning.",
         "b": "No. The frozen weights still take their 4 bytes each (the light part does not drop "
              "to zero), and the activations are still kept for the backward pass.",
         "c": "That is head only, where nothing below the head needs a gradient. LoRA matrices "
              "sit in every layer, so the backward pass needs every layer's activations.",
         "d": "No. The light part is clearly smaller: no gradients and no AdamW moments for the "
              "frozen weights.",
     },
     "figure": "the comparison figure of section 3 (accuracy, speed, memory per method)"},
    {"question": "The grid **ranks AdaLoRA kept** (section 3) shows a different number in each "
                 "cell, although every matrix started at rank `init_r`. What happened?",
     "choices": {
         "a": "The cells with small numbers were frozen from the start and never trained.",
         "b": "AdaLoRA found each matrix's true intrinsic rank, which is fixed by the pretrained "
              "weights.",
         "c": "AdaLoRA scored each singular value by how much the loss depends on it and zeroed "
              "the least important ones, so the rank budget moved to the matrices that needed it; "
              "on average about `target_r` survive.",
         "d": "A higher number means that matrix learned more slowly and needed more ranks to "
              "catch up.",
     },
     "answer": "c",
     "why": {
         "a": "No. Every matrix starts at `init_r` and trains; ranks are removed only during the "
              "pruning phase.",
         "b": "No. The kept ranks are a budget allocation from importance scores measured during "
              "one short run on one task; another task or seed would give another grid.",
         "c": "Right. That is AdaLoRA's idea: a fixed total budget, spent where the importance "
              "scores say it matters, pruned on a schedule (`tinit`, `deltaT`, `tfinal`).",
         "d": "No. Ranks are kept where the loss depends on them most, not where learning was "
              "slow.",
     },
     "figure": "the grid 'ranks AdaLoRA kept' of section 3"},
    {"question": "AdaLoRA at LoRA's learning rate ended at exactly 57.8 % test accuracy, the "
                 "share of positive reviews. What is the best reading, and the fix?",
     "choices": {
         "a": "It overfitted the training reviews; lower the learning rate or add dropout.",
         "b": "It learned nothing and answers the majority class; its update is a product of "
              "three factors that start at or near zero and grows slowly, so it needs a higher "
              "learning rate.",
         "c": "57.8 % is a reasonable result for so few trainable parameters; nothing is wrong.",
         "d": "The test set is unbalanced, so accuracy is meaningless here; report macro-F1 "
              "instead and keep the settings.",
     },
     "answer": "b",
     "why": {
         "a": "No. An overfitted model still separates the classes on its training data; exactly "
              "the majority share on the test set means it did not learn to separate them at all.",
         "b": "Right. A score equal to the majority share is the signature of a run that learned "
              "nothing. $\\Lambda$ starts at zero and $P$, $Q$ start small, so at 1e-3 the update "
              "barely grew in 150 steps; at 1e-2 it learns. Look at the learning rate and at what "
              "the method may train.",
         "c": "No. LoRA with a similar trainable share reached the low 80s; prefix tuning, with "
              "fewer, also beat the majority class.",
         "d": "Macro-F1 would confirm the problem (the negative class gets F1 = 0), not fix it: "
              "the model still answers one class.",
     }},
    {"question": "You trained the Shakespeare adapter for `course-gpt`. A colleague already has "
                 "`course-gpt`. What do you send them?",
     "choices": {
         "a": "The merged model, because an unmerged adapter gives different outputs after "
              "reloading.",
         "b": "The whole fine-tuned model: the adapter is useless without a copy of the weights "
              "it was trained with.",
         "c": "Only the training text and the config: LoRA weights cannot be saved on their own.",
         "d": "The adapter folder that `save_pretrained` wrote (its config and the LoRA matrices, "
              "kilobytes); they load the base model and put the adapter on it with "
              "`PeftModel.from_pretrained`.",
     },
     "answer": "d",
     "why": {
         "a": "No. Section 4 measured the difference between the trained model and base + "
              "reloaded adapter: float rounding only.",
         "b": "No. They already hold those base weights; the adapter is exactly the difference.",
         "c": "No. Section 4 saved the adapter alone and measured its size in kilobytes.",
         "d": "Right. The base model is untouched underneath (switching the adapter off gave the "
              "old loss back), so the adapter is all that differs. Section 4 reloaded it onto a "
              "fresh base and got the same outputs up to float rounding.",
     }},
]
