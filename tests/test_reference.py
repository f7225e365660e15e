"""The reference run (reference/laptop.json): its bands hold its values, the notebooks still use
those bands, the README's laptop times are its times; making it, comparing a run with it,
check_band's table beside it, and the stale-number lister."""

import ast
import functools
import json
import math
from pathlib import Path

import pytest

from llm_course import cli, prose_check
from llm_course.compare import compare, problems
from llm_course.env import record, reference

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = reference.load(ROOT / "reference" / "laptop.json")
CHECKS = [(stem, name, check) for stem, entry in (REFERENCE or {}).get("lessons", {}).items()
          for name, check in entry["checks"].items()]


def test_the_reference_exists_and_says_where_it_came_from():
    assert REFERENCE is not None, "reference/laptop.json is missing: llm-course reference make"
    assert REFERENCE["scale"] == "laptop" and REFERENCE["lessons"]
    assert {"made", "ran", "commit", "machine", "provisional"} <= set(REFERENCE)
    for stem, entry in REFERENCE["lessons"].items():
        assert (ROOT / "notebooks" / f"{stem}.ipynb").exists(), stem
        assert entry["receipt"]["scale"] == "laptop" and entry["wall_s"] > 0, stem


@pytest.mark.parametrize("stem,name,check", CHECKS, ids=[f"{s}: {n}" for s, n, _ in CHECKS])
def test_each_band_contains_the_reference_value(stem, name, check):
    if check["band"] is None:
        pytest.skip(f"the reference run of {stem} predates this check's band")
    assert reference.in_band(check["value"], check["band"]), (
        f"{stem}: the reference's {name} = {check['value']} lies outside its band {check['band']}")


def _band_literals(source: str) -> set[tuple]:
    """Every (low, high) pair written as a literal: numbers or None, a minus sign allowed."""
    def number(node):
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (int, float))):
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) \
                and isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float)):
            return -node.operand.value
        return "?"

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Tuple) and len(node.elts) == 2:
            pair = tuple(number(e) for e in node.elts)
            if "?" not in pair:
                found.add(pair)
    return found


@functools.cache
def _package_band_literals() -> set[tuple]:
    """Bands kept in the package rather than in a notebook (lesson 04's NER_SOURCES)."""
    return set().union(*(_band_literals(path.read_text(encoding="utf-8"))
                         for path in (ROOT / "llm_course").rglob("*.py")))


def _same_band(a, b) -> bool:
    return all((x is None and y is None) or (x is not None and y is not None and math.isclose(x, y))
               for x, y in zip(a, b))


@pytest.mark.parametrize("stem", sorted((REFERENCE or {}).get("lessons", {})))
def test_the_reference_bands_are_still_the_notebooks_bands(stem):
    """A band edited in a notebook must be edited in the reference too, after checking that it
    still holds the reference value (the test above then checks it)."""
    cells = json.loads((ROOT / "notebooks" / f"{stem}.ipynb").read_text())["cells"]
    literals = set()
    for cell in (c for c in cells if c["cell_type"] == "code"):
        lines = "".join(cell["source"]).splitlines()  # IPython magics become `pass`
        literals |= _band_literals("\n".join(
            line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!"))
            else line for line in lines))
    literals |= _package_band_literals()
    for name, check in REFERENCE["lessons"][stem]["checks"].items():
        if check["band"] is not None:
            assert any(_same_band(check["band"], lit) for lit in literals), (
                f"{stem}: the reference's band {check['band']} for {name!r} is no longer in the "
                "notebook: write the new band into reference/laptop.json (if it holds the value)")


def test_the_readme_laptop_times_are_the_reference_times():
    wrong = prose_check.readme_mismatches((ROOT / "README.md").read_text(), REFERENCE)
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    wrong += prose_check.readme_mismatches(chinese, REFERENCE, chinese=True)
    assert not wrong, "run `llm-course reference readme`:\n" + "\n".join(wrong)


def test_the_chinese_time_says_the_same_in_chinese():
    quiet = {"wall_s": 522.0, "receipt": {"load_avg": [1.9, 2.0, 2.0], "device": {"cores": 2}}}
    busy = {"wall_s": 45.0, "receipt": {"load_avg": [5.0, 5.0, 5.0], "device": {"cores": 2}}}
    assert prose_check.time_text(quiet, False) == "8.7 min (reference run)"
    assert prose_check.time_text(quiet, False, chinese=True) == "8.7 分钟（参考运行）"
    assert prose_check.time_text(busy, True) == "45 s (provisional reference, machine load 5.0 on 2 cores)"
    assert prose_check.time_text(busy, True, chinese=True) == "45 秒（临时参考运行，机器负载 5.0，共 2 核）"


