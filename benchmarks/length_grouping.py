"""What does `group_by_length` save? Fine-tuning MiniLM on the reviews, side by side (run by hand).

    .venv/bin/python benchmarks/length_grouping.py --steps 40 --repeats 3

Lesson 06 (and 07) train with `TrainConfig(group_by_length=True)`: batches of reviews of
similar length, so little of each batch is padding. This runs `fit` on lesson 06's data
(the sentiment reviews, MiniLM's tokenizer, max_length 64, batch 32, `laptop` scale) two
ways, the same number of steps from the same initial weights:

  a  random    batches drawn at random (the default)
  b  grouped   group_by_length=True

The ways run interleaved (a b a b ...) after a warm-up, so a busy machine slows both alike,
and the medians are compared. Prints the padding share of one epoch's batches for each way,
the examples per second, then the ratio as `name: value` lines.
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

BATCH, MAX_LENGTH = 32, 64


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths[i] for b in batches for i in b) / padded


def main() -> None:
    from llm_course.finetuning.tasks import classification_data
    from llm_course.models.loading import load_pretrained, quiet_loading
    from llm_course.training.batches import epoch_order, length_grouped
    from llm_course.training.config import recipe_config
    from llm_course.training.loop import fit

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=3, help="steps of each way before timing")
    args = parser.parse_args()

    with quiet_loading():
        base, tokenizer = load_pretrained("minilm", task="sequence-classification",
                                          label_names=["negative", "positive"], scale="laptop")
    state = {k: v.clone() for k, v in base.state_dict().items()}
    data = classification_data("sentiment", tokenizer, "laptop", max_length=MAX_LENGTH)
    lengths = [len(ids) for ids in data["train"]["input_ids"]]
    order = epoch_order(len(lengths), seed=0, epoch=0)
    shares = {"random": padding_share(lengths, [order[i:i + BATCH] for i in range(0, len(order), BATCH)]),
              "grouped": padding_share(lengths, length_grouped(order, lengths, BATCH, seed=0, epoch=0))}
    print(f"{len(lengths):,} reviews, {statistics.mean(lengths):.1f} tokens on average (at most "
          f"{max(lengths)}); batch {BATCH}; {args.steps} steps x {args.repeats} rounds; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    for name, share in shares.items():
        print(f"padding share of an epoch's batches, {name}: {share:.1%}")

    def run(grouped: bool, steps: int) -> float:
        base.load_state_dict(state)
        cfg = recipe_config("finetune", "laptop", max_steps=steps, batch_size=BATCH, eval_every=0,
                              eval_batches=1, progress=False, plot=False,
                              group_by_length=grouped)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # the receipt
            fit(base, data["train"], data["validation"], config=cfg, collate_fn=data["collator"])
        return time.perf_counter() - t0

    ways = {"random": False, "grouped": True}
    for name, grouped in ways.items():
        print(f"warm-up {name}: {run(grouped, args.warmup):.1f} s", file=sys.stderr, flush=True)
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(args.repeats):
        for name, grouped in ways.items():
            rates[name].append(args.steps * BATCH / run(grouped, args.steps))
            print(f"round {r + 1} {name:8s} {rates[name][-1]:6.1f} examples/s", flush=True)

    med = {name: statistics.median(v) for name, v in rates.items()}
    print()
    for name, value in med.items():
        print(f"{name}_examples_per_s: {value:.1f}")
    print(f"grouped_vs_random_speed: {med['grouped'] / med['random']:.3f}")
    print(f"padding_share_random: {shares['random']:.3f}")
    print(f"padding_share_grouped: {shares['grouped']:.3f}")


if __name__ == "__main__":
    main()
