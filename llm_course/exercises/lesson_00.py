"""Exercise and quiz of 00_setup (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

import math
from collections.abc import Iterator

from llm_course.exercises.registry import Case, Exercise, register

# ----------------------------------------------------------------------------------------------
# 00_setup: the loss of a model that knows nothing


def uniform_loss(vocab_size: int) -> float:
    """Cross-entropy in nats of a model that gives each of `vocab_size` tokens probability 1/|V|."""
    return -math.log(1 / vocab_size)


def _uniform_cases() -> Iterator[Case]:
    yield Case((2,), label="two tokens: a fair coin")
    yield Case((30_522,), label="MiniLM's vocabulary")
    yield Case((50_257,), label="GPT-2's vocabulary")
    yield Case((1,), label="a single token: the model cannot be wrong")


register(Exercise(
    id="00.uniform_loss",
    title="The loss of a model that knows nothing",
    reference=uniform_loss,
    cases=_uniform_cases,
    mistakes={
        "the probability itself (1/|V|) instead of its negative logarithm": lambda v: 1 / v,
        "bits (log base 2): the course measures losses in nats, with the natural logarithm":
            lambda v: math.log2(v),
        "log base 10: the course measures losses in nats, with the natural logarithm":
            lambda v: math.log10(v),
        "the sign: a loss is the *negative* log-probability, so it is positive":
            lambda v: math.log(1 / v),
    },
    hints=[
        "Each next token gets probability p = 1 / vocab_size; the loss of one prediction is -log p.",
        "Use the natural logarithm, math.log: -math.log(1 / vocab_size), which is math.log(vocab_size).",
    ],
    setup="import math",
))


# ----------------------------------------------------------------------------------------------
# The end-of-lesson quiz (shown by `exercises.quiz("00")`)

QUIZ = [
    {
        "question": "Before any training, the tiny GPT's loss on the sentence came out within a few "
                    "tenths of $\\log|V| \\approx 10.3$. Why that value?",
        "choices": {
            "a": "An untrained model spreads its probability almost evenly over the vocabulary, so "
                 "each true next token gets about $1/|V|$, and $-\\log(1/|V|) = \\log|V|$.",
            "b": "$\\log|V|$ is the largest loss a language model can have.",
            "c": "The model has already memorised the sentence once, while it was built.",
            "d": "The loss counts the tokens of the sentence, on a log scale.",
        },
        "answer": "a",
        "why": {
            "a": "Right: random small weights give nearly equal logits, hence nearly uniform "
                 "probabilities; that is the loss of a model that knows nothing.",
            "b": "No: a model that is confidently wrong can score far above $\\log|V|$. It is the "
                 "loss of knowing nothing, not the worst possible loss.",
            "c": "No: building a model draws random weights; nothing is learnt before the first "
                 "gradient step.",
            "d": "No: the loss is an average of $-\\log p$ over positions; the number of tokens "
                 "does not enter it.",
        },
    },
    {
        "question": "Three AdamW steps on one sentence lowered the loss *on that sentence*. What does "
                    "that show?",
        "choices": {
            "a": "The model has learnt some English.",
            "b": "The learning rate is too high.",
            "c": "Each step moves the weights downhill on the loss of the data it was computed "
                 "on; whether that helps on new text is a separate question, answered on "
                 "held-out data.",
            "d": "The loss of a neural network always falls, whatever the data.",
        },
        "answer": "c",
        "why": {
            "a": "Not yet: three steps on one sentence mostly make that sentence more likely. Only "
                 "a loss measured on text the model did not train on says it learnt language.",
            "b": "Nothing here says so: a too-high learning rate shows as a loss that jumps or "
                 "explodes, not one that falls.",
            "c": "Right: that is why every later lesson reports a validation loss, on text kept "
                 "out of training.",
            "d": "No: with a bad learning rate, or labels that make no sense, the loss can rise or "
                 "stall.",
        },
    },
    {
        "question": "In the plot that `fit` draws in section 5.3, the loss keeps falling and "
                    "levels off well below $\\log|V|$, while the accuracy (right panel) jumps to a "
                    "few percent in the first steps and then stays flat. What has the 2-layer "
                    "model most likely learnt in its 30 steps on a few paragraphs?",
        "figure": "the loss and accuracy plot of `fit` in section 5.3",
        "choices": {
            "a": "Grammar and facts about the world.",
            "b": "Which tokens are common: it guesses the most frequent token everywhere, and "
                 "spreads its probability by frequency, with little use of context.",
            "c": "The paragraphs by heart, word for word.",
            "d": "Nothing: the fall of the loss is noise from the random batches.",
        },
        "answer": "b",
        "why": {
            "a": "Far too little data and too few steps for that, and a model that used context "
                 "would get more next tokens right, so its accuracy would keep rising.",
            "b": "Right: a flat accuracy of a few percent is about what guessing one very common "
                 "token everywhere scores, and moving probability towards frequent tokens is the cheapest way down from "
                 "$\\log|V|$. Lesson 02 measures this bar, the unigram entropy, and asks a model "
                 "to go below it.",
            "c": "A memorised text would drive the loss towards 0 and the accuracy towards 100 %, "
                 "not level off far from both.",
            "d": "Noise makes the curves wiggle; it does not move the loss down steadily for 30 "
                 "steps.",
        },
    },
    {
        "question": "The course map (section 3) puts *unlabelled text* under the first stage and "
                    "*labelled task data* under the later ones. Why pretrain at all, rather than "
                    "train on the labelled task data alone?",
        "figure": "the course map in section 3",
        "choices": {
            "a": "Transformers cannot be trained on labelled data.",
            "b": "Unlabelled text is plentiful and teaches general knowledge of language, so the "
                 "few labels only have to teach the task.",
            "c": "Pretraining makes the model smaller and faster.",
            "d": "The tokenizer can only be built during pretraining.",
        },
        "answer": "b",
        "why": {
            "a": "They can: fine-tuning (lesson 05) is training on labelled data.",
            "b": "Right: labels are expensive, text is cheap. Lesson 04's learning curve shows a "
                 "pretrained model far ahead when labels are few.",
            "c": "Pretraining changes the weights, not the size or the speed; lesson 08 makes "
                 "models smaller.",
            "d": "A tokenizer is trained on its own, before the model (lesson 01).",
        },
    },
    {
        "question": "You changed some code and want to know, within a minute, that a lesson still "
                    "runs. Which scale, and what do its numbers tell you?",
        "choices": {
            "a": "`smoke`; its numbers only show that the code runs, not what the model learns.",
            "b": "`smoke`; its accuracy should fall in `laptop`'s band.",
            "c": "`laptop`; it is the only scale with bands.",
            "d": "`gpu`; it is always the fastest.",
        },
        "answer": "a",
        "why": {
            "a": "Right: smoke uses tiny models and a few steps. It checks the plumbing; `laptop` "
                 "learns something real.",
            "b": "No: at smoke a model trains for seconds, so its accuracy means nothing and is "
                 "not compared with the laptop band.",
            "c": "`laptop` learns for real but takes minutes, not seconds.",
            "d": "Without a GPU it cannot run at all, and even with one it trains bigger models "
                 "for longer.",
        },
    },
    {
        "question": "An exercise of yours still raises `NotImplementedError`, and the parameters cell "
                    "says `solve_exercises = True`. What happens at its `answer(...)` cell?",
        "choices": {
            "a": "The notebook stops with an error until you solve it.",
            "b": "The exercise counts as solved.",
            "c": "It prints that it uses the reference solution, your progress notes the exercise "
                 "as 'reference', and the rest of the notebook runs on the reference.",
            "d": "The exercise is skipped and the cells after it fail.",
        },
        "answer": "c",
        "why": {
            "a": "That is what `solve_exercises = False` is for: then your own version is kept "
                 "and you are told that later cells need it.",
            "b": "No: only a function of yours that passes the hidden tests counts as solved, and "
                 "`llm-course progress` keeps the difference.",
            "c": "Right: the lesson goes on, and the progress table shows the exercise still to "
                 "solve.",
            "d": "No: the reference takes its place, so the cells after it run.",
        },
    },
    {
        "question": "Why does every lesson end with `llm_course.record(...)` and a receipt?",
        "choices": {
            "a": "The model cannot be saved without them.",
            "b": "They make the run deterministic.",
            "c": "They send the results to the course authors.",
            "d": "To compare your numbers with the measured bands, and to know what produced them: "
                 "versions, device, seed, scale and time.",
        },
        "answer": "d",
        "why": {
            "a": "Saving a model is separate (`save_course_model`); records are only numbers.",
            "b": "The seed in the parameters cell does that; the receipt only writes it down.",
            "c": "Nothing leaves your machine: records go to memory, a results file of a headless "
                 "run, and your progress file.",
            "d": "Right: a number without its scale, seed and versions cannot be compared with "
                 "anyone else's.",
        },
    },
]
