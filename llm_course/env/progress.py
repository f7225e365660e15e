"""The learner's progress, kept on their own machine (shown in 00_setup and at every lesson's end).

One JSON file, `progress.json` in the course home (`$LLM_COURSE_HOME`, by default
`~/.cache/llm_course`), holds per lesson:

* `run`: when the lesson last recorded its results, at which scale, and its key records (the
  numbers, flags and short strings it passed to `llm_course.record`);
* `exercises`: per exercise id, `solved` (the learner's function passed), `reference` (it did
  not, and the notebook fell back to the reference solution) or `unsolved` (it did not, and the
  learner's version was kept);
* `quiz`: the last score (right, answered, total, which questions were wrong).

`llm_course.record`/`receipt` (env/record.py), `Exercise.check`/`answer` (exercises/registry.py)
and `Quiz.check` (exercises/quiz.py) write it; `llm-course progress` and
`llm_course.show_progress()` (llm_course/progress_table.py) read it.

Headless runs never touch the learner's file. When `LLM_COURSE_RESULTS_FILE` is set, which
`llm-course run` and the notebook tests (conftest.py) do for every notebook they execute, the
progress goes to `progress.json` beside that results file, in the run's output folder
(`results/metrics/progress.json` for `llm-course run --out results`).

Writing progress never stops a lesson: every write is atomic (a temporary file, then a rename),
and a file that cannot be read or written produces one clear message and the lesson goes on.
A damaged file is kept beside the new one as `progress.json.damaged`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from llm_course.env.paths import course_home

FILE_NAME = "progress.json"
RESULTS_ENV = "LLM_COURSE_RESULTS_FILE"  # the same variable as env/record.py's
STATUSES = ("solved", "reference", "unsolved")
VERSION = 1
_LESSON = re.compile(r"^(\d\d[a-z]?)(?:[._]|$)")
_state: dict[str, Any] = {"lesson": None, "pending": {}, "warned": set()}


class ProgressError(ValueError):
    """The progress file exists but cannot be read as progress (the message says why)."""


# ----------------------------------------------------------------------------------------------
# Where the file is, and which lesson this process is running


def headless() -> bool:
    """True inside `llm-course run` or the notebook tests (they set LLM_COURSE_RESULTS_FILE)."""
    return bool(os.environ.get(RESULTS_ENV))


def progress_file() -> Path:
    """The run's output folder when headless (see the module docstring), else the course home."""
    if headless():
        return Path(os.environ[RESULTS_ENV]).parent / FILE_NAME
    return course_home() / FILE_NAME


def lesson_id(name: str | None) -> str | None:
    """"02" for "02_pretraining_gpt", "02_pretraining_gpt.ipynb", a path or "02.perplexity"."""
    if not name:
        return None
    match = _LESSON.match(Path(str(name)).name)
    return match.group(1) if match else None


def _notebook_name() -> str | None:
    """The notebook this kernel runs, when the front end says so (JupyterLab, VS Code)."""
    if os.environ.get("JPY_SESSION_NAME"):
        return os.environ["JPY_SESSION_NAME"]
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    namespace = getattr(shell, "user_ns", {}) or {}
    return namespace.get("__session__") or namespace.get("__vsc_ipynb_file__")


def current_lesson() -> str | None:
    """The lesson being run: the headless results file's name, the notebook's name, or the lesson
    of the last exercise or quiz used in this process (None when nothing says)."""
    return (lesson_id(Path(os.environ[RESULTS_ENV]).stem) if headless() else None) \
        or lesson_id(_notebook_name()) or _state["lesson"]


def set_current_lesson(lesson: str) -> None:
    """Note the lesson whose exercise or quiz was just used; write a run noted before it was known."""
    _state["lesson"] = lesson
    if _state["pending"]:
        pending, _state["pending"] = _state["pending"], {}
        note_run(lesson, **pending)


# ----------------------------------------------------------------------------------------------
# Reading


def _empty() -> dict:
    return {"version": VERSION, "lessons": {}}


def read(path: Path | None = None) -> dict:
    """The progress in `path` (default `progress_file()`); an empty one when the file is missing.

    Raises ProgressError, naming the file and what is wrong, when it is not valid progress.
    """
    path = Path(path) if path is not None else progress_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _empty()
    except (OSError, UnicodeDecodeError) as err:
        raise ProgressError(f"cannot read {path}: {err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProgressError(f"{path} is damaged (not JSON: {err.msg} at line {err.lineno})") from err
    if not isinstance(data, dict) or not isinstance(data.get("lessons"), dict) or not all(
            isinstance(v, dict) for v in data["lessons"].values()):
        raise ProgressError(f"{path} is damaged (it has no 'lessons' table of the course's shape)")
    return data


def _say_once(message: str) -> None:
    if message not in _state["warned"]:
        _state["warned"].add(message)
        print(message)


# ----------------------------------------------------------------------------------------------
# Writing: read, change, write atomically; never raise


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: the rename is atomic
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _update(lesson: str, change) -> None:
    """Apply `change(entry)` to the lesson's entry and save; on any failure, say so once."""
    path = progress_file()
    try:
        try:
            data = read(path)
        except ProgressError as err:
            damaged = path.with_name(path.name + ".damaged")
            os.replace(path, damaged)
            _say_once(f"Progress: {err}. It is kept as {damaged.name} and a new progress file "
                      "begins; the lesson goes on.")
            data = _empty()
        change(data["lessons"].setdefault(lesson, {}))
        _write(path, data)
    except (OSError, TypeError, ValueError) as err:
        _say_once(f"Progress not saved to {path} ({type(err).__name__}: {err}); the lesson goes on.")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _key_records(metrics: dict) -> dict:
    """The numbers, flags and short strings of a lesson's records (tables and curves are left out)."""
    return {k: v for k, v in metrics.items()
            if isinstance(v, (bool, int, float)) or (isinstance(v, str) and len(v) <= 80)}


def note_run(lesson: str | None = None, *, scale: str | None = None,
             metrics: dict | None = None) -> None:
    """Note that `lesson` (default: the current one) recorded results now, at `scale`.

    When no lesson can be told yet, the note waits until an exercise or the quiz names it.
    """
    lesson = lesson or current_lesson()
    if lesson is None:
        pending = _state["pending"]
        if scale is not None:
            pending["scale"] = scale
        if metrics:
            pending["metrics"] = {**pending.get("metrics", {}), **metrics}
        return

    def change(entry: dict) -> None:
        run = entry.setdefault("run", {})
        run["when"] = _now()
        if scale is not None:
            run["scale"] = scale
        if metrics:
            run["records"] = {**run.get("records", {}), **_key_records(metrics)}

    _update(lesson, change)


def note_exercise(exercise_id: str, status: str) -> None:
    """Note an exercise's outcome: "solved", "reference" (fell back) or "unsolved"."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    lesson = lesson_id(exercise_id) or exercise_id

    def change(entry: dict) -> None:
        entry.setdefault("exercises", {})[exercise_id] = {"status": status, "when": _now()}

    _update(lesson, change)


def note_quiz(lesson: str, right: int, answered: int, total: int, wrong: list[int]) -> None:
    """Note a quiz score. An attempt with no answer never replaces one that had answers."""
    def change(entry: dict) -> None:
        if answered == 0 and (entry.get("quiz") or {}).get("answered"):
            return
        entry["quiz"] = {"right": right, "answered": answered, "total": total,
                         "wrong": list(wrong), "when": _now()}

    _update(lesson, change)
