"""Exercises of 07_domain_adaptation (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from llm_course.exercises.registry import Case, Exercise, describe, register

# ----------------------------------------------------------------------------------------------
# 07_domain_adaptation: how far is the domain from the pretraining text?

def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def unseen_word_rate(domain_texts: list[str], general_texts: list[str]) -> float:
    """Share of the word occurrences in `domain_texts` whose word never occurs in `general_texts`.

    Words are `re.findall(r"\\w+", text.lower())`; every occurrence counts (not distinct words).
    """
    known = set()
    for text in general_texts:
        known.update(re.findall(r"\w+", text.lower()))
    seen = unseen = 0
    for text in domain_texts:
        for word in re.findall(r"\w+", text.lower()):
            seen += 1
            unseen += word not in known
    return unseen / seen if seen else 0.0


def _unseen_cases() -> Iterator[Case]:
    general = ["The film was released in 1999 by the studio.",
               "The studio's director moved to London, where the film premiered."]
    yield Case((["A gorgeous, witty film.", "The studio film bored me."], general),
               label="two reviews against two general sentences")
    yield Case((["Great great great film", "Dull DULL dull"], general),
               label="repeated words: every occurrence counts")
    yield Case((["The Film, THE film; the film!"], general),
               label="capitals and punctuation: lower-case, words only")
    yield Case((["Nothing here is known", "the film"], ["the film"]), label="a tiny vocabulary")


def _distinct_words(domain: list[str], general: list[str]) -> float:
    known = {w for t in general for w in _words(t)}
    kinds = {w for t in domain for w in _words(t)}
    return len(kinds - known) / len(kinds)


def _no_lower(domain: list[str], general: list[str]) -> float:
    known = {w for t in general for w in re.findall(r"\w+", t)}
    found = [w for t in domain for w in re.findall(r"\w+", t)]
    return sum(w not in known for w in found) / len(found)


def _split(domain: list[str], general: list[str]) -> float:
    known = {w for t in general for w in t.lower().split()}
    found = [w for t in domain for w in t.lower().split()]
    return sum(w not in known for w in found) / len(found)


register(Exercise(
    id="07.unseen_word_rate",
    title="How much of the domain's text did pretraining never see?",
    reference=unseen_word_rate,
    cases=_unseen_cases,
    mistakes={
        "counted distinct words, not occurrences: a word used 5 times counts 5 times":
            _distinct_words,
        'forgot to lower-case: "The" and "the" are the same word here': _no_lower,
        'split on spaces: "film." and "film" are the same word here; use re.findall(r"\\w+", ...)':
            _split,
        "swapped the two corpora": lambda d, g: unseen_word_rate(g, d),
        "returned the share of SEEN words (1 - the answer)":
            lambda d, g: 1 - unseen_word_rate(d, g),
    },
    hints=[
        ("Make a set of the general corpus's words first (fast lookups); then go through every "
         "word occurrence of the domain texts."),
        ('Words: re.findall(r"\\w+", text.lower()). The answer is '
         "(occurrences not in the set) / (all occurrences)."),
    ],
    setup="import re",
))

# ----------------------------------------------------------------------------------------------
# 07_domain_adaptation: replay, mixing general text back in against forgetting


def mix_corpora(domain: list, general: list, general_share: float) -> list:
    """All of `domain` plus enough of `general` (cycled if short) to make `general_share` of the mix.

    With n domain items and k general ones, k / (n + k) = general_share, so
    k = round(n * general_share / (1 - general_share)). Order does not matter (fit shuffles).
    """
    if not 0 <= general_share < 1:
        raise ValueError(f"general_share={general_share} must be in [0, 1)")
    k = round(len(domain) * general_share / (1 - general_share))
    return list(domain) + [general[i % len(general)] for i in range(k)]


def _mix_cases() -> Iterator[Case]:
    domain = [f"review {i}" for i in range(12)]
    general = [f"wiki {i}" for i in range(40)]
    yield Case((domain, general, 0.25), label="12 domain items, general share 0.25")
    yield Case((domain, general, 0.5), label="12 domain items, general share 0.5")
    yield Case((domain, general, 0.0), label="general share 0: the domain alone")
    yield Case((domain, general[:3], 0.6), label="only 3 general items for 18 places: cycle them")
    yield Case(([[1, 2], [3]], [[7, 8, 9]], 0.5), label="items that are token-id lists")


def _compare_mix(expected: list, got: Any) -> str | None:
    if not isinstance(got, list):
        return f"expected a list, got {describe(got)}"
    if len(got) != len(expected):
        return f"expected {len(expected)} items in the mix, got {len(got)}"
    if sorted(map(repr, got)) != sorted(map(repr, expected)):
        return "right length, but not the right items: keep every domain item, add general ones"
    return None


register(Exercise(
    id="07.mix_corpora",
    title="Mix general text back in (replay)",
    reference=mix_corpora,
    cases=_mix_cases,
    compare=_compare_mix,
    mistakes={
        "took general_share of the DOMAIN size: the share is of the whole mix, k / (n + k)":
            lambda d, g, s: list(d) + [g[i % len(g)] for i in range(round(len(d) * s))],
        "did not cycle: when general is shorter than k, start again from its beginning":
            lambda d, g, s: list(d) + list(g[:round(len(d) * s / (1 - s))]),
        "replaced domain items instead of adding general ones":
            lambda d, g, s: list(d[:len(d) - round(len(d) * s)])
            + [g[i % len(g)] for i in range(round(len(d) * s))],
    },
    hints=[
        ("If k general items join n domain items, the general share is k / (n + k). "
         "Solve for k."),
        ("k = round(n * s / (1 - s)); the general items are general[i % len(general)] for i "
         "in range(k), so a short list is reused."),
    ],
    setup="",
))

# ----------------------------------------------------------------------------------------------
# 07_domain_adaptation: the end-of-lesson quiz (plain data; `exercises.quiz("07")` shows and
# checks it)

QUIZ = [
    {"question": "When does domain-adaptive pretraining (continuing the masked-LM objective on "
                 "unlabelled in-domain text before fine-tuning) pay off most?",
     "choices": {
         "a": "Whenever the task's domain differs at all from the pretraining text: it always "
              "adds a few points.",
         "b": "When there is a lot of unlabelled domain text, few labels, and the domain is far "
              "from the pretraining text (law, medicine, code).",
         "c": "When the adaptation text is the labelled training set itself, read once more "
              "without its labels.",
         "d": "When the model is small and briefly pretrained, because it has the most to learn.",
     },
     "answer": "b",
     "why": {
         "a": "No. This lesson adapted on reviews and measured a change well inside the noise "
              "(+0.2 points, and the sign flipped between runs). The gain depends on the "
              "conditions, it is not automatic.",
         "b": "Right. New text teaches what the labels cannot, and a distant domain has the most "
              "left to learn; Gururangan et al. found the largest gains for the domains least "
              "like RoBERTa's pretraining text.",
         "c": "That is what this lesson did (task-adaptive pretraining on the training reviews), "
              "and one reason it gained little: fine-tuning then reads the same texts with their "
              "labels anyway.",
         "d": "No. A tiny, briefly pretrained model like `course-bert` is short of *general* "
              "knowledge of language; more domain text does not fix that bottleneck.",
     }},
    {"question": "In the left panel of section 4's figure (held-out masked-LM loss), compare the "
                 "bars of `course-bert` and `adapted` (at `laptop` scale or above; `smoke` runs "
                 "are too short to show it). What happened, and what is it called?",
     "choices": {
         "a": "Both losses fell: adaptation improved the model on every kind of text.",
         "b": "The review loss fell and the general-text loss rose: catastrophic forgetting, "
              "because nothing in the adaptation loss asked the model to keep its general skill.",
         "c": "The review loss fell and the general-text loss rose: overfitting to the training "
              "reviews.",
         "d": "The review loss rose and the general-text loss fell: the adaptation failed.",
     },
     "answer": "b",
     "why": {
         "a": "No. Read the blue bars: the general-text loss of `adapted` is above "
              "`course-bert`'s (at `laptop`, 6.63 to 7.00 nats).",
         "b": "Right. Gradient descent changes whatever weights lower the current loss. Replay, a "
              "lower learning rate, fewer steps, frozen lower layers or a LoRA adapter limit it.",
         "c": "No. The orange bar is measured on *held-out* reviews and it fell: the model does "
              "better on new reviews, the opposite of overfitting them.",
         "d": "The other way round: the orange (reviews) bar fell and the blue (general) bar "
              "rose.",
     },
     "figure": "the masked-LM loss bars of section 4 (left panel)"},
    {"question": "Replay mixes general paragraphs back into the adaptation data. What does it "
                 "cost?",
     "choices": {
         "a": "Compute and access to the old data: in the same steps the domain loss falls less "
              "than with reviews alone, and the general text must still be at hand.",
         "b": "Nothing: it removes the forgetting and keeps the whole domain gain.",
         "c": "Test accuracy: the replay model scores clearly worse after fine-tuning.",
         "d": "It only works together with a lower learning rate.",
     },
     "answer": "a",
     "why": {
         "a": "Right. Half of each batch now serves the old domain, and when the old data is gone "
              "replay is impossible: a lower learning rate or a switchable LoRA adapter are the "
              "usual substitutes.",
         "b": "No. At `laptop` replay kept the general loss near its start but lowered the review "
              "loss only about 60 % as much as adaptation on reviews alone.",
         "c": "No. Its fine-tuned accuracy was within noise of the other two runs.",
         "d": "No. Replay and a lower learning rate are separate remedies; the lesson's replay "
              "run used the same learning rate as plain adaptation.",
     }},
    {"question": "Why does this lesson adapt `course-bert` rather than MiniLM, the stronger "
                 "encoder?",
     "choices": {
         "a": "MiniLM is too large to train on a laptop CPU.",
         "b": "MiniLM was already pretrained on movie reviews, so there is nothing to adapt.",
         "c": "MiniLM's checkpoint has no masked-LM head: its head would start random, its loss "
              "before adaptation would be about $\\ln 30522 \\approx 10.3$, and forgetting could "
              "not be measured.",
         "d": "Domain-adaptive pretraining only works on models that were pretrained briefly.",
     },
     "answer": "c",
     "why": {
         "a": "No. Lessons 05 and 06 fine-tune MiniLM on this CPU in minutes.",
         "b": "No. Nothing in the lesson says so, and the point of the choice is the missing "
              "head, not the data MiniLM saw.",
         "c": "Right. Section 1 measured MiniLM with a freshly drawn head: a loss near uniform "
              "guessing. `course-bert` has a head trained on our general corpus, so both the gain "
              "on reviews and the loss on general text are measurable.",
         "d": "No. Gururangan et al. adapted RoBERTa, pretrained on 160 GB of text, and it still "
              "helped.",
     }},
    {"question": "Adaptation uses the training reviews without their labels. Why not the test "
                 "reviews too, since no labels are used?",
     "choices": {
         "a": "The model would have practised on exactly the texts it is then scored on, so the "
              "test accuracy would no longer measure how it does on text it has never seen.",
         "b": "The masked-LM collator cannot read the test split.",
         "c": "Test reviews come from a different domain than training reviews.",
         "d": "There is no reason: using every unlabelled text available is always allowed.",
     },
     "answer": "a",
     "why": {
         "a": "Right. That leaks the test set into training. The rule is general: never adapt on "
              "what you evaluate, which here also means the held-out reviews the masked-LM loss "
              "is measured on.",
         "b": "No. It reads any text; the restriction is about evaluation, not code.",
         "c": "No. They are a random split of the same snippets.",
         "d": "No. Unlabelled text is fair game only when it is not the text you report results "
              "on.",
     }},
    {"question": "Adaptation lowered the review masked-LM loss, yet the fine-tuned accuracy did "
                 "not measurably change. Which explanation fits this lesson's setting?",
     "choices": {
         "a": "Masked-LM loss and classification accuracy are unrelated in principle.",
         "b": "The forgetting on general text exactly cancelled the domain gain.",
         "c": "300 adaptation steps were too few to change the weights at all.",
         "d": "The adaptation text is the same short reviews that fine-tuning then reads with "
              "labels, and 400 steps of full fine-tuning move the encoder towards the domain "
              "anyway.",
     },
     "answer": "d",
     "why": {
         "a": "No. Better language modelling of a domain often helps its tasks (that is "
              "Gururangan et al.'s finding); here the conditions made the gain too small to see.",
         "b": "No. The replay model forgot almost nothing and scored within noise of the others "
              "too: forgetting is not what held the accuracy back.",
         "c": "No. The weights changed enough to lower the review loss and to raise the "
              "general-text loss: both bars moved.",
         "d": "Right. Adaptation added little that fine-tuning did not already get, and "
              "`course-bert`'s real bottleneck is general knowledge. With gigabytes of new domain "
              "text and few labels the picture changes.",
     }},
]
