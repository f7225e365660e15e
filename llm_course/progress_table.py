"""The learner's progress as a table, one row per lesson (taught in 00_setup).

`llm-course progress` and `llm_course.show_progress()` print the same table: when each lesson
last ran and at which scale, exercises solved out of the lesson's total, the quiz score, and
the next thing to do. The progress itself is stored by `llm_course.env.progress` (which says
where, and what headless runs do); this module only reads it, with the course's list of
lessons, exercises and quizzes.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from llm_course.env import progress


def lessons() -> dict[str, str]:
    """{lesson id: notebook stem} for the notebooks of this clone, in course order.

    Without a notebooks folder (the package installed on its own), the lessons that have an
    exercise bank, named by their id.
    """
    from llm_course.exercises.quiz import bank_names
    from llm_course.runner import find_notebooks

    try:
        books = find_notebooks()
    except (FileNotFoundError, ValueError):
        books = []
    found = {progress.lesson_id(b.stem): b.stem for b in books if progress.lesson_id(b.stem)}
    return found or {name: name for name in bank_names()}


def _course_facts(lesson: str) -> tuple[list[str], int | None]:
    """The lesson's exercise ids and the number of its quiz questions (None without a quiz)."""
    from llm_course import exercises
    from llm_course.exercises.quiz import questions_of

    ids = [i for i in exercises.ids() if progress.lesson_id(i) == lesson]
    try:
        total = len(questions_of(lesson))
    except KeyError:
        total = None
    return ids, total


def _when(stamp: str | None) -> str:
    if not stamp:
        return "never"
    try:
        return _dt.datetime.fromisoformat(stamp).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return str(stamp)[:16]


def next_step(entry: dict, exercise_ids: list[str], quiz_total: int | None) -> str:
    """What to do next in one lesson, the most useful thing first."""
    run = entry.get("run")
    if not run:
        return "run the lesson"
    done = entry.get("exercises", {})
    unsolved = [i for i in exercise_ids if done.get(i, {}).get("status") != "solved"]
    if unsolved:
        more = f" (+{len(unsolved) - 1} more)" if len(unsolved) > 1 else ""
        return f"solve {unsolved[0]}{more}"
    quiz = entry.get("quiz") or {}
    if quiz_total and not quiz.get("answered"):
        return "answer the quiz"
    if quiz_total and quiz.get("answered", 0) < quiz.get("total", quiz_total):
        return "finish the quiz"
    if quiz.get("wrong"):
        numbers = ", ".join(str(n) for n in quiz["wrong"])
        return f"reread quiz question{'s' if len(quiz['wrong']) > 1 else ''} {numbers}"
    if run.get("scale") == "smoke":
        return "run at laptop scale (smoke numbers mean nothing)"
    return "done"


def rows(data: dict) -> list[dict]:
    """One row per lesson of the course (and any other lesson the progress names)."""
    known = lessons()
    stems = {**known, **{k: k for k in data.get("lessons", {}) if k not in known}}
    out = []
    for lesson in sorted(stems):
        entry = data.get("lessons", {}).get(lesson, {})
        ids, quiz_total = _course_facts(lesson)
        run = entry.get("run") or {}
        done = entry.get("exercises", {})
        solved = sum(done.get(i, {}).get("status") == "solved" for i in ids)
        fell_back = sum(done.get(i, {}).get("status") == "reference" for i in ids)
        quiz = entry.get("quiz") or {}
        if quiz.get("answered"):
            quiz_text = f"{quiz['right']}/{quiz['total']}"
            if quiz["answered"] < quiz["total"]:
                quiz_text += f" ({quiz['answered']} answered)"
        else:
            quiz_text = "-" if quiz_total is None else "not taken"
        exercises_text = f"{solved}/{len(ids)}" if ids else "-"
        if fell_back:
            exercises_text += f" ({fell_back} reference)"
        out.append({"lesson": stems[lesson], "last run": _when(run.get("when")),
                    "scale": run.get("scale", "-"), "exercises solved": exercises_text,
                    "quiz": quiz_text, "next": next_step(entry, ids, quiz_total)})
    return out


def format_table(table: list[dict]) -> str:
    """The rows as an aligned text table."""
    if not table:
        return "(no lessons found)"
    columns = list(table[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in table)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns),
             "  ".join("-" * widths[c] for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in table]
    return "\n".join(line.rstrip() for line in lines)


def report(path: str | Path | None = None) -> tuple[str, bool]:
    """The text `llm-course progress` prints, and whether the file could be read."""
    path = Path(path) if path is not None else progress.progress_file()
    head, ok = f"Your progress ({path})", True
    try:
        data = progress.read(path)
        if not path.exists():
            head = (f"No progress recorded yet: {path} does not exist. It appears when you run a "
                    "lesson (start with 00_setup).")
    except progress.ProgressError as err:
        data, ok = {"lessons": {}}, False
        head = (f"Progress cannot be shown: {err}. The next lesson you run keeps it as "
                f"{path.name}.damaged and starts a new one.")
    if progress.headless() and path == progress.progress_file():
        head += "\n(A headless run: this is the run's progress, not the learner's.)"
    table = rows(data)
    todo = next((r for r in table if r["next"] != "done"), None)
    tail = f"\nNext: {todo['lesson']}: {todo['next']}." if todo else "\nEvery lesson is done."
    return "\n".join([head, "", format_table(table), tail]), ok


def show_progress(path: str | Path | None = None) -> None:
    """Print the learner's progress table (the same as `llm-course progress`)."""
    print(report(path)[0])
