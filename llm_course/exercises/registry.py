"""Auto-checked exercises: the mechanism behind every notebook's "Your turn" cells.

A notebook cell looks like this::

    from llm_course import exercises
    ex = exercises.get("02.next_token_loss")

    def my_next_token_loss(logits, input_ids):
        raise NotImplementedError  # your code here

    ex.check(my_next_token_loss)     # PASS, or FAIL with the difference and the failing input
    ex.hint(1)                       # when stuck; ex.solution() prints the reference code
    next_token_loss = ex.answer(my_next_token_loss, solve=solve_exercises)

`check` runs hidden tests (seeded random inputs) against a reference solution kept in the
lesson's bank, never in the notebook, and never raises on a learner's mistake.
`answer` hands back the learner's function when it passes; otherwise, when `solve` is true (the
`solve_exercises` notebook parameter that papermill sets, or LLM_COURSE_SOLVE_EXERCISES=1 in the
environment, which nbval runs can use), it hands back the reference so the rest of the notebook
runs, and prints one line saying so. Value exercises work the same way: `ex.check(my_ratio,
encode, texts)` compares a number with the reference applied to the inputs. `check` and `answer`
note each exercise in the learner's progress (`llm_course.env.progress`): solved, fell back to
the reference, or left unsolved.

This module is the mechanism only; it imports no bank. The banks are one module per notebook,
`llm_course/exercises/lesson_NN.py` (lesson_02.py for 02_pretraining_gpt, lesson_09a.py for
09a_faq_assistant): each registers its exercises with `register` when imported, and the package
`llm_course.exercises` imports them all. An exercise's id starts with its lesson's number.
References are plain torch / Python so that `ex.solution()` prints code a learner can read and
paste (each exercise's `setup` holds the imports that code needs).
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import inspect
import math
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from llm_course.env import progress

SOLVE_ENV = "LLM_COURSE_SOLVE_EXERCISES"
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # llm_course/
EXERCISES: dict[str, Exercise] = {}


@dataclass
class Case:
    """One hidden test input: positional and keyword arguments, and what the input is."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    label: str = ""

    def fresh(self) -> tuple[tuple, dict]:
        """A deep copy, so a function that changes its inputs in place cannot spoil the test."""
        return copy.deepcopy(self.args), copy.deepcopy(self.kwargs)


class NotAttempted(Exception):
    """The learner's function still raises NotImplementedError (or the value is None / ...)."""


class LearnerError(Exception):
    """The learner's function raised; carries the exception and the input that caused it."""

    def __init__(self, exc: BaseException, call: str):
        super().__init__(str(exc))
        self.exc, self.call = exc, call

    def lines(self) -> list[str]:
        frames = traceback.extract_tb(self.exc.__traceback__)[1:]  # [0] is Guarded.__call__
        own = [f for f in frames
               if "site-packages" not in f.filename and not f.filename.startswith(_PACKAGE)]
        where = [f"  line {f.lineno} in {f.name}" + (f": {f.line.strip()}" if f.line else "")
                 for f in own[-1:]]
        return [
            f"your code raised {type(self.exc).__name__}: {self.exc}",
            *where,
            f"input: {self.call}",
        ]


class Guarded:
    """Wraps the learner's function: NotImplementedError -> NotAttempted, others -> LearnerError."""

    def __init__(self, fn: Callable, describe: Callable[[tuple, dict], str]):
        self.fn, self.describe = fn, describe

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except NotImplementedError as exc:
            raise NotAttempted() from exc
        except Exception as exc:  # the learner's bug: report it, never raise it
            raise LearnerError(exc, self.describe(args, kwargs)) from exc


# ----------------------------------------------------------------------------------------------
# Describing inputs and comparing results


