"""The Chinese edition of the lessons, built from one source (`llm-course translate`).

Each English notebook `notebooks/<stem>.ipynb` has one translation file
`notebooks/zh/<stem>.md` holding the Simplified-Chinese text of its markdown cells:

    <!-- zh-CN translation of notebooks/<stem>.ipynb: edit here, then `llm-course translate build` -->

    <!-- cell: <cell id> sha: <sha12> -->
    ...the Chinese markdown of that cell...

`sha12` is the first 12 hex digits of the SHA-256 of the English cell's source when the
translation was written; when the English cell changes, its translation is *stale*. The built
notebook `notebooks/zh/<stem>.ipynb` is the English notebook with each markdown cell's source
replaced by its translation: code cells, ids and metadata are the English ones, so the Chinese
lessons cannot drift from the English code (tests/test_translations.py checks it).

A block still holding the English text (no Chinese in it, or the skeleton's UNTRANSLATED
marker) counts as missing, and the build keeps the English text for it; a stale translation is
kept in the build and reported. Not a lesson of the course: a tool for whoever keeps it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

ZH = "zh"
HEADER = ("<!-- zh-CN translation of notebooks/{stem}.ipynb: edit here, "
          "then `llm-course translate build` -->")
MARKER = re.compile(r"^<!-- cell: (?P<id>\S+) sha: (?P<sha>[0-9a-f]{12}) -->[ \t]*$", re.M)
UNTRANSLATED = "<!-- UNTRANSLATED: replace the English below with Chinese, then delete this line -->"
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_HIDDEN = re.compile(r"<!--.*?-->|```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$", re.S)


def sha12(source: str) -> str:
    """The key of an English cell's text: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:12]


