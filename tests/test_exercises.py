"""Auto-checked exercises (llm_course.exercises: the registry and its lesson banks): every
exercise's reference passes and its listed mistakes fail, nothing a learner writes makes check()
raise, and each exercise lives in its lesson's bank (reports per lesson: test_exercises_lesson*)."""

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from llm_course import exercises
from llm_course.exercises import lesson_01

IDS = ["01.chars_per_token", "02.next_token_loss", "02.perplexity", "03.mask_tokens",
       "04.count_trainable", "06.lora_forward"]
PACKAGE = Path(exercises.__file__).parent


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

    value = exercises.get("01.chars_per_token").answer(None, lesson_01.byte_encode, ["ab"],
                                                       solve=True)
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


# --- the layout: one bank per lesson, and the registry imports none ------------------------------

def test_each_exercise_is_registered_by_its_lessons_bank():
    # "02.next_token_loss" belongs in llm_course/exercises/lesson_02.py (register notes the module)
    for exercise_id, ex in exercises.EXERCISES.items():
        lesson = exercise_id.split(".")[0]
        assert ex.module == f"llm_course.exercises.lesson_{lesson}", (exercise_id, ex.module)
    # and every lesson_*.py is imported by the package (it registers at least one exercise)
    banks = {f"llm_course.exercises.{path.stem}" for path in PACKAGE.glob("lesson_*.py")}
    assert {ex.module for ex in exercises.EXERCISES.values()} == banks


def test_the_registry_imports_no_bank():
    imported = set()
    for node in ast.walk(ast.parse((PACKAGE / "registry.py").read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # resolve relative imports (from . import x)
            parts = ["llm_course", "exercises"][:3 - node.level] if node.level else []
            module = ".".join(parts + ([node.module] if node.module else []))
            imported |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    assert "torch" in imported  # the walk sees the imports
    # the package llm_course.exercises itself imports every bank
    assert not {name for name in imported if name.startswith("llm_course.exercises")}, imported
