"""Training speed of the lessons, today's settings against the tuned ones, side by side (run by hand).

    .venv/bin/python benchmarks/train_speed.py                  # every case: ~8 min
    .venv/bin/python benchmarks/train_speed.py --only gpt finetune   # lessons 02 and 05
    .venv/bin/python benchmarks/train_speed.py --only gpt --steps 20 --repeats 5
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/train_speed.py --clock cpu --repeats 5

On a machine shared with other jobs, run it with OMP_NUM_THREADS=1: two threads that must
meet at every operation stall whenever the other jobs hold one of the cores (measured here:
today's GPT trained 313 tokens/s with 2 threads at a load average of 6, and 2,864 with one
thread at a load average of 5).

Each case is one lesson's training run at `laptop` size, on the lesson's own data, trained
by `fit` a few ways from the same initial weights:

  today   the settings the lesson had before issue #23 (written out below, so they stay put)
  tuned   the settings the lesson uses now (read from the package: what the notebook runs)

and any other ways a case lists (one lever at a time, to show what each is worth). The ways
run interleaved (a b c a b c ...), so that a machine shared with others slows them alike, and
the medians over the rounds are compared. The bf16 matmul peak is measured in each round too,
between the ways, so the MFU (6·N·tokens/s over that peak) is read against the machine as it
was during the run. A way's speed is its steady state: `--warmup` steps (compilation, first
allocations) run first inside the same `fit` call and are not counted; the time they took is
printed as the way's one-off cost.

Prints the load average before and after, one line per way and round, then `name: value`
lines: tokens/s and MFU per way, and each way's speed as a ratio of `today`'s.

Adding a case (e.g. lesson 05's fine-tuning): write a function that returns a `Case` (its
ways build a fresh model and train it with `fit` for a given number of steps, returning the
`History`) and add it to CASES.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

SCALE = "laptop"


@dataclass
class Case:
    """One lesson's training run, several ways. `ways[name](steps)` trains a fresh model for
    `steps` optimizer steps with `fit` and returns its History (log_every=1)."""

    name: str
    params: int  # N in 6·N·tokens
    ways: dict[str, Callable[[int], object]]
    unit: str = "tokens"  # or "examples": what the speed counts
    notes: list[str] = field(default_factory=list)


def quiet_fit(model, train, config, **kw):
    """`fit` without bar, plot, receipt or evaluation; one logged row per step."""
    from llm_course.training.loop import fit

    cfg = config.replace(progress=False, plot=False, verbose=False, log_every=1, eval_every=0)
    with contextlib.redirect_stdout(io.StringIO()):
        return fit(model, train, config=cfg, **kw)


# -- lesson 02: the GPT ------------------------------------------------------------------------
# Lesson 02 before issue #23: GPT2LMHeadModel with GPT-2's defaults (dropout 0.1, which also
# keeps SDPA off its fused CPU kernel; "gelu_new", the tanh GELU in seven operations), SDPA
# attention; batch 16 x 128, bf16 autocast where the CPU has it, fused AdamW, no compile.
# (The optimizer and the loop are `fit`'s in every way: fused AdamW was already on.)
GPT_TODAY = {"model": {"dropout": 0.1, "activation_function": "gelu_new",
                       "attn_implementation": "sdpa", "chunked_loss": False},
             "train": {"batch_size": 16, "compile": False}}
# One lever at a time, from today's model towards the tuned one (each adds to the one before;
# "tuned" then adds the chunked loss: ChunkedLossGPT2LMHeadModel, as new_gpt builds it).
GPT_STEPS = {
    "no_dropout": {"dropout": 0.0},
    "exact_gelu": {"activation_function": "gelu"},  # x * Phi(x), one kernel
    "eager_attention": {"attn_implementation": "eager"},
}


def old_style_gpt(tokenizer, dropout: float, chunked_loss: bool, **config):
    """A GPT like lesson 02's, with today's choices or any mix of the new ones."""
    from transformers import GPT2LMHeadModel

    from llm_course.models.causal_lm import ChunkedLossGPT2LMHeadModel
    from llm_course.models.configs import gpt_config

    torch.manual_seed(0)
    cls = ChunkedLossGPT2LMHeadModel if chunked_loss else GPT2LMHeadModel
    model = cls(gpt_config(SCALE, tokenizer=tokenizer, **config))
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = dropout
    return model


def gpt_case() -> Case:
    from llm_course.course_models import course_tokenizer
    from llm_course.models.parameters import count_parameters
    from llm_course.pretraining.gpt import gpt_data, new_gpt
    from llm_course.training.config import recipe_config

    data = gpt_data(course_tokenizer("bpe", SCALE), SCALE)
    tokenizer, train = data["tokenizer"], data["train"]

    def way(model_settings: dict | None, train_settings: dict | None):
        def run(steps: int):
            config = recipe_config("gpt", SCALE, max_steps=steps, **(train_settings or {}))
            model = (new_gpt(SCALE, tokenizer, seed=0) if model_settings is None
                     else old_style_gpt(tokenizer, **model_settings))
            return quiet_fit(model, train, config)
        return run

    ways, settings = {"today": way(GPT_TODAY["model"], GPT_TODAY["train"])}, dict(GPT_TODAY["model"])
    for name, change in GPT_STEPS.items():
        settings = {**settings, **change}
        ways[name] = way(dict(settings), GPT_TODAY["train"])
    ways["tuned"] = way(None, None)  # new_gpt and the recipe as lesson 02 runs them now
    params = count_parameters(new_gpt(SCALE, tokenizer, seed=0))[0]
    return Case("gpt", params, ways)


# -- lesson 03: the BERT -----------------------------------------------------------------------
# Lesson 03 before issue #23: dropout already off and the head scoring only the blanks; SDPA
# attention; batches of 16 pieces drawn at random (padded to the longest), bf16, no compile.
BERT_TODAY = {"attn_implementation": "sdpa",
              "train": {"batch_size": 16, "compile": False, "group_by_length": False}}


def bert_case() -> Case:
    from llm_course.course_models import course_tokenizer
    from llm_course.models.parameters import count_parameters
    from llm_course.pretraining.bert import bert_data, new_bert
    from llm_course.training.config import recipe_config

    data = bert_data(course_tokenizer("wordpiece", SCALE), SCALE)

    def way(attention: str | None, train_settings: dict | None):
        def run(steps: int):
            config = recipe_config("bert", SCALE, max_steps=steps, **(train_settings or {}))
            torch.manual_seed(0)
            model = new_bert(SCALE, tokenizer=data["tokenizer"])
            if attention:
                model.set_attn_implementation(attention)
            return quiet_fit(model, data["train"], config, collate_fn=data["collator"])
        return run

    today = BERT_TODAY["train"]
    params = count_parameters(new_bert(SCALE, tokenizer=data["tokenizer"]))[0]
    return Case("bert", params, {
        "today": way(BERT_TODAY["attn_implementation"], today),
        "grouped": way(BERT_TODAY["attn_implementation"], {**today, "group_by_length": True}),
        "tuned": way(None, None),
    })


# -- lesson 05: fine-tuning MiniLM -------------------------------------------------------------
def finetune_tokens_case() -> Case:
    """Lesson 05's main run, today's random batches against the grouped ones, in real tokens/s
    (benchmarks/finetune_speed.py times the same ways and adds padded tokens and the whole run)."""
    from finetune_speed import finetune_case  # benchmarks/ is on the path when run as a script

    case = finetune_case()

    def history_only(run):
        return lambda steps: run(steps)[0]

    return Case("finetune", case["params"],
                {w: history_only(run) for w, run in case["ways"].items()},
                notes=["N: MiniLM's parameters outside its embedding tables"])


CASES: dict[str, Callable[[], Case]] = {"gpt": gpt_case, "bert": bert_case,
                                        "finetune": finetune_tokens_case}


# -- timing ------------------------------------------------------------------------------------
def steady_rate(history, warmup: int) -> tuple[float, float]:
    """(items/s over the steps after `warmup`, seconds the first `warmup` steps took)."""
    rows = [r for r in history.rows if "tokens" in r and "elapsed_s" in r]
    first, last = rows[warmup - 1], rows[-1]
    return ((last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"]),
            first["elapsed_s"])


def bf16_peak() -> float:
    from llm_course.training.cost import measure_matmul_peak

    return measure_matmul_peak("cpu", "bf16", seconds=0.4)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(CASES), help="cases to run")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first, same call")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time `fit`'s steps by the wall clock, or by this process's CPU "
                             "time (with OMP_NUM_THREADS=1 on a shared machine: the time the "
                             "steps would take on a core of their own, steadier than the wall)")
    args = parser.parse_args()
    if args.clock == "cpu":  # fit's step timer (time.perf_counter in the loop) reads CPU time
        import types

        from llm_course.training import cost, loop

        cpu_clock = types.SimpleNamespace(perf_counter=time.process_time)
        loop.time = cpu_clock
        cost.time = cpu_clock  # the matmul peak, timed by the same clock
    from llm_course.env.quiet import hide_unactionable_messages

    hide_unactionable_messages()
    print(f"load average before: {load()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.warmup} + {args.steps} steps x "
          f"{args.repeats} rounds; {args.clock} clock", flush=True)
    results = {}
    for name in args.only or CASES:
        case = CASES[name]()
        rates: dict[str, list[float]] = {w: [] for w in case.ways}
        costs: dict[str, list[float]] = {w: [] for w in case.ways}
        peaks: list[float] = []
        for r in range(args.repeats):
            peaks.append(bf16_peak())
            for w, run in case.ways.items():
                rate, cost = steady_rate(run(args.warmup + args.steps), args.warmup)
                rates[w].append(rate)
                costs[w].append(cost)
                print(f"{case.name} round {r + 1} {w:12s} {rate:8,.0f} {case.unit}/s "
                      f"(first {args.warmup} steps {cost:5.1f} s)", flush=True)
        results[name] = (case, rates, costs, statistics.median(peaks))
    print(f"\nload average after: {load()}")
    for name, (case, rates, costs, peak) in results.items():
        med = {w: statistics.median(v) for w, v in rates.items()}
        print(f"{name}_params: {case.params}")
        for note in case.notes:
            print(f"{name}_note: {note}")
        print(f"{name}_bf16_peak_tflops: {peak / 1e12:.3f}")
        for w, value in med.items():
            print(f"{name}_{w}_{case.unit}_per_s: {value:.0f}")
            print(f"{name}_{w}_mfu: {6 * case.params * value / peak:.3f}")
            print(f"{name}_{w}_first_steps_s: {statistics.median(costs[w]):.1f}")
        for w, value in med.items():
            if w != "today":
                print(f"{name}_{w}_vs_today: {value / med['today']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
