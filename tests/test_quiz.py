"""End-of-lesson quizzes (llm_course/exercises/quiz.py): every bank's QUIZ is well formed and
passes its own answer key, every wrong answer has its own explanation, a malformed bank is
rejected with a message that says what is wrong, and `check` reports and scores as documented."""

import copy
import importlib

import pytest

from llm_course import exercises

quiz_module = importlib.import_module("llm_course.exercises.quiz")  # `exercises.quiz` is the function
BANKS = [name for name in quiz_module.bank_names()
         if hasattr(importlib.import_module(f"llm_course.exercises.lesson_{name}"), "QUIZ")]


@pytest.fixture(autouse=True)
def own_progress(tmp_path, monkeypatch):
    """Scores go to a throwaway course home, never a learner's or a headless run's."""
    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path))
    monkeypatch.delenv("LLM_COURSE_RESULTS_FILE", raising=False)
    monkeypatch.delenv(exercises.SOLVE_ENV, raising=False)


def good_question(n: int = 1) -> dict:
    return {"question": f"Question {n}?", "choices": {"a": "yes", "b": "no", "c": "maybe"},
            "answer": "a", "why": {"a": "because", "b": "not so", "c": "not quite"}}


def test_the_banks_are_found():
    # guards the tests below: a search that found no bank would pass them all
    assert {"00", "01", "02", "03", "04"} <= set(BANKS)


@pytest.mark.parametrize("lesson", BANKS)
def test_every_quiz_is_well_formed_and_reads_a_figure(lesson):
    questions = quiz_module.questions_of(lesson)
    assert quiz_module.validate(questions, f"lesson_{lesson}.QUIZ") == []
    assert any(q.get("figure") for q in questions), \
        f"lesson {lesson}: at least one question must read a figure the lesson draws ('figure')"


@pytest.mark.parametrize("lesson", BANKS)
def test_the_answer_key_passes(lesson, capsys):
    quiz = exercises.quiz(lesson)
    key = {n: q["answer"] for n, q in enumerate(quiz.questions, 1)}
    score = quiz.check(key, solve=False)
    out = capsys.readouterr().out
    assert (score.right, score.answered, score.total, score.wrong) == (len(quiz),) * 3 + ([],)
    assert out.count("RIGHT") == len(quiz) and "WRONG" not in out


@pytest.mark.parametrize("lesson", BANKS)
def test_every_wrong_answer_has_its_own_explanation(lesson, capsys):
    quiz = exercises.quiz(lesson)
    for n, q in enumerate(quiz.questions, 1):
        whys = [" ".join(w.split()) for w in q["why"].values()]
        assert len(set(whys)) == len(whys), f"lesson {lesson} question {n}: two choices share a why"
        for letter in q["choices"]:
            if letter == q["answer"]:
                continue
            score = quiz.check({n: letter}, solve=False)
            out = " ".join(capsys.readouterr().out.split())
            assert score.wrong == [n] and score.right == 0
            assert " ".join(q["why"][letter].split()) in out  # the chosen letter's explanation
            assert " ".join(q["why"][q["answer"]].split()) in out  # and the right one's


@pytest.mark.parametrize("break_it, message", [
    (lambda qs: qs[:3], "has 3 questions"),
    (lambda qs: qs + [good_question(i) for i in range(6)], "has 11 questions"),
    (lambda qs: qs[0]["why"].pop("b"), "no explanation ('why') for choice(s) ['b']"),
    (lambda qs: qs[1].update(answer="e"), "answer 'e' is not one of the choices"),
    (lambda qs: qs[2].update(hint="x"), "unknown keys ['hint']"),
    (lambda qs: qs[3].update(choices={"a": "only one"}), "at least two letters"),
    (lambda qs: qs[4].pop("question"), "needs a non-empty string 'question'"),
    (lambda qs: qs[0]["why"].update(z="extra"), "which are not choices"),
    (lambda qs: qs[1].update(figure=""), "'figure' names the figure"),
])
def test_a_malformed_bank_is_rejected_with_a_clear_message(break_it, message, monkeypatch):
    questions = [good_question(n) for n in range(1, 6)]
    assert quiz_module.validate(questions) == []
    broken = copy.deepcopy(questions)
    result = break_it(broken)
    broken = result if isinstance(result, list) else broken
    problems = quiz_module.validate(broken, "lesson_99.QUIZ")
    assert any(message in p for p in problems), problems
    monkeypatch.setattr(quiz_module, "questions_of", lambda lesson: broken)
    with pytest.raises(quiz_module.QuizError, match="lesson_99.QUIZ") as err:
        exercises.quiz("99")
    assert message in str(err.value)


