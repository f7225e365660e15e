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


# The Chinese notebooks (notebooks/zh, built by `llm-course translate build`) run the very code
# cells of the English ones, which tests/test_translations.py proves cell by cell, and one of
# them is executed from its own folder there. So `pytest tests notebooks --nbval-lax` runs
# each lesson's code once: the folder is skipped unless a path inside it is named, as in
# `pytest notebooks/zh --nbval-lax`.
TRANSLATIONS = Path(__file__).resolve().parent / "notebooks" / "zh"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    def inside(path: Path) -> bool:
        return path == TRANSLATIONS or TRANSLATIONS in path.parents

    named = any(inside(Path(str(arg).split("::")[0]).resolve()) for arg in config.args)
    return True if inside(collection_path.resolve()) and not named else None  # None: pytest's rules


def _notebook_of(item: pytest.Item) -> Path | None:
    path = Path(str(item.fspath))
    return path if path.suffix == ".ipynb" else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Unit tests first, then the notebooks' cells, then the checks of what they recorded,
    then the browser tests (each group keeps its own order)."""
    config.notebooks_under_nbval = {nb.stem for nb in map(_notebook_of, items) if nb}

    items.sort(key=lambda item: GROUPS.index(_group(item)))  # sort is stable


GROUPS = ("unit tests", "notebooks", "notebook records", "browser tests")
_seconds_by_group: dict[str, float] = dict.fromkeys(GROUPS, 0.0)


def _group(item_or_report) -> str:
    nodeid = item_or_report.nodeid
    if nodeid.split("::")[0].endswith(".ipynb"):
        return "notebooks"
    if nodeid.startswith("tests/test_notebooks.py"):
        return "notebook records"
    if nodeid.startswith("tests/browser/"):
        return "browser tests"
    return "unit tests"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds_by_group[_group(report)] += report.duration  # setup, call and teardown


def pytest_terminal_summary(terminalreporter) -> None:
    """Where the time went, per group (CI's budget is watched per group)."""
    spent = ", ".join(f"{name} {s:.0f} s" for name, s in _seconds_by_group.items() if s)
    terminalreporter.write_line(f"time by group: {spent}")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before nbval starts a notebook's kernel, point its records at that notebook's file."""
    notebook = _notebook_of(item)
    if notebook:
        os.environ["LLM_COURSE_RESULTS_FILE"] = str(
            Path(os.environ["LLM_COURSE_RECORDS_DIR"]) / f"{notebook.stem}.json")
