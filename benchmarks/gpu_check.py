"""The device check: does the `gpu` scale run on this GPU, how fast, and how well used? (by hand)

    .venv/bin/python benchmarks/gpu_check.py                 # about 8 minutes at most
    .venv/bin/python benchmarks/gpu_check.py --budget 300    # a shorter budget, in seconds

On a machine with a CUDA GPU, in this order, each part within its share of `--budget`:

1. every lesson at `gpu` as a dry run (`llm-course run --scale gpu --dry-run`): every line of
   the scale runs, each loop stops early; up to 4 lessons at a time on a machine with many
   cores; lessons not reached in time are listed as such;
2. lesson 02 for real at `gpu` (`llm-course run --scale gpu --only 02`), stopped when its
   share of the budget is spent (a T4 needs longer than that; an H200 does not);
3. `fit`'s throughput on lesson 02's gpu-size GPT (32 x 256 tokens a step) in bf16 and fp16,
   after a warm-up: tokens/s and achieved FLOP/s (6·N·tokens);
4. the utilisation (MFU): that FLOP/s against the device's datasheet peak, and against the
   matmul peak measured here (what `fit`'s receipt reports).

It prints one table (part, status, seconds, result) and writes it to `OUT/gpu_check.json`.
Without the hub, the lessons run offline (the HF_*_OFFLINE variables are set for them).
Exit status: 0 every part ran, 1 a part failed or ran out of time, 2 no CUDA GPU here: it
exits at once, having checked nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

NO_GPU = 2
REPO = Path(__file__).resolve().parent.parent
# dense tensor-core peaks from the datasheets, TFLOP/s (first matching name wins)
DATASHEET_TFLOPS = [
    ("H200", {"bf16": 989.5, "fp16": 989.5}), ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0}),
    ("H100", {"bf16": 989.5, "fp16": 989.5}), ("A100", {"bf16": 312.0, "fp16": 312.0}),
    ("L40S", {"bf16": 362.0, "fp16": 362.0}), ("L4", {"bf16": 121.0, "fp16": 121.0}),
    ("A10", {"bf16": 125.0, "fp16": 125.0}), ("V100", {"fp16": 125.0}),
    ("T4", {"fp16": 65.0}), ("P100", {"fp16": 18.7}),
]
# shares of the budget: the dry runs, lesson 02, the rest (throughput and peaks, ~1 min)
SHARES = {"dry": 0.45, "lesson02": 0.40}


def datasheet_peak(name: str, precision: str) -> float | None:
    """The datasheet's dense peak FLOP/s of GPU `name` in `precision`, if we know it."""
    for key, peaks in DATASHEET_TFLOPS:
        if key.lower() in name.lower():
            value = peaks.get(precision)
            return value * 1e12 if value else None
    return None


def start_cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start `llm-course ARGS` in its own process group, quietly."""
    return subprocess.Popen([sys.executable, "-m", "llm_course.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def finish(proc: subprocess.Popen, deadline: float) -> str:
    """Wait for `proc` until `deadline` (time.time()); "ok", "failed", or "out of time" (stopped)."""
    try:
        return "ok" if proc.wait(timeout=max(deadline - time.time(), 1)) == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # papermill, and the kernel after it (it watches
        try:                                 # its parent)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        return "out of time"


def dry_runs(stems: list[str], limit: float, out: Path, env: dict[str, str]) -> list[dict]:
    """Every lesson at gpu as a dry run, in `workers` processes side by side (a machine with
    many cores, like the H200's 16, gets through them in a fraction of the time); each
    worker has its own course home, so two never build the same course model at once."""
    workers = max(1, min(4, (os.cpu_count() or 1) // 4))
    groups = [stems[i::workers] for i in range(workers)]
    deadline = time.time() + limit
    procs = []
    for i, group in enumerate(groups):
        if group:
            worker_env = {**env, "LLM_COURSE_HOME": str(out / f"home{i}")}
            procs.append((group, out / f"dry{i}", start_cli(
                ["run", "--scale", "gpu", "--dry-run", "--out", str(out / f"dry{i}"),
                 "--notebooks", str(REPO / "notebooks"), "--only", *group], worker_env)))
    rows = []
    for group, folder, proc in procs:
        rows += lesson_rows(folder / "results.json", "dry run", group, finish(proc, deadline))
    order = {f"dry run {stem}": i for i, stem in enumerate(stems)}
    return sorted(rows, key=lambda r: order[r["part"]])


def lesson_rows(results_file: Path, part: str, wanted: list[str], status: str) -> list[dict]:
    """One row per lesson from the runner's results.json; lessons it never reached say so."""
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    rows, stopped = [], False
    for stem in wanted:
        entry = results.get(stem)
        if entry is None:  # the lesson running when time ran out, then those never started
            missing = {"ok": "missing", "failed": "not reached"}.get(
                status, "not reached" if stopped else "out of time")
            stopped = stopped or status == "out of time"
            rows.append({"part": f"{part} {stem}", "status": missing, "seconds": None,
                         "result": ""})
            continue
        metrics = entry.get("metrics", {})
        shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()
                          if isinstance(v, float))[:70]
        rows.append({"part": f"{part} {stem}", "status": entry["status"],
                     "seconds": entry["wall_s"],
                     "result": shown if entry["status"] == "ok" else entry.get("error", "")[:70]})
    return rows