# ----------------------------------------------------------------------------------------------
# The mechanism, on made-up runs


def _entry(scale="laptop", status="ok", **metrics):
    return {"status": status, "wall_s": 90.0, "metrics": metrics or {"acc": 0.8},
            "receipt": {"scale": scale, "wall_s": 80.0, "device": {"kind": "cpu"}},
            "checks": {"test accuracy": {"value": metrics.get("acc", 0.8), "scale": scale,
                                         "bands": {"smoke": None, "laptop": [0.75, 0.85]}}}}


def test_make_keeps_only_lessons_that_ran_for_real_at_the_scale():
    run = {"02_a": _entry(acc=0.81), "03_b": _entry(status="failed"), "04_c": _entry(scale="smoke"),
           "05_d": {**_entry(), "dry_run": True}}
    made = reference.make([run, {"06_e": _entry(acc=0.79)}], provisional="a test")
    assert sorted(made["lessons"]) == ["02_a", "06_e"] and made["provisional"] == "a test"
    check = made["lessons"]["02_a"]["checks"]["test accuracy"]
    assert check == {"value": 0.81, "band": [0.75, 0.85], "metric": "acc"}
    with pytest.raises(ValueError, match="no lesson ran"):
        reference.make([{"03_b": _entry(status="failed")}])


def test_checks_of_older_runs_are_read_from_the_printed_lines(tmp_path):
    lines = ["OK: fp32 test accuracy = 0.8362 is inside the expected band [0.8, 0.87] for scale 'laptop'.\n",
             "OUTSIDE THE BAND: loss = 7.1 is not in [-inf, 6.25], the band measured for scale 'laptop'. Check\n",
             "KL = 15.7: no band was measured at scale 'laptop'; compare with the other scales: {}\n"]
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": lines}]}]}
    (tmp_path / "08_x.ipynb").write_text(json.dumps(nb))
    checks = reference.checks_from_outputs(tmp_path / "08_x.ipynb", "laptop")
    assert checks["fp32 test accuracy"]["bands"]["laptop"] == [0.8, 0.87]
    assert checks["loss"]["bands"]["laptop"] == [None, 6.25] and checks["loss"]["inside"] is False
    assert checks["KL"] == {"value": 15.7, "bands": {"laptop": None}, "scale": "laptop", "inside": None}
    entry = {**_entry(accuracy_fp32=0.83621), "checks": None, "output": str(tmp_path / "08_x.ipynb")}
    kept = reference.lesson_from_run(entry, "laptop")["checks"]["fp32 test accuracy"]
    assert kept == {"value": 0.83621, "band": [0.8, 0.87], "metric": "accuracy_fp32"}  # full precision


def _results_and_reference(tmp_path):
    run = {"02_a": _entry(acc=0.81, loss=3.2), "03_b": _entry(acc=0.78)}
    ref = reference.write(reference.make([run]), tmp_path / "ref.json")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(run))
    return run, ref, results


def test_compare_passes_a_run_and_fails_a_doctored_copy_naming_the_metric(tmp_path, capsys):
    run, ref, results = _results_and_reference(tmp_path)
    assert cli.main(["compare", str(results), "--reference", str(ref)]) == 0
    assert "OK: all 2 metrics with a band lie inside it" in capsys.readouterr().out
    run["03_b"]["metrics"]["acc"] = 0.60  # moved out of its band, as a broken lesson would
    doctored = tmp_path / "doctored.json"
    doctored.write_text(json.dumps(run))
    assert cli.main(["compare", str(doctored), "--reference", str(ref)]) == 1
    out = capsys.readouterr().out
    assert "03_b: acc (test accuracy) = 0.6 is outside its band (0.75 to 0.85)" in out
    assert "02_a" not in out.split("problem(s):")[1]


def test_compare_of_the_reference_with_itself_passes():
    """The committed reference, read as a run, is inside every band it carries."""
    as_run = {stem: {**e, "status": "ok", "checks": {
        name: {"value": c["value"], "bands": {"laptop": c["band"]}} for name, c in e["checks"].items()}}
        for stem, e in REFERENCE["lessons"].items()}
    rows = compare(as_run, REFERENCE)
    assert not problems(rows), problems(rows)
    assert all(r.value == r.reference for r in rows), "every metric compared with itself"
    assert sum(r.verdict == "inside" for r in rows) == sum(c["band"] is not None for *_, c in CHECKS)


