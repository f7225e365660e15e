"""Auto-checked exercises (llm_course.exercises + exercise_bank): right answers pass, typical
wrong answers fail with a useful report, and nothing a learner writes makes check() raise."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llm_course import exercise_bank as bank
from llm_course import exercises

IDS = ["01.chars_per_token", "02.next_token_loss", "02.perplexity", "03.mask_tokens",
       "04.count_trainable", "06.lora_forward"]


def run(exercise_id, answer, capsys, *args):
    passed = exercises.get(exercise_id).check(answer, *args)
    return passed, capsys.readouterr().out


def test_registry():
    assert set(IDS) <= set(exercises.ids()) == set(exercises.EXERCISES)
    with pytest.raises(KeyError, match="02.perplexity"):
        exercises.get("02.perplexty")
    with pytest.raises(ValueError, match="twice"):
        exercises.register(exercises.get("02.perplexity"))


@pytest.mark.parametrize("exercise_id", exercises.ids())  # every lesson's exercises
def test_reference_passes_and_hints_and_solution_are_real(exercise_id, capsys):
    ex = exercises.get(exercise_id)
    passed, out = run(exercise_id, ex.reference, capsys)
    assert passed and out.startswith(f"PASS  {exercise_id}"), out
    assert 2 <= len(ex.hints) <= 3
    ex.hint(1)
    out = capsys.readouterr().out
    assert out.startswith(f"Hint 1/{len(ex.hints)}") and ex.hints[0] in out
    ex.hint(99)
    assert "last hint" in capsys.readouterr().out
    ex.solution()
    source = capsys.readouterr().out
    name = ex.reference.__name__
    assert f"def {name}(" in source and "return" in source
    namespace = {}  # the printed solution is runnable code that defines the function
    exec(source.split("\n", 1)[1], namespace)  # noqa: S102 (the point of the test)
    passed, _ = run(exercise_id, namespace[name], capsys)
    assert passed


@pytest.mark.parametrize("exercise_id", exercises.ids())
def test_every_listed_mistake_fails(exercise_id, capsys):
    ex = exercises.get(exercise_id)
    for description, wrong in ex.mistakes.items():
        passed, out = run(exercise_id, wrong, capsys)
        assert not passed and out.startswith("FAIL"), (description, out)


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
    ref = bank.next_token_loss
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
    passed, out = run("01.chars_per_token", lambda enc, texts: 1 / bank.chars_per_token(enc, texts),
                      capsys)
    assert not passed and "upside down" in out
    mean_of_ratios = lambda enc, texts: sum(len(t) / len(enc(t)) for t in texts) / len(texts)
    passed, out = run("01.chars_per_token", mean_of_ratios, capsys)
    assert not passed and "mean of per-text ratios" in out
    texts = ["héllo wörld", "abc"]
    right = sum(map(len, texts)) / sum(len(bank.byte_encode(t)) for t in texts)
    assert run("01.chars_per_token", right, capsys, bank.byte_encode, texts)[0]
    passed, out = run("01.chars_per_token", right + 0.1, capsys, bank.byte_encode, texts)
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
    ref = bank.mask_tokens

    def labels_everywhere(*args):
        inputs, _ = ref(*args)
        return inputs, args[0].clone()

    passed, out = run("03.mask_tokens", labels_everywhere, capsys)
    assert not passed and "labels must be -100" in out
    passed, out = run("03.mask_tokens", lambda *args: ref(*args)[0], capsys)
    assert not passed and "return a pair (inputs, labels)" in out


def test_count_trainable_mistakes(capsys):
    passed, out = run("04.count_trainable", lambda m: sum(p.numel() for p in m.parameters()), capsys)
    assert not passed and "frozen" in out and "expected 18, got 58" in out
    passed, out = run("04.count_trainable",
                      lambda m: sum(1 for p in m.parameters() if p.requires_grad), capsys)
    assert not passed and "p.numel()" in out
    state_dict_count = lambda m: sum(t.numel() for t in m.state_dict().values())
    assert not run("04.count_trainable", state_dict_count, capsys)[0]


def test_lora_forward_without_scale_fails(capsys):
    def no_scale(x, weight, bias, lora_A, lora_B, alpha, r):
        return x @ weight.T + bias + x @ lora_A.T @ lora_B.T

    passed, out = run("06.lora_forward", no_scale, capsys)
    assert not passed and "forgot the scaling alpha / r" in out
    assert "values differ" in out and "at [0, 0]: expected" in out


# --- not attempted, crashes, answer() -----------------------------------------------------------

def placeholder(*args):
    raise NotImplementedError  # your code here


@pytest.mark.parametrize("exercise_id", exercises.ids())
def test_not_implemented_is_not_attempted(exercise_id, capsys):
    passed, out = run(exercise_id, placeholder, capsys)
    assert not passed and out.startswith("TODO") and "not attempted yet" in out


def test_learner_exceptions_are_reported_with_the_input(capsys):
    def crashes(logits, input_ids):
        return logits @ input_ids  # wrong shapes

    passed, out = run("02.next_token_loss", crashes, capsys)
    assert not passed and "your code raised RuntimeError" in out
    assert "in crashes: return logits @ input_ids" in out
    assert "input: logits = tensor(shape=(2, 7, 11)" in out

    def key_error(*args):
        return {}["missing"]

    for exercise_id in IDS:
        passed, out = run(exercise_id, key_error, capsys)
        assert not passed and "KeyError" in out, exercise_id


def test_answer_returns_learner_or_reference(capsys, monkeypatch):
    monkeypatch.delenv(exercises.SOLVE_ENV, raising=False)
    ex = exercises.get("02.perplexity")
    mine = lambda nll: math.exp(nll)
    assert ex.answer(mine, solve=True) is mine
    assert ex.answer(placeholder, solve=True) is ex.reference
    assert "Using the reference solution" in capsys.readouterr().out
    assert ex.answer(None, solve=True) is ex.reference
    wrong = lambda nll: 2 ** nll
    assert ex.answer(wrong, solve=False) is wrong
    assert "Continuing with your version" in capsys.readouterr().out
    assert ex.answer(placeholder, solve=False) is placeholder
    assert "solve_exercises = True" in capsys.readouterr().out
    monkeypatch.setenv(exercises.SOLVE_ENV, "1")
    assert ex.answer(placeholder) is ex.reference

    value = exercises.get("01.chars_per_token").answer(None, bank.byte_encode, ["ab"], solve=True)
    assert value == 1.0


def test_check_never_mutates_the_cases_and_describes_inputs():
    a = exercises.Case((torch.zeros(2),), label="x")
    args, _ = a.fresh()
    args[0].add_(1)
    assert a.args[0].sum() == 0
    assert exercises.describe(torch.tensor([1.23456, 2.0])) == \
        "tensor(shape=(2,), dtype=float32) = [1.2346, 2.0]"
    assert exercises.describe(nn.Linear(2, 3)).startswith("Linear(in_features=2")
    assert exercises.compare_tensors(torch.ones(3), torch.ones(3)) is None
    assert "1 of 3 values differ" in exercises.compare_tensors(torch.ones(3),
                                                               torch.tensor([1.0, 2.0, 1.0]))


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
