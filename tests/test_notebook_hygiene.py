"""Committed notebooks are clean, start the same way and can be run by papermill."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def hygiene_problems(nb: dict) -> list[str]:
    """What is wrong with a notebook as committed (empty list when clean)."""
    problems = []
    if nb.get("metadata", {}).get("kernelspec", {}).get("name") != "python3":
        problems.append("kernelspec must be python3")
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {i} has outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {i} has an execution count")
    return problems


def test_the_check_catches_a_dirty_notebook():
    nb = json.loads(NOTEBOOKS[0].read_text())
    assert hygiene_problems(nb) == []
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "hi\n"}]
    code["execution_count"] = 3
    nb["metadata"]["kernelspec"]["name"] = "venv"
    assert len(hygiene_problems(nb)) == 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
    assert hygiene_problems(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_follows_the_lesson_pattern(path):
    cells = json.loads(path.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert "google.colab" in code[0], "the first code cell installs the course on Colab"
    assert "llm_course.doctor()" in code[1], "the second code cell is the doctor"
    params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters' (papermill)"
    assert "scale = None" in "".join(params[0]["source"])
    assert "llm_course.receipt(" in "\n".join(code), "every lesson ends with a receipt"
