"""The training loop: exact gradient accumulation, divergence guard, early stopping,
crash-safe resume, metrics through fit, memory estimate (llm_course.training.loop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from testkit import (
    TokenData,
    ToyClassifier,
    VectorData,
    one_thread_in_a_throwaway_home,
    quiet,
    tiny_gpt,
)

from llm_course.training import cost
from llm_course.training.checkpoint import CheckpointMismatch, latest_checkpoint
from llm_course.training.evaluate import count_items, evaluate
from llm_course.training.loop import TrainingDiverged, fit

HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def _course_home(tmp_path_factory, monkeypatch):
    yield from one_thread_in_a_throwaway_home(tmp_path_factory, monkeypatch)


# -- gradient accumulation is exact ---------------------------------------------------------------
def _grads_after_one_step(batch_size: int, grad_accum: int) -> dict[str, torch.Tensor]:
    model = tiny_gpt(seed=0)
    grads: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        p.register_post_accumulate_grad_hook(
            lambda p, name=name: grads.__setitem__(name, p.grad.detach().clone()))
    fit(model, TokenData(8, seed=5, ragged=True),
        config=quiet(max_steps=1, batch_size=batch_size, grad_accum=grad_accum,
                     max_grad_norm=None, lr=1e-3))
    return grads


def test_grad_accum_4x2_equals_1x8_in_fp32():
    data = TokenData(8, seed=5, ragged=True)
    causal_tokens = [count_items(data[i] | {"labels": data[i]["labels"][None]}, causal=True)
                     for i in range(8)]
    assert len(set(causal_tokens)) > 1, "the test needs micro-batches with different token counts"
    big = _grads_after_one_step(batch_size=8, grad_accum=1)
    small = _grads_after_one_step(batch_size=2, grad_accum=4)
    assert big.keys() == small.keys() and len(big) > 10
    for name in big:
        torch.testing.assert_close(small[name], big[name], rtol=1e-5, atol=1e-6, msg=name)


# -- divergence -----------------------------------------------------------------------------------
def test_absurd_learning_rate_stops_with_an_explanation():
    with pytest.raises(TrainingDiverged) as info:
        fit(tiny_gpt(seed=0), TokenData(64, seed=1),
            config=quiet(lr=1.0, max_steps=60, batch_size=8, max_grad_norm=None, warmup_steps=0))
    message = str(info.value)
    assert "learning rate" in message and "lr=1" in message
    assert info.value.history is not None


def test_nan_loss_raises_before_any_update_with_it():
    data = VectorData(64, seed=0)
    cfg = quiet(lr=0.1, batch_size=8, warmup_steps=0, schedule="constant")
    reference = ToyClassifier(seed=3)
    fit(reference, data, config=cfg.replace(max_steps=2))  # two good steps
    broken = ToyClassifier(seed=3, nan_at_call=3)  # the third forward returns NaN
    with pytest.raises(TrainingDiverged, match="loss became nan at step 3"):
        fit(broken, data, config=cfg.replace(max_steps=10))
    for a, b in zip(reference.parameters(), broken.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the NaN step changed nothing


# -- early stopping --------------------------------------------------------------------------------
def test_early_stopping_restores_the_best_weights():
    model = ToyClassifier(seed=0)
    train, val = VectorData(128, seed=0), VectorData(64, seed=1, flip=True)  # val gets worse
    history = fit(model, train, val, config=quiet(
        lr=0.05, batch_size=16, max_steps=200, eval_every=5, early_stopping_patience=2,
        warmup_steps=0, schedule="constant"))
    assert history.stopped_reason.startswith("early stopping")
    assert history.steps < 200
    assert history.best["restored"] is True
    assert history.best["step"] < history.steps
    again = evaluate(model, val, task="classification")
    assert again["loss"] == pytest.approx(history.best["value"], abs=1e-6)


# -- metrics through fit ---------------------------------------------------------------------------
def test_classification_metrics_and_user_metrics_in_history():
    def share_of_ones(predictions, labels):
        return float((predictions == 1).mean())

    def top_logit(logits, labels):
        return {"max_logit": float(logits.max())}

    history = fit(ToyClassifier(seed=0), VectorData(128, seed=0), VectorData(64, seed=1),
                  config=quiet(lr=0.1, batch_size=16, max_steps=40, task="classification"),
                  metrics={"ones": share_of_ones, "top": top_logit})
    final = history.final_eval
    assert {"eval_loss", "eval_accuracy", "eval_macro_f1", "eval_ones", "eval_max_logit"} <= set(final)
    assert final["eval_accuracy"] > 0.75  # the classes are linearly separable
    df = history.df
    assert "train_loss" in df and df.index.name == "step"
    assert history.receipt["params_total"] == 4 * 2 + 2 + 4 + 4
    assert history.precision == "fp32"


def test_lm_run_reports_perplexity_and_precision_line(capsys):
    history = fit(tiny_gpt(seed=0), TokenData(64, seed=1), TokenData(16, seed=2),
                  config=quiet(precision="auto", max_steps=6, batch_size=8, lr=3e-3))
    out = capsys.readouterr().out
    assert out.startswith("precision: ") and "auto:" in out.splitlines()[0]
    assert "Compute receipt" in out and "tokens/s" in out
    fit(tiny_gpt(seed=0), TokenData(64, seed=1), config=quiet(max_steps=2, verbose=False))
    assert capsys.readouterr().out == ""  # a quiet run in a loop prints nothing
    assert history.final_eval["eval_perplexity"] == pytest.approx(
        torch.tensor(history.final_eval["eval_loss"]).exp().item(), rel=1e-6)
    assert history.receipt["tokens"] == 6 * 8 * 16


# -- memory estimate -------------------------------------------------------------------------------
def test_estimate_memory_says_if_it_fits(monkeypatch):
    model = tiny_gpt()
    ok = cost.estimate_memory(model, quiet(batch_size=8), device="cpu")
    assert ok["fits"] and "fits" in ok["message"] and ok["total_gb"] > ok["weights_gb"]

    monkeypatch.setattr(cost, "available_memory", lambda device=None: (0.4 * 2**30, "this T4 has"))
    big = cost.estimate_memory(model, quiet(batch_size=4096), device="cpu", seq_len=1024)
    assert not big["fits"] and big["suggested_batch_size"] < 4096
    assert "this T4 has" in big["message"]
    assert f"try batch_size={big['suggested_batch_size']}" in big["message"]


def test_fit_refuses_a_run_that_cannot_fit(monkeypatch):
    monkeypatch.setattr(cost, "available_memory", lambda device=None: (10.0, "this device has"))
    with pytest.raises(MemoryError, match="will not fit even at batch_size=1"):
        fit(ToyClassifier(), VectorData(16), config=quiet(max_steps=1))


# -- checkpoints and resume -------------------------------------------------------------------------
def resume_config(output_dir: str):
    """Shared with resume_child.py: the run that gets killed and the reference run."""
    return quiet(max_steps=24, batch_size=4, grad_accum=2, lr=2e-3, eval_every=8,
                 checkpoint_every=8, output_dir=output_dir, seed=7)


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    killed_dir, ready = tmp_path / "killed", tmp_path / "ready"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen(
        [sys.executable, str(HERE / "resume_child.py"), str(killed_dir), str(ready), "6"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ready.exists():
        if child.poll() is not None:
            raise AssertionError(f"child exited early: {child.stderr.read().decode()[-2000:]}")
        assert time.time() < deadline, "child never reached the kill point"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert latest_checkpoint(killed_dir).name == "checkpoint-000008"  # killed between 8 and 16

    resumed = fit(tiny_gpt(seed=1, dropout=0.1), TokenData(96, seed=2), TokenData(16, seed=3),
                  config=resume_config(str(killed_dir)), resume=True)
    reference_model = tiny_gpt(seed=1, dropout=0.1)
    reference = fit(reference_model, TokenData(96, seed=2), TokenData(16, seed=3),
                    config=resume_config(str(tmp_path / "straight")))
    assert resumed.steps == reference.steps == 24
    assert resumed.train_loss == pytest.approx(reference.train_loss, abs=1e-6)
    assert resumed.final_eval["eval_loss"] == pytest.approx(reference.final_eval["eval_loss"],
                                                            abs=1e-6)
    assert list(resumed.df.index) == list(reference.df.index)  # history carried over
    assert latest_checkpoint(killed_dir).name == "checkpoint-000024"


def test_resume_into_a_different_model_is_refused_clearly(tmp_path):
    cfg = quiet(max_steps=2, batch_size=4, output_dir=str(tmp_path))
    fit(tiny_gpt(n_embd=32), TokenData(16), config=cfg)
    with pytest.raises(CheckpointMismatch, match="different model.*shape"):
        fit(tiny_gpt(n_embd=48), TokenData(16), config=cfg.replace(max_steps=4), resume=True)


def test_resume_without_checkpoint_starts_fresh(tmp_path, capsys):
    history = fit(ToyClassifier(), VectorData(16), resume=True,
                  config=quiet(max_steps=2, batch_size=8, output_dir=str(tmp_path / "new")))
    assert history.steps == 2 and "no checkpoint" in capsys.readouterr().out


def test_two_runs_in_one_process_may_use_different_precisions():
    a = fit(ToyClassifier(), VectorData(16), config=quiet(max_steps=1, precision="fp32"))
    b = fit(ToyClassifier(), VectorData(16), config=quiet(max_steps=1, precision="bf16"))
    assert (a.precision, b.precision) == ("fp32", "bf16")
