"""Exercises of lessons 01-03 (llm_course.exercises.lesson_01 .. lesson_03): typical wrong answers
fail with a useful report."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from llm_course import exercises
from llm_course.exercises import lesson_01, lesson_02, lesson_03


def run(exercise_id, answer, capsys, *args):
    passed = exercises.get(exercise_id).check(answer, *args)
    return passed, capsys.readouterr().out


# --- wrong answers fail, and the report says why ------------------------------------------------

def test_next_token_loss_without_shift_fails_with_per_position_losses(capsys):
    def no_shift(logits, input_ids):
        return F.cross_entropy(logits.reshape(-1, logits.size(-1)), input_ids.reshape(-1))

    passed, out = run("02.next_token_loss", no_shift, capsys)
    assert not passed and out.startswith("FAIL")
    assert "expected" in out and "got" in out and "input: logits = tensor(shape=" in out
    assert "no shift" in out
    assert "per-position loss" in out and "<- differs" in out


def test_next_token_loss_type_graph_and_numerics_mistakes(capsys):
    ref = lesson_02.next_token_loss
    passed, out = run("02.next_token_loss", lambda lg, ids: ref(lg, ids).item(), capsys)
    assert not passed and "Python number" in out
    passed, out = run("02.next_token_loss", lambda lg, ids: ref(lg, ids).detach(), capsys)
    assert not passed and "autograd graph" in out
    passed, out = run("02.next_token_loss", lambda lg, ids: ref(lg, ids)[None], capsys)
    assert not passed and "shape: expected (), got (1,)" in out

    def log_of_softmax(logits, input_ids):
        probs = torch.softmax(logits[:, :-1], dim=-1)
        return -torch.log(probs).gather(-1, input_ids[:, 1:, None]).mean()

    passed, out = run("02.next_token_loss", log_of_softmax, capsys)
    assert not passed and "confident" in out and "underflows" in out


def test_perplexity_with_log2_fails(capsys):
    passed, out = run("02.perplexity", lambda nll: 2 ** float(nll), capsys)
    assert not passed and "2 ** loss" in out and "expected 1.64872, got 1.41421" in out
    assert run("02.perplexity", lambda nll: torch.exp(torch.as_tensor(nll)), capsys)[0]


def test_chars_per_token_function_and_value(capsys):
    passed, out = run("01.chars_per_token",
                      lambda enc, texts: 1 / lesson_01.chars_per_token(enc, texts), capsys)
    assert not passed and "upside down" in out
    mean_of_ratios = lambda enc, texts: sum(len(t) / len(enc(t)) for t in texts) / len(texts)
    passed, out = run("01.chars_per_token", mean_of_ratios, capsys)
    assert not passed and "mean of per-text ratios" in out
    texts = ["héllo wörld", "abc"]
    right = sum(map(len, texts)) / sum(len(lesson_01.byte_encode(t)) for t in texts)
    assert run("01.chars_per_token", right, capsys, lesson_01.byte_encode, texts)[0]
    passed, out = run("01.chars_per_token", right + 0.1, capsys, lesson_01.byte_encode, texts)
    assert not passed and "expected" in out
    passed, out = run("01.chars_per_token", 3.0, capsys)
    assert not passed and "pass them too" in out


def masker(*, specials=True, generator=True, p=None, rule=(0.8, 0.5), in_place=False):
    """A masking function with one deliberate defect (by default none)."""
    def mask(input_ids, special_tokens_mask, mask_token_id, vocab_size, mlm_probability=0.15,
             gen=None):
        g = gen if generator else None
        prob = torch.full(input_ids.shape, p or mlm_probability)
        if specials:
            prob[special_tokens_mask] = 0.0
        picked = torch.bernoulli(prob, generator=g).bool()
        inputs = input_ids if in_place else input_ids.clone()
        labels = input_ids.clone()
        labels[~picked] = -100
        to_mask = torch.bernoulli(torch.full(prob.shape, rule[0]), generator=g).bool() & picked
        to_rand = torch.bernoulli(torch.full(prob.shape, rule[1]), generator=g).bool()
        to_rand &= picked & ~to_mask
        random_ids = torch.randint(vocab_size, prob.shape, generator=g)
        inputs[to_rand] = random_ids[to_rand]
        inputs[to_mask] = mask_token_id
        return inputs, labels
    return mask


@pytest.mark.parametrize("defect, message", [
    ({}, None),
    ({"specials": False}, "special token"),
    ({"generator": False}, "generator=generator"),
    ({"p": 0.15}, "mlm_probability=0.4"),
    ({"rule": (1.0, 0.5)}, "replaced by [MASK], expected about 80%"),
    ({"rule": (0.8, 1.0)}, "left unchanged, expected about 10%"),
    ({"in_place": True}, "in place"),
])
def test_mask_tokens_statistical_checks(defect, message, capsys):
    passed, out = run("03.mask_tokens", masker(**defect), capsys)
    assert passed == (message is None), out
    if message:
        assert message in out


def test_mask_tokens_label_and_shape_mistakes(capsys):
    ref = lesson_03.mask_tokens

    def labels_everywhere(*args):
        inputs, _ = ref(*args)
        return inputs, args[0].clone()

    passed, out = run("03.mask_tokens", labels_everywhere, capsys)
    assert not passed and "labels must be -100" in out
    passed, out = run("03.mask_tokens", lambda *args: ref(*args)[0], capsys)
    assert not passed and "return a pair (inputs, labels)" in out


def test_bpe_merge_step_fails_an_unweighted_count_and_a_missing_merge():
    ex = exercises.get("01.bpe_merge_step")
    assert ex.check(ex.reference)

    def unweighted(word_counts):  # counts each pair once per word, ignoring the word's count
        pairs = {}
        for word in word_counts:
            for pair in itertools.pairwise(word):
                pairs[pair] = pairs.get(pair, 0) + 1
        best = min(pairs, key=lambda p: (-pairs[p], p))
        return best, ex.reference(word_counts)[1]

    def no_merge(word_counts):
        return ex.reference(word_counts)[0], dict(word_counts)

    assert not ex.check(unweighted)
    assert not ex.check(no_merge)
