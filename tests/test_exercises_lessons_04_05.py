"""Exercises of lessons 04 and 05 (llm_course.exercises.lesson_04, lesson_05): references pass,
typical wrong answers fail and say why."""

import pytest
import torch

from llm_course import exercises
from llm_course.exercises import lesson_04, lesson_05

IDS = ["04.mean_pool", "04.align_labels", "05.warmup_linear_lr", "05.fgm_perturbation",
       "05.macro_f1"]


def run(exercise_id, answer, capsys):
    passed = exercises.get(exercise_id).check(answer)
    return passed, capsys.readouterr().out


@pytest.mark.parametrize("exercise_id", IDS)
def test_not_implemented_is_todo(exercise_id, capsys):
    def placeholder(*args):
        raise NotImplementedError

    passed, out = run(exercise_id, placeholder, capsys)
    assert not passed and out.startswith("TODO")


@pytest.mark.parametrize("wrong, message", [
    (lambda h, m: h.mean(1), "padding included"),
    (lambda h, m: (h * m.unsqueeze(-1)).sum(1), "without dividing"),
    (lambda h, m: (h * m.unsqueeze(-1)).sum(1) / h.shape[1], "padded length"),
    (lambda h, m: h[:, 0], "[CLS]"),
])
def test_mean_pool_mistakes(wrong, message, capsys):
    passed, out = run("04.mean_pool", wrong, capsys)
    assert not passed and message in out, out


def test_mean_pool_int_mask_times_float_is_fine_but_bool_sum_is_not_needed(capsys):
    def mine(hidden, mask):
        mask = mask.unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)

    assert run("04.mean_pool", mine, capsys)[0]


def test_count_trainable_mistakes(capsys):
    passed, out = run("04.count_trainable", lambda m: sum(p.numel() for p in m.parameters()), capsys)
    assert not passed and "frozen" in out and "expected 18, got 58" in out
    passed, out = run("04.count_trainable",
                      lambda m: sum(1 for p in m.parameters() if p.requires_grad), capsys)
    assert not passed and "p.numel()" in out
    state_dict_count = lambda m: sum(t.numel() for t in m.state_dict().values())
    assert not run("04.count_trainable", state_dict_count, capsys)[0]


@pytest.mark.parametrize("wrong, message", [
    (lambda w, t: [-100 if i is None else t[i] for i in w], "every piece"),
    (lambda w, t: [0 if i is None else v for i, v in zip(w, lesson_04.align_labels(w, t))],
     "special tokens"),
    (lambda w, t: [t[i] if i is not None and (j + 1 == len(w) or w[j + 1] != i) else -100
                   for j, i in enumerate(w)], "last piece"),
])
def test_align_labels_mistakes(wrong, message, capsys):
    passed, out = run("04.align_labels", wrong, capsys)
    assert not passed and message in out, out


def test_warmup_lr_matches_the_transformers_schedule():
    from transformers import get_linear_schedule_with_warmup

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=3e-4)
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=7, num_training_steps=40)
    for step in range(40):
        assert lesson_05.warmup_linear_lr(step, 3e-4, 7, 40) == pytest.approx(
            sched.get_last_lr()[0])
        opt.step()
        sched.step()


@pytest.mark.parametrize("wrong, message", [
    (lambda s, p, w, t: p * max(0.0, (t - s) / t), "no warmup"),
    (lambda s, p, w, t: p * s / w if s < w else p, "never decays"),
    (lambda s, p, w, t: p * s / w if s < w else p * max(0.0, (t - s) / t), "from step 0"),
])
def test_warmup_lr_mistakes(wrong, message, capsys):
    passed, out = run("05.warmup_linear_lr", wrong, capsys)
    assert not passed and message in out, out


@pytest.mark.parametrize("wrong, message", [
    (lambda g, e: e * g, "forgot to normalise"),
    (lambda g, e: e * g.sign(), "FGSM"),
    (lambda g, e: e * g / g.norm(), "whole batch"),
    (lambda g, e: e * g / g.norm(dim=-1, keepdim=True), "each token"),
    (lambda g, e: -lesson_05.fgm_perturbation(g, e), "against the gradient"),
])
def test_fgm_mistakes(wrong, message, capsys):
    passed, out = run("05.fgm_perturbation", wrong, capsys)
    assert not passed and message in out, out


@pytest.mark.parametrize("wrong, message", [
    (lambda p, y, k: sum(a == b for a, b in zip(p, y)) / len(y), "accuracy"),
    (lambda p, y, k: sum(y.count(c) / len(y) * lesson_05._f1_of(p, y, c) for c in range(k)),
     "weighted"),
    (lambda p, y, k: lesson_05._f1_of(p, y, 1), "class 1 only"),
])
def test_macro_f1_mistakes(wrong, message, capsys):
    passed, out = run("05.macro_f1", wrong, capsys)
    assert not passed and message in out, out


def test_macro_f1_agrees_with_scikit_learn():
    from sklearn.metrics import f1_score

    g = torch.Generator().manual_seed(0)
    for k in (2, 3, 5):
        p = torch.randint(k, (60,), generator=g).tolist()
        y = torch.randint(k, (60,), generator=g).tolist()
        expected = f1_score(y, p, average="macro", labels=list(range(k)), zero_division=0)
        assert lesson_05.macro_f1(p, y, k) == pytest.approx(expected)
