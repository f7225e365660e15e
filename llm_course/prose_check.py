"""What the course's text says against the reference run: numbers in the lessons' markdown that
the reference no longer holds (`llm-course reference stale`), and the README's laptop time
column, generated from the reference's wall times (`llm-course reference readme`, which
rewrites README.zh-CN.md's column too, in Chinese).

A number in prose is a claim. When the reference is re-made, `stale_numbers` lists the
decimals and percentages of each lesson's markdown that match no value of that lesson (nor
of any other lesson) in the reference, to one unit of their last digit, as a share or a
percentage, in seconds or in minutes. Numbers from papers and settings are listed too: the
list is for an author to read, not a test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from llm_course.env import reference as ref_mod

NUMBER = re.compile(r"(?<![\w.\-/^_])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(\s?%)?(?![\w.]*\d|e-?\d)")
_SKIP = re.compile(r"`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\]\([^)]*\)|https?://\S+|<[^>]+>", re.S)
README_ROW = re.compile(r"^\| \[(?P<stem>\d\d[a-z]?_\w+)\]\(notebooks/")
LAPTOP_COLUMN = 3  # | notebook | what you do | smoke | laptop (2-core CPU) | gpu |


# ----------------------------------------------------------------------------------------------
# Numbers in markdown


def numbers_in(text: str) -> list[tuple[str, float, int, bool]]:
    """(as written, value, decimals, is a percentage) of each decimal or percentage in `text`.

    Code spans, maths, links and HTML are skipped; whole numbers without % are too
    (step counts, years, section numbers).
    """
    found = []
    for match in NUMBER.finditer(_SKIP.sub(" ", text)):
        whole, frac, pct = match.groups()
        if not frac and not pct:
            continue
        value = float(whole.replace(",", "") + (frac or ""))
        found.append((match.group(0).strip(), value, len(frac) - 1 if frac else 0, bool(pct)))
    return found


def _values(obj) -> list[float]:
    if isinstance(obj, bool) or obj is None:
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in _values(x)]
    if isinstance(obj, (list, tuple)):
        return [v for x in obj for v in _values(x)]
    return []


def known_values(entry: dict) -> list[float]:
    """Every number of one lesson's reference entry: metrics, checks and bands, wall times."""
    return _values([entry.get("metrics"), entry.get("checks"), entry.get("wall_s"),
                    (entry.get("receipt") or {}).get("wall_s")])


def matches(value: float, decimals: int, known: list[float]) -> bool:
    """Whether `value`, written with `decimals` decimals, is one of `known` (a share, percent,
    seconds or minutes), to one unit of its last digit."""
    unit = 10.0 ** -decimals
    for v in known:
        for candidate in (v, v * 100, v / 60, abs(v), abs(v) * 100):
            if abs(candidate - value) <= unit + 1e-9:
                return True
    return False


def stale_numbers(notebooks: list[Path], reference: dict) -> list[dict]:
    """The numbers of each lesson's markdown that match nothing in the reference.

    Lessons that are not in the reference are skipped (nothing to compare with); "Further
    reading" cells are skipped (years, versions, papers' results).
    """
    everything = [v for e in reference.get("lessons", {}).values() for v in known_values(e)]
    found = []
    for path in notebooks:
        entry = ref_mod.lesson(reference, path.stem)
        if entry is None:
            continue
        own = known_values(entry)
        cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            text = "".join(cell["source"])
            if cell["cell_type"] != "markdown" or text.lstrip().startswith("## Further reading"):
                continue
            for written, value, decimals, _ in numbers_in(text):
                if not matches(value, decimals, own) and not matches(value, decimals, everything):
                    at = text.find(written)
                    context = " ".join(text[max(0, at - 60):at + len(written) + 40].split())
                    found.append({"lesson": path.stem, "cell": i, "number": written,
                                  "context": context})
    return found


def format_stale(found: list[dict], skipped: list[str]) -> str:
    """The list as text, grouped by lesson."""
    lines = []
    for item in found:
        lines.append(f"{item['lesson']} cell {item['cell']}: {item['number']:>8}   ...{item['context']}...")
    if skipped:
        lines.append(f"not in the reference, so not checked: {', '.join(skipped)}")
    lines.append(f"{len(found)} number(s) in markdown match nothing in the reference "
                 "(papers' figures and settings are listed too: read each one)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# The README's laptop time column


def time_text(entry: dict, provisional: bool, chinese: bool = False) -> str:
    """The README's laptop cell for one lesson of the reference, e.g. "8.6 min (reference run)"
    (`chinese`: as README.zh-CN.md says it, "8.6 分钟（参考运行）")."""
    seconds = entry.get("wall_s")
    receipt = entry.get("receipt") or {}
    load, cores = receipt.get("load_avg"), (receipt.get("device") or {}).get("cores")
    busy = bool(load and cores and load[1] > 1.25 * cores)
    if chinese:
        shown = f"{seconds:.0f} 秒" if seconds < 60 else f"{seconds / 60:.1f} 分钟"
        kind = "临时参考运行" if provisional else "参考运行"
        return f"{shown}（{kind}{f'，机器负载 {load[1]:.1f}，共 {cores} 核' if busy else ''}）"
    shown = f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"
    kind = "provisional reference" if provisional else "reference run"
    return f"{shown} ({kind}{f', machine load {load[1]:.1f} on {cores} cores' if busy else ''})"


def _split(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def readme_times(readme: str) -> dict[str, str]:
    """The laptop cell of each lesson row of the README's table."""
    out = {}
    for line in readme.splitlines():
        match = README_ROW.match(line)
        if match:
            out[match.group("stem")] = _split(line)[LAPTOP_COLUMN]
    return out


def expected_times(reference: dict, chinese: bool = False) -> dict[str, str]:
    """What the laptop cell of each lesson in the reference should say."""
    provisional = bool(reference.get("provisional"))
    return {stem: time_text(e, provisional, chinese)
            for stem, e in reference.get("lessons", {}).items() if e.get("wall_s") is not None}


def readme_mismatches(readme: str, reference: dict, chinese: bool = False) -> list[str]:
    """Lessons whose README laptop cell does not say the reference's wall time."""
    have = readme_times(readme)
    return [f"{stem}: README says {have.get(stem)!r}, the reference gives {want!r}"
            for stem, want in expected_times(reference, chinese).items() if have.get(stem) != want]


def update_readme(readme: str, reference: dict, chinese: bool = False) -> str:
    """The README (`chinese`: README.zh-CN.md) with the laptop cell of every lesson in the
    reference regenerated."""
    want = expected_times(reference, chinese)
    lines = []
    for line in readme.splitlines(keepends=True):
        match = README_ROW.match(line)
        if match and match.group("stem") in want:
            cells = _split(line)
            cells[LAPTOP_COLUMN] = want[match.group("stem")]
            line = "| " + " | ".join(cells) + " |" + ("\n" if line.endswith("\n") else "")
        lines.append(line)
    return "".join(lines)
