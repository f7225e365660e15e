"""Recording a lesson's key metrics and its receipt (taught in 00_setup).

`record(val_loss=...)` stores metrics; `receipt(seed=...)` stores and prints what the
run used (package versions, device, seed, scale, wall time). When the course runner
(`llm-course run`, or the notebook tests) executes a notebook, it sets
`LLM_COURSE_RESULTS_FILE` and both land in that JSON file; otherwise they are kept in
memory (`recorded()`) so a learner can look at them. Both also update the lesson's entry in the
learner's progress (`llm_course.env.progress`: when it ran, at which scale, its key records).
In a dry run (`llm_course.env.dry_run`) the file and the receipt say `"dry_run": true`, and
`check_band` compares nothing.

`check_band` also records each check (its value and its bands at every scale) under `"checks"`,
and in a notebook shows one table per cell: your run, the course's reference run
(`llm_course.env.reference`, `reference/laptop.json`) and the band. `save_figure(fig, "name")`
keeps a lesson's key figure beside the results file (for `report.html`, `llm_course/report.py`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from importlib import metadata
from pathlib import Path

from llm_course.env import dry_run, progress, reference

RESULTS_ENV = "LLM_COURSE_RESULTS_FILE"
KEY_PACKAGES = ("torch", "transformers", "datasets", "tokenizers", "accelerate", "peft")
_START = time.time()
_RESULTS: dict = {"metrics": {}, "receipt": {}, "checks": {}, "figures": []}
_TABLE: dict = {"cell": None, "rows": [], "handle": None}  # check_band's table of the current cell


def _plain(value):
    """Turn numpy/torch scalars and containers into JSON-friendly Python values."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def _save() -> None:
    if dry_run.is_dry_run():
        _RESULTS["dry_run"] = True
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_RESULTS, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def record(**metrics) -> dict:
    """Store the lesson's key metrics, e.g. `record(val_loss=5.7, params=5_300_000)`."""
    if not metrics:
        raise ValueError("record() needs at least one metric, e.g. record(val_loss=5.7)")
    _RESULTS["metrics"].update({k: _plain(v) for k, v in metrics.items()})
    _save()
    progress.note_run(metrics=_RESULTS["metrics"], scale=_RESULTS["receipt"].get("scale"))
    return dict(_RESULTS["metrics"])


def recorded() -> dict:
    """Everything recorded so far in this process: {"metrics": ..., "receipt": ...}."""
    return json.loads(json.dumps(_RESULTS))


