"""The lessons and the package agree.

* A module that says it is "taught in NN" is imported by notebook NN.
* The cold start that rebuilds `course-gpt`/`course-bert` for later lessons runs the very
  functions that notebooks 02/03 call, not a second copy of their cells.
* The `notebooks` field of every dataset in the catalogue names the lessons that load it.
"""

import ast
import inspect
import json
import re
from pathlib import Path

import pytest

from llm_course import course_models
from llm_course.data.loaders import DATASETS
from llm_course.pretraining import bert, gpt

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "llm_course"
NOTEBOOKS = {p.stem.split("_")[0]: p for p in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))}
MODULES = {".".join(p.relative_to(ROOT).with_suffix("").parts): p
           for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"}


def notebook_code(stem: str) -> str:
    cells = json.loads(NOTEBOOKS[stem].read_text(encoding="utf-8"))["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    return re.sub(r"^(\s*)[!%].*$", r"\1pass", "\n".join(code), flags=re.M)  # shell/magic lines


def exported_names() -> dict[str, str]:
    """`llm_course.<name>` -> the module it comes from (what `llm_course/__init__` re-exports)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    return {a.asname or a.name: node.module for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module for a in node.names}


def modules_used_by(stem: str) -> set[str]:
    """The course modules notebook `stem` imports, or reaches as `llm_course.<name>`."""
    used, exported = set(), exported_names()
    for node in ast.walk(ast.parse(notebook_code(stem))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("llm_course"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                used.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            used.update(a.name for a in node.names)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "llm_course" and node.attr in exported):
            used.add(exported[node.attr])
    return used


def taught_in(module: str) -> list[str]:
    """The lessons a module's docstring says teach it ("taught in 04 and 05")."""
    doc = ast.get_docstring(ast.parse(MODULES[module].read_text(encoding="utf-8"))) or ""
    lessons = []
    for phrase in re.findall(r"taught in ([^;)]*)", " ".join(doc.split())):
        lessons += re.findall(r"\b(\d\d[a-c]?)(?:_\w+)?\b", phrase)
    return lessons


def test_the_taught_in_lines_are_found():
    assert taught_in("llm_course.finetuning.tasks") == ["04", "05"]
    assert "llm_course.finetuning.lora" in modules_used_by("06")
    assert "llm_course.env.doctor" in modules_used_by("00")  # via llm_course.doctor()
    claimed = sum(bool(taught_in(m)) for m in MODULES)
    assert claimed >= 25, f"only {claimed} modules say where they are taught"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if taught_in(m)))
def test_taught_in_names_a_notebook_that_imports_the_module(module):
    for lesson in taught_in(module):
        assert lesson in NOTEBOOKS, f"{module} says 'taught in {lesson}': no such notebook"
        assert module in modules_used_by(lesson), (
            f"{module} says it is taught in {NOTEBOOKS[lesson].name}, which never imports it")


def called_names(source: str) -> set[str]:
    tree = ast.parse(source)
    return {n.func.id if isinstance(n.func, ast.Name) else n.func.attr
            for n in ast.walk(tree) if isinstance(n, ast.Call)
            and isinstance(n.func, (ast.Name, ast.Attribute))}


@pytest.mark.parametrize("lesson, recipe, build, steps, model_class", [
    ("02", gpt.pretrain_gpt, course_models.build_course_gpt,
     {"gpt_data", "recipe_config", "train_gpt", "lm_unigram_entropy"}, "GPT2LMHeadModel"),
    ("03", bert.pretrain_bert, course_models.build_course_bert,
     {"bert_data", "frozen_masks", "recipe_config", "train_bert"}, "SparseHeadBertForMaskedLM"),
])
def test_cold_start_runs_the_lessons_own_functions(lesson, recipe, build, steps, model_class):
    in_recipe = called_names(inspect.getsource(recipe))
    in_notebook = called_names(notebook_code(lesson))
    assert steps <= in_recipe, f"{recipe.__name__} skips {steps - in_recipe}"
    assert steps <= in_notebook, f"notebook {lesson} skips {steps - in_notebook}"
    assert {recipe.__name__, "save_course_model", "course_tokenizer"} <= called_names(
        inspect.getsource(build))
    assert "save_course_model" in in_notebook and "course_tokenizer" in in_notebook
    # no second copy: neither builds the model or calls fit itself
    for name, calls in (("the notebook", in_notebook), (recipe.__name__, in_recipe)):
        assert model_class not in calls, f"{name} builds {model_class} itself"
    assert "fit" not in in_recipe


def test_the_pretraining_functions_build_the_models_they_say():
    # the shared train_* functions are where the model is made and trained: one copy
    assert {"new_gpt", "fit"} <= called_names(inspect.getsource(gpt.train_gpt))
    assert {"new_bert", "fit"} <= called_names(inspect.getsource(bert.train_bert))


# lessons that load a dataset through a step of the package rather than by its name
LOADED_THROUGH = {"gpt_data": ("corpus",), "bert_data": ("corpus",),
                  "instruction_mix": ("faq", "sentiment", "topics")}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_catalogue_notebooks_are_the_lessons_that_load_the_dataset(name):
    listed = set(re.findall(r"\d\d[a-c]?", DATASETS[name].notebooks))
    loading = set()
    for stem in NOTEBOOKS:
        code = notebook_code(stem)
        if re.search(rf"[\"']{re.escape(name)}[\"']", code) or any(
                name in LOADED_THROUGH[f] for f in called_names(code) & set(LOADED_THROUGH)):
            loading.add(stem)
    assert listed == loading, (f"dataset {name!r}: the catalogue says {sorted(listed)}, the "
                               f"notebooks that load it are {sorted(loading)}")