def throughput(precision: str, steps: int = 40, batch: int = 32) -> dict:
    """`fit` on lesson 02's gpu GPT with random tokens: the receipt of `steps` steps after 5."""
    import torch
    from transformers import GPT2LMHeadModel

    from llm_course.models.configs import gpt_config
    from llm_course.training.config import TrainConfig
    from llm_course.training.loop import fit

    config = gpt_config("gpu")
    seq = config.n_positions
    ids = torch.randint(0, config.vocab_size, ((steps + 5) * batch, seq),
                        generator=torch.Generator().manual_seed(0))
    data = [{"input_ids": row, "labels": row} for row in ids]
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"
    out = {}
    for n in (5, steps):  # the first run warms up kernels and the allocator
        cfg = TrainConfig(max_steps=n, batch_size=batch, lr=1e-4, precision=precision,
                          progress=False, plot=False, verbose=False, eval_every=0, seed=0)
        out = fit(model, data, None, config=cfg).receipt
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=450.0,
                        help="seconds for all parts together (default 450: 8 min with margin)")
    parser.add_argument("--out", default=None, help="folder for results (default: a temp one)")
    parser.add_argument("--only", nargs="+", metavar="NN", help="dry-run only these lessons")
    parser.add_argument("--steps", type=int, default=40, help="throughput steps (default 40)")
    parser.add_argument("--cpu-rehearsal", action="store_true",
                        help="run every part on the CPU (batch 2), to test this script")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.cpu_rehearsal:
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False), so nothing "
              "was checked. Run it on a machine with an NVIDIA GPU (Colab or Kaggle with a GPU "
              "runtime); on this one, `llm-course run --scale gpu --dry-run` checks the gpu "
              "scale on the CPU.", file=sys.stderr)
        return NO_GPU

    start = time.time()
    device = "cpu" if args.cpu_rehearsal else "cuda"
    from llm_course.training.cost import device_name, matmul_peak

    name = device_name(device)
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_check_"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LLM_COURSE_HOME": str(out / "home"), "MPLBACKEND": "Agg",
           "LLM_COURSE_SCALE": "gpu"}
    env.pop("LLM_COURSE_DRY_RUN", None)
    from llm_course.env.hub import OFFLINE_VARS, hub_reachable

    if not hub_reachable():  # else every hub look-up in the lessons retries for half a minute
        env.update(dict.fromkeys(OFFLINE_VARS, "1"))
    from llm_course.runner import find_notebooks

    stems = [p.stem for p in find_notebooks(args.only, folder=REPO / "notebooks")]
    rows: list[dict] = []

    def left() -> float:
        return args.budget - (time.time() - start)

    # 1. every lesson as a dry run
    rows += dry_runs(stems, SHARES["dry"] * args.budget, out, env)
    # 2. lesson 02 for real, in what its share (and anything the dry runs left) allows
    limit = left() - (1 - SHARES["dry"] - SHARES["lesson02"]) * args.budget
    status = finish(start_cli(["run", "--scale", "gpu", "--only", "02", "--out",
                               str(out / "real"), "--notebooks", str(REPO / "notebooks")], env),
                    time.time() + limit)
    real = lesson_rows(out / "real" / "results.json", "real",
                       [p.stem for p in find_notebooks(["02"], folder=REPO / "notebooks")], status)
    if status == "out of time":
        real[0].update(status="out of time", seconds=round(limit),
                       result=f"stopped after its {limit:.0f} s share of the budget")
    rows += real
    # 3. and 4. throughput and utilisation
    for precision in ("bf16", "fp16"):
        t0 = time.time()
        row = {"part": f"fit throughput {precision}", "status": "ok"}
        if left() < 20:
            rows.append({**row, "status": "not reached", "seconds": None, "result": ""})
            continue
        try:
            r = throughput(precision, args.steps, 2 if args.cpu_rehearsal else 32)
            sheet = datasheet_peak(name, precision)
            measured = matmul_peak(device, precision)
            row["result"] = (f"{r['tokens_per_s']:,.0f} tok/s, {r['achieved_flops'] / 1e12:.1f} "
                             f"TFLOP/s; MFU {r['achieved_flops'] / sheet:.0%} of the datasheet "
                             f"{sheet / 1e12:.0f}" if sheet else
                             f"{r['tokens_per_s']:,.0f} tok/s, {r['achieved_flops'] / 1e12:.1f} "
                             "TFLOP/s; datasheet peak unknown")
            row["result"] += f", {r['achieved_flops'] / measured:.0%} of the measured matmul " \
                             f"{measured / 1e12:.0f}"
        except ValueError as err:  # e.g. bf16 on a T4
            row.update(status="unsupported", result=str(err)[:70])
        except Exception as err:  # noqa: BLE001 - a check reports, it does not crash
            row.update(status="failed", result=f"{type(err).__name__}: {err}"[:70])
        row["seconds"] = round(time.time() - t0, 1)
        rows.append(row)

    total = time.time() - start
    memory = (f" ({torch.cuda.get_device_properties(0).total_memory / 2**30:.1f} GiB)"
              if device == "cuda" else "")
    print(f"\ngpu_check on {name}{memory}, torch {torch.__version__}: "
          f"{total:.0f} s of a {args.budget:.0f} s budget")
    print(f"{'part':<34} {'status':<12} {'s':>6}  result")
    for r in rows:
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.0f}"
        print(f"{r['part']:<34} {r['status']:<12} {seconds:>6}  {r['result']}")
    (out / "gpu_check.json").write_text(json.dumps({"device": name, "total_s": total,
                                                    "rows": rows}, indent=2))
    print(f"results in {out}")
    bad = [r for r in rows if r["status"] not in ("ok", "unsupported")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
