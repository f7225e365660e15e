"""The course's reference run: what each lesson recorded in one full `laptop` run (shown beside
every lesson's bands by `check_band`).

`reference/laptop.json` (at the repository's root) holds, per lesson, the metrics and the
receipt of one `llm-course run --scale laptop`, the runner's wall time, and every
`check_band` the lesson made (its value, its band, and the metric that holds the same
number). It also says which commit the run came from, when and on what machine. A
provisional file says so in its `"provisional"` field.

* `make(results)` turns one or more `results.json` of `llm-course run` into that format
  (`llm-course reference make RESULTS.json`). Runs made before `check_band` recorded its
  checks are read from the printed lines of the executed notebooks instead.
* `load()` reads it (`$LLM_COURSE_REFERENCE` names another file); `lesson(reference, "02")`
  gives one lesson's entry (`check_band`'s table reads the current lesson's checks from it).

The good-result table of every lesson, `llm-course compare`, `report.html`, the README's
time column and `llm-course reference stale` all read this one file.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import subprocess
from pathlib import Path

from llm_course.env import progress

REFERENCE_ENV = "LLM_COURSE_REFERENCE"
REPO_ROOT = Path(__file__).resolve().parents[2]
FORMAT = 1
# check_band's printed lines, for runs made before it recorded its checks
_CHECK_LINE = re.compile(
    r"^(?:OK: (?P<ok>.+?) = (?P<v1>\S+) is inside the expected band \[(?P<lo1>\S+), (?P<hi1>\S+)\]"
    r"|OUTSIDE THE BAND: (?P<out>.+?) = (?P<v2>\S+) is not in \[(?P<lo2>\S+), (?P<hi2>\S+)\]"
    r"|(?P<none>.+?) = (?P<v3>\S+): no band was measured at scale)")


def default_path() -> Path:
    """`$LLM_COURSE_REFERENCE`, else `reference/laptop.json` in the course's repository."""
    return Path(os.environ.get(REFERENCE_ENV) or REPO_ROOT / "reference" / "laptop.json")


def load(path: str | Path | None = None) -> dict | None:
    """The reference run, or None when there is no file (a wheel without the repository)."""
    path = Path(path) if path else default_path()
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"the reference {path} cannot be read ({err}): re-make it with "
                         "`llm-course reference make RESULTS.json`") from err
    if not isinstance(data, dict) or not isinstance(data.get("lessons"), dict):
        raise ValueError(f"the reference {path} has no 'lessons' table: re-make it with "
                         "`llm-course reference make RESULTS.json`")
    return data


def lesson(reference: dict | None, name: str | None) -> dict | None:
    """The reference entry of a lesson, by stem ("02_pretraining_gpt") or id ("02")."""
    if not reference or not name:
        return None
    lessons = reference.get("lessons", {})
    if name in lessons:
        return lessons[name]
    wanted = progress.lesson_id(name)
    return next((e for stem, e in lessons.items() if progress.lesson_id(stem) == wanted), None)


# ----------------------------------------------------------------------------------------------
# Bands


def in_band(value, band) -> bool | None:
    """True/False when `value` is a number and `band` a (low, high) pair; else None."""
    if band is None or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return False
    low, high = band
    return (low is None or value >= low) and (high is None or value <= high)


def band_text(band) -> str:
    """"5.75 to 6.25", "at most 1e-05", "at least 3", "any value", or "none measured"."""
    if band is None:
        return "none measured"
    low, high = band
    if low is None and high is None:
        return "any value"
    if low is None:
        return f"at most {high:.4g}"
    if high is None:
        return f"at least {low:.4g}"
    return f"{low:.4g} to {high:.4g}"


# ----------------------------------------------------------------------------------------------
# Making the reference from runs


def current_commit(folder: Path = REPO_ROOT) -> dict:
    """{"commit": HEAD's hash or None, "dirty": uncommitted changes to tracked files or None}."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def checks_from_outputs(notebook: str | Path, scale: str) -> dict:
    """The checks an executed notebook printed (for runs made before checks were recorded).

    Values are as printed, to 4 significant digits.
    """
    nb = json.loads(Path(notebook).read_text(encoding="utf-8"))
    found: dict = {}
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") != "stream":
                continue
            for line in "".join(out.get("text", "")).splitlines():
                match = _CHECK_LINE.match(line.strip())
                if not match:
                    continue
                g = match.groupdict()
                name = g["ok"] or g["out"] or g["none"]
                value = _number(g["v1"] or g["v2"] or g["v3"])
                lo, hi = g["lo1"] or g["lo2"], g["hi1"] or g["hi2"]
                band = None if lo is None else [_number(lo), _number(hi)]
                found[name] = {"value": value, "bands": {scale: band}, "scale": scale,
                               "inside": in_band(value, band)}
    return found


def _number(text: str):
    if text in ("-inf", "inf"):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _metric_of(value, metrics: dict) -> str | None:
    """The metric that recorded the same number as a check (to 4 significant digits)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    for key, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and (
                v == value or f"{v:.4g}" == f"{value:.4g}"):
            return key
    return None


def lesson_from_run(entry: dict, scale: str) -> dict:
    """One lesson's reference entry from its `results.json` entry."""
    checks = entry.get("checks")
    if not checks and entry.get("output") and Path(entry["output"]).exists():
        checks = checks_from_outputs(entry["output"], scale)
    metrics = entry.get("metrics", {})
    kept = {}
    for name, c in (checks or {}).items():
        metric = _metric_of(c.get("value"), metrics)
        kept[name] = {"value": metrics[metric] if metric else c.get("value"),  # full precision
                      "band": (c.get("bands") or {}).get(scale), "metric": metric}
    return {
        "wall_s": entry.get("wall_s"),
        "finished": entry.get("finished"),
        "commit": entry.get("commit"),
        "dirty": entry.get("dirty"),
        "receipt": entry.get("receipt", {}),
        "metrics": metrics,
        "checks": kept,
    }


def make(results: list[dict], provisional: str | None = None, scale: str = "laptop") -> dict:
    """The reference from one or more `results.json` (a later file's lesson wins).

    Only lessons that ran to the end at `scale`, for real (not a dry run), are kept.
    `provisional`: why this is not yet the real reference (written into the file).
    """
    lessons: dict = {}
    for run in results:
        for stem, entry in run.items():
            ran_at = entry.get("receipt", {}).get("scale")
            if entry.get("status") == "ok" and not entry.get("dry_run") and ran_at == scale:
                lessons[stem] = lesson_from_run(entry, scale)
    if not lessons:
        raise ValueError(f"no lesson ran to the end at scale {scale!r} in these results: "
                         f"run `llm-course run --scale {scale}` first")
    commits = {e["commit"] for e in lessons.values()}
    finished = sorted(e["finished"] for e in lessons.values() if e.get("finished"))
    receipt = next(iter(lessons.values()))["receipt"]
    return {
        "format": FORMAT,
        "provisional": provisional,
        "scale": scale,
        "made": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ran": finished[-1] if finished else None,  # when its last lesson finished
        "commit": commits.pop() if len(commits) == 1 else None,
        "machine": {"device": receipt.get("device"), "platform": receipt.get("platform"),
                    "python": receipt.get("python"), "packages": receipt.get("packages")},
        "lessons": dict(sorted(lessons.items())),
    }


def write(reference: dict, path: str | Path) -> Path:
    """Write the reference as stable, diff-friendly JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(reference, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    return path
