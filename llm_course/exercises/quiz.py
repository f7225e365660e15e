"""End-of-lesson quizzes: `quiz = exercises.quiz("02")`, `quiz.show()`, `quiz.check(my_answers)`.

The questions are plain data, a module-level list `QUIZ` in the lesson's bank
(`llm_course/exercises/lesson_02.py` for lesson "02"), 5 to 8 of them::

    QUIZ = [
        {"question": "Why ... ? (markdown allowed)",
         "choices": {"a": "...", "b": "...", "c": "...", "d": "..."},
         "answer": "b",
         "why": {"a": "why a is wrong", "b": "why b is right", "c": "...", "d": "..."},
         "figure": "the loss plot of section 3",   # only when the question reads a figure
        },
    ]

Every choice has its own `why`, so a wrong answer is explained as well as the right one.
`quiz(lesson)` validates the bank and says everything that is wrong with it at once.

`check(my_answers, solve=...)` prints, per question, right or wrong with the explanation of the
learner's letter and of the right one, and records the score in the learner's progress
(`llm_course.env.progress`). A question left at None is "not answered": with `solve` (the
notebook's `solve_exercises`, so a headless run passes) its answer and explanation are shown,
and it still counts as not answered.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_course.env import progress

MIN_QUESTIONS, MAX_QUESTIONS = 5, 8
WIDTH = 100  # plain-text lines are wrapped to this width
KEYS = {"question", "choices", "answer", "why", "figure"}


class QuizError(ValueError):
    """A bank's QUIZ is malformed; the message lists every problem and where it is."""


def validate(questions: Any, where: str = "QUIZ") -> list[str]:
    """Every problem of a QUIZ list, as readable lines (empty when it is well formed)."""
    if not isinstance(questions, (list, tuple)):
        return [f"{where} must be a list of questions (dicts), not {type(questions).__name__}"]
    problems = []
    if not MIN_QUESTIONS <= len(questions) <= MAX_QUESTIONS:
        problems.append(f"{where} has {len(questions)} questions; a lesson's quiz has "
                        f"{MIN_QUESTIONS} to {MAX_QUESTIONS}")
    for n, q in enumerate(questions, 1):
        at = f"{where} question {n}"
        if not isinstance(q, dict):
            problems.append(f"{at} must be a dict, not {type(q).__name__}")
            continue
        if unknown := sorted(set(q) - KEYS):
            problems.append(f"{at} has unknown keys {unknown} (allowed: {sorted(KEYS)})")
        for key in ("question", "answer"):
            if not isinstance(q.get(key), str) or not q.get(key, "").strip():
                problems.append(f"{at} needs a non-empty string '{key}'")
        if "figure" in q and (not isinstance(q["figure"], str) or not q["figure"].strip()):
            problems.append(f"{at}: 'figure' names the figure the question reads (a string)")
        choices, why = q.get("choices"), q.get("why")
        if not isinstance(choices, dict) or len(choices) < 2:
            problems.append(f"{at} needs 'choices': a dict of at least two letters to texts")
            continue
        letters = list(choices)
        if not all(isinstance(k, str) and len(k) == 1 and k.islower() for k in letters):
            problems.append(f"{at}: choice keys must be single lower-case letters, not {letters}")
        if [c for c in choices.values() if not isinstance(c, str) or not c.strip()]:
            problems.append(f"{at}: every choice needs a non-empty text")
        if q.get("answer") not in choices:
            problems.append(f"{at}: answer {q.get('answer')!r} is not one of the choices {letters}")
        if not isinstance(why, dict):
            problems.append(f"{at} needs 'why': an explanation for every choice {letters}")
            continue
        if missing := [k for k in letters if not isinstance(why.get(k), str) or not why[k].strip()]:
            problems.append(f"{at}: no explanation ('why') for choice(s) {missing}")
        if extra := sorted(set(why) - set(choices)):
            problems.append(f"{at}: 'why' explains {extra}, which are not choices")
    return problems


def _normalise_lesson(lesson: str | int) -> str:
    text = f"{lesson:02d}" if isinstance(lesson, int) else str(lesson).strip().lower()
    return progress.lesson_id(text) or text


def bank_names() -> list[str]:
    """The lesson ids that have a bank module (lesson_NN.py), in course order."""
    here = [str(Path(__file__).resolve().parent)]  # this package's folder (no import: no cycle)
    return sorted(m.name.removeprefix("lesson_") for m in pkgutil.iter_modules(here)
                  if m.name.startswith("lesson_"))


def questions_of(lesson: str | int) -> list[dict]:
    """The raw QUIZ list of a lesson's bank (no validation); KeyError when there is none."""
    lesson = _normalise_lesson(lesson)
    if lesson not in bank_names():
        raise KeyError(f"no exercise bank for lesson {lesson!r}: known {', '.join(bank_names())}")
    bank = importlib.import_module(f"llm_course.exercises.lesson_{lesson}")
    if not hasattr(bank, "QUIZ"):
        raise KeyError(f"{bank.__name__} has no QUIZ list yet")
    return bank.QUIZ


@dataclass(frozen=True)
class QuizScore:
    """What `Quiz.check` returns: right, answered and total, and the numbers answered wrongly."""

    lesson: str
    right: int
    answered: int
    total: int
    wrong: list[int] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.right}/{self.total} right ({self.answered} answered)"


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _wrap(text: str, first: str = "", rest: str = "   ") -> str:
    return textwrap.fill(" ".join(text.split()), WIDTH, initial_indent=first,
                         subsequent_indent=rest, break_on_hyphens=False, break_long_words=False)


def _letter(value: Any) -> str | None:
    """'b', 'B', ' b) ' -> 'b'; None and '' stay None."""
    if value is None:
        return None
    text = str(value).strip().lower().rstrip(").:").strip()
    return text or None


