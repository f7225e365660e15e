"""The learner's progress (llm_course/env/progress.py, shown by llm_course/progress_table.py):
solving, falling back and a quiz round-trip to `llm-course progress`; a damaged, missing or
unwritable file gives one clear message and never stops a lesson; headless runs write to the
run's output folder, never the learner's course home."""

import json
import math

import pytest

import llm_course
from llm_course import exercises
from llm_course.cli import main
from llm_course.env import progress, record
from llm_course.progress_table import next_step, report


def placeholder(*args):
    raise NotImplementedError  # your code here


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh course home; no headless results file; nothing remembered from other tests."""
    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path / "home"))
    for name in ("LLM_COURSE_RESULTS_FILE", "JPY_SESSION_NAME", exercises.SOLVE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(progress, "_state", {"lesson": None, "pending": {}, "warned": set()})
    monkeypatch.setattr(record, "_RESULTS", {"metrics": {}, "receipt": {}})
    return tmp_path / "home"


def row_of(text: str, stem: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(stem))


def learner_does_lesson_02(capsys) -> None:
    """Solve one exercise, skip the other, record, answer the quiz with question 2 wrong."""
    exercises.get("02.next_token_loss").answer(exercises.get("02.next_token_loss").reference)
    exercises.get("02.perplexity").answer(placeholder, solve=True)
    skipped = capsys.readouterr().out
    assert skipped.count("-> Not solved yet. Using the reference solution for 02.perplexity") == 1
    llm_course.record(val_loss_final=6.0, scaling=[{"a": 1.0}], note="short")
    llm_course.receipt(seed=0, scale="smoke", show=False)
    quiz = exercises.quiz("02")
    answers = {n: q["answer"] for n, q in enumerate(quiz.questions, 1)}
    answers[2] = next(k for k in quiz.questions[1]["choices"] if k != quiz.questions[1]["answer"])
    quiz.check(answers, solve=True)
    capsys.readouterr()


def test_round_trip_to_llm_course_progress(home, capsys):
    learner_does_lesson_02(capsys)
    stored = json.loads((home / "progress.json").read_text())["lessons"]["02"]
    assert stored["exercises"]["02.next_token_loss"]["status"] == "solved"
    assert stored["exercises"]["02.perplexity"]["status"] == "reference"
    assert {k: stored["quiz"][k] for k in ("right", "answered", "total", "wrong")} == \
        {"right": 6, "answered": 7, "total": 7, "wrong": [2]}
    assert stored["run"]["scale"] == "smoke"
    assert stored["run"]["records"] == {"val_loss_final": 6.0, "note": "short"}  # no tables

    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    row = row_of(out, "02_pretraining_gpt")
    assert "smoke" in row and "1/2 (1 reference)" in row and "6/7" in row
    assert "solve 02.perplexity" in row
    assert "run the lesson" in row_of(out, "03_pretraining_bert")
    assert f"Your progress ({home / 'progress.json'})" in out
    assert "Next: 00_setup: run the lesson." in out

    # now solve the skipped one: the next step becomes the quiz question answered wrongly
    exercises.get("02.perplexity").check(math.exp)
    capsys.readouterr()
    llm_course.show_progress()
    row = row_of(capsys.readouterr().out, "02_pretraining_gpt")
    assert "2/2" in row and "reference" not in row and "reread quiz question 2" in row


def test_next_step_goes_from_running_to_done():
    ids, total = ["02.a", "02.b"], 7
    solved = {"02.a": {"status": "solved"}, "02.b": {"status": "solved"}}
    quiz = {"right": 7, "answered": 7, "total": 7, "wrong": []}
    assert next_step({}, ids, total) == "run the lesson"
    assert next_step({"run": {"scale": "laptop"}}, ids, total) == "solve 02.a (+1 more)"
    run = {"run": {"scale": "laptop"}, "exercises": solved}
    assert next_step(run, ids, total) == "answer the quiz"
    assert next_step({**run, "quiz": {**quiz, "answered": 3}}, ids, total) == "finish the quiz"
    assert next_step({**run, "quiz": {**quiz, "wrong": [2, 5]}}, ids, total) == \
        "reread quiz questions 2, 5"
    assert next_step({**run, "quiz": quiz}, ids, total) == "done"
    assert next_step({**run, "quiz": quiz, "run": {"scale": "smoke"}}, ids, total).startswith(
        "run at laptop scale")


def test_a_quiz_left_blank_does_not_erase_an_answered_one(home, capsys):
    quiz = exercises.quiz("01")
    quiz.check({1: quiz.questions[0]["answer"]}, solve=False)
    quiz.check({}, solve=True)  # e.g. the notebook run again from the top
    capsys.readouterr()
    assert progress.read()["lessons"]["01"]["quiz"]["answered"] == 1


def test_a_record_before_the_lesson_is_known_waits_for_it(home, capsys):
    llm_course.record(fit_loss=3.0)  # 00_setup records before its quiz names the lesson
    assert not (home / "progress.json").exists()
    exercises.quiz("00")
    assert progress.read()["lessons"]["00"]["run"]["records"] == {"fit_loss": 3.0}


def test_the_notebook_name_tells_the_lesson(home, monkeypatch):
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/llm-course/notebooks/03_pretraining_bert.ipynb")
    llm_course.record(masked_accuracy=0.1)
    assert progress.read()["lessons"]["03"]["run"]["records"] == {"masked_accuracy": 0.1}


def test_a_damaged_file_is_kept_aside_with_one_message(home, capsys):
    home.mkdir()
    (home / "progress.json").write_text('{"lessons": {"02": ')
    assert main(["progress"]) == 1
    out = capsys.readouterr().out
    assert "Progress cannot be shown" in out and "is damaged (not JSON" in out
    assert "00_setup" in out  # the table is still printed, every lesson "never" run

    exercises.get("01.chars_per_token").check(placeholder)  # a TODO: nothing to note
    for _ in range(2):  # the lesson goes on, and the message comes once
        exercises.get("02.perplexity").answer(placeholder, solve=True)
    out = capsys.readouterr().out
    assert out.count("Progress: ") == 1 and "progress.json.damaged" in out
    assert "the lesson goes on" in out
    assert (home / "progress.json.damaged").read_text() == '{"lessons": {"02": '
    assert progress.read()["lessons"]["02"]["exercises"]["02.perplexity"]["status"] == "reference"

    (home / "progress.json").write_text('{"lessons": []}')  # JSON, but not progress
    with pytest.raises(progress.ProgressError, match="no 'lessons' table"):
        progress.read()


def test_a_missing_file_says_how_it_appears(home, capsys):
    assert main(["progress"]) == 0
    out = capsys.readouterr().out
    assert "No progress recorded yet" in out and "start with 00_setup" in out
    llm_course.show_progress()  # the notebook function says the same, and does not raise
    assert "No progress recorded yet" in capsys.readouterr().out


def test_an_unwritable_home_never_stops_a_lesson(home, capsys, monkeypatch):
    blocker = home.parent / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LLM_COURSE_HOME", str(blocker / "home"))
    reference = exercises.get("02.perplexity").answer(placeholder, solve=True)
    assert reference is exercises.get("02.perplexity").reference
    out = capsys.readouterr().out
    assert "Progress not saved to" in out and "the lesson goes on" in out


def test_headless_runs_write_to_the_run_folder_only(home, tmp_path, monkeypatch, capsys):
    results = tmp_path / "results" / "metrics" / "02_pretraining_gpt.json"
    monkeypatch.setenv("LLM_COURSE_RESULTS_FILE", str(results))
    llm_course.record(val_loss_final=6.0)  # the lesson comes from the results file's name
    exercises.get("02.perplexity").answer(placeholder, solve=True)
    capsys.readouterr()
    run_progress = results.parent / "progress.json"
    assert progress.progress_file() == run_progress
    lesson = progress.read(run_progress)["lessons"]["02"]
    assert lesson["run"]["records"] == {"val_loss_final": 6.0}
    assert lesson["exercises"]["02.perplexity"]["status"] == "reference"
    assert not (home / "progress.json").exists()  # the learner's file is untouched

    text, readable = report(run_progress)
    assert readable and "0/2 (1 reference)" in row_of(text, "02_pretraining_gpt")
    assert "headless run" in text
    monkeypatch.delenv("LLM_COURSE_RESULTS_FILE")
    assert main(["progress", "--file", str(run_progress)]) == 0
    assert "0/2 (1 reference)" in row_of(capsys.readouterr().out, "02_pretraining_gpt")
