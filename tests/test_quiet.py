"""Messages a learner cannot act on are hidden once `llm_course` is imported (env/quiet.py)."""

import subprocess
import sys
import warnings

from testkit import tiny_gpt

import llm_course

BUILD_AND_TRAIN_A_GPT = """
import torch
from transformers import GPT2Config, GPT2LMHeadModel
model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=1, vocab_size=20,
                                   bos_token_id=0, eos_token_id=0))
ids = torch.tensor([[1, 2, 3]])
model(input_ids=ids, labels=ids).loss.backward()
import os
print("bars off:", os.environ.get("HF_DATASETS_DISABLE_PROGRESS_BARS"))
"""


def run(prelude: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + BUILD_AND_TRAIN_A_GPT],
                          capture_output=True, text=True, check=True, timeout=120)


def test_loss_type_warning_is_hidden_and_map_bars_are_off():
    plain = run("")
    assert "loss_type=None" in plain.stderr  # what a learner saw without the filter
    quiet = run("import llm_course\n")
    assert "loss_type=None" not in quiet.stderr
    assert "bars off: 1" in quiet.stdout


def test_renamed_attribute_read_by_peft_and_trl_does_not_warn():
    model = tiny_gpt()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        llm_course.env.quiet.hide_unactionable_messages()  # as on import, after simplefilter
        assert model.is_gradient_checkpointing is False
        warnings.warn("a real deprecation", FutureWarning)  # other warnings still show
    assert [str(w.message) for w in caught] == ["a real deprecation"]
