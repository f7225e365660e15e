"""Exercises of lessons 06 and 07 (llm_course.exercises.lesson_06, lesson_07): right answers pass,
typical wrong answers fail and name the mistake, and the printed solutions run."""

import re

import pytest
import torch

from llm_course import exercises
from llm_course.exercises import lesson_06, lesson_07


def run(exercise_id, answer, capsys, *args):
    passed = exercises.get(exercise_id).check(answer, *args)
    return passed, capsys.readouterr().out


# --- 06.lora_forward ------------------------------------------------------------------------

def test_lora_forward_without_scale_fails(capsys):
    def no_scale(x, weight, bias, lora_A, lora_B, alpha, r):
        return x @ weight.T + bias + x @ lora_A.T @ lora_B.T

    passed, out = run("06.lora_forward", no_scale, capsys)
    assert not passed and "forgot the scaling alpha / r" in out
    assert "values differ" in out and "at [0, 0]: expected" in out


# --- 06.merge_weight ------------------------------------------------------------------------

@pytest.mark.parametrize("wrong, message", [
    (lambda w, a, b, alpha, r: (alpha / r) * (b @ a), "add the frozen weight"),
    (lambda w, a, b, alpha, r: w + b @ a, "forgot the scaling"),
    (lambda w, a, b, alpha, r: w + (r / alpha) * (b @ a), "r / alpha instead"),
])
def test_merge_weight_mistakes_are_named(wrong, message, capsys):
    passed, out = run("06.merge_weight", wrong, capsys)
    assert not passed and message in out, out


def test_merge_weight_wrong_order_fails_with_the_shape_or_transpose(capsys):
    passed, out = run("06.merge_weight", lambda w, a, b, alpha, r: w + (alpha / r) * (a.T @ b.T),
                      capsys)
    assert not passed and "FAIL" in out
    # on the non-square case this is a shape error, reported without raising
    passed, out = run("06.merge_weight", lambda w, a, b, alpha, r: w + (alpha / r) * (a @ b), capsys)
    assert not passed and "your code raised RuntimeError" in out


def test_merge_weight_matches_the_lora_layer():
    from torch import nn

    from llm_course.finetuning.lora import LoRALinear

    layer = LoRALinear(nn.Linear(6, 4), r=2, alpha=5)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 6)
    w = lesson_06.merge_weight(layer.base.weight, layer.lora_A, layer.lora_B, layer.alpha,
                               layer.r)
    torch.testing.assert_close(x @ w.T + layer.base.bias, layer(x))


# --- 07.unseen_word_rate ----------------------------------------------------------------------

def test_unseen_word_rate_by_hand():
    general = ["the film was good"]
    assert lesson_07.unseen_word_rate(["The film was BAD, bad!"], general) == pytest.approx(2 / 5)
    assert lesson_07.unseen_word_rate([], general) == 0.0
    assert lesson_07.unseen_word_rate(["film"], []) == 1.0


@pytest.mark.parametrize("mistake, message", [
    ("distinct", "distinct words"),
    ("no_lower", "lower-case"),
    ("split", "split on spaces"),
    ("swapped", "swapped"),
    ("seen", "SEEN"),
])
def test_unseen_word_rate_mistakes_are_named(mistake, message, capsys):
    def words(text, lower=True):
        return re.findall(r"\w+", text.lower() if lower else text)

    wrong = {
        "distinct": lambda d, g: (len({w for t in d for w in words(t)} - {w for t in g for w in words(t)})
                                  / len({w for t in d for w in words(t)})),
        "no_lower": lambda d, g: (sum(w not in {x for t in g for x in words(t, False)}
                                      for t in d for w in words(t, False))
                                  / sum(len(words(t, False)) for t in d)),
        "split": lambda d, g: (sum(w not in {x for t in g for x in t.lower().split()}
                                   for t in d for w in t.lower().split())
                               / sum(len(t.split()) for t in d)),
        "swapped": lambda d, g: lesson_07.unseen_word_rate(g, d),
        "seen": lambda d, g: 1 - lesson_07.unseen_word_rate(d, g),
    }[mistake]
    passed, out = run("07.unseen_word_rate", wrong, capsys)
    assert not passed and message in out, out


# --- 07.mix_corpora ---------------------------------------------------------------------------

def test_mix_corpora_shares_and_cycling():
    domain, general = list(range(30)), ["g1", "g2"]
    mixed = lesson_07.mix_corpora(domain, general, 0.25)
    assert len(mixed) == 40 and mixed[:30] == domain
    assert mixed[30:] == ["g1", "g2"] * 5  # cycled
    assert lesson_07.mix_corpora(domain, general, 0.0) == domain
    with pytest.raises(ValueError, match="general_share"):
        lesson_07.mix_corpora(domain, general, 1.0)


def test_mix_corpora_order_does_not_matter_but_items_do(capsys):
    shuffled = lambda d, g, s: list(reversed(lesson_07.mix_corpora(d, g, s)))  # noqa: E731
    assert run("07.mix_corpora", shuffled, capsys)[0]
    right_length_wrong_items = lambda d, g, s: list(d) + ["x"] * round(len(d) * s / (1 - s))  # noqa: E731
    passed, out = run("07.mix_corpora", right_length_wrong_items, capsys)
    assert not passed and "not the right items" in out, out


@pytest.mark.parametrize("wrong, message", [
    (lambda d, g, s: list(d) + [g[i % len(g)] for i in range(round(len(d) * s))], "of the whole mix"),
    (lambda d, g, s: list(d) + list(g[:round(len(d) * s / (1 - s))]), "did not cycle"),
    (lambda d, g, s: tuple(lesson_07.mix_corpora(d, g, s)), "expected a list"),
])
def test_mix_corpora_mistakes_are_named(wrong, message, capsys):
    passed, out = run("07.mix_corpora", wrong, capsys)
    assert not passed and message in out, out