def package_versions(names=KEY_PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def receipt(seed: int | None = None, scale: str | None = None, show: bool = True, **extra) -> dict:
    """Store and print the run's receipt: versions, device, seed, scale and wall seconds."""
    from llm_course.env.device import describe_device
    from llm_course.env.scale import resolve_scale

    data = {
        "python": platform.python_version(),
        "packages": package_versions(),
        "device": describe_device(),
        "seed": seed,
        "scale": resolve_scale(scale),
        "wall_s": round(time.time() - _START, 1),
        "platform": platform.platform(),
        "load_avg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        **{k: _plain(v) for k, v in extra.items()},
        **({"dry_run": True} if dry_run.is_dry_run() else {}),
    }
    _RESULTS["receipt"] = data
    _save()
    progress.note_run(scale=data["scale"])
    if show:
        dev = data["device"]
        pk = ", ".join(f"{k} {v}" for k, v in data["packages"].items() if v)
        print("Receipt")
        print(f"  scale {data['scale']}, seed {seed}, wall {data['wall_s']} s"
              + (" (a dry run: its numbers mean nothing)" if data.get("dry_run") else ""))
        print(f"  device {dev['kind']} ({dev.get('name', '')})")
        print(f"  python {data['python']}; {pk}")
        for k, v in _RESULTS["metrics"].items():
            print(f"  {k} = {v}")
    return data


def check_band(name: str, value: float, bands: dict, scale: str | None = None) -> bool | None:
    """Say plainly whether `value` lies in the band measured for this scale.

    `bands` maps a scale to `(low, high)` (either end may be None), or to None when no
    band was measured at that scale. Returns True/False, or None when there is no band or
    this is a dry run (`llm_course.env.dry_run`: its numbers come from 2 steps).
    The check is recorded (`"checks"` in the results) and, in a notebook, shown in a table
    beside the reference run's value.
    """
    from llm_course.env.scale import resolve_scale

    scale = resolve_scale(scale)
    band = bands.get(scale)
    inside = None if dry_run.is_dry_run() else reference.in_band(_plain(value), band)
    _RESULTS.setdefault("checks", {})[name] = {
        "value": _plain(value), "scale": scale, "inside": inside,
        "bands": {k: None if b is None else [_plain(x) for x in b] for k, b in bands.items()}}
    _save()
    _show_check(name, value, band, scale, inside)
    if dry_run.is_dry_run():
        print(f"{name} = {value:.4g}: dry run: not compared with the band for scale {scale!r}")
        return None
    if band is None:
        print(f"{name} = {value:.4g}: no band was measured at scale {scale!r}; compare with "
              f"the other scales: {bands}")
        return None
    low, high = band
    shown = f"[{'-inf' if low is None else f'{low:.4g}'}, {'inf' if high is None else f'{high:.4g}'}]"
    if inside:
        print(f"OK: {name} = {value:.4g} is inside the expected band {shown} for scale {scale!r}.")
    else:
        print(f"OUTSIDE THE BAND: {name} = {value:.4g} is not in {shown}, the band measured for "
              f"scale {scale!r}. Check the parameters cell (did you change a knob?), the data "
              "and the training curve above.")
    return inside


class CheckTable:
    """The good-result table of one cell: your run, the reference run, the band (HTML or text)."""

    def __init__(self, rows: list[dict], ref: dict | None):
        self.rows, self.ref = rows, ref

    def _head(self) -> list[str]:
        scale = self.rows[0]["scale"] if self.rows else "?"
        ref_scale = (self.ref or {}).get("scale", "laptop")
        return ["check", f"your run ({scale})", f"reference run ({ref_scale})", f"band ({scale})"]

    def _cells(self, row: dict) -> list[str]:
        verdict = {True: "inside", False: "OUTSIDE", None: "not compared"}[row["inside"]]
        ref = row["reference"]
        if self.ref is None:
            ref_text = "no reference file"
        elif not row.get("lesson_in_reference", True):
            ref_text = "this lesson is not in it yet"
        elif ref is None:
            ref_text = "not in the reference"
        else:
            ref_text = _fmt(ref.get("value"))
        return [row["name"], f"{_fmt(row['value'])} ({verdict})", ref_text,
                reference.band_text(row["band"])]

    def _note(self) -> str:
        if self.ref is None:
            return ""
        commit = str(self.ref.get("commit") or "")[:10] or "a commit it did not record"
        notes = [f"Reference: one {self.ref.get('scale')} run of the course, finished "
                 f"{str(self.ref.get('ran') or self.ref.get('made', '?'))[:10]}, from {commit}."]
        if self.ref.get("provisional"):
            notes.append("This reference is provisional (reference/laptop.json says why).")
        if self.rows and self.rows[0]["scale"] != self.ref.get("scale"):
            notes.append(f"You ran at {self.rows[0]['scale']}: only the band applies to your "
                         f"number; the reference shows where {self.ref.get('scale')} lands.")
        return " ".join(notes)

    def __repr__(self) -> str:
        table = [self._head()] + [self._cells(r) for r in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(4)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in table]
        return "\n".join(lines + ([self._note()] if self._note() else []))

    def _repr_html_(self) -> str:
        from html import escape

        head = "".join(f"<th>{escape(h)}</th>" for h in self._head())
        body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in self._cells(r)) + "</tr>"
                       for r in self.rows)
        note = f"<p><small>{escape(self._note())}</small></p>" if self._note() else ""
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _show_check(name: str, value, band, scale: str, inside: bool | None) -> None:
    """In a notebook, add this check to the cell's table (one table per cell, updated in place)."""
    ipython = _ipython()
    if ipython is None:
        return
    from IPython.display import display

    try:
        ref = reference.load()
    except ValueError as err:
        print(f"(the reference run is not shown: {err})")
        ref = None
    entry = reference.lesson(ref, progress.current_lesson())
    row = {"name": name, "value": _plain(value), "band": band, "scale": scale, "inside": inside,
           "reference": (entry or {}).get("checks", {}).get(name), "lesson_in_reference": bool(entry)}
    cell = getattr(ipython, "execution_count", None)
    if _TABLE["cell"] != cell or _TABLE["handle"] is None:
        _TABLE.update(cell=cell, rows=[row])
        _TABLE["handle"] = display(CheckTable(_TABLE["rows"], ref), display_id=True)
    else:
        _TABLE["rows"].append(row)
        _TABLE["handle"].update(CheckTable(_TABLE["rows"], ref))


def _ipython():
    """The running IPython shell, or None (a plain Python process)."""
    import sys

    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    return get_ipython()


def save_figure(figure, name: str) -> Path | None:
    """Keep one of the lesson's key figures for the run's `report.html` (headless runs only).

    `figure`: a matplotlib Figure (or Axes), or a table (a pandas DataFrame or Styler, kept as
    HTML). It lands beside the results file, in `figures/LESSON-NAME.png` (or `.html`), and
    the results list it, in the order saved, under `"figures"`. Returns the file written, or
    None in a learner's own notebook, where nothing is written (there is no results file).
    """
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return None
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "figure"
    stem = Path(path).stem
    folder = Path(path).parent / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    if hasattr(figure, "to_html"):
        target = folder / f"{stem}-{slug}.html"
        target.write_text(figure.to_html(), encoding="utf-8")
    else:
        figure = getattr(figure, "figure", figure)  # an Axes gives its Figure
        target = folder / f"{stem}-{slug}.png"
        figure.savefig(target, dpi=80, bbox_inches="tight")
    figures = [f for f in _RESULTS.setdefault("figures", []) if f["name"] != name]
    _RESULTS["figures"] = [*figures, {"name": name, "file": f"figures/{target.name}"}]  # in order
    _save()
    return target
