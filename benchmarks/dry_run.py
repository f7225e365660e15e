"""Every lesson at a scale as a dry run, timed: where does a dry run spend its time? (by hand)

    .venv/bin/python benchmarks/dry_run.py                      # --scale gpu, every lesson
    .venv/bin/python benchmarks/dry_run.py --only 02 06b --top 3

Runs `llm-course run --scale SCALE --dry-run` (offline, in a fresh course home, so that the
course models are built cold as on a first visit), then prints per lesson its status, its
wall time and its slowest cells. The CI test (tests/test_dry_run.py) runs them all too, in two
one-thread processes (its CI_GROUPS), without the cells' times.

A shared machine slows everything down, and not evenly: the bf16 matmul peak is measured
before and after and compared with the quiet figure of this project's machine
(`QUIET_BF16_TFLOPS`, measured here), as a rough load factor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# this project's 2-core CPU, bf16 matmul, nobody else running: 0.79 to 0.83 measured on
# 2026-12-01 (benchmarks/train_speed.py); ENVIRONMENT.md's 1.75 was not reproduced
QUIET_BF16_TFLOPS = 0.8


def bf16_peak_tflops() -> float:
    """The bf16 matmul peak of this CPU now (not cached)."""
    from llm_course.training.cost import measure_matmul_peak

    return measure_matmul_peak("cpu", "bf16", seconds=2.0) / 1e12


def slowest_cells(notebook: Path, top: int) -> list[tuple[float, str]]:
    """(seconds, first line) of the `top` slowest cells of an executed notebook."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    timed = [(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0,
              "".join(c["source"]).strip().splitlines()[0][:70] if c["source"] else "")
             for c in cells if c["cell_type"] == "code"]
    return sorted(timed, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="gpu", choices=["smoke", "laptop", "gpu"])
    parser.add_argument("--only", nargs="+", metavar="NN", help="lesson prefixes (default: all)")
    parser.add_argument("--out", default=None, help="output folder (default: a temp one)")
    parser.add_argument("--top", type=int, default=2, help="slowest cells shown per lesson")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="dry_run_"))
    env = {**os.environ, "LLM_COURSE_HOME": str(out / "home"), "MPLBACKEND": "Agg",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    before, load_before = bf16_peak_tflops(), os.getloadavg()[0]
    start = time.time()
    subprocess.run([sys.executable, "-m", "llm_course.cli", "run", "--scale", args.scale,
                    "--dry-run", "--out", str(out), *(["--only", *args.only] if args.only else [])],
                   cwd=REPO, env=env, check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.time() - start
    after, load_after = bf16_peak_tflops(), os.getloadavg()[0]

    results = json.loads((out / "results.json").read_text())
    print(f"{'lesson':<26} {'status':<7} {'wall s':>7}  slowest cells (s)")
    for stem, entry in results.items():
        cells = "; ".join(f"{s:.0f}: {line}" for s, line in
                          slowest_cells(out / f"{stem}.ipynb", args.top))
        print(f"{stem:<26} {entry['status']:<7} {entry['wall_s']:>7.0f}  {cells}")
        if entry["status"] != "ok":
            print(f"{'':<26} {entry.get('error', '')[:200]}")
    failed = [s for s, e in results.items() if e["status"] != "ok"]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed in {wall:.0f} s "
          f"({wall / 60:.1f} min) at --scale {args.scale} --dry-run; results in {out}")
    slowdown = QUIET_BF16_TFLOPS / max(min(before, after), 1e-9)
    print(f"load: average {load_before:.1f} before, {load_after:.1f} after; bf16 matmul peak "
          f"{before:.2f} / {after:.2f} TFLOP/s against {QUIET_BF16_TFLOPS} quiet")
    print(f"matmul slowdown: {slowdown:.1f}x (compute-bound parts; single-threaded Python parts "
          "slow down less)")


if __name__ == "__main__":
    main()
