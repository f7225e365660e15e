"""Auto-checked exercises: `exercises.get("02.next_token_loss")` in a notebook's "Your turn" cell.

The mechanism (Exercise, the checks, the registry) is `registry`, which imports no bank. Each
notebook's exercises are in their own bank, `lesson_NN.py`, named by the ids' prefix
("02.next_token_loss" is in `lesson_02`); a bank registers its exercises when it is imported.
This package imports every bank, so that all ids are registered, and re-exports the registry.
Each bank also holds its lesson's end-of-lesson `QUIZ`: `exercises.quiz("02")` (module `quiz`).
"""

from llm_course.exercises import (  # the banks, in notebook order; importing one registers it
    lesson_00,
    lesson_01,
    lesson_01b,
    lesson_02,
    lesson_03,
    lesson_04,
    lesson_05,
    lesson_06,
    lesson_06b,
    lesson_06c,
    lesson_07,
    lesson_08,
    lesson_09a,
    lesson_09b,
    lesson_09c,
    lesson_10,
)

# `quiz` the function replaces `quiz` the module as this package's attribute
from llm_course.exercises.quiz import Quiz, QuizError, QuizScore, quiz
from llm_course.exercises.registry import (
    EXERCISES,
    SOLVE_ENV,
    Case,
    Exercise,
    Guarded,
    LearnerError,
    NotAttempted,
    compare_auto,
    compare_tensors,
    describe,
    get,
    ids,
    register,
    solve_requested,
)

__all__ = [
    "EXERCISES", "SOLVE_ENV", "Case", "Exercise", "Guarded", "LearnerError", "NotAttempted",
    "compare_auto", "compare_tensors", "describe", "get", "ids", "register", "solve_requested",
    "Quiz", "QuizError", "QuizScore", "quiz", "lesson_00",
    "lesson_01", "lesson_01b", "lesson_02", "lesson_03", "lesson_04", "lesson_05", "lesson_06", "lesson_06b", "lesson_06c", "lesson_07",
    "lesson_08", "lesson_09a", "lesson_09b", "lesson_09c", "lesson_10",
]
