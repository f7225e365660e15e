"""Adafactor beside AdamW, and TensorBoard logs that can be read back (lesson 05 shows both)."""

import pytest
import torch
from testkit import TokenData, quiet, tiny_gpt

from llm_course.training.config import ConfigError, TrainConfig
from llm_course.training.evaluate import evaluate
from llm_course.training.loop import fit


@pytest.mark.parametrize("optimizer", ["adamw", "adafactor"])
def test_both_optimizers_lower_the_loss(optimizer):
    torch.manual_seed(0)
    model = tiny_gpt()
    data = TokenData(16)  # random tokens: learnable only by heart, which takes both a few steps
    before = evaluate(model, data, task="lm", batch_size=16)["loss"]
    history = fit(model, data, data, config=quiet(optimizer=optimizer, max_steps=40, lr=1e-2,
                                                   batch_size=16, eval_every=0))
    # measured: 4.17 -> 0.83 (AdamW) and 1.20 (Adafactor)
    assert history.rows[-1]["eval_loss"] < before - 2, (optimizer, before, history.rows[-1])


def test_adafactor_keeps_a_fraction_of_adamws_state():
    sizes = {}
    for optimizer in ("adamw", "adafactor"):
        history = fit(tiny_gpt(), TokenData(32), None,
                      config=quiet(optimizer=optimizer, max_steps=2, batch_size=16))
        sizes[optimizer] = history.optimizer_state_bytes
    weights = sum(p.numel() * 4 for p in tiny_gpt().parameters())
    # AdamW: two fp32 moments per weight; Adafactor: row and column averages of each matrix
    assert sizes["adamw"] == pytest.approx(2 * weights, rel=0.01)
    assert 0 < sizes["adafactor"] < 0.3 * sizes["adamw"], sizes


def test_an_unknown_optimizer_is_named():
    with pytest.raises(ConfigError, match="optimizer"):
        TrainConfig(optimizer="sgd")


def test_tensorboard_without_a_folder_says_which_setting_to_add():
    with pytest.raises(ConfigError, match="log_dir"):
        TrainConfig(log_to="tensorboard")


def test_tensorboard_logs_can_be_read_back(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = TokenData(64)
    fit(tiny_gpt(), data, data, config=quiet(max_steps=6, batch_size=16, eval_every=3,
                                             log_every=1, log_dir=tmp_path / "tb",
                                             log_to="tensorboard"))
    assert not list(tmp_path.glob("checkpoint*"))  # logging alone writes no checkpoint
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "eval_loss", "lr"} <= tags, tags
    losses = events.Scalars("train_loss")
    assert [e.step for e in losses] == sorted(e.step for e in losses) and len(losses) >= 5
    assert all(e.value > 0 for e in losses)
    assert [e.step for e in events.Scalars("eval_loss")] == [3, 6]
