"""Exercises of 08_deployment and 09_applications (see `llm_course.exercises` for the mechanism).

Each exercise has a reference solution, hidden test inputs, typical mistakes and hints;
notebooks reach it with `llm_course.exercises.get(id)`.
"""

from __future__ import annotations

from llm_course.exercises import Case, Exercise, register  # noqa: F401
