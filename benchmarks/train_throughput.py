"""How fast is `fit`? Against a minimal PyTorch loop and `transformers.Trainer` (run by hand).

    .venv/bin/python benchmarks/train_throughput.py --steps 30 --repeats 3

Trains the same tiny GPT (GPT2LMHeadModel: 4 layers, 256 wide, 4 heads, vocabulary 8192)
on batches of 16 x 128 random tokens with AdamW, the same number of steps, four ways:

  a  plain      a hand-written PyTorch loop, fp32
  b  trainer    transformers.Trainer, its defaults (fp32)
  c  fit_fp32   llm_course.fit with precision="fp32" (progress bar and live view on)
  d  fit_auto   llm_course.fit with its defaults (progress bar and live view on)

The ways run interleaved (a b c d a b c d ...) so that a busy machine slows all of them
alike; each is warmed up first, and the medians over the repeats are compared. Each timing
is the whole call (set-up, loop, wrap-up) from a fresh copy of the same initial weights.
Prints tokens/s per way, then the ratios as `name: value` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

BATCH, SEQ, VOCAB = 16, 128, 8192


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def make_model():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=4, n_embd=256, n_head=4, vocab_size=VOCAB, n_positions=SEQ,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg)
    model.loss_type = "ForCausalLM"  # the default it falls back to, minus a warning
    return model


def plain(model, data, steps: int) -> None:
    """(a) The minimal loop every PyTorch tutorial writes."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    loader = torch.utils.data.DataLoader(data, batch_size=BATCH, shuffle=True)
    for _, batch in zip(range(steps), loader, strict=False):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def trainer(model, data, steps: int) -> None:
    """(b) transformers.Trainer with its defaults (fp32), no saving, no reporting."""
    from transformers import Trainer, TrainingArguments

    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, max_steps=steps, per_device_train_batch_size=BATCH,
                                 learning_rate=1e-4, report_to="none", save_strategy="no",
                                 logging_steps=max(1, steps // 5))
        with contextlib.redirect_stdout(io.StringIO()):  # its log dicts: not part of the race
            Trainer(model=model, args=args, train_dataset=data).train()


def fit_with(precision: str):
    def run(model, data, steps: int) -> None:
        from llm_course.training.loop import TrainConfig, fit

        kw = {} if precision == "auto" else {"precision": precision}
        cfg = TrainConfig(max_steps=steps, batch_size=BATCH, lr=1e-4, **kw)
        with contextlib.redirect_stdout(io.StringIO()):  # the receipt; the bar goes to stderr
            fit(model, data, config=cfg)
    return run


WAYS = {"plain": plain, "trainer": trainer, "fit_fp32": fit_with("fp32"),
        "fit_auto": fit_with("auto")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=3, help="steps of each way before timing")
    args = parser.parse_args()

    base = make_model()
    state = copy.deepcopy(base.state_dict())
    data = RandomTokens(max(args.steps, args.warmup) * BATCH)
    n_params = sum(p.numel() for p in base.parameters())
    print(f"tiny GPT: {n_params / 1e6:.2f} M parameters; batch {BATCH}x{SEQ}; "
          f"{args.steps} steps x {args.repeats} rounds; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads", flush=True)

    def fresh():
        model = make_model()
        model.load_state_dict(state)
        return model

    for name, way in WAYS.items():  # warm-up: imports, kernels, caches (e.g. the matmul peak)
        t0 = time.perf_counter()
        way(fresh(), data, args.warmup)
        print(f"warm-up {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)

    rates: dict[str, list[float]] = {name: [] for name in WAYS}
    for r in range(args.repeats):
        for name, way in WAYS.items():
            model = fresh()
            t0 = time.perf_counter()
            way(model, data, args.steps)
            seconds = time.perf_counter() - t0
            rates[name].append(args.steps * BATCH * SEQ / seconds)
            print(f"round {r + 1} {name:9s} {rates[name][-1]:8,.0f} tokens/s", flush=True)

    med = {name: statistics.median(v) for name, v in rates.items()}
    print()
    for name, value in med.items():
        print(f"{name}_tokens_per_s: {value:.0f}")
    print(f"fit_fp32_vs_plain_fp32: {med['fit_fp32'] / med['plain']:.3f}")
    print(f"fit_auto_vs_plain_fp32: {med['fit_auto'] / med['plain']:.3f}")
    print(f"fit_auto_vs_trainer: {med['fit_auto'] / med['trainer']:.3f}")


if __name__ == "__main__":
    main()
