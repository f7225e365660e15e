"""Every lesson ends the agreed way, and the glossary points at lessons that exist.

After its `llm_course.record(...)` cell a notebook has, in this order: `## Recap` (4 to 6
bullets), `## Quiz` (how to answer), the cell `quiz = exercises.quiz("NN")` / `quiz.show()`,
the cell with `my_answers` and `quiz.check(my_answers, solve=solve_exercises)`, `## Further
reading` (with a link to GLOSSARY.md), `llm_course.show_progress()`, and `## Where next` last.
The lesson's bank holds the quiz, 5 to 8 questions (tests/test_quiz.py checks each question).
A failure names the lesson and everything it is missing.
"""

import json
import re
from pathlib import Path

import pytest

from llm_course.exercises.quiz import MAX_QUESTIONS, MIN_QUESTIONS, questions_of

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]*.ipynb"))
GLOSSARY = ROOT / "GLOSSARY.md"
BULLET = re.compile(r"^\s*(?:[-*+]|\d+\.)\s+\S", re.M)
GLOSSARY_LINK = re.compile(r"\]\((?:\.\./)?GLOSSARY\.md(?:#[^)]*)?\)")


def lesson_of(path: Path) -> str:
    return path.stem.split("_")[0]


def cells_of(path: Path) -> list[tuple[str, str]]:
    return [(c["cell_type"], "".join(c["source"]))
            for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]


def section(cells: list[tuple[str, str]], heading: str) -> str | None:
    """The text under `heading` in the markdown cell that starts with it, up to the next heading."""
    for kind, src in cells:
        if kind == "markdown" and src.lstrip().startswith(heading):
            return re.split(r"^#{1,3} ", src.lstrip()[len(heading):], maxsplit=1, flags=re.M)[0]
    return None


def ending_problems(path: Path) -> list[str]:
    """What the end of the lesson lacks, in words (empty when it follows the agreed format)."""
    cells, lesson = cells_of(path), lesson_of(path)
    problems = []
    records = [i for i, (kind, src) in enumerate(cells)
               if kind == "code" and "llm_course.record(" in src]
    if not records:
        return ["no llm_course.record(...) cell"]
    tail = cells[records[-1] + 1:]
    tail = [(k, s) for k, s in tail if not (k == "code" and "llm_course.receipt(" in s
                                            and "record(" not in s)]  # a separate receipt cell
    expected = [
        ("markdown", lambda s: s.lstrip().startswith("## Recap"), "a '## Recap' markdown cell"),
        ("markdown", lambda s: s.lstrip().startswith("## Quiz"), "a '## Quiz' markdown cell"),
        ("code", lambda s: f'exercises.quiz("{lesson}")' in s and ".show()" in s,
         f'a code cell with quiz = exercises.quiz("{lesson}") and quiz.show()'),
        ("code", lambda s: "my_answers" in s and "check(my_answers, solve=solve_exercises)" in s,
         "a code cell with my_answers = {...} and quiz.check(my_answers, solve=solve_exercises)"),
        ("markdown", lambda s: s.lstrip().startswith("## Further reading"),
         "a '## Further reading' markdown cell"),
        ("code", lambda s: "llm_course.show_progress()" in s,
         "a code cell with llm_course.show_progress()"),
        ("markdown", lambda s: s.lstrip().startswith("## Where next"), "'## Where next' last"),
    ]
    if len(tail) != len(expected):
        problems.append(f"after the record cell: {len(tail)} cells, expected {len(expected)} "
                        "(recap, quiz, quiz cell, answers cell, further reading, progress, "
                        "where next)")
    for i, (kind, ok, what) in enumerate(expected):
        found = i < len(tail) and tail[i][0] == kind and ok(tail[i][1])
        if not found:
            problems.append(f"cell {i + 1} after the record cell should be {what}")
    recap = section(cells, "## Recap")
    if recap is not None and not 4 <= len(BULLET.findall(recap)) <= 6:
        problems.append(f"the recap has {len(BULLET.findall(recap))} bullets, not 4 to 6")
    reading = section(cells, "## Further reading")
    if reading is not None:
        if not GLOSSARY_LINK.search(reading):
            problems.append("further reading has no link to the glossary (../GLOSSARY.md)")
        if len(re.findall(r"https?://", reading)) < 2:
            problems.append("further reading lists fewer than 2 works with a link")
    params = [s for k, s in cells if k == "code" and "solve_exercises =" in s]
    if not params:
        problems.append("the parameters cell has no solve_exercises (quiz.check uses it)")
    try:
        n = len(questions_of(lesson))
        if not MIN_QUESTIONS <= n <= MAX_QUESTIONS:
            problems.append(f"lesson_{lesson}.QUIZ has {n} questions, not "
                            f"{MIN_QUESTIONS} to {MAX_QUESTIONS}")
    except KeyError as err:
        problems.append(f"no quiz: {err.args[0]}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_lesson_ends_with_recap_quiz_reading_and_progress(path):
    problems = ending_problems(path)
    assert not problems, f"{path.stem}:\n  " + "\n  ".join(problems)


def test_the_ending_check_can_fail(tmp_path):
    good = NOTEBOOKS[0]
    nb = json.loads(good.read_text(encoding="utf-8"))
    assert ending_problems(good) == []
    recap = next(c for c in nb["cells"] if "".join(c["source"]).startswith("## Recap"))
    recap["source"] = ["## Recap\n", "\n", "* only one idea\n"]
    nb["cells"] = [c for c in nb["cells"] if "show_progress" not in "".join(c["source"])]
    broken = tmp_path / good.name
    broken.write_text(json.dumps(nb), encoding="utf-8")
    problems = ending_problems(broken)
    assert "the recap has 1 bullets, not 4 to 6" in problems
    assert any("llm_course.show_progress()" in p for p in problems)


# ----------------------------------------------------------------------------------------------
# The glossary


def glossary_entries() -> list[tuple[str, str]]:
    """(term, the rest of its line) for every '- **term**' line of GLOSSARY.md."""
    text = GLOSSARY.read_text(encoding="utf-8")
    return re.findall(r"^- \*\*(.+?)\*\*(.*)$", text, re.M)


def test_the_glossary_has_the_course_terms():
    terms = {t.lower() for t, _ in glossary_entries()}
    assert len(terms) >= 50, f"only {len(terms)} terms"
    for needed in ("token", "perplexity", "masked-language modelling (mlm)", "lora rank",
                   "population stability index (psi)"):
        assert needed in terms, needed


@pytest.mark.parametrize("term, line", glossary_entries(), ids=[t for t, _ in glossary_entries()])
def test_every_glossary_term_links_to_a_lesson_that_exists(term, line):
    links = re.findall(r"\]\((notebooks/[^)#]+\.ipynb)(?:#[^)]*)?\)", line)
    assert links, f"{term}: no link to the lesson that teaches it"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"{term}: links to lessons that do not exist: {missing}"


def test_every_lesson_links_to_the_glossary():
    without = [p.stem for p in NOTEBOOKS
               if not any(GLOSSARY_LINK.search(s) for k, s in cells_of(p) if k == "markdown")]
    assert not without, f"no link to GLOSSARY.md in {without}"