def test_a_missing_bank_or_quiz_is_named():
    with pytest.raises(KeyError, match="no exercise bank for lesson '42'"):
        exercises.quiz("42")
    assert quiz_module.validate("not a list") == [
        "QUIZ must be a list of questions (dicts), not str"]


def test_check_reports_right_wrong_and_unanswered(capsys):
    quiz = quiz_module.Quiz("99", [good_question(n) for n in range(1, 6)])
    # letters are read loosely; a letter that is no choice counts as not answered
    score = quiz.check({1: "A", 2: " b) ", "3": "z", 9: "a"}, solve=False)
    out = capsys.readouterr().out
    assert (score.right, score.answered, score.total, score.wrong) == (1, 2, 5, [2])
    assert "1. RIGHT (a). because" in out
    assert "2. WRONG: you chose b) no" in out and "not so" in out and "The answer is a) yes" in out
    assert "'z' is not one of a, b, c: counted as not answered" in out
    assert "my_answers[9]: this quiz has questions 1 to 5 only" in out
    assert "4. not answered yet: put your letter in my_answers[4]" in out
    assert "Score: 1/5 right (2 answered)" in out

    # solve mode shows the answers of the unanswered questions, which still count as not answered
    score = quiz.check({1: None, 2: "a"}, solve=True)
    out = capsys.readouterr().out
    assert (score.right, score.answered) == (1, 1)
    assert "1. not answered. The answer is a) yes" in out and "because" in out
    assert "they count as not answered" in out
    assert str(score) == "1/5 right (1 answered)"

    with pytest.raises(TypeError, match="my_answers must be a dict"):
        quiz.check("abcab")


def test_show_prints_numbered_questions_and_the_figure(capsys):
    questions = [good_question(n) for n in range(1, 6)]
    questions[2]["figure"] = "the loss plot of section 3"
    quiz = quiz_module.Quiz("99", questions)
    quiz.show()  # no Jupyter kernel here: plain text
    out = capsys.readouterr().out
    assert out.startswith("Quiz 99: 5 questions")
    assert "3. Question 3?" in out and "(look at: the loss plot of section 3)" in out
    assert "   b) no" in out
    md = quiz.markdown()
    assert "**3.** Question 3?" in md and "*Look at: the loss plot of section 3.*" in md
    assert "- **c)** maybe" in md
    assert quiz._repr_markdown_() == md


def test_in_jupyter_the_questions_and_the_feedback_are_markdown(monkeypatch, capsys):
    import IPython.display

    shown = []
    monkeypatch.setattr(quiz_module, "_in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj.data))
    quiz = quiz_module.Quiz("99", [good_question(n) for n in range(1, 6)])
    quiz.show()
    score = quiz.check({1: "a", 2: "c"}, solve=True)
    assert capsys.readouterr().out == ""  # nothing printed as plain text
    questions, feedback = shown
    assert questions == quiz.markdown()
    assert "**1. RIGHT** (a). because" in feedback
    assert "**2. WRONG**: you chose **c)** maybe  \nnot quite  \nThe answer is **a)** yes" in feedback
    assert "**3. Not answered.** The answer is **a)** yes" in feedback
    assert f"**Score: {score}." in feedback
