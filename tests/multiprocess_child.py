"""Child script for test_multiprocess.py: `fit` runs, alone or under `accelerate launch`.

    python multiprocess_child.py RUNS.json
    accelerate launch --multi_gpu --num_processes 2 multiprocess_child.py RUNS.json  (gloo, CPU)

RUNS.json lists runs done one after the other in the same processes, each
{"output_dir", "result", "batch_size", "resume"}. `batch_size` is per process, so two
processes of 4 make the same global batch as one of 8. The main process writes each run's
per-step training losses, final evaluation loss, process count and backend to its "result".
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from testkit import TokenData, quiet, tiny_gpt

from llm_course.training.loop import fit

STEPS, CHECKPOINT_AT = 8, 4


def config(output_dir: str, batch_size: int):
    """The test's run: 8 steps of 2 micro-batches, a checkpoint every 4 steps."""
    return quiet(max_steps=STEPS, batch_size=batch_size, grad_accum=2, lr=1e-2, seed=11,
                 eval_every=STEPS, checkpoint_every=CHECKPOINT_AT, keep_checkpoints=2,
                 log_every=1, output_dir=output_dir)


def run(output_dir: str, result: str, batch_size: int, resume: bool = False) -> dict:
    """One fit of the tiny GPT on 64 ragged rows (they split evenly into the global batches)."""
    from accelerate import PartialState

    train, evaluation = TokenData(64, seed=4, ragged=True), TokenData(16, seed=5)
    history = fit(tiny_gpt(seed=3), train, evaluation, config=config(output_dir, batch_size),
                  resume=resume)
    state = PartialState()
    out = {"world": state.num_processes, "backend": state.backend,
           "losses": {int(step): float(loss) for step, loss in history.df["train_loss"].items()
                      if not math.isnan(loss)},
           "eval_loss": history.final_eval.get("eval_loss")}
    if state.is_main_process:
        Path(result).write_text(json.dumps(out))
    return out


def main(runs_file: str) -> None:
    from accelerate import PartialState

    torch.set_num_threads(1)  # the processes share the machine's cores
    for spec in json.loads(Path(runs_file).read_text()):
        run(**spec)
    state = PartialState()
    state.wait_for_everyone()
    if state.use_distributed:
        state.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
