"""`report.html`: one self-contained page about a run of the course (written by `llm-course run`).

It holds the results table against the reference run (`llm_course.compare`), each lesson's
receipt (device, precision, seconds, the machine's load) and the key figures the lessons kept
with `llm_course.save_figure` (PNG files inlined as base64, tables inlined as HTML), so an
instructor can send it to a class or attach it to a CI run: it opens offline, with nothing
beside it.
"""

from __future__ import annotations

import base64
import datetime as _dt
from html import escape
from pathlib import Path

from llm_course.compare import FAILED, OUTSIDE, compare, fmt, problems
from llm_course.env import reference as ref_mod

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.OUTSIDE td, tr.failed td { background: #fdd; }
.provisional { background: #ffe9b3; padding: 0.5em; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
section { border-top: 2px solid #888; margin-top: 2em; }
"""


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'


def _figures(entry: dict, out_dir: Path) -> str:
    parts = []
    for figure in entry.get("figures") or []:
        name, rel = figure["name"], figure["file"]
        path = out_dir / rel
        if not path.exists():
            parts.append(f"<p>figure {escape(name)}: missing ({escape(rel)})</p>")
            continue
        body = path.read_text(encoding="utf-8") if path.suffix == ".html" else _img(path)
        parts.append(f'<figure data-figure="{escape(name)}">{body}'
                     f"<figcaption>{escape(name)}</figcaption></figure>")
    return "".join(parts) or "<p>No figure saved.</p>"


def _receipt(entry: dict) -> str:
    r = entry.get("receipt", {})
    dev = r.get("device") or {}
    device = " ".join(str(x) for x in (dev.get("kind"), dev.get("name")) if x) or "-"
    if dev.get("threads"):
        device += f", {dev['threads']} threads"
    load = r.get("load_avg")
    cells = [("scale", r.get("scale")), ("device", device), ("precision", r.get("precision", "-")),
             ("seconds (runner)", entry.get("wall_s")), ("seconds (in the notebook)", r.get("wall_s")),
             ("load average 1/5/15 min", ", ".join(map(str, load)) if load else "-"),
             ("seed", r.get("seed")), ("commit", str(entry.get("commit") or "-")[:10])]
    return "<table class='receipt'>" + "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(str(v if v is not None else '-'))}</td></tr>"
        for k, v in cells) + "</table>"


def render(results: dict, out_dir: str | Path, reference: dict | None = None,
           title: str = "llm-course: a run of the course") -> str:
    """The page as a string; figures are read from under `out_dir`."""
    out_dir = Path(out_dir)
    rows = compare(results, reference)
    bad = problems(rows)
    scales = sorted({e.get("receipt", {}).get("scale") or "?" for e in results.values()})
    head = [f"<h1>{escape(title)}</h1>",
            f"<p>{len(results)} lesson(s) at scale {escape(', '.join(scales))}, "
            f"report written {_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC. "
            f"{'Problems: ' + str(len(bad)) if bad else 'Every metric with a band lies inside it.'}</p>"]
    if any(e.get("dry_run") for e in results.values()):
        head.append("<p class='provisional'>A dry run: every loop stopped early, so its numbers "
                    "mean nothing.</p>")
    if reference is None:
        head.append("<p>No reference run was found: only the bands are compared.</p>")
    else:
        commit = str(reference.get("commit") or "")[:10] or "a commit it did not record"
        head.append(f"<p>Reference: one <code>{escape(str(reference.get('scale')))}</code> run of "
                    f"the course, finished {escape(str(reference.get('ran') or '?'))}, from "
                    f"<code>{escape(commit)}</code> (file made {escape(str(reference.get('made')))}).</p>")
        if scales != [reference.get("scale")]:
            head.append(f"<p>This run is at {escape(', '.join(scales))}, the reference at "
                        f"{escape(str(reference.get('scale')))}: read the reference column as where "
                        "that scale lands; the verdicts use this run's own bands.</p>")
        if reference.get("provisional"):
            head.append(f"<p class='provisional'>Provisional reference: "
                        f"{escape(reference['provisional'])}</p>")

    summary = ["<h2>Lessons</h2><table><thead><tr><th>lesson</th><th>status</th><th>seconds</th>"
               "<th>metrics outside their band</th></tr></thead><tbody>"]
    for stem, entry in results.items():
        n_out = sum(r.lesson == stem and r.verdict == OUTSIDE for r in rows)
        cls = "failed" if entry.get("status") != "ok" else (OUTSIDE if n_out else "")
        summary.append(f"<tr class='{cls}'><td><a href='#{escape(stem)}'>{escape(stem)}</a></td>"
                       f"<td>{escape(str(entry.get('status')))}</td>"
                       f"<td class='num'>{escape(fmt(entry.get('wall_s')))}</td>"
                       f"<td class='num'>{n_out}</td></tr>")
    summary.append("</tbody></table>")

    sections = []
    for stem, entry in results.items():
        table = ["<table class='results'><thead><tr><th>metric</th><th>your run</th>"
                 "<th>reference run</th><th>band</th><th>verdict</th></tr></thead><tbody>"]
        for r in (r for r in rows if r.lesson == stem):
            cls = "failed" if r.verdict == FAILED else (OUTSIDE if r.verdict == OUTSIDE else "")
            band = ref_mod.band_text(r.band) if r.band is not None else ""
            table.append(f"<tr class='{cls}'><td>{escape(r.name)}</td>"
                         f"<td class='num'>{escape(fmt(r.value))}</td>"
                         f"<td class='num'>{escape(fmt(r.reference))}</td>"
                         f"<td>{escape(band)}</td><td>{escape(r.verdict)}</td></tr>")
        table.append("</tbody></table>")
        error = (f"<p>Failed at cell [{escape(str(entry.get('failed_cell')))}]: "
                 f"{escape(str(entry.get('error')))}</p>" if entry.get("status") != "ok" else "")
        sections.append(f"<section id='{escape(stem)}' data-lesson='{escape(stem)}'>"
                        f"<h2>{escape(stem)}</h2>{error}<h3>Receipt</h3>{_receipt(entry)}"
                        f"<h3>Results against the reference</h3>{''.join(table)}"
                        f"<h3>Figures</h3>{_figures(entry, out_dir)}</section>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>"
            + "".join(head) + "".join(summary) + "".join(sections) + "</body></html>")


def write_report(results: dict, out_dir: str | Path, reference: dict | None = None) -> Path:
    """Write `out_dir/report.html` and return its path."""
    path = Path(out_dir) / "report.html"
    path.write_text(render(results, out_dir, reference), encoding="utf-8")
    return path
