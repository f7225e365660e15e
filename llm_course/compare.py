"""A run against the course's reference run: per lesson, each metric, the reference value, the band
and a verdict (`llm-course compare RESULTS.json`, and the table of `report.html`).

Bands belong to the lesson's `check_band` calls. A check and a metric are the same number when
the reference says so (its check names the metric that recorded it) or, failing that, when the
run recorded them equal; such a metric is judged against the check's band. A check that
matches no metric (a difference of two metrics, say) gets a row of its own. The band is the
one the run itself recorded for its scale; a run made before checks were recorded borrows
the reference's band when both ran at the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_course.env import reference as ref_mod

OUTSIDE = "OUTSIDE"
FAILED = "lesson failed"


@dataclass
class Row:
    """One line of the comparison."""

    lesson: str
    name: str
    value: object
    reference: object
    band: list | None
    verdict: str  # inside, OUTSIDE, no band, not compared (dry run), lesson failed, not recorded
    scale: str | None = None  # the scale the run's lesson ran at


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value) -> bool:
    """Scalars get a row; tables and curves (lists, dicts) are left to the report's figures."""
    return value is None or isinstance(value, (int, float, str, bool))


def lesson_rows(stem: str, entry: dict, ref_entry: dict | None, ref_scale: str | None) -> list[Row]:
    """The rows of one lesson."""
    if entry.get("status") != "ok":
        return [Row(stem, "(the lesson)", None, None, None, FAILED)]
    metrics = entry.get("metrics", {})
    scale = entry.get("receipt", {}).get("scale")
    dry = bool(entry.get("dry_run"))
    ref_metrics = (ref_entry or {}).get("metrics", {})
    ref_checks = (ref_entry or {}).get("checks", {})
    checks = entry.get("checks") or {}
    if not checks and scale == ref_scale:  # an older run: borrow the reference's checks
        checks = {name: {"bands": {scale: c.get("band")}, "value": metrics.get(c.get("metric"))}
                  for name, c in ref_checks.items() if c.get("metric") in metrics}

    band_of: dict[str, tuple[str, list | None]] = {}  # metric -> (check, band)
    loose: list[str] = []
    for name, check in checks.items():
        key = (ref_checks.get(name) or {}).get("metric")
        if key is None:
            key = next((k for k, v in metrics.items()
                        if _number(v) and _number(check.get("value")) and v == check["value"]), None)
        band = (check.get("bands") or {}).get(scale)
        if key in metrics and key not in band_of:
            band_of[key] = (name, band)
        else:
            loose.append(name)

    def verdict(value, band) -> str:
        if dry:
            return "not compared (dry run)"
        inside = ref_mod.in_band(value, band)
        return "no band" if inside is None else ("inside" if inside else OUTSIDE)

    rows = []
    for key, value in metrics.items():
        if not _shown(value):
            continue
        check_name, band = band_of.get(key, (None, None))
        name = f"{key} ({check_name})" if check_name else key
        rows.append(Row(stem, name, value, ref_metrics.get(key), band, verdict(value, band), scale))
    for name in loose:
        band = (checks[name].get("bands") or {}).get(scale)
        ref_value = (ref_checks.get(name) or {}).get("value")
        rows.append(Row(stem, f"check: {name}", checks[name].get("value"), ref_value, band,
                        verdict(checks[name].get("value"), band), scale))
    for key in ref_metrics:
        if key not in metrics and _shown(ref_metrics[key]):
            rows.append(Row(stem, key, None, ref_metrics[key], None, "not recorded", scale))
    return rows


def compare(results: dict, reference: dict | None) -> list[Row]:
    """Every row of every lesson in `results` (a `results.json` of `llm-course run`)."""
    ref_scale = (reference or {}).get("scale")
    rows: list[Row] = []
    for stem, entry in results.items():
        rows += lesson_rows(stem, entry, ref_mod.lesson(reference, stem), ref_scale)
    return rows


def problems(rows: list[Row]) -> list[Row]:
    """The rows that make `llm-course compare` fail: outside their band, or a failed lesson."""
    return [r for r in rows if r.verdict in (OUTSIDE, FAILED)]


def fmt(value) -> str:
    """A value as the tables show it."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_rows(rows: list[Row], reference: dict | None) -> str:
    """The comparison as text: one block per lesson, then the verdict."""
    lines = []
    if reference is None:
        lines.append("No reference run found: only the bands are compared.")
    else:
        lines.append(f"Reference: scale {reference.get('scale')}, finished {reference.get('ran')}, "
                     f"commit {str(reference.get('commit'))[:10] if reference.get('commit') else 'not recorded'}")
        if reference.get("provisional"):
            lines.append(f"PROVISIONAL: {reference['provisional']}")
        scales = sorted({r.scale for r in rows if r.scale} - {reference.get("scale")})
        if scales:
            lines.append(f"This run is at {', '.join(scales)}, the reference at "
                         f"{reference.get('scale')}: the verdicts use the run's own bands.")
    width = max([len(r.name) for r in rows] + [6])
    current = None
    for r in rows:
        if r.lesson != current:
            current = r.lesson
            lines += ["", r.lesson,
                      f"  {'metric':<{width}}  {'your run':>10}  {'reference':>10}  {'band':<18} verdict"]
        band = ref_mod.band_text(r.band) if r.band is not None else ""
        lines.append(f"  {r.name:<{width}}  {fmt(r.value):>10}  {fmt(r.reference):>10}  "
                     f"{band:<18} {r.verdict}")
    bad = problems(rows)
    lines.append("")
    if bad:
        lines.append(f"{len(bad)} problem(s):")
        lines += [f"  {r.lesson}: {r.name} = {fmt(r.value)} is outside its band "
                  f"({ref_mod.band_text(r.band)})" if r.verdict == OUTSIDE
                  else f"  {r.lesson}: the lesson failed" for r in bad]
    else:
        judged = sum(r.verdict in ("inside", OUTSIDE) for r in rows)
        lines.append(f"OK: all {judged} metrics with a band lie inside it.")
    return "\n".join(lines)
