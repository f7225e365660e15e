"""Test-wide settings, applied before anything imports transformers or datasets.

The tests run offline (as CI and a classroom without Wi-Fi do) and at the smallest scale.
The notebook kernels that nbval and papermill start inherit these variables.
"""

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("LLM_COURSE_SCALE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Course checkpoints built during the tests go to a throwaway home, shared by the
# notebooks of one test session (lesson 06 reuses the GPT that lesson 02 pretrained).
os.environ.setdefault("LLM_COURSE_HOME", tempfile.mkdtemp(prefix="llm_course_test_home_"))
# Each notebook that nbval executes records into its own file here; tests/test_notebooks.py
# checks those records after the notebooks ran (each notebook executes once per run).
os.environ.setdefault("LLM_COURSE_RECORDS_DIR", tempfile.mkdtemp(prefix="llm_course_records_"))


def _notebook_of(item: pytest.Item) -> Path | None:
    path = Path(str(item.fspath))
    return path if path.suffix == ".ipynb" else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Unit tests first, then the notebooks' cells, then the checks of what they recorded,
    then the browser tests (each group keeps its own order)."""
    config.notebooks_under_nbval = {nb.stem for nb in map(_notebook_of, items) if nb}

    def group(item: pytest.Item) -> int:
        if _notebook_of(item):
            return 1
        if item.nodeid.startswith("tests/test_notebooks.py"):
            return 2
        if item.nodeid.startswith("tests/browser/"):
            return 3
        return 0

    items.sort(key=group)  # sort is stable


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before nbval starts a notebook's kernel, point its records at that notebook's file."""
    notebook = _notebook_of(item)
    if notebook:
        os.environ["LLM_COURSE_RESULTS_FILE"] = str(
            Path(os.environ["LLM_COURSE_RECORDS_DIR"]) / f"{notebook.stem}.json")