def describe(x: Any, max_items: int = 8) -> str:
    """A short, readable description of a test input or a result."""
    if isinstance(x, torch.Tensor):
        dtype = str(x.dtype).removeprefix("torch.")
        text = f"tensor(shape={tuple(x.shape)}, dtype={dtype})"
        if x.numel() <= max_items:
            values = x.detach().cpu()
            values = values.double().round(decimals=4) if values.is_floating_point() else values
            text += f" = {values.tolist()}"
        return text
    if isinstance(x, torch.nn.Module):
        return " ".join(repr(x).split())[:160]
    if isinstance(x, str):
        return repr(x) if len(x) <= 60 else repr(x[:57]) + "..."
    if isinstance(x, (list, tuple)):
        items = [describe(v, max_items) for v in x[:4]]
        more = f", ... ({len(x)} items)" if len(x) > 4 else ""
        return ("[{}{}]" if isinstance(x, list) else "({}{})").format(", ".join(items), more)
    if callable(x):
        return f"function {getattr(x, '__name__', type(x).__name__)}"
    return repr(x)[:80]


def _as_number(x: Any) -> float | None:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return float(x.detach().cpu())
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return float(x)
    return None


def compare_tensors(expected: torch.Tensor, got: Any, rtol: float = 1e-4,
                    atol: float = 1e-5) -> str | None:
    """None when `got` matches; else what differs: type, shape, graph, values (with positions)."""
    if not isinstance(got, torch.Tensor):
        if _as_number(got) is not None and expected.dim() == 0:
            return (f"expected a tensor, got the Python number {got!r}: keep it a tensor "
                    "(no .item()) so that .backward() works")
        return f"expected a tensor of shape {tuple(expected.shape)}, got {describe(got)}"
    if got.shape != expected.shape:
        return f"shape: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
    if expected.requires_grad and not got.requires_grad:
        return ("the result is cut off from the autograd graph (.item(), .detach(), .numpy() or "
                "torch.no_grad()?): .backward() could not reach the parameters")
    e, g = expected.detach().cpu().double(), got.detach().cpu().double()
    if expected.is_floating_point():
        close = torch.isclose(g, e, rtol=rtol, atol=atol)
    else:
        close = g == e
    if bool(close.all()):
        return None
    note = " (your result contains inf or NaN)" if not bool(torch.isfinite(g).all()) else ""
    if e.dim() == 0:
        return f"expected {e.item():.6g}, got {g.item():.6g}{note}"
    bad = (~close).nonzero()
    largest = (g - e).abs().nan_to_num(float("inf")).max().item()
    lines = [f"{len(bad)} of {e.numel()} values differ, largest difference {largest:.3g}{note}"]
    for pos in bad[:5].tolist():
        idx = tuple(pos)
        lines.append(f"  at {list(idx)}: expected {e[idx].item():.6g}, got {g[idx].item():.6g}")
    return "\n".join(lines)


def compare_auto(expected: Any, got: Any, rtol: float = 1e-5, atol: float = 1e-6) -> str | None:
    """The default comparison: allclose for tensors and floats, exact for ints, strings, etc."""
    if isinstance(expected, torch.Tensor):
        return compare_tensors(expected, got)
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return f"expected {len(expected)} items, got {describe(got)}"
        for i, (e, g) in enumerate(zip(expected, got)):
            if (problem := compare_auto(e, g, rtol, atol)) is not None:
                return f"item {i}: {problem}"
        return None
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        value = _as_number(got)
        if value is None:
            return f"expected a number, got {describe(got)}"
        if isinstance(expected, int):
            return None if value == expected else f"expected {expected}, got {got}"
        if math.isclose(value, expected, rel_tol=rtol, abs_tol=atol):
            return None
        return f"expected {expected:.6g}, got {value:.6g} (difference {value - expected:+.3g})"
    return None if got == expected else f"expected {expected!r}, got {got!r}"


# ----------------------------------------------------------------------------------------------
# The exercise


def solve_requested(solve: bool | None) -> bool:
    """The notebook's `solve_exercises`, or LLM_COURSE_SOLVE_EXERCISES=1 in the environment."""
    return bool(solve) or os.environ.get(SOLVE_ENV, "").lower() in {"1", "true", "yes"}


