"""Run the lessons headless with papermill and collect what they recorded.

`llm-course run --scale smoke --out DIR` and the notebook tests both use `run_notebook`;
`run_course` also writes DIR/report.html (`llm_course.report`) after each lesson.
Each notebook runs in its own kernel with `LLM_COURSE_SCALE` and
`LLM_COURSE_RESULTS_FILE` set, so `llm_course.record(...)` and `llm_course.receipt(...)`
inside it land in a JSON file that we read back. `dry_run=True` (`llm-course run --dry-run`)
also sets `LLM_COURSE_DRY_RUN=1`: every loop stops early (`llm_course.env.dry_run`), so a
whole scale runs in minutes, and the records say `"dry_run": true`; `LLM_COURSE_HOME` then
points at a home of its own, so its 2-step course models never reach a real run.

A dry run's cells take seconds, so one that runs past `DRY_RUN_CELL_TIMEOUT` has hung: the
kernel and papermill each waiting for a message the other never got, which we have seen once
with two runs started side by side. The lesson then fails with that message instead of
waiting for ever, and runs once more; a second hang stays a failure.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from llm_course.env import dry_run as dry

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
DRY_RUN_CELL_TIMEOUT = 300  # seconds; the slowest dry-run cell takes under a minute here


def find_notebooks(only: list[str] | None = None, folder: Path | None = None) -> list[Path]:
    """The lesson notebooks in order; `only` keeps those whose name starts with a prefix."""
    if folder is None:
        here = Path.cwd() / "notebooks"
        folder = here if here.is_dir() else NOTEBOOK_DIR
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no notebooks folder at {folder}: run from a clone of the course, or pass --notebooks DIR"
        )
    books = sorted(p for p in folder.glob("[0-9][0-9]*.ipynb"))
    if only:
        wanted = [str(o).strip() for o in only]
        books = [b for b in books if any(b.stem.startswith(w) for w in wanted)]
        if not books:
            raise ValueError(f"no notebook matches {' '.join(wanted)}; known: "
                             + ", ".join(p.stem for p in sorted(folder.glob('[0-9][0-9]*.ipynb'))))
    return books


def run_notebook(path: Path, out_dir: Path, scale: str, parameters: dict | None = None,
                 timeout: int | None = None, dry_run: bool = False) -> dict:
    """Execute one notebook; return {"metrics", "receipt", "status", "wall_s", ...}.

    `dry_run=True` runs it with `LLM_COURSE_DRY_RUN=1` (see `llm_course.env.dry_run`);
    `timeout` limits each cell's seconds (None: no limit); a cell past it fails the lesson
    with `"timed_out": true`.
    """
    import papermill as pm

    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # absolute: the kernel runs in the notebook's folder, not in ours
    results_file = (out_dir / "metrics" / f"{path.stem}.json").resolve()
    results_file.unlink(missing_ok=True)
    env_before = {k: os.environ.get(k)
                  for k in ("LLM_COURSE_SCALE", "LLM_COURSE_RESULTS_FILE", "LLM_COURSE_HOME",
                            dry.DRY_RUN_ENV)}
    os.environ["LLM_COURSE_SCALE"] = scale
    os.environ["LLM_COURSE_RESULTS_FILE"] = str(results_file)
    if dry_run:
        os.environ["LLM_COURSE_HOME"] = str(dry.home())
        os.environ[dry.DRY_RUN_ENV] = "1"
    entry: dict = {"status": "ok", "output": str(out_dir / path.name)}
    start = time.time()
    try:
        pm.execute_notebook(
            str(path), str(out_dir / path.name),
            parameters={"scale": scale, **(parameters or {})},
            kernel_name="python3", cwd=str(path.parent), progress_bar=False,
            execution_timeout=timeout,
            # ipykernel warns, once per lesson, that its local TCP sockets are unencrypted
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except pm.PapermillExecutionError as err:
        entry.update(status="failed", failed_cell=err.exec_count,
                     error=f"{err.ename}: {err.evalue}".strip()[:500])
    except Exception as err:  # noqa: BLE001 - a dead kernel, a timeout, a broken notebook
        from nbclient.exceptions import CellTimeoutError

        entry.update(status="failed", failed_cell=None, error=f"{type(err).__name__}: {err}"[:500])
        if isinstance(err, CellTimeoutError | TimeoutError):
            entry.update(timed_out=True, error=f"a cell ran past the {timeout} s limit, no reply "
                                               f"from the kernel ({type(err).__name__})")
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    entry["wall_s"] = round(time.time() - start, 1)
    recorded = json.loads(results_file.read_text()) if results_file.exists() else {}
    entry["metrics"] = recorded.get("metrics", {})
    entry["receipt"] = recorded.get("receipt", {})
    entry["checks"] = recorded.get("checks", {})
    # figures kept by llm_course.save_figure, in order, with paths relative to out_dir
    entry["figures"] = [{"name": f["name"], "file": f"{results_file.parent.name}/{f['file']}"}
                        for f in recorded.get("figures", [])]
    if dry_run or recorded.get("dry_run"):
        entry["dry_run"] = True
    return entry


def prepare_out_dir(out: str | Path) -> Path:
    """Create the results folder `out` if needed and check that it is writable.

    Raises NotADirectoryError ("is a file, not a folder") or PermissionError ("cannot
    write to ...") with the fix, before any notebook runs.
    """
    out = Path(out)
    for path in (out, *out.parents):
        if path.exists() and not path.is_dir():
            what = f"--out {out}" if path == out else f"--out {out}: {path}"
            raise NotADirectoryError(f"{what} is a file, not a folder: "
                                     "pass a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as err:
        raise PermissionError(f"cannot write to {out} ({err.strerror or err}): pass a folder "
                              "you can write to with --out") from err
    return out


def run_course(scale: str, only: list[str] | None = None, out: str | Path = "results",
               notebooks: Path | None = None, dry_run: bool = False) -> dict:
    """Run the lessons in order; write DIR/results.json and DIR/report.html after each one.

    Each entry also says which commit ran (`commit`, `dirty`). `dry_run=True`: each lesson as
    a dry run (every loop stops early, see `run_notebook`). Returns the results.
    """
    from llm_course.env import reference
    from llm_course.report import write_report

    out = prepare_out_dir(out)
    results_path = out / "results.json"
    results: dict = {}
    books = find_notebooks(only, notebooks)
    commit = reference.current_commit(Path(books[0]).parent if books else NOTEBOOK_DIR)
    try:
        ref = reference.load()
    except ValueError as err:  # a damaged reference spoils the report's comparison, not the run
        print(f"report.html will have no reference: {err}", flush=True)
        ref = None
    for i, book in enumerate(books, 1):
        kind = " (dry run)" if dry_run else ""
        print(f"[{i}/{len(books)}] {book.stem} at scale {scale}{kind} ...", flush=True)
        timeout = DRY_RUN_CELL_TIMEOUT if dry_run else None
        entry = run_notebook(book, out, scale, timeout=timeout, dry_run=dry_run)
        if entry.get("timed_out"):  # a hung kernel (see the module docstring): once more
            print(f"    {entry['error']}; running {book.stem} once more", flush=True)
            entry = {**run_notebook(book, out, scale, timeout=timeout, dry_run=dry_run),
                     "retried_after": entry["error"]}
        entry = {**entry, **commit, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        results[book.stem] = entry
        results_path.write_text(json.dumps(results, indent=2, sort_keys=True), encoding="utf-8")
        write_report(results, out, ref)
        msg = f"    {entry['status']} in {entry['wall_s']} s"
        if entry["status"] != "ok":
            msg += f": cell [{entry.get('failed_cell')}] raised {entry['error']}"
        print(msg, flush=True)
    return results


def format_results(results: dict) -> str:
    """A results table: one row per notebook, its status, time and recorded metrics."""
    lines = [f"{'notebook':<26} {'status':<7} {'wall s':>7}  metrics"]
    if any(entry.get("dry_run") for entry in results.values()):
        lines.insert(0, "A dry run: every loop stopped early, so the metrics below mean nothing.")
    for stem, entry in results.items():
        metrics = ", ".join(f"{k}={_short(v)}" for k, v in entry.get("metrics", {}).items())
        lines.append(f"{stem:<26} {entry['status']:<7} {entry['wall_s']:>7}  {metrics}")
        if entry["status"] != "ok":
            lines.append(f"{'':<26} failing cell [{entry.get('failed_cell')}]: {entry['error']}")
    return "\n".join(lines)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return f"<{type(value).__name__} of {len(value)}>"
    return str(value)
