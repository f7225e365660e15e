"""Will the lessons fit a T4, and how good is `estimate_memory`? (run by hand)

    .venv/bin/python benchmarks/memory_estimate.py            # the T4 table, then the CPU check
    .venv/bin/python benchmarks/memory_estimate.py --table    # only the T4 table (seconds)

1. The T4 table: each lesson's main training run at the `gpu` scale
   (`llm_course.training.memory_check.MAIN_RUNS`), its estimated memory, whether it fits a
   16 GB T4 (14.75 GiB as PyTorch reports it, of which the estimate plans for 90 %) and the
   largest batch that would.
2. The CPU check: for two GPT sizes, `fit` trains 2 steps in a fresh process, and the peak
   it reached (the process's max RSS, less its RSS before the model was built) is printed
   beside what `estimate_memory` said for the same run. Several engineers share this
   machine: memory, unlike time, does not care.
3. Per architecture of the T4 table, the activation term alone: what one training forward
   pass in bf16 really keeps for the backward pass (every tensor autograd saves, counted
   once; `peft_methods.training_memory`) against `estimate_memory`'s term, per example.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# (name, n_layer, n_embd, vocab, seq, batch): the laptop GPT, and the gpu GPT at a quarter
# of its batch (its full batch of 32 x 256 takes minutes per step on a shared 2-core CPU)
SIZES = [("gpt 4x256 (laptop), 16 x 128", 4, 256, 8192, 128, 16),
         ("gpt 8x512 (gpu), 8 x 256", 8, 512, 16384, 256, 8)]
GB = 2.0**30


def _rss_bytes() -> float:
    with open("/proc/self/statm", encoding="utf-8") as f:
        return float(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(n_layer: int, n_embd: int, vocab: int, seq: int, batch: int, precision: str) -> dict:
    """In a fresh process: estimate, then train 2 steps with `fit`; return both as numbers."""
    import accelerate  # noqa: F401 - imported before the baseline: fit uses it
    import torch
    import tqdm.auto  # noqa: F401 - likewise
    from transformers import GPT2Config, GPT2LMHeadModel

    from llm_course.training.config import TrainConfig
    from llm_course.training.cost import estimate_memory
    from llm_course.training.loop import fit

    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (batch * 2, seq))
    data = [{"input_ids": row, "labels": row} for row in ids]
    before = _rss_bytes()
    model = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=max(1, n_embd // 64),
                                       vocab_size=vocab, n_positions=seq, bos_token_id=0,
                                       eos_token_id=0))
    model.loss_type = "ForCausalLM"
    cfg = TrainConfig(max_steps=2, batch_size=batch, lr=1e-4, precision=precision,
                      progress=False, plot=False, verbose=False, eval_every=0, seed=0)
    est = estimate_memory(model, cfg, device="cpu", seq_len=seq)
    fit(model, data, None, config=cfg)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # Linux: KiB
    return {"estimated_gb": est["total_gb"] - 0.25,  # no CUDA context on a CPU
            "static_gb": est["static_gb"], "activations_gb": est["activations_gb"],
            "measured_gb": (peak - before) / GB}


def cpu_check(precision: str) -> list[dict]:
    rows = []
    for name, *size in SIZES:
        args = [sys.executable, __file__, "--child", *map(str, size), precision]
        out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
        rows.append({"name": name, **json.loads(out.strip().splitlines()[-1])})
    return rows


def saved_activations() -> list[dict]:
    """Per distinct (model, sequence length) of MAIN_RUNS: measured and estimated MB/example."""
    from types import SimpleNamespace

    import torch

    from llm_course.finetuning.peft_methods import training_memory
    from llm_course.training.cost import estimate_memory
    from llm_course.training.memory_check import MAIN_RUNS, build_model, run_size

    rows, seen, batch = [], set(), 2
    for run in MAIN_RUNS:
        seq = run_size(run, run.seq, "gpu")
        if (run.model, seq) in seen or run.model == "head":
            continue
        seen.add((run.model, seq))
        torch.manual_seed(0)
        model = build_model(run, "gpu", device="cpu")
        ids = torch.randint(5, 1000, (batch, seq))
        labels = ids if run.model in ("gpt", "bert-mlm", "smollm2-causal") else \
            torch.zeros(batch, dtype=torch.long)
        inputs = {"input_ids": ids, "labels": labels}
        if run.model != "gpt":
            inputs["attention_mask"] = torch.ones_like(ids)
        kept = training_memory(model, inputs, "bf16")["activations_mb"] / batch
        est = estimate_memory(build_model(run, "gpu"), SimpleNamespace(batch_size=1),
                              device="cuda", seq_len=seq, available_gb=100)
        rows.append({"name": f"{run.model}{' + LoRA' if run.lora else ''}, {seq} tokens",
                     "measured_mb": kept, "estimated_mb": est["per_example_gb"] * 1024})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="store_true", help="only the T4 table")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"],
                        help="the CPU check's precision (default bf16, what fit picks here)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        *size, precision = args.child
        print(json.dumps(child(*map(int, size), precision)))
        return

    from llm_course.training.memory_check import format_estimates, main_run_estimates

    rows = main_run_estimates()
    print("Each lesson's main training run at scale gpu, on a T4 (estimate_memory):")
    print(format_estimates(rows))
    print(f"all fit a T4: {all(r['fits'] for r in rows)}")
    if args.table:
        return
    print(f"\nestimate_memory against the measured peak of fit (2 steps, {args.precision}, "
          "CPU; the estimate less its 0.25 GB CUDA allowance):")
    print(f"{'run':<30} {'static GB':>9} {'activ. GB':>9} {'estimate':>9} {'measured':>9} "
          f"{'ratio':>6}")
    for r in cpu_check(args.precision):
        print(f"{r['name']:<30} {r['static_gb']:>9.2f} {r['activations_gb']:>9.2f} "
              f"{r['estimated_gb']:>9.2f} {r['measured_gb']:>9.2f} "
              f"{r['estimated_gb'] / r['measured_gb']:>6.2f}")
    print("(ratio = estimate / measured; the peak also holds what the backward pass and the "
          "optimizer step allocate for a moment)")
    print("\nActivations kept for the backward pass, per example, bf16 autocast on the CPU:")
    print(f"{'model':<34} {'measured MB':>11} {'estimate MB':>11} {'ratio':>6}")
    for r in saved_activations():
        print(f"{r['name']:<34} {r['measured_mb']:>11.0f} {r['estimated_mb']:>11.0f} "
              f"{r['estimated_mb'] / r['measured_mb']:>6.2f}")


if __name__ == "__main__":
    main()
