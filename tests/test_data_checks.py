"""Data mistakes stopped at the first batch with the fix (llm_course.training.data_checks),
warmup longer than the run (training/config.py), and what the NaN report blames
(training/divergence.py)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
from testkit import (
    SEQ,
    VOCAB,
    ToyClassifier,
    VectorData,
    one_thread_in_a_throwaway_home,
    quiet,
    tiny_bert,
    tiny_bert_config,
    tiny_gpt,
)
from torch import nn

from llm_course.training.config import ConfigError, TrainConfig
from llm_course.training.data_checks import DataError
from llm_course.training.evaluate import evaluate
from llm_course.training.loop import TrainingDiverged, fit


@pytest.fixture(autouse=True)
def _one_thread(tmp_path_factory, monkeypatch):
    yield from one_thread_in_a_throwaway_home(tmp_path_factory, monkeypatch)


class Rows(torch.utils.data.Dataset):
    """A dataset of ready-made examples (dicts of tensors)."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def lm_rows(n: int = 8, length: int = SEQ, high: int = VOCAB, seed: int = 0) -> Rows:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, high, (n, length), generator=g)
    ids[0, 0] = high - 1  # the largest id is in every first batch
    return Rows([{"input_ids": r, "labels": r.clone()} for r in ids])


def fails_before_any_step(model: nn.Module, train, eval_set=None, **cfg) -> str:
    """fit(...) must raise DataError before any forward pass or update; return the message."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calls = []
    model.register_forward_pre_hook(lambda *a: calls.append(1))
    settings = dict(max_steps=3, batch_size=8, lr=1e-2, warmup_steps=0, verbose=False)
    settings.update(cfg)
    with pytest.raises(DataError) as info:
        fit(model, train, eval_set, config=quiet(**settings))
    assert calls == [], "the model ran a forward pass before the check"
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)
    assert len(info.traceback) <= 9, "the error should not come from deep inside torch"
    return str(info.value)


# -- the data mistakes ----------------------------------------------------------------------------
def test_token_id_beyond_the_vocabulary():
    message = fails_before_any_step(tiny_gpt(), lm_rows(high=99))
    assert "token id 98 >= vocab_size 64 (model.config.vocab_size)" in message
    assert "gpt_config(tokenizer=" in message  # the fix


def test_batches_from_hf_collators_are_checked_too():
    from torch.utils.data import default_collate
    from transformers import BatchEncoding  # what DataCollatorWithPadding returns: not a dict

    model = tiny_gpt()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(DataError, match="token id 98 >= vocab_size 64"):
        fit(model, lm_rows(high=99), config=quiet(max_steps=2, batch_size=8, verbose=False),
            collate_fn=lambda examples: BatchEncoding(default_collate(examples)))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_negative_token_id_names_the_pad_id():
    rows = lm_rows()
    rows.rows[0]["input_ids"][-3:] = -100  # padded with the label filler
    message = fails_before_any_step(tiny_gpt(), rows)
    assert "token id -100" in message and "tokenizer.pad_token_id" in message


def test_sequence_longer_than_the_context():
    message = fails_before_any_step(tiny_gpt(), lm_rows(length=SEQ + 4))
    assert f"a sequence of {SEQ + 4} tokens" in message
    assert f"longer than the model's context of {SEQ} (n_positions)" in message
    assert f"max_length={SEQ}" in message


def test_sequence_longer_than_bert_positions():
    rows = Rows([{"input_ids": torch.randint(1, 100, (40,)), "labels": torch.tensor(i % 2)}
                 for i in range(8)])
    message = fails_before_any_step(tiny_bert(num_labels=2), rows)
    assert "context of 32 (max_position_embeddings)" in message and "max_length=32" in message


def test_class_label_beyond_num_labels():
    rows = Rows([{"input_ids": torch.randint(1, 100, (10,)), "label": torch.tensor(i % 6)}
                 for i in range(8)])
    message = fails_before_any_step(tiny_bert(num_labels=2), rows)
    assert "label 5 >= num_labels 2 (model.config.num_labels)" in message
    assert "num_labels=" in message and "at least 6" in message  # the fix


def test_token_label_beyond_num_labels_ignores_minus_100():
    from transformers import BertForTokenClassification

    def rows(bad: bool) -> Rows:
        g = torch.Generator().manual_seed(0)
        out = []
        for _ in range(8):
            labels = torch.randint(0, 3, (10,), generator=g)
            labels[0] = labels[-1] = -100  # [CLS], [SEP]
            out.append({"input_ids": torch.randint(1, 100, (10,), generator=g), "labels": labels})
        if bad:
            out[0]["labels"][4] = 7
        return Rows(out)

    torch.manual_seed(0)
    model = BertForTokenClassification(tiny_bert_config(num_labels=3, dropout=0.0))
    message = fails_before_any_step(model, rows(bad=True))
    assert "token label 7 >= num_labels 3" in message and "-100 are ignored" in message
    assert "num_labels=len(tags)" in message
    fit(model, rows(bad=False), config=quiet(max_steps=1, batch_size=8, verbose=False))  # -100 is fine


def test_unpadded_examples_without_collate_fn():
    rows = Rows([{"input_ids": torch.randint(1, VOCAB, (16 if i % 2 else 12,))} for i in range(8)])
    for row in rows.rows:
        row["labels"] = row["input_ids"].clone()
    message = fails_before_any_step(tiny_gpt(), rows)
    assert re.search(r"examples of different lengths \((16 and 12|12 and 16)\) in 'input_ids' "
                     r"and no collate_fn", message)
    assert "DataCollatorWithPadding(tokenizer)" in message


def test_a_bad_evaluation_set_is_named_at_its_first_evaluation():
    # checked when evaluate() takes its first batch: collating it earlier would draw from a
    # masking collator's generator and change the training masks of a seeded run
    with pytest.raises(DataError, match="token id 79 >= vocab_size 64"):
        fit(tiny_gpt(), lm_rows(), lm_rows(high=80, seed=1),
            config=quiet(max_steps=4, batch_size=4, eval_every=2, verbose=False))


def test_evaluate_checks_its_first_batch():
    with pytest.raises(DataError, match=f"longer than the model's context of {SEQ}"):
        evaluate(tiny_gpt(), lm_rows(length=SEQ + 1), batch_size=4)
    ragged = Rows([{"input_ids": torch.ones(5 + i % 2, dtype=torch.long)} for i in range(4)])
    with pytest.raises(DataError, match=r"different lengths \(5 and 6\).*DataCollatorWithPadding"):
        evaluate(tiny_gpt(), ragged, batch_size=4)


def test_models_without_a_config_are_not_second_guessed():
    history = fit(ToyClassifier(seed=0), VectorData(32), VectorData(16, seed=1),
                  config=quiet(max_steps=2, batch_size=8, task="classification", verbose=False))
    assert history.steps == 2


# -- warmup longer than the run ---------------------------------------------------------------------
def test_warmup_longer_than_max_steps_is_refused():
    with pytest.raises(ConfigError) as info:
        TrainConfig(warmup_steps=500, max_steps=200)
    message = str(info.value)
    assert "warmup_steps=500" in message and "max_steps=200" in message
    assert "warmup_steps <= 200" in message and "warmup_ratio" in message
    assert TrainConfig(warmup_steps=200, max_steps=200).warmup_for(200) == 200


def test_warmup_longer_than_an_epoch_run_is_refused_before_training():
    model = ToyClassifier(seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ConfigError, match=r"warmup_steps=50 is more than the run's 4 steps"):
        fit(model, VectorData(32), config=quiet(epochs=1, batch_size=8, warmup_steps=50))
    assert model.calls == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# -- what the NaN report blames -----------------------------------------------------------------------
class DeepRegressor(nn.Module):
    """A deep linear stack with a squared loss: a high learning rate blows it up in a few steps."""

    def __init__(self, depth: int = 8, width: int = 32) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.Sequential(nn.Linear(4, width),
                                    *[nn.Linear(width, width) for _ in range(depth)],
                                    nn.Linear(width, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> SimpleNamespace:
        out = self.layers(x).squeeze(-1)
        loss = None if labels is None else nn.functional.mse_loss(out, labels.float())
        return SimpleNamespace(loss=loss, logits=out)


def _diverged(model: nn.Module, data, **cfg) -> str:
    settings = dict(max_steps=100, batch_size=8, warmup_steps=0, schedule="constant",
                    max_grad_norm=None, weight_decay=0.0, verbose=False)
    settings.update(cfg)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, data, config=quiet(**settings))
    return str(info.value)


def test_nan_from_the_model_at_step_1_does_not_blame_the_learning_rate():
    message = _diverged(ToyClassifier(seed=0, nan_at_call=1), VectorData(32), lr=3e-4)
    assert "the loss became nan at step 1, before any update" in message
    assert "the inputs and weights are finite" in message
    assert "(1) the model's forward pass" in message
    assert "Not the learning rate" in message and "too high" not in message


def test_nan_in_the_inputs_is_named_first():
    data = VectorData(32)
    data.x[3, 1] = float("nan")
    message = _diverged(ToyClassifier(seed=0), data, lr=3e-4, batch_size=32)
    assert "before any update" in message
    assert "(1) the data: 'x' holds 1 NaN/inf value" in message


def test_a_too_high_learning_rate_is_blamed_after_updates():
    message = _diverged(DeepRegressor(), VectorData(64), lr=0.3)
    found = re.search(r"at step (\d+) .*after (\d+) updates", message)
    assert found and int(found[2]) == int(found[1]) - 1 >= 2
    assert "(1) the learning rate is probably too high (lr=0.3; try 0.03" in message
    assert "before any update" not in message
