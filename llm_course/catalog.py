"""The asset catalogue: every dataset and model of the course, where it comes from, and
whether it is here (what `llm-course assets list` prints, as 00_setup shows)."""

from __future__ import annotations

from llm_course.data.loaders import DATASETS
from llm_course.env.assets import CARRIERS
from llm_course.models.loading import model_catalog


def catalog() -> list[dict]:
    """Every dataset and model of the course, with where it comes from and if it is here.

    A list of plain dicts (`pandas.DataFrame(catalog())` makes a table); columns: name,
    kind, task, offline_source, hub_source, size, licence, present, notebooks.
    """
    rows = []
    for spec in DATASETS.values():
        carrier = CARRIERS[spec.carrier]
        hubs = sorted({f"{h.repo_id} ({scale})" if scale != "*" else h.repo_id
                       for scale, h in spec.hub.items()})
        rows.append({
            "name": spec.name, "kind": "dataset", "task": spec.task,
            "offline_source": carrier.requirement, "hub_source": ", ".join(hubs) or "-",
            "size": spec.size, "licence": spec.licence,
            "present": carrier.path() is not None, "notebooks": spec.notebooks,
        })
    return rows + model_catalog()


def format_catalog(rows: list[dict]) -> str:
    """`catalog()` as an aligned text table (what `llm-course assets list` prints)."""
    columns = [("name", "name"), ("kind", "kind"), ("present", "here"), ("task", "task"),
               ("size", "size"), ("offline_source", "offline source"),
               ("hub_source", "hub source"), ("licence", "licence")]

    def cell(row, key):
        value = row.get(key, "")
        if key == "present":  # only a missing carrier is a problem; the rest come later
            carrier = "==" in str(row.get("offline_source", ""))
            return "yes" if value else ("NO" if carrier else "-")
        return str(value if value is not None else "-")

    table = [[title for _, title in columns]]
    table += [[cell(row, key) for key, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns) - 1)]
    lines = []
    for i, r in enumerate(table):
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1])
        if i == 0:
            lines.append("-" * len(lines[0]))
    missing = [r["name"] for r in rows
               if not r.get("present") and "==" in str(r.get("offline_source", ""))]
    if missing:
        lines.append(f"\nnot installed: {', '.join(missing)}  ->  llm-course assets install")
    lines.append("here '-': course-* models are made by lessons 02/03; hub-only models download "
                 "on first use when online.")
    return "\n".join(lines)