@dataclass
class Exercise:
    """One exercise: a reference (function or value), hidden tests, hints.

    Either `cases` (inputs on which the learner's function must match the reference, compared
    with `compare`) or `verify` (a property check for random-valued answers, returning None or
    what is wrong) does the testing. `mistakes` maps a description to a typical wrong function:
    when the learner's result equals one of them the report names the mistake. `explain` adds
    exercise-specific lines (e.g. per-position values) to a failure report.
    """

    id: str
    title: str
    reference: Any
    cases: Callable[[], Iterable[Case]] | None = None
    verify: Callable[[Callable], str | None] | None = None
    compare: Callable[[Any, Any], str | None] = compare_auto
    mistakes: dict[str, Callable] = field(default_factory=dict)
    explain: Callable[[Callable, Case], list[str]] | None = None
    hints: list[str] = field(default_factory=list)
    setup: str = "import torch"
    module: str = ""  # the module that registered it (set by `register`)

    # -- what the learner calls --------------------------------------------------------------

    def check(self, answer: Any, *args: Any, **kwargs: Any) -> bool:
        """Print PASS or FAIL (with the difference) for a function or value; return passed."""
        status, lines = self._run(answer, args, kwargs)
        self._report(status, lines)
        if status == "pass":
            progress.note_exercise(self.id, "solved")
        return status == "pass"

    def hint(self, n: int = 1) -> None:
        """Print hint number `n` (1-based)."""
        if not self.hints:
            print(f"No hints for {self.id}; ex.solution() shows the reference.")
            return
        n = max(1, n)
        text = self.hints[min(n, len(self.hints)) - 1]
        print(f"Hint {min(n, len(self.hints))}/{len(self.hints)} for {self.id}: {text}")
        if n >= len(self.hints):
            print("(That was the last hint; ex.solution() shows the reference.)")

    def solution_source(self) -> str:
        """The reference solution as code (its real source), with the imports it needs."""
        if not callable(self.reference):
            return f"{self.id} = {self.reference!r}"
        source = textwrap.dedent(inspect.getsource(self.reference))
        return f"{self.setup}\n\n\n{source}" if self.setup else source

    def solution(self) -> None:
        """Print the reference solution."""
        print(f"# Reference solution for {self.id} ({self.title})\n")
        print(self.solution_source())

    def answer(self, answer: Any, *args: Any, solve: bool | None = None, **kwargs: Any) -> Any:
        """The learner's answer if it passes; else the reference when `solve` (so later cells run).

        `solve` is the notebook's `solve_exercises` parameter; LLM_COURSE_SOLVE_EXERCISES=1 in
        the environment forces it. Without it a wrong answer is returned as it is.
        """
        status, lines = self._run(answer, args, kwargs)
        self._report(status, lines)
        if status == "pass":
            progress.note_exercise(self.id, "solved")
            return answer
        if solve_requested(solve):
            print(f"-> Not solved yet. Using the reference solution for {self.id} so the rest of "
                  "the notebook runs (noted in your progress).")
            progress.note_exercise(self.id, "reference")
            if not callable(self.reference):
                return self.reference
            if self._is_function(answer) or (not args and not kwargs):
                return self.reference
            return self.reference(*args, **kwargs)
        progress.note_exercise(self.id, "unsolved")
        if status == "todo":
            print("-> The cells below need this: finish it, or set solve_exercises = True.")
        else:
            print("-> Continuing with your version.")
        return answer

    # -- the machinery -----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Exercise({self.id!r}: {self.title}; {len(self.hints)} hints)"

    def _is_function(self, answer: Any) -> bool:
        return (callable(self.reference) and callable(answer)
                and not isinstance(answer, torch.nn.Module))

    def describe_call(self, args: tuple, kwargs: dict) -> str:
        """`name = value` for each argument, named after the reference's parameters."""
        try:
            bound = inspect.signature(self.reference).bind_partial(*args, **kwargs).arguments
            return ", ".join(f"{k} = {describe(v)}" for k, v in bound.items())
        except (TypeError, ValueError):
            return ", ".join([describe(a) for a in args]
                             + [f"{k} = {describe(v)}" for k, v in kwargs.items()])

    def _run(self, answer: Any, args: tuple, kwargs: dict) -> tuple[str, list[str]]:
        todo = [("not attempted yet: replace `raise NotImplementedError` with your code, "
                 "then run this cell again.")]
        if answer is None or answer is Ellipsis:
            return "todo", todo
        try:
            if self._is_function(answer):
                return self._check_function(answer, args, kwargs)
            return self._check_value(answer, args, kwargs)
        except NotAttempted:
            return "todo", todo

    def _check_value(self, value: Any, args: tuple, kwargs: dict) -> tuple[str, list[str]]:
        if callable(self.reference):
            if not args and not kwargs:
                return "fail", [("this checks a value computed from inputs: pass them too, "
                                 "e.g. ex.check(value, *inputs)")]
            expected = self.reference(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        else:
            expected = self.reference
        problem = self.compare(expected, value)
        return ("pass", ["your value is right"]) if problem is None else ("fail", [problem])

    def _check_function(self, fn: Callable, args: tuple, kwargs: dict) -> tuple[str, list[str]]:
        guarded = Guarded(fn, self.describe_call)
        if self.verify is not None:
            try:
                problem = self.verify(guarded)
            except LearnerError as err:
                return "fail", err.lines()
            return ("pass", ["all property checks passed"]) if problem is None else (
                "fail", problem.splitlines())
        cases = list(self.cases() if self.cases else [])
        if args or kwargs:
            cases.append(Case(args, kwargs, "the inputs you passed"))
        for i, case in enumerate(cases, 1):
            a, k = case.fresh()
            expected = self.reference(*a, **k)
            a, k = case.fresh()
            try:
                got = guarded(*a, **k)
            except LearnerError as err:
                return "fail", [f"test {i}/{len(cases)}: {case.label}", *err.lines()]
            problem = self.compare(expected, got)
            if problem is not None:
                return "fail", self._failure(guarded, case, f"test {i}/{len(cases)}", problem, got)
        return "pass", [f"{len(cases)} hidden tests passed"]

    def _failure(self, fn: Callable, case: Case, which: str, problem: str,
                 got: Any) -> list[str]:
        lines = [f"{which}: {case.label}", f"input: {self.describe_call(case.args, case.kwargs)}",
                 *problem.splitlines()]
        for description, wrong in self.mistakes.items():
            a, k = case.fresh()
            # a mistake that cannot run on this input just doesn't match
            with contextlib.suppress(Exception):
                if self.compare(wrong(*a, **k), got) is None:
                    lines.append(f"This looks like a common mistake: {description}.")
                    break
        if self.explain is not None:
            with contextlib.suppress(Exception):  # extra detail; the learner's code may fail on it
                lines += self.explain(fn, case)
        return lines

    def _report(self, status: str, lines: list[str]) -> None:
        word = {"pass": "PASS", "fail": "FAIL", "todo": "TODO"}[status]
        out = [f"{word}  {self.id}: {self.title}"] + [f"    {line}" for line in lines]
        if status == "fail" and self.hints:
            out.append("    Stuck? ex.hint(1)")
        print("\n".join(out))


# ----------------------------------------------------------------------------------------------
# The registry


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to EXERCISES (ids are unique), noting the module that registers it."""
    if exercise.id in EXERCISES:
        raise ValueError(f"exercise {exercise.id!r} is registered twice")
    exercise.module = exercise.module or sys._getframe(1).f_globals.get("__name__", "")
    EXERCISES[exercise.id] = exercise
    return exercise


def get(exercise_id: str) -> Exercise:
    """The exercise with this id, e.g. get("02.next_token_loss")."""
    try:
        exercise = EXERCISES[exercise_id]
    except KeyError:
        close = difflib.get_close_matches(exercise_id, list(EXERCISES), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {ids()}"
        raise KeyError(f"no exercise {exercise_id!r}{hint}") from None
    progress.set_current_lesson(progress.lesson_id(exercise_id) or exercise_id)
    return exercise


def ids() -> list[str]:
    """All exercise ids, in notebook order."""
    return sorted(EXERCISES)