def test_compare_names_a_failed_lesson(tmp_path):
    _, ref, _ = _results_and_reference(tmp_path)
    rows = compare({"02_a": {"status": "failed", "wall_s": 3}}, reference.load(ref))
    assert [r.verdict for r in problems(rows)] == ["lesson failed"]


def test_check_band_records_and_shows_one_table_per_cell(tmp_path, monkeypatch):
    _, ref, _ = _results_and_reference(tmp_path)
    monkeypatch.setenv(reference.REFERENCE_ENV, str(ref))
    monkeypatch.setenv(record.RESULTS_ENV, str(tmp_path / "metrics" / "02_a.json"))
    monkeypatch.setattr(record, "_RESULTS", {"metrics": {}, "receipt": {}})
    monkeypatch.setattr(record, "_TABLE", {"cell": None, "rows": [], "handle": None})
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", repr(obj)))

    class Shell:
        execution_count = 7

    import IPython.display

    monkeypatch.setattr(record, "_ipython", lambda: Shell())
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, display_id=False: shown.append(("new", repr(obj))) or Handle())
    assert record.check_band("test accuracy", 0.79, {"laptop": (0.75, 0.85)}, "laptop") is True
    assert record.check_band("loss", 9.0, {"laptop": (None, 4.0)}, "laptop") is False
    assert [kind for kind, _ in shown] == ["new", "update"]  # one table for the cell
    table = shown[-1][1]
    assert "your run (laptop)" in table and "reference run (laptop)" in table
    assert "0.79 (inside)" in table and "0.81" in table and "0.75 to 0.85" in table
    assert "9 (OUTSIDE)" in table and "not in the reference" in table
    saved = json.loads((tmp_path / "metrics" / "02_a.json").read_text())
    assert saved["checks"]["loss"] == {"value": 9.0, "scale": "laptop", "inside": False,
                                       "bands": {"laptop": [None, 4.0]}}
    Shell.execution_count = 8  # the next cell starts a new table
    record.check_band("loss", 3.0, {"laptop": (None, 4.0)}, "laptop")
    assert shown[-1][0] == "new"


def test_stale_lists_the_numbers_the_reference_no_longer_holds(tmp_path):
    _, ref, _ = _results_and_reference(tmp_path)
    md = ("Measured at `laptop`: 81 % accuracy (81.0 %, or 0.81), a loss of 3.2, then 4.75; "
          "it took 1.5 min; `0.99` is code and $0.42$ maths.")
    nb = {"cells": [{"cell_type": "markdown", "source": [md]},
                    {"cell_type": "markdown", "source": ["## Further reading\n\nBERT 2.13 (2019)"]}]}
    (tmp_path / "02_a.ipynb").write_text(json.dumps(nb))
    (tmp_path / "09_z.ipynb").write_text(json.dumps(nb))  # not in the reference: skipped
    found = prose_check.stale_numbers([tmp_path / "02_a.ipynb", tmp_path / "09_z.ipynb"],
                                      reference.load(ref))
    assert [(f["lesson"], f["number"]) for f in found] == [("02_a", "4.75")]


def test_the_readme_column_is_regenerated_and_then_checked(tmp_path, capsys):
    _, ref, _ = _results_and_reference(tmp_path)
    row = "| [{0}](notebooks/{0}.ipynb) | does things | 10 s | ~2 min (measured 1.9) | not measured |\n"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n" + "".join(row.format(stem) for stem in ("02_a", "03_b", "09_z")))
    args = ["reference", "readme", "--reference", str(ref), "--readme", str(readme)]
    assert cli.main([*args, "--check"]) == 1
    assert "02_a: README says '~2 min (measured 1.9)'" in capsys.readouterr().out
    assert cli.main(args) == 0
    text = readme.read_text()
    assert "| 10 s | 1.5 min (reference run) | not measured |" in text
    assert row.format("09_z") in text  # a lesson outside the reference keeps its cell
    assert cli.main([*args, "--check"]) == 0


def test_check_band_compares_numpy_and_torch_scalars(monkeypatch):
    import numpy as np
    import torch

    monkeypatch.setattr(record, "_RESULTS", {"metrics": {}, "receipt": {}})
    monkeypatch.delenv(record.RESULTS_ENV, raising=False)
    band = {"smoke": (0.4, 0.6)}
    assert record.check_band("a", np.float32(0.5), band, "smoke") is True
    assert record.check_band("b", torch.tensor(0.7), band, "smoke") is False
    assert record.check_band("c", np.int64(1), band, "smoke") is False
    assert record.recorded()["checks"]["a"]["value"] == 0.5
