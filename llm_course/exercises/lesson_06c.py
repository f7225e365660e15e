"""Exercises and quiz of 06c_instruction_tuning (see `llm_course.exercises` for the mechanism).

The references are the package's own functions (`llm_course.finetuning.instructions.mask_prompt`,
`llm_course.finetuning.preference.dpo_loss`), so the lesson trains with exactly what the
learner is checked against.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from llm_course.exercises.registry import Case, Exercise, compare_tensors, register
from llm_course.finetuning.instructions import mask_prompt
from llm_course.finetuning.preference import dpo_loss

# ----------------------------------------------------------------------------------------------
# 06c_instruction_tuning: the loss on the answer only


def _mask_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(61)
    for lengths, prompts, label in [
        ([9, 6, 9], [4, 2, 5], "3 examples, right-padded to 9 tokens"),
        ([5], [3], "one example, no padding"),
        ([12, 7, 10, 12], [1, 6, 3, 11], "4 examples: a 1-token prompt, and a 1-token answer"),
        ([8, 8], [0, 7], "no prompt at all, and a prompt of all but one token"),
    ]:
        width = max(lengths)
        ids = torch.randint(3, 500, (len(lengths), width), generator=g)
        attention = torch.zeros(len(lengths), width, dtype=torch.long)
        for i, n in enumerate(lengths):
            attention[i, :n] = 1
            ids[i, n:] = 0  # the pad id
        yield Case((ids, torch.tensor(prompts), attention), label=label)


def _positions(ids: torch.Tensor) -> torch.Tensor:
    return torch.arange(ids.shape[1])[None, :]


register(Exercise(
    id="06c.mask_prompt",
    title="Labels for SFT: -100 on the prompt and on padding",
    reference=mask_prompt,
    cases=_mask_cases,
    compare=compare_tensors,
    mistakes={
        "masked the answer and kept the prompt: it is the other way round":
            lambda ids, n, att: ids.masked_fill((_positions(ids) >= n[:, None]) | (att == 0), -100),
        "off by one: the first answer token is masked too (positions < prompt_length are the "
        "prompt; the model shifts the labels itself)":
            lambda ids, n, att: ids.masked_fill((_positions(ids) <= n[:, None]) | (att == 0), -100),
        "off by one: the last prompt token kept its label":
            lambda ids, n, att: ids.masked_fill((_positions(ids) < n[:, None] - 1) | (att == 0),
                                                -100),
        "forgot the padding: padded positions must be -100 too":
            lambda ids, n, att: ids.masked_fill(_positions(ids) < n[:, None], -100),
        "used 0 instead of -100: the loss ignores only -100":
            lambda ids, n, att: ids.masked_fill((_positions(ids) < n[:, None]) | (att == 0), 0),
        "shifted the labels by one yourself: Hugging Face causal LMs shift them inside":
            lambda ids, n, att: torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], 1)
            .masked_fill((_positions(ids) < n[:, None]) | (att == 0), -100),
    },
    hints=[
        ("Start from a copy of input_ids and write -100 where the loss must not look: every "
         "position before prompt_length, and every position where attention_mask is 0."),
        ("torch.arange(T) gives the positions 0 .. T-1; compare it with prompt_lengths[:, None] "
         "to get a (batch, T) mask of the prompt, then tensor.masked_fill(mask, -100)."),
        ("Do not shift anything: the label at position t is the token at t, and the model "
         "predicts it from position t - 1. The first answer token keeps its label."),
    ],
))

# ----------------------------------------------------------------------------------------------
# 06c_instruction_tuning: the DPO loss


def _dpo_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(62)
    for n, beta, spread, label in [
        (4, 0.1, 5.0, "4 pairs, beta = 0.1"),
        (8, 0.5, 20.0, "8 pairs, beta = 0.5, log-probs of long answers"),
        (1, 2.0, 1.0, "one pair, beta = 2"),
    ]:
        def logps() -> torch.Tensor:
            return -torch.rand(n, generator=g) * spread - 1.0

        yield Case((logps().requires_grad_(), logps().requires_grad_(), logps(), logps(), beta),
                   label=label)
    # the second pair's margin is -185: sigmoid(-185) rounds to 0 in float32
    yield Case((torch.tensor([-10.0, -200.0, -5.0], requires_grad=True),
                torch.tensor([-200.0, -10.0, -6.0], requires_grad=True),
                torch.tensor([-12.0, -20.0, -5.0]), torch.tensor([-190.0, -15.0, -6.0]), 1.0),
               label="3 pairs, one of which the policy gets very wrong (margin -185)")


register(Exercise(
    id="06c.dpo_loss",
    title="The DPO loss from policy and reference log-probabilities",
    reference=dpo_loss,
    setup="import torch\nimport torch.nn.functional as F",
    cases=_dpo_cases,
    compare=compare_tensors,
    mistakes={
        "left out the reference: each answer's margin is log pi(y|x) - log pi_ref(y|x)":
            lambda pc, pr, rc, rr, b: -F.logsigmoid(b * (pc - pr)).mean(),
        "chosen and rejected are swapped: the loss must fall as the chosen answer gains":
            lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pr - rr) - (pc - rc))).mean(),
        "forgot the minus sign: -log sigmoid is what gets minimised":
            lambda pc, pr, rc, rr, b: F.logsigmoid(b * ((pc - rc) - (pr - rr))).mean(),
        "beta multiplies the loss instead of the margin inside the sigmoid":
            lambda pc, pr, rc, rr, b: -(b * F.logsigmoid((pc - rc) - (pr - rr))).mean(),
        "summed over the pairs: average them":
            lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).sum(),
        "torch.log(torch.sigmoid(x)) gives -inf when x is very negative: use F.logsigmoid(x)":
            lambda pc, pr, rc, rr, b: -torch.log(torch.sigmoid(b * ((pc - rc) - (pr - rr)))).mean(),
    },
    hints=[
        ("For each pair: chosen margin = policy_chosen_logps - ref_chosen_logps, and the same "
         "for the rejected answer. DPO wants the chosen margin to beat the rejected one."),
        ("The loss of a pair is -log sigmoid(beta * (chosen margin - rejected margin)); "
         "average it over the pairs."),
        ("torch.nn.functional.logsigmoid computes log sigmoid without underflow; "
         "torch.log(torch.sigmoid(x)) gives -inf once sigmoid(x) rounds to 0."),
    ],
))

# ----------------------------------------------------------------------------------------------
# The quiz (checked at the end of the lesson)

QUIZ = [
    {"question": "Why does SFT put -100 on the prompt tokens of each example?",
     "choices": {"a": "To make the batches shorter, so training is faster.",
                 "b": "So that the loss only rewards writing answers: with the prompt in the "
                      "loss, the model would also be trained to write the users' questions.",
                 "c": "Because the tokenizer cannot encode the prompt otherwise.",
                 "d": "So that the model cannot see the prompt while it writes the answer."},
     "answer": "b",
     "why": {"a": "The batches keep every token: -100 changes which positions count in the "
                  "loss, not how many tokens go through the model.",
             "b": "Right: the loss is cross-entropy on every labelled position, so a labelled "
                  "prompt would spend the training on predicting user text, not answers.",
             "c": "The prompt is tokenized like any text; -100 is a label, not a token.",
             "d": "The model still reads the prompt (attention sees it); only its labels are "
                  "ignored. Without the prompt it could not answer."}},
    {"question": "Section 1 gave the same instructions to course-gpt and to SmolLM2-Instruct. "
                 "Why does the base model ramble instead of answering?",
     "choices": {"a": "Its sampling temperature was too high.",
                 "b": "It is too small to know any answers.",
                 "c": "It was only trained to continue text: a question is text whose likely "
                      "continuation is more text of the same kind, and nothing taught it where "
                      "an answer ends.",
                 "d": "Its tokenizer has no tokens for the answer words."},
     "answer": "c",
     "why": {"a": "Greedy decoding (no temperature at all) rambles too.",
             "b": "Size limits what it knows, but even a large base model continues a question "
                  "with more questions or a list; answering is a format SFT teaches.",
             "c": "Right: pretraining teaches continuation. SFT shows it (instruction, answer, "
                  "end-of-turn) turns, so it learns to answer and to stop.",
             "d": "Byte-level BPE can spell any word."}},
    {"question": "In the chat format of this lesson, `<|end|>` is course-gpt's end-of-sequence "
                 "token. What does that buy?",
     "choices": {"a": "Generation stops when the assistant's turn is over, because the model "
                      "learned in SFT to write `<|end|>` after an answer.",
                 "b": "It saves memory: the model never attends past it.",
                 "c": "It hides the answer from the loss.",
                 "d": "Nothing: it is only there to make the text readable."},
     "answer": "a",
     "why": {"a": "Right: every SFT answer ends with `<|end|>` and keeps its label, so the model "
                  "learns to emit it, and `generate` stops at the end-of-sequence token.",
             "b": "Attention is causal; a marker changes nothing about memory.",
             "c": "`<|end|>` is part of the answer and is in the loss: that is how the model "
                  "learns to stop.",
             "d": "Without a learned stop token the model would keep writing until "
                  "max_new_tokens."}},
    {"question": "Read the diagram of section 4. Which models does RLHF with PPO keep busy "
                 "during its training loop that DPO does not need at all?",
     "choices": {"a": "The frozen reference model.",
                 "b": "A reward model scoring fresh samples, and a value model (critic) for the "
                      "advantages; the policy also has to generate in the loop.",
                 "c": "The SFT data.",
                 "d": "None: the two loops need the same models."},
     "answer": "b",
     "why": {"a": "Both keep a frozen reference: PPO for its KL penalty, DPO inside its loss "
                  "(whose log-probs can even be computed once, before training).",
             "b": "Right: DPO's loss uses only log-probabilities of fixed pairs, so it needs no "
                  "reward model, no critic and no sampling while it trains.",
             "c": "Neither loop uses the SFT data; both start from the SFT model.",
             "d": "The diagram shows PPO's loop with two extra models and a sampling step."},
     "figure": "the RLHF-with-PPO and DPO diagram of section 4"},
    {"question": "Read the beta-sweep figure of section 3. What does a smaller beta do?",
     "choices": {"a": "It keeps the policy closer to the reference (lower KL).",
                 "b": "It lets the policy move further from the reference (higher KL) to raise "
                      "the judge's score: beta is the price of each nat of KL.",
                 "c": "Nothing measurable: beta only rescales the loss.",
                 "d": "It lowers the positive rate below the SFT model's."},
     "answer": "b",
     "why": {"a": "That is a large beta: the loss saturates once the policy's margins reach "
                  "about 1/beta, so it stops moving early.",
             "b": "Right: DPO's target is pi_ref * exp(reward / beta); the smaller beta, the "
                  "more the reward wins over staying close to the reference.",
             "c": "beta sits inside the sigmoid, so it changes where the loss saturates, not "
                  "just its scale.",
             "d": "The policy is trained towards the chosen (more positive) answers at every "
                  "beta; beta sets how far, not the direction."},
     "figure": "the beta sweep: positive rate against KL"},
    {"question": "The DPO run made the judge happier, and the reward-hacking example shows an "
                 "answer the judge scores as very positive that no person would prefer. "
                 "What is going on?",
     "choices": {"a": "The judge has a bug that must be fixed before using DPO.",
                 "b": "DPO trains on the judge's gradients, which are wrong.",
                 "c": "The policy found text the judge likes for the wrong reasons (a proxy is "
                      "optimised, not what people want); the KL to the reference and human "
                      "checks are what hold it back.",
                 "d": "The model was not trained long enough."},
     "answer": "c",
     "why": {"a": "Every learned judge has blind spots; a better judge moves them, it does not "
                  "remove them.",
             "b": "DPO never differentiates the judge: the judge only ranks the pairs.",
             "c": "Right: that is reward hacking (Goodhart's law). Keeping the KL small and "
                  "reading samples are the guards.",
             "d": "Longer training with a small beta makes such answers more common, not less."}},
    {"question": "The held-out instruction kind ('which section is this headline from?') was "
                 "never trained on. Why does a tiny model fine-tuned on four kinds rarely "
                 "follow it?",
     "choices": {"a": "Following a new instruction needs a model that has seen many kinds of "
                      "instructions and knows enough; four kinds teach a small model a "
                      "format, not instruction following in general.",
                 "b": "Because the answer words (business, sport, ...) are not in its "
                      "vocabulary.",
                 "c": "Because SFT makes a model forget its pretraining.",
                 "d": "Because held-out examples are harder than training ones."},
     "answer": "a",
     "why": {"a": "Right: FLAN and its successors found that following unseen instructions "
                  "grows with the number of instruction kinds and with model size.",
             "b": "The words are in the text it was pretrained on and in the instruction itself.",
             "c": "Some forgetting happens, but the measured failure is about never having "
                  "seen this kind of request.",
             "d": "The held-out examples of the trained kinds are scored too, and do better."}},
]
