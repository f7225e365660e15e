"""Lesson 05's fine-tuning speed, today's settings against the tuned ones, side by side (run by hand).

    .venv/bin/python benchmarks/finetune_speed.py                 # about 3 minutes on a quiet machine
    .venv/bin/python benchmarks/finetune_speed.py --steps 20 --repeats 3

The main run of lesson 05 (MiniLM fine-tuned on the reviews, `laptop` scale, the same data,
tokenizer and max length the lesson uses), trained by `fit` two ways from the same weights:

  today   batches drawn at random and padded to their longest review: how lesson 05 trained
          before issue #23 (written out below, so it stays put)
  tuned   the recipe the lesson uses now (`classifier_recipe("sentiment")`, read from the
          package: batches of similar length)

The ways run interleaved (a b a b ...) so that a machine shared with others slows them alike,
and the medians over the rounds are compared. The bf16 matmul peak is measured in each round,
so the MFU is read against the machine as it was during the run. Each way's first `--warmup`
steps run inside the same `fit` call and are not counted.

Two MFUs, both 6·N·tokens/s over the bf16 peak, with N the parameters outside the embedding
tables (a token looks its embedding up; it multiplies through the rest): `mfu_real` counts the
reviews' own tokens
(the useful work), `mfu_padded` every position the model computed, padding included. Grouping
barely changes the second; what it removes is the gap between the two.

Prints the load average before and after, one line per way and round, then `name: value`
lines (the same shape as `benchmarks/train_speed.py`, whose CASES can take `finetune_case`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from train_speed import bf16_peak, load  # noqa: E402  (benchmarks/ is on the path as a script)

SCALE = "laptop"
# Lesson 05's main run before issue #23: 250 steps of 32 random reviews (0.78 epochs), bf16.
TODAY = {"group_by_length": False, "batch_size": 32, "max_steps": 250}


def finetune_case():
    """{"params", "ways": {name: run(steps) -> (History, padded tokens)}, "steps_today",
    "steps_tuned"} for lesson 05's main run."""
    import copy

    from llm_course.finetuning.tasks import classification_data, classifier_recipe
    from llm_course.models.loading import load_pretrained, quiet_loading
    from llm_course.models.parameters import count_parameters
    from llm_course.training.batches import micro_batches

    recipe = classifier_recipe("sentiment", SCALE)
    with quiet_loading():
        torch.manual_seed(0)
        base, tokenizer = load_pretrained("minilm", task="sequence-classification",
                                          label_names=["negative", "positive"], scale=SCALE)
    data = classification_data("sentiment", tokenizer, SCALE, max_length=recipe["max_length"])

    def way(**overrides):
        def run(steps: int):
            from llm_course.training.loop import fit

            cfg = recipe["config"].replace(max_steps=steps, progress=False, plot=False,
                                           verbose=False, log_every=1, eval_every=0, **overrides)
            with contextlib.redirect_stdout(io.StringIO()):
                history = fit(copy.deepcopy(base), data["train"], config=cfg,
                              collate_fn=data["collator"])
            stream = micro_batches(data["train"], cfg, data["collator"])  # the same batches again
            padded = [next(stream)["input_ids"].numel() for _ in range(steps)]
            return history, padded
        return run

    # N for 6·N·tokens: the weights a token multiplies through. MiniLM's embedding tables
    # (11.9 M of its 22.7 M parameters) are looked up, not multiplied: counting them would
    # double the FLOPs.
    embeddings = count_parameters(base.bert.embeddings)[0]
    return {"params": count_parameters(base)[0] - embeddings, "batch_size": recipe["config"].batch_size,
            "ways": {"today": way(**{k: v for k, v in TODAY.items() if k != "max_steps"}),
                     "tuned": way()},
            "steps_today": TODAY["max_steps"], "steps_tuned": recipe["config"].max_steps}


def steady(history, padded: list[int], warmup: int, batch: int) -> dict[str, float]:
    """Examples/s, real tokens/s and padded tokens/s over the steps after `warmup`."""
    rows = [r for r in history.rows if "tokens" in r and "elapsed_s" in r]
    first, last = rows[warmup - 1], rows[-1]
    seconds = last["elapsed_s"] - first["elapsed_s"]
    steps = len(rows) - warmup
    return {"examples": steps * batch / seconds,
            "tokens": (last["tokens"] - first["tokens"]) / seconds,
            "padded": sum(padded[warmup:]) / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first, same call")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    args = parser.parse_args()
    from llm_course.env.quiet import hide_unactionable_messages

    hide_unactionable_messages()
    print(f"load average before: {load()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.warmup} + {args.steps} steps x "
          f"{args.repeats} rounds", flush=True)
    case = finetune_case()
    rates: dict[str, list[dict]] = {w: [] for w in case["ways"]}
    peaks = []
    t0 = time.perf_counter()
    for r in range(args.repeats):
        peaks.append(bf16_peak())
        for w, run in case["ways"].items():
            rates[w].append(steady(*run(args.warmup + args.steps), args.warmup, case["batch_size"]))
            print(f"finetune round {r + 1} {w:6s} {rates[w][-1]['examples']:7.1f} examples/s "
                  f"({rates[w][-1]['tokens']:,.0f} real, {rates[w][-1]['padded']:,.0f} padded "
                  f"tokens/s)", flush=True)
    print(f"\nload average after: {load()} ({time.perf_counter() - t0:.0f} s)")
    peak = statistics.median(peaks)
    med = {w: {k: statistics.median(v[k] for v in runs) for k in runs[0]} for w, runs in rates.items()}
    n = case["params"]
    print(f"finetune_params_outside_embeddings: {n}")
    print(f"finetune_bf16_peak_tflops: {peak / 1e12:.3f}")
    for w, m in med.items():
        print(f"finetune_{w}_examples_per_s: {m['examples']:.1f}")
        print(f"finetune_{w}_tokens_per_s: {m['tokens']:.0f}")
        print(f"finetune_{w}_mfu_real: {6 * n * m['tokens'] / peak:.3f}")
        print(f"finetune_{w}_mfu_padded: {6 * n * m['padded'] / peak:.3f}")
    print(f"finetune_tuned_vs_today: {med['tuned']['examples'] / med['today']['examples']:.2f}")
    # the main run as a whole: its steps at each way's measured speed
    seconds = {w: case[f"steps_{w}"] * case["batch_size"] / med[w]["examples"] for w in med}
    print(f"finetune_main_run_steps_today: {case['steps_today']}")
    print(f"finetune_main_run_steps_tuned: {case['steps_tuned']}")
    print(f"finetune_main_run_seconds_today: {seconds['today']:.0f}")
    print(f"finetune_main_run_seconds_tuned: {seconds['tuned']:.0f}")


if __name__ == "__main__":
    sys.exit(main())