def source_of(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def is_translated(text: str) -> bool:
    """A block counts as translated when it has Chinese outside code, maths and comments, and
    no longer carries the skeleton's UNTRANSLATED marker."""
    return UNTRANSLATED not in text and bool(_HAN.search(_HIDDEN.sub("", text)))


def _still_english(text: str, english_source: str) -> bool:
    """The block is no translation: the English text itself, marked, or without Chinese (a
    lesson whose English text quotes Chinese examples needs the first test)."""
    return text == _clean_block(english_source) or not is_translated(text)


def _clean_block(text: str) -> str:
    return re.sub(r"\A(?:[ \t]*\n)+", "", text).rstrip()


@dataclass
class Block:
    cell_id: str
    sha: str
    text: str
    line: int  # where its marker is in the .md file, from 1


def parse(text: str, name: str = "translation") -> list[Block]:
    """The blocks of a translation file, in file order.

    Raises ValueError naming the line when text sits before the first marker (other than the
    header line) or a cell id appears twice.
    """
    markers = list(MARKER.finditer(text))
    before = text[: markers[0].start() if markers else len(text)]
    stray = [ln for ln in before.splitlines()
             if ln.strip() and not ln.startswith("<!-- zh-CN translation of")]
    if stray:
        raise ValueError(f"{name}: text before the first '<!-- cell: ID sha: SHA -->' "
                         f"marker: {stray[0][:60]!r}; put every text under its cell's marker")
    blocks, seen = [], {}
    for i, m in enumerate(markers):
        end = markers[i + 1].start() if i + 1 < len(markers) else len(text)
        line = text.count("\n", 0, m.start()) + 1
        if m["id"] in seen:
            raise ValueError(f"{name}:{line}: cell {m['id']} is translated twice "
                             f"(first at line {seen[m['id']]}); keep one")
        seen[m["id"]] = line
        blocks.append(Block(m["id"], m["sha"], _clean_block(text[m.end():end]), line))
    return blocks


# ----------------------------------------------------------------------------------------------
# What a translation file says about its notebook


@dataclass
class Report:
    """The state of one notebook's translation; `problems()` says it in words."""

    stem: str
    markdown_cells: int = 0
    translated: list[str] = field(default_factory=list)   # cell ids, up to date
    stale: list[tuple[str, str]] = field(default_factory=list)     # (cell id, first English line)
    missing: list[tuple[str, str]] = field(default_factory=list)    # (cell id, first English line)
    orphans: list[str] = field(default_factory=list)      # translated ids the notebook lacks
    error: str | None = None                               # no or unreadable translation file
    built: str = "not built"                               # "up to date", "out of date", ...

    def problems(self) -> list[str]:
        if self.error:
            return [f"{self.stem}: {self.error}"]
        out = [f"{self.stem}: cell {cid} has no translation yet ({first!r}): its block is "
               "absent, still English or still marked UNTRANSLATED" for cid, first in self.missing]
        out += [f"{self.stem}: cell {cid} is stale: its English changed since it was "
                f"translated ({first!r}); update the translation, then its sha"
                for cid, first in self.stale]
        out += [f"{self.stem}: a translation for cell {cid}, which the notebook no longer has"
                for cid in self.orphans]
        if self.built != "up to date":
            out.append(f"{self.stem}: notebooks/{ZH}/{self.stem}.ipynb is {self.built}: "
                       "run llm-course translate build")
        return out


def _first_line(source: str) -> str:
    return next((ln.strip() for ln in source.splitlines() if ln.strip()), "")[:70]


def english_notebooks(english_dir: Path) -> list[Path]:
    """The lesson notebooks of `english_dir`, as `llm-course run` finds them."""
    from llm_course.runner import find_notebooks

    return find_notebooks(folder=Path(english_dir))


def translate_notebook(english: dict, blocks: list[Block], stem: str) -> tuple[dict, Report]:
    """The Chinese notebook built from `english` and `blocks`, and what is missing or stale."""
    report = Report(stem)
    by_id = {b.cell_id: b for b in blocks}
    nb = copy.deepcopy(english)
    ids = set()
    for cell in nb["cells"]:
        ids.add(cell.get("id"))
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
            continue
        if cell["cell_type"] != "markdown":
            continue
        report.markdown_cells += 1
        source, block = source_of(cell), by_id.get(cell.get("id"))
        if block is None or _still_english(block.text, source):
            report.missing.append((cell.get("id"), _first_line(source)))
            continue
        if block.sha != sha12(source):
            report.stale.append((cell["id"], _first_line(source)))
        else:
            report.translated.append(cell["id"])
        cell["source"] = block.text.splitlines(keepends=True)
    report.orphans = [b.cell_id for b in blocks if b.cell_id not in ids]
    return nb, report


def dumps(nb: dict) -> str:
    """A notebook as nbformat writes it (indent 1, sorted keys, UTF-8 text, final newline)."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def build(english_dir: Path, zh_dir: Path | None = None, write: bool = True) -> list[Report]:
    """Build `zh_dir/<stem>.ipynb` for every English notebook with a `zh_dir/<stem>.md`.

    With `write=False` nothing is written; each report's `built` says whether the committed
    Chinese notebook equals what the build would write. Notebooks without a translation file
    are reported with `error` set (and `build` leaves them alone).
    """
    english_dir = Path(english_dir)
    zh_dir = Path(zh_dir) if zh_dir is not None else english_dir / ZH
    reports = []
    for path in english_notebooks(english_dir):
        md, target = zh_dir / f"{path.stem}.md", zh_dir / f"{path.stem}.ipynb"
        english = _read_json(path)
        if not md.exists():
            _, report = translate_notebook(english, [], path.stem)
            report.error = (f"no translation file {ZH}/{md.name} "
                            f"(llm-course translate skeleton {path.stem})")
            reports.append(report)
            continue
        try:
            blocks = parse(md.read_text(encoding="utf-8"), f"{ZH}/{md.name}")
        except ValueError as err:
            _, report = translate_notebook(english, [], path.stem)
            report.error = str(err)
            reports.append(report)
            continue
        nb, report = translate_notebook(english, blocks, path.stem)
        text = dumps(nb)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if write and current != text:
            target.write_text(text, encoding="utf-8")
            current = text
        report.built = ("up to date" if current == text
                        else "out of date" if current is not None else "not built")
        reports.append(report)
    known = {p.stem for p in english_notebooks(english_dir)}
    for extra in sorted(zh_dir.glob("*.md")) + sorted(zh_dir.glob("*.ipynb")):
        if extra.stem not in known:
            reports.append(Report(extra.stem, error=f"{ZH}/{extra.name} has no English "
                                                    f"notebook {extra.stem}.ipynb: delete it"))
    return reports


def format_status(reports: list[Report]) -> str:
    """A table, one row per notebook: translated / stale / missing / orphans / built."""
    lines = [f"{'notebook':<26} {'cells':>5} {'done':>5} {'stale':>5} {'missing':>7} "
             f"{'orphan':>6}  built"]
    for r in reports:
        if r.error:
            lines.append(f"{r.stem:<26} {r.markdown_cells:>5}  {r.error}")
            continue
        lines.append(f"{r.stem:<26} {r.markdown_cells:>5} {len(r.translated):>5} "
                     f"{len(r.stale):>5} {len(r.missing):>7} {len(r.orphans):>6}  {r.built}")
    done = sum(len(r.translated) for r in reports)
    total = sum(r.markdown_cells for r in reports)
    lines.append(f"{done} of {total} markdown cells translated and up to date")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# A skeleton to translate into


def skeleton(english_path: Path, md_path: Path) -> tuple[str, list[str]]:
    """The translation file for `english_path`: the blocks of `md_path` where it exists (kept,
    stale ones with their old sha), a block with the English text and the UNTRANSLATED marker
    for every other markdown cell, in notebook order; translations of cells that no longer
    exist stay at the end (they are reported until deleted). Returns (text, ids added)."""
    english_path, md_path = Path(english_path), Path(md_path)
    old = parse(md_path.read_text(encoding="utf-8"), md_path.name) if md_path.exists() else []
    by_id = {b.cell_id: b for b in old}
    cells = _read_json(english_path)["cells"]
    out = [HEADER.format(stem=english_path.stem), ""]
    added, ids = [], set()
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        source, cid = source_of(cell), cell.get("id")
        ids.add(cid)
        block = by_id.get(cid)
        if block is not None and not _still_english(block.text, source):
            out += [f"<!-- cell: {cid} sha: {block.sha} -->", block.text, ""]
        else:
            added.append(cid)
            out += [f"<!-- cell: {cid} sha: {sha12(source)} -->", UNTRANSLATED,
                    source.rstrip(), ""]
    for block in old:
        if block.cell_id not in ids:
            out += [f"<!-- cell: {block.cell_id} sha: {block.sha} -->", block.text, ""]
    return "\n".join(out), added


# ----------------------------------------------------------------------------------------------
# Relative links in markdown (checked for the Chinese notebooks, one folder deeper)

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|"
                   r"<(?:img|a)\s[^>]*?(?:src|href)=\"([^\"]+)\"")


def broken_links(markdown: str, folder: Path) -> list[str]:
    """Relative link targets in `markdown` that do not exist as files under `folder`."""
    broken = []
    for m in _LINK.finditer(_HIDDEN_CODE.sub("", markdown)):
        target = m.group(1) or m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", target, re.I):  # http:, mailto:, an anchor
            continue
        if not (Path(folder) / target.split("#", 1)[0]).exists():
            broken.append(target)
    return broken


_HIDDEN_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
