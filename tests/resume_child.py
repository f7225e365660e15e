"""Child process for test_train.py::test_resume_after_sigkill_matches_uninterrupted_run.

Trains the tiny GPT with checkpoints. Once the first checkpoint exists, it trains a few
more micro-batches (`stall_after`), then writes `ready` and waits to be killed with SIGKILL
by the test: the kill lands between two checkpoints.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from testkit import TokenData, tiny_gpt
from torch.utils.data import default_collate

from llm_course.training.loop import fit


def main(output_dir: str, ready: str, stall_after: int) -> None:
    torch.set_num_threads(1)  # as the test process does
    calls = 0

    def collate(items):
        nonlocal calls
        if any(Path(output_dir).glob("checkpoint-*")):
            calls += 1
        if calls == stall_after:
            Path(ready).write_text("checkpoint written; waiting to be killed")
            time.sleep(600)
        return default_collate(items)

    from test_train import resume_config  # the exact config the test uses

    fit(tiny_gpt(seed=1, dropout=0.1), TokenData(96, seed=2), TokenData(16, seed=3),
        config=resume_config(output_dir), collate_fn=collate)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
