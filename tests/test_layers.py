"""The package is layered like the course: a module imports only from its own layer or a
lower one, and no two modules import each other (directly or round a longer loop).

Every import counts, including those inside functions: hiding an upward import in a
function body still ties the lower layer to the higher one.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "llm_course"

# Lowest first. A top-level module (llm_course/cli.py, ...) is in the last layer.
LAYERS = ["env", "data", "models", "training", "pretraining", "finetuning", "deployment",
          "applications", "exercises", "(top)"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return LAYERS.index("(top)")


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The course modules that `path` imports anywhere in its body."""
    me = module_name(path) if PACKAGE in path.parents else path.stem
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from llm_course.x import y` may import the module llm_course.x.y
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        else:
            continue
        found.update(n for n in names if n in modules and n != me)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, set(files)) for name, path in files.items()}


GRAPH = import_graph()


def test_the_graph_sees_the_layers():
    # guards the test itself: a parser that found nothing would pass everything below
    assert {"llm_course.training.loop", "llm_course.env.scale"} <= set(GRAPH)
    assert "llm_course.training.config" in GRAPH["llm_course.training.loop"]
    assert layer_of("llm_course.env.scale") < layer_of("llm_course.training.loop")
    assert layer_of("llm_course.cli") == len(LAYERS) - 1


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_from_a_higher_layer(module):
    upward = sorted(m for m in GRAPH[module] if layer_of(m) > layer_of(module)
                    and not (module == "llm_course" and layer_of(m) == len(LAYERS) - 1))
    assert not upward, (f"{module} (layer {LAYERS[layer_of(module)]}) imports from higher "
                        f"layers: {upward}")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other (Tarjan's strongly connected components)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles():
    # `llm_course/__init__` is left out: importing any submodule runs it first, so
    # "llm_course imports x" is no cycle of the code's making.
    graph = {m: deps - {"llm_course"} for m, deps in GRAPH.items() if m != "llm_course"}
    assert not find_cycles(graph), f"modules that import each other: {find_cycles(graph)}"


def test_the_checks_can_fail(tmp_path):
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    # imports inside functions count
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    from llm_course.env import scale\n")
    b.write_text("import llm_course.training.loop\n")
    modules = {"llm_course.env.scale", "llm_course.training.loop"}
    assert imported_modules(a, modules) == {"llm_course.env.scale"}
    assert imported_modules(b, modules) == {"llm_course.training.loop"}


def test_top_level_import_stays_cheap():
    import subprocess
    import sys

    code = ("import sys, llm_course; heavy = [m for m in ('torch', 'transformers', 'datasets') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"`import llm_course` loads {out.stdout.strip()}"
