"""The Chinese edition (notebooks/zh, `llm-course translate`) cannot drift from the English one.

The built Chinese notebooks hold the English code cells unchanged (so CI runs each lesson's code
once: conftest.py skips notebooks/zh, and one Chinese notebook is executed here from its own
folder), every markdown cell has an up-to-date translation, the committed notebooks are what the
build writes, their relative links resolve, and README.zh-CN.md gives the README's commands.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from llm_course import translate
from llm_course.cli import main
from llm_course.env import links

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
ZH = NOTEBOOKS / translate.ZH
ENGLISH = translate.english_notebooks(NOTEBOOKS)
BUILT = sorted(p for p in ZH.glob("*.ipynb") if (NOTEBOOKS / p.name).exists())


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


# ----------------------------------------------------------------------------------------------
# The real notebooks


def test_the_chinese_notebooks_exist():
    assert BUILT, "no Chinese notebook built: llm-course translate build"


@pytest.mark.parametrize("path", BUILT, ids=lambda p: p.stem)
def test_code_cells_ids_and_metadata_are_the_english_ones(path):
    english = json.loads((NOTEBOOKS / path.name).read_text(encoding="utf-8"))
    chinese = json.loads(path.read_text(encoding="utf-8"))
    assert chinese["metadata"] == english["metadata"]
    assert (chinese["nbformat"], chinese["nbformat_minor"]) == (
        english["nbformat"], english["nbformat_minor"])
    assert [(c["id"], c["cell_type"]) for c in chinese["cells"]] == [
        (c["id"], c["cell_type"]) for c in english["cells"]]
    for zh, en in zip(chinese["cells"], english["cells"], strict=True):
        assert zh["metadata"] == en["metadata"], zh["id"]
        if en["cell_type"] == "code":
            assert zh["source"] == en["source"], f"code cell {en['id']} differs"


@pytest.mark.parametrize("path", ENGLISH, ids=lambda p: p.stem)
def test_every_markdown_cell_has_an_up_to_date_translation(path):
    # fails while a lesson is still being translated: `llm-course translate status` says where
    report = next(r for r in translate.build(NOTEBOOKS, ZH, write=False) if r.stem == path.stem)
    problems = [p for p in report.problems() if "ipynb is" not in p]  # the build: next test
    assert not problems, "\n".join(problems)


def test_committed_chinese_notebooks_are_what_the_build_writes(tmp_path):
    for md in ZH.glob("*.md"):
        shutil.copy(md, tmp_path / md.name)
    reports = translate.build(NOTEBOOKS, tmp_path)
    built = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert built == sorted(p.name for p in ZH.glob("*.ipynb")), (
        "notebooks/zh holds other notebooks than the translations build: "
        "llm-course translate build (and delete the orphans)")
    stale = [name for name in built
             if (tmp_path / name).read_bytes() != (ZH / name).read_bytes()]
    assert not stale, f"out of date, run llm-course translate build: {stale}"
    assert all(r.built == "up to date" for r in reports if not r.error)


@pytest.mark.parametrize("path", BUILT, ids=lambda p: p.stem)
def test_chinese_notebook_is_clean(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    for cell in nb["cells"]:
        assert cell.get("id"), "every cell has an id"
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, cell["id"]


@pytest.mark.parametrize("path", BUILT, ids=lambda p: p.stem)
def test_relative_links_in_a_chinese_notebook_resolve(path):
    broken = {c["id"]: translate.broken_links("".join(c["source"]), ZH)
              for c in cells(path) if c["cell_type"] == "markdown"}
    broken = {cid: found for cid, found in broken.items() if found}
    assert not broken, f"links that lead nowhere from notebooks/zh (one more ../?): {broken}"


@pytest.mark.parametrize("path", BUILT, ids=lambda p: p.stem)
def test_colab_badges_open_the_chinese_notebook(path):
    text = "".join("".join(c["source"]) for c in cells(path) if c["cell_type"] == "markdown")
    for url in re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", text):
        assert url == links.colab_url(f"{translate.ZH}/{path.name}"), url


@pytest.mark.parametrize("path", BUILT, ids=lambda p: p.stem)
def test_a_chinese_lesson_ends_the_agreed_way(path):
    # the headings keep their English start ("## Recap · 回顾"), which the checks look for; the
    # glossary link gains one ../ (the link itself is checked above)
    from test_lesson_endings import ending_problems, section

    problems = [p for p in ending_problems(path) if "glossary" not in p]
    reading = section([(c["cell_type"], "".join(c["source"])) for c in cells(path)],
                      "## Further reading") or ""
    if "](../../GLOSSARY.md" not in reading:
        problems.append("further reading has no link to ../../GLOSSARY.md")
    assert not problems, f"{path.stem}:\n  " + "\n  ".join(problems)


def test_the_link_check_can_fail():
    assert translate.broken_links("[glossary](../GLOSSARY.md)", ZH) == ["../GLOSSARY.md"]
    assert translate.broken_links("[glossary](../../GLOSSARY.md#t) `[x](nowhere.md)`", ZH) == []
    assert translate.broken_links('<img src="fig.png"> [web](https://x.org/a.md)', ZH) == [
        "fig.png"]


# ----------------------------------------------------------------------------------------------
# Running from notebooks/zh


CWD_DEPENDENT = re.compile(
    r"""(?:open|Path|savefig|read_csv|read_text|imread|load|listdir|glob)\(\s*f?["'](?![/~]|https?:)"""
    r"""[^"']*[./][^"']*["']|["']\.{1,2}/""")


def test_no_code_cell_reads_or_writes_a_path_relative_to_its_folder():
    # a Chinese notebook runs one folder deeper than its English twin; relative paths would break
    found = [(nb.stem, line.strip()) for nb in ENGLISH for c in cells(nb)
             if c["cell_type"] == "code"
             for line in "".join(c["source"]).splitlines() if CWD_DEPENDENT.search(line)]
    assert not found, found
    assert CWD_DEPENDENT.search('fig.savefig("figures/loss.png")')
    assert CWD_DEPENDENT.search('df = pd.read_csv("../data.csv")')
    assert not CWD_DEPENDENT.search('fig.savefig("/tmp/06b.png"); load("minilm", task="x")')


def test_a_chinese_notebook_runs_from_its_own_folder(tmp_path):
    """00_setup at smoke with notebooks/zh as its working folder (as Jupyter and the runner do),
    recording what the English one must record; about 15 s."""
    from test_notebooks import EXPECTED

    from llm_course.runner import run_notebook

    path = ZH / "00_setup.ipynb"
    entry = run_notebook(path, tmp_path, "smoke", timeout=300)
    assert entry["status"] == "ok", entry.get("error")
    expected = EXPECTED["00_setup"]
    assert expected["keys"] <= set(entry["metrics"]) and expected["check"](entry["metrics"])
    executed = json.loads((tmp_path / path.name).read_text(encoding="utf-8"))
    assert any(translate.is_translated("".join(c["source"]))
               for c in executed["cells"] if c["cell_type"] == "markdown"), "the Chinese text"


def test_ci_collects_each_lesson_once():
    """`pytest tests notebooks --nbval-lax` skips notebooks/zh; naming the folder runs it."""
    def collected(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                               "--nbval-lax", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=120).stdout

    everything = collected("notebooks")
    assert "notebooks/00_setup.ipynb::" in everything and "notebooks/zh/" not in everything
    assert "notebooks/zh/00_setup.ipynb::" in collected("notebooks/zh/00_setup.ipynb")


# ----------------------------------------------------------------------------------------------
# The mechanism on a notebook of its own


def _notebook(tmp_path: Path, texts: dict[str, str]) -> Path:
    """notebooks/00_tiny.ipynb in tmp_path: the given markdown cells, each followed by code."""
    folder = tmp_path / "notebooks"
    (folder / translate.ZH).mkdir(parents=True, exist_ok=True)
    nb_cells = []
    for cid, text in texts.items():
        nb_cells.append({"cell_type": "markdown", "id": cid, "metadata": {},
                         "source": text.splitlines(keepends=True)})
        nb_cells.append({"cell_type": "code", "id": f"{cid}-code", "metadata": {"tags": []},
                         "execution_count": None, "outputs": [], "source": ["x = 1\n", "x"]})
    nb = {"cells": nb_cells, "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}}}
    path = folder / "00_tiny.ipynb"
    path.write_text(translate.dumps(nb), encoding="utf-8")
    return path


def _fill(md: Path, chinese: dict[str, str]) -> None:
    """Replace each skeleton block's English text with its Chinese."""
    text = md.read_text(encoding="utf-8")
    for cid, zh in chinese.items():
        text = re.sub(rf"(<!-- cell: {cid} sha: \w+ -->\n){re.escape(translate.UNTRANSLATED)}\n"
                      r"(?:(?!<!-- cell:).)*", lambda m, zh=zh: m.group(1) + zh + "\n\n", text,
                      flags=re.S)
    md.write_text(text, encoding="utf-8")


def test_skeleton_build_and_a_stale_translation(tmp_path, capsys):
    english = _notebook(tmp_path, {"intro": "# Tokens\n\nA model reads tokens.",
                                   "end": "## Where next\n\nLesson 01."})
    folder, md = english.parent, english.parent / "zh" / "00_tiny.md"
    args = ["translate", "--notebooks", str(folder)]

    assert main([*args[:1], "skeleton", "00", *args[1:]]) == 0
    [report] = translate.build(folder, write=False)
    assert [cid for cid, _ in report.missing] == ["intro", "end"], "English placeholders"
    _fill(md, {"intro": "# 词元\n\n模型读的是词元（token）。", "end": "## Where next · 下一步\n\n第 01 课。"})
    assert main([*args[:1], "build", *args[1:]]) == 0
    built = json.loads((folder / "zh" / "00_tiny.ipynb").read_text(encoding="utf-8"))
    assert "".join(built["cells"][0]["source"]) == "# 词元\n\n模型读的是词元（token）。"
    assert built["cells"][1] == json.loads(english.read_text())["cells"][1]
    assert main([*args[:1], "build", "--check", *args[1:]]) == 0
    capsys.readouterr()

    # the English text changes: the translation is stale, named with its first English line
    nb = json.loads(english.read_text())
    nb["cells"][0]["source"] = ["# Tokens, again\n", "\n", "A model reads tokens, not letters."]
    english.write_text(translate.dumps(nb), encoding="utf-8")
    [report] = translate.build(folder, write=False)
    assert report.stale == [("intro", "# Tokens, again")] and report.translated == ["end"]
    assert main([*args[:1], "build", "--check", *args[1:]]) == 1
    out = capsys.readouterr().out
    assert "cell intro is stale" in out and "# Tokens, again" in out and "1 problem(s)" in out

    # the English code changes: the committed Chinese notebook is out of date until rebuilt
    nb["cells"][1]["source"] = ["x = 2\n", "x"]
    english.write_text(translate.dumps(nb), encoding="utf-8")
    assert main([*args[:1], "build", "--check", *args[1:]]) == 1
    assert "00_tiny.ipynb is out of date" in capsys.readouterr().out
    assert main([*args[:1], "build", *args[1:]]) == 0
    built = json.loads((folder / "zh" / "00_tiny.ipynb").read_text(encoding="utf-8"))
    assert built["cells"][1]["source"] == ["x = 2\n", "x"]

    # a new cell is missing, a deleted one leaves an orphan; the skeleton keeps the work done
    nb["cells"] = nb["cells"][:2] + [{"cell_type": "markdown", "id": "new", "metadata": {},
                                      "source": ["## Recap"]}]
    english.write_text(translate.dumps(nb), encoding="utf-8")
    [report] = translate.build(folder, write=False)
    assert report.missing == [("new", "## Recap")] and report.orphans == ["end"]
    assert main([*args[:1], "skeleton", "00_tiny", *args[1:]]) == 0
    blocks = {b.cell_id: b for b in translate.parse(md.read_text(encoding="utf-8"))}
    assert blocks["intro"].text == "# 词元\n\n模型读的是词元（token）。", "translation kept"
    assert blocks["intro"].sha != translate.sha12("".join(nb["cells"][0]["source"])), "still stale"
    assert blocks["new"].text == f"{translate.UNTRANSLATED}\n## Recap" and "end" in blocks
    main([*args[:1], "status", *args[1:]])
    row = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("00_tiny"))
    assert row.split()[1:6] == ["2", "0", "1", "1", "1"], row  # cells, done, stale, missing, orphan


def test_a_block_in_english_or_still_marked_counts_as_missing():
    assert translate.is_translated("## Recap · 回顾\n\n* 词元是模型读的单位。")
    assert not translate.is_translated("## Recap\n\n* A model reads tokens (`词元`).")
    assert not translate.is_translated(f"{translate.UNTRANSLATED}\n## 回顾")


def test_an_english_block_quoting_chinese_counts_as_missing(tmp_path):
    english = _notebook(tmp_path, {"intro": "# Names\n\nWordPiece turns 东京 into `[UNK]`."})
    md = english.parent / "zh" / "00_tiny.md"
    sha = translate.sha12("# Names\n\nWordPiece turns 东京 into `[UNK]`.")
    md.write_text(f"<!-- cell: intro sha: {sha} -->\n# Names\n\nWordPiece turns 东京 into "
                  "`[UNK]`.\n", encoding="utf-8")
    [report] = translate.build(english.parent, write=False)
    assert [cid for cid, _ in report.missing] == ["intro"]


def test_a_malformed_translation_file_is_named_not_crashed_on(tmp_path):
    english = _notebook(tmp_path, {"intro": "# Tokens"})
    md = english.parent / "zh" / "00_tiny.md"
    md.write_text("stray text\n<!-- cell: intro sha: 000000000000 -->\n# 词元\n", encoding="utf-8")
    [report] = translate.build(english.parent, write=False)
    assert "text before the first" in report.error
    md.write_text("<!-- cell: intro sha: 000000000000 -->\n# 词元\n"
                  "<!-- cell: intro sha: 000000000000 -->\n# 词元\n", encoding="utf-8")
    [report] = translate.build(english.parent, write=False)
    assert "translated twice" in report.error and "00_tiny.md:3" in report.error


# ----------------------------------------------------------------------------------------------
# README.zh-CN.md


def _fenced(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


def _commands(text: str) -> list[str]:
    """Inline code that is a command: `.venv/bin/...`, `llm-course ...`, `conda ...`."""
    return re.findall(r"`((?:\.venv/bin/|llm-course |conda |apt-get )[^`]*)`", text)


def test_the_chinese_readme_gives_the_same_commands():
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    assert _fenced(chinese) == _fenced(english) and len(_fenced(english)) >= 3
    assert _commands(chinese) == _commands(english)
    assert re.findall(r"<!-- ci:\w+ -->", chinese) == re.findall(r"<!-- ci:\w+ -->", english)
    assert "(README.md)" in chinese[:400], "a line at the top links back to README.md"
    assert "(README.zh-CN.md)" in english[:600], "README.md links to the Chinese edition"


def test_the_chinese_readme_has_the_lessons_table_and_its_links_resolve():
    english = (ROOT / "README.md").read_text(encoding="utf-8")
    chinese = (ROOT / "README.zh-CN.md").read_text(encoding="utf-8")
    lessons = re.findall(r"\]\(notebooks/([\w.]+\.ipynb)\)", english)
    assert re.findall(r"\]\(notebooks/zh/([\w.]+\.ipynb)\)", chinese) == lessons
    for url in re.findall(r"https://colab\.research\.google\.com/github/[^)\s]+", chinese):
        assert url == links.colab_url("zh/" + url.rsplit("/", 1)[1])
    assert translate.broken_links(chinese, ROOT) == []


def test_the_chinese_lessons_table_gives_the_same_numbers():
    # a time re-measured in README.md must reach README.zh-CN.md too
    def numbers_by_lesson(text: str) -> dict[str, list[str]]:
        rows = re.finditer(r"^\| \[(\w+)\]\(notebooks/[^|]*(\|.*)$", text, re.M)
        return {m[1]: sorted(re.findall(r"\d+(?:\.\d+)?", m[2])) for m in rows}

    english = numbers_by_lesson((ROOT / "README.md").read_text(encoding="utf-8"))
    chinese = numbers_by_lesson((ROOT / "README.zh-CN.md").read_text(encoding="utf-8"))
    assert len(english) >= 10
    differ = {k: (english[k], chinese.get(k)) for k in english if chinese.get(k) != english[k]}
    assert not differ, f"lesson rows whose numbers differ (English, Chinese): {differ}"


def test_translate_usage_errors_get_one_line(tmp_path, capsys):
    english = _notebook(tmp_path, {"intro": "# Tokens"})
    folder = str(english.parent)
    assert main(["translate", "status", "00_tiny", "--notebooks", folder]) == 2
    assert main(["translate", "skeleton", "--notebooks", folder]) == 2
    assert main(["translate", "skeleton", "07", "--notebooks", folder]) == 2
    assert main(["translate", "build", "--notebooks", str(tmp_path)]) == 2  # no notebooks there
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 4 and all(e.startswith("llm-course: ") for e in errors), errors
