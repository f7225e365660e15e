"""Exercises of 04_transfer_learning (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from llm_course.exercises.registry import Case, Exercise, compare_tensors, register
from llm_course.finetuning.probes import mean_pool
from llm_course.finetuning.tasks import align_labels

# ----------------------------------------------------------------------------------------------
# 04_transfer_learning: mean pooling over the real tokens


def _pool_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(4)
    yield Case((torch.randn(2, 5, 3, generator=g), torch.ones(2, 5, dtype=torch.long)),
               label="2 texts of 5 tokens, no padding")
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    yield Case((torch.randn(3, 6, 4, generator=g), mask), label="3 texts padded to 6 tokens")
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0, 0]])
    hidden = torch.randn(1, 8, 2, generator=g)
    hidden[:, 4:] = 100.0  # padding positions hold large junk values
    yield Case((hidden, mask), label="padding positions full of large values (100.0)")


register(Exercise(
    id="04.mean_pool",
    title="Mean pooling over the real tokens",
    reference=mean_pool,
    cases=_pool_cases,
    compare=compare_tensors,
    mistakes={
        "averaged over every position, padding included: multiply by the mask first":
            lambda h, m: h.mean(1),
        "summed without dividing by the number of real tokens":
            lambda h, m: (h * m.unsqueeze(-1)).sum(1),
        "zeroed the padding but divided by the padded length, not by the real tokens":
            lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1],
        "took the first token ([CLS]) instead of the mean": lambda h, m: h[:, 0],
    },
    hints=[
        ("hidden is (batch, tokens, dim) and attention_mask is (batch, tokens): give the mask a "
         "last axis, attention_mask.unsqueeze(-1), so it multiplies every dimension."),
        ("Zero the padding (hidden * mask), sum over the token axis (dim 1), then divide by the "
         "number of real tokens per text, mask.sum(1)."),
        "Convert the mask to the hidden states' dtype (.to(hidden.dtype)) before multiplying.",
    ],
))

# ----------------------------------------------------------------------------------------------
# 04_transfer_learning: word tags onto sub-word tokens


def _align_cases() -> Iterator[Case]:
    # [CLS] new york ##er [SEP]
    yield Case(([None, 0, 1, 1, None], [3, 4]), label="[CLS] new york ##er [SEP], tags [3, 4]")
    yield Case(([None, 0, 0, 0, 1, None], [1, 0]), label="a word cut into 3 pieces, then one")
    yield Case(([None, 0, 1, 2, 3, None, None], [0, 5, 6, 0]),
               label="one piece per word, then [SEP] and padding")
    yield Case(([None, 0, 1, 1, 2, 2, 2, 3, None], [7, 0, 2, 0]), label="a mix of long words")
    yield Case(([None, 0, 1, 1, None], [0, 0]), label="two words tagged O (0): the word tag, not -100")


register(Exercise(
    id="04.align_labels",
    title="Word tags onto sub-word tokens",
    reference=align_labels,
    cases=_align_cases,
    mistakes={
        "gave every piece of a word the word's tag: only the first piece is scored":
            lambda w, t: [-100 if i is None else t[i] for i in w],
        "tagged the special tokens ([CLS], [SEP]) with 0 (O) instead of -100":
            lambda w, t: [0 if i is None else v for i, v in zip(w, align_labels(w, t),
                                                                strict=True)],
        "put the tag on the last piece of each word instead of the first":
            lambda w, t: [t[i] if i is not None and (j + 1 == len(w) or w[j + 1] != i) else -100
                          for j, i in enumerate(w)],
    },
    hints=[
        ("word_ids gives, for each token, the index of the word it came from (None for [CLS], "
         "[SEP] and padding). Walk through it, remembering the previous word id."),
        ("A token starts a new word when its word id is not None and differs from the previous "
         "one: it gets word_tags[word_id]. Every other token gets -100."),
    ],
    setup="from collections.abc import Sequence",
))

# ----------------------------------------------------------------------------------------------
# 04_transfer_learning: counting trainable parameters


def count_trainable(model: nn.Module) -> int:
    """Number of trainable parameters (numbers, not tensors) in `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class TiedLM(nn.Module):
    """A tiny model whose output layer shares its weight with the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.head = nn.Linear(6, 20, bias=False)
        self.head.weight = self.embed.weight


def _count_cases() -> Iterator[Case]:
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    yield Case((mlp,), label="a small MLP, everything trainable")
    frozen_first = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    frozen_first[0].requires_grad_(False)
    yield Case((frozen_first,), label="the same MLP with its first layer frozen")
    head = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 3))
    head[0].requires_grad_(False)
    yield Case((head,), label="a frozen embedding under a trainable head")
    yield Case((TiedLM(),), label="tied weights: a shared parameter counts once")
    yield Case((nn.Linear(3, 3).requires_grad_(False),), label="a fully frozen layer")


register(Exercise(
    id="04.count_trainable",
    title="Count the trainable parameters",
    reference=count_trainable,
    cases=_count_cases,
    mistakes={
        "counted the frozen parameters too: keep only p.requires_grad":
            lambda m: sum(p.numel() for p in m.parameters()),
        "counted parameter tensors, not the numbers in them: use p.numel()":
            lambda m: sum(1 for p in m.parameters() if p.requires_grad),
        "counted the frozen parameters instead of the trainable ones":
            lambda m: sum(p.numel() for p in m.parameters() if not p.requires_grad),
    },
    hints=[
        "model.parameters() yields every weight tensor once (shared ones too).",
        "A tensor is trained when p.requires_grad is True; p.numel() is how many numbers it has.",
    ],
    setup="from torch import nn",
))


# ----------------------------------------------------------------------------------------------
# The end-of-lesson quiz (shown by `exercises.quiz("04")`)

QUIZ = [
    {
        "question": "Why does the lesson probe a *random twin* of each encoder: the same "
                    "architecture and tokenizer with freshly random weights?",
        "choices": {
            "a": "Random weights sometimes beat pretrained ones, and we want the best.",
            "b": "To check that the probe's code runs.",
            "c": "It shows what the architecture, the tokenizer and the probe achieve without "
                 "pretraining, so the gap between a model and its twin is what pretraining "
                 "added.",
            "d": "Random features regularise the classifier.",
        },
        "answer": "c",
        "why": {
            "a": "The twin is a baseline, not a contender; it is there to measure against.",
            "b": "Any encoder would check the code; the twin is chosen to isolate one cause.",
            "c": "Right: a random encoder is not useless (it is a random projection of a bag of "
                 "words), so only the twin separates what pretraining added from what the "
                 "architecture and the probe give anyway.",
            "d": "Each probe uses only its own body's features; the twin's never reach MiniLM's "
                 "classifier.",
        },
    },
    {
        "question": "In the learning-curve plot of section 4, at `laptop` scale, MiniLM (solid "
                    "blue) is far above TF-IDF (grey, dotted) at the smallest label counts, and the "
                    "gap narrows with all labels. Why?",
        "figure": "the learning curve, test accuracy against labelled examples, section 4",
        "choices": {
            "a": "TF-IDF needs more compute than MiniLM.",
            "b": "MiniLM's features carry what it learnt from unlabelled text, so a few labels "
                 "suffice; with many labels, TF-IDF learns the sentiment words from the labels "
                 "themselves.",
            "c": "MiniLM overfits when it has many labels.",
            "d": "The test split is easier for small label counts.",
        },
        "answer": "b",
        "why": {
            "a": "TF-IDF is the cheap one; compute is not what the curve shows.",
            "b": "Right: labels can substitute for pretraining, if you have enough of them. That "
                 "is why pretraining matters most when labels are expensive.",
            "c": "Its body is frozen and only a regularised linear head is fitted; its curve keeps "
                 "rising with more labels.",
            "d": "Every point is scored on the same test split.",
        },
    },
    {
        "question": "Why must `mean_pool` leave out the padding positions?",
        "choices": {
            "a": "Padding vectors are always zero, so they would only slow the mean down.",
            "b": "Otherwise a short review padded to the length of a long one is pulled towards "
                 "whatever the encoder outputs at padding, so the same text gets a different "
                 "vector depending on its batch.",
            "c": "The tokenizer cannot produce padding.",
            "d": "It makes no difference to a linear probe.",
        },
        "answer": "b",
        "why": {
            "a": "The encoder outputs non-zero vectors at padding positions; they are just "
                 "meaningless.",
            "b": "Right: dividing by the number of real tokens, $\\sum_t m_t$, keeps each text's "
                 "vector its own.",
            "c": "It pads every short text in a batch to the longest one, with `[PAD]`.",
            "d": "The probe only sees the pooled vector; if padding distorts it, the probe learns "
                 "from distorted features.",
        },
    },
    {
        "question": "To \"train only the classifier\", someone writes `for p in "
                    "model.classifier.parameters(): p.requires_grad = True`. What happens?",
        "choices": {
            "a": "Only the classifier trains, as intended.",
            "b": "PyTorch raises an error.",
            "c": "Nothing is frozen: every parameter starts trainable, so one step still changes "
                 "the whole encoder. Freeze everything, then unfreeze the head.",
            "d": "It works once `model.eval()` is called too.",
        },
        "answer": "c",
        "why": {
            "a": "The flag was already `True` everywhere; setting it on the head switches nothing "
                 "off. The lesson counted the weights that one step changed: all of them.",
            "b": "Setting a flag that is already set is silent; that is why the mistake is common.",
            "c": "Right: `model.requires_grad_(False)` and then "
                 "`model.classifier.requires_grad_(True)`.",
            "d": "`eval()` only switches dropout (and such layers) to inference mode; gradients "
                 "still flow to every weight.",
        },
    },
    {
        "question": "Always tagging `O` scores a high token accuracy on the tweets but an entity F1 "
                    "of 0. Why does the lesson score NER with entity F1?",
        "choices": {
            "a": "Most words are `O`, so token accuracy flatters a tagger that finds nothing; "
                 "entity F1 only counts entities with the right type and exact span.",
            "b": "Entity F1 is always higher, which looks better.",
            "c": "Token accuracy cannot be computed for tweets.",
            "d": "F1 ignores the `O` tag, so it is faster.",
        },
        "answer": "a",
        "why": {
            "a": "Right: finding names is the task, so the metric counts found names; `B-person "
                 "I-person` predicted as `B-person O` earns nothing.",
            "b": "For the all-`O` baseline it is 0, far lower than its token accuracy.",
            "c": "It can be computed; it just measures the wrong thing here.",
            "d": "Speed is not the reason; what the metric rewards is.",
        },
    },
    {
        "question": "In `align_labels`, a word's tag goes on its first piece; later pieces and "
                    "`[CLS]`/`[SEP]` get $-100$. Why?",
        "choices": {
            "a": "The model cannot see the later pieces.",
            "b": "Tags belong to words: with the tag on the first piece only, each word is scored "
                 "exactly once, and $-100$ tells the loss and the metric to skip a position.",
            "c": "$-100$ is the id of the `O` tag.",
            "d": "To make the sequences shorter.",
        },
        "answer": "b",
        "why": {
            "a": "It sees every piece; attention lets the first piece's vector use them all.",
            "b": "Right: tagging every piece would count a long, rare word several times, and "
                 "special tokens belong to no word.",
            "c": "`O` is an ordinary tag id; $-100$ is the \"ignore\" label of PyTorch's "
                 "cross-entropy.",
            "d": "The sequence keeps its length; only some positions go unscored.",
        },
    },
    {
        "question": "The regularisation strength $C$ of every probe, and of TF-IDF, is chosen on "
                    "the validation split, and the test split is used once at the end. What would "
                    "go wrong if you chose $C$ on the test split?",
        "choices": {
            "a": "Nothing: it is all held-out data.",
            "b": "The probe would train on the test labels.",
            "c": "Logistic regression needs $C$ before it sees any data.",
            "d": "The test score would be tuned to that split and overstate the accuracy on new "
                 "data; and a baseline tuned with less care than the model makes the comparison "
                 "unfair.",
        },
        "answer": "d",
        "why": {
            "a": "Once a choice depends on it, the test split is no longer held out.",
            "b": "It would not train on them, but picking the best of several scores on them is "
                 "already fitting to them.",
            "c": "$C$ can be tried at many values, which is exactly what the validation split is "
                 "for.",
            "d": "Right: that is also why TF-IDF gets its own $C$ chosen on validation: a fair "
                 "baseline gets the same care as the model.",
        },
    },
]