class Quiz:
    """One lesson's quiz: `show()` the questions, `check(answers, solve=...)` the answers."""

    def __init__(self, lesson: str, questions: list[dict]):
        self.lesson, self.questions = lesson, list(questions)

    def __len__(self) -> int:
        return len(self.questions)

    def __repr__(self) -> str:
        return f"Quiz({self.lesson!r}: {len(self)} questions; quiz.show() displays them)"

    # -- showing -----------------------------------------------------------------------------

    def markdown(self) -> str:
        """The questions as markdown (numbered questions, lettered choices)."""
        lines = [f"**Quiz {self.lesson}** · {len(self)} questions"]
        for n, q in enumerate(self.questions, 1):
            lines += ["", f"**{n}.** {q['question']}"]
            if q.get("figure"):
                lines.append(f"<br>*Look at: {q['figure']}.*")
            lines.append("")
            lines += [f"- **{k})** {text}" for k, text in q["choices"].items()]
        return "\n".join(lines)

    def text(self) -> str:
        """The questions as plain text, for a terminal."""
        lines = [f"Quiz {self.lesson}: {len(self)} questions"]
        for n, q in enumerate(self.questions, 1):
            lines += ["", _wrap(q["question"], f"{n}. ")]
            if q.get("figure"):
                lines.append(_wrap(f"(look at: {q['figure']})", "   "))
            lines += [_wrap(text, f"   {k}) ", "      ") for k, text in q["choices"].items()]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def show(self) -> None:
        """Display the questions: markdown in Jupyter, plain text elsewhere."""
        if _in_notebook():
            from IPython.display import Markdown, display

            display(Markdown(self.markdown()))
        else:
            print(self.text())

    # -- checking ----------------------------------------------------------------------------

    def _answers(self, answers: Any) -> tuple[dict[int, Any], list[str]]:
        """{question number: raw answer}, and notes about keys that name no question."""
        if answers is None:
            return {}, []
        if isinstance(answers, (list, tuple)):
            answers = dict(enumerate(answers, 1))
        if not isinstance(answers, dict):
            raise TypeError("my_answers must be a dict like {1: 'b', 2: None, ...}, "
                            f"not {type(answers).__name__}")
        out, notes = {}, []
        for key, value in answers.items():
            try:
                n = int(key)
            except (TypeError, ValueError):
                n = 0
            if 1 <= n <= len(self):
                out[n] = value
            else:
                notes.append(f"my_answers[{key!r}]: this quiz has questions 1 to {len(self)} only")
        return out, notes

    def check(self, answers: Any, solve: bool | None = None) -> QuizScore:
        """Say right/wrong with explanations for every question; record and return the score.

        In Jupyter the feedback is markdown (its formulas render); elsewhere plain text.
        """
        from llm_course.exercises.registry import solve_requested

        given, notes = self._answers(answers)
        solve = solve_requested(solve)
        right, answered, wrong = 0, 0, []
        text, md = list(notes), [f"- {note}" for note in notes]
        for n, q in enumerate(self.questions, 1):
            key, why, choices = q["answer"], q["why"], q["choices"]
            letter = _letter(given.get(n))
            if letter is not None and letter not in choices:
                note = f"{given.get(n)!r} is not one of {', '.join(choices)}: counted as not answered."
                text.append(_wrap(note, f"{n}. "))
                md.append(f"**{n}.** {note}")
                letter = None
            if letter is None:
                if solve:
                    text += [_wrap(f"not answered. The answer is {key}) {choices[key]}", f"{n}. "),
                             _wrap(why[key], "   ")]
                    md.append(f"**{n}. Not answered.** The answer is **{key})** {choices[key]}  \n"
                              f"{why[key]}")
                else:
                    text.append(f"{n}. not answered yet: put your letter in my_answers[{n}].")
                    md.append(f"**{n}.** Not answered yet: put your letter in `my_answers[{n}]`.")
                continue
            answered += 1
            if letter == key:
                right += 1
                text.append(_wrap(f"RIGHT ({key}). {why[key]}", f"{n}. "))
                md.append(f"**{n}. RIGHT** ({key}). {why[key]}")
            else:
                wrong.append(n)
                text += [_wrap(f"WRONG: you chose {letter}) {choices[letter]}", f"{n}. "),
                         _wrap(why[letter], "   "),
                         _wrap(f"The answer is {key}) {choices[key]}", "   "),
                         _wrap(why[key], "   ")]
                md.append(f"**{n}. WRONG**: you chose **{letter})** {choices[letter]}  \n"
                          f"{why[letter]}  \nThe answer is **{key})** {choices[key]}  \n{why[key]}")
        score = QuizScore(self.lesson, right, answered, len(self), wrong)
        summary = f"Score: {score}."
        if answered < len(self):
            summary += (" Unanswered questions were shown with their answers; they count as not "
                        "answered." if solve else " Fill in the rest and run this cell again.")
        if _in_notebook():
            from IPython.display import Markdown, display

            display(Markdown("\n\n".join([*md, f"**{summary}**"])))
        else:
            print("\n".join([*text, "", summary]))
        progress.set_current_lesson(self.lesson)
        progress.note_quiz(self.lesson, right, answered, len(self), wrong)
        return score


def quiz(lesson: str | int) -> Quiz:
    """The quiz of a lesson, e.g. quiz("02"), read from its bank and validated."""
    lesson = _normalise_lesson(lesson)
    questions = questions_of(lesson)
    if problems := validate(questions, f"lesson_{lesson}.QUIZ"):
        raise QuizError("the quiz bank is malformed:\n  " + "\n  ".join(problems))
    progress.set_current_lesson(lesson)
    return Quiz(lesson, questions)
