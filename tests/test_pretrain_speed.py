"""Lessons 02 and 03 train faster (issue #23) and still compute the same thing: the chunked
loss is GPT-2's loss with GPT-2's gradients, the lesson models are what the presets say, and a
run repeats exactly with the same seed."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from testkit import SEQ, VOCAB, TokenData, one_thread_in_a_throwaway_home, quiet, tiny_gpt
from transformers import GPT2LMHeadModel

from llm_course.env.scale import preset
from llm_course.models import causal_lm
from llm_course.models.causal_lm import ChunkedLossGPT2LMHeadModel, chunked_next_token_loss
from llm_course.pretraining.gpt import new_gpt
from llm_course.training.config import recipe_config
from llm_course.training.loop import fit

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _one_thread(tmp_path_factory, monkeypatch):
    yield from one_thread_in_a_throwaway_home(tmp_path_factory, monkeypatch)


def pair():
    """A plain tiny GPT-2 and its chunked-loss copy, same weights, in training mode."""
    plain = tiny_gpt()
    chunked = ChunkedLossGPT2LMHeadModel.from_model(plain)
    return plain.train(), chunked.train()


def batch():
    ids = torch.randint(1, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, 4:9] = -100  # unscored positions
    labels[2, :] = -100  # a whole row unscored
    return ids, labels


def grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("chunk", [5, 256])  # several chunks (the last one short), and one
def test_chunked_loss_and_gradients_are_gpt2s(monkeypatch, chunk):
    monkeypatch.setattr(causal_lm, "CHUNK", chunk)
    plain, chunked = pair()
    ids, labels = batch()
    ours, theirs = chunked(input_ids=ids, labels=labels), plain(input_ids=ids, labels=labels)
    assert ours.logits is None  # the full table of logits is never built
    torch.testing.assert_close(ours.loss, theirs.loss, rtol=1e-6, atol=1e-6)
    ours.loss.backward()
    theirs.loss.backward()
    mine, ref = grads(chunked), grads(plain)
    assert chunked.lm_head.weight is chunked.transformer.wte.weight  # still tied
    for name in ref:
        torch.testing.assert_close(mine[name], ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_in_bf16_the_chunked_gradients_are_as_close_to_fp32_as_gpt2s_own():
    plain, chunked = pair()
    ids, labels = batch()
    plain(input_ids=ids, labels=labels).loss.backward()
    exact = grads(plain)
    plain.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        theirs, ours = plain(input_ids=ids, labels=labels).loss, chunked(input_ids=ids,
                                                                           labels=labels).loss
    assert abs(ours.item() - theirs.item()) < 1e-2
    theirs.backward()
    ours.backward()

    def error(g):
        return math.sqrt(sum(float((g[k] - exact[k]).norm()) ** 2 for k in exact))

    base = error(grads(plain))
    assert base > 0  # bf16 does round
    assert error(grads(chunked)) < 2 * base


def test_a_vanishing_probability_gives_the_exact_loss_not_infinity():
    hidden = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # (1, 2, 2): one scored position
    weight = torch.tensor([[200.0, 0.0], [-200.0, 0.0], [0.0, 1.0]])  # logits 200, -200, 0
    labels = torch.tensor([[0, 1]])  # position 0 must predict token 1: p = e^-400
    loss = chunked_next_token_loss(hidden, weight, labels)
    assert math.isclose(loss.item(), 400.0, rel_tol=1e-5)


def test_without_gradients_or_in_eval_mode_it_is_the_ordinary_model(tmp_path):
    plain, chunked = pair()
    ids, labels = batch()
    with torch.no_grad():
        out = chunked(input_ids=ids, labels=labels)
        torch.testing.assert_close(out.logits, plain(input_ids=ids).logits)
    assert chunked.eval()(input_ids=ids).logits.shape == (3, SEQ, VOCAB)
    chunked.save_pretrained(tmp_path)
    loaded = GPT2LMHeadModel.from_pretrained(tmp_path)
    assert loaded.config.architectures == ["GPT2LMHeadModel"]
    torch.testing.assert_close(loaded.state_dict()["lm_head.weight"], chunked.lm_head.weight)


def test_lesson_models_follow_the_presets():
    for scale in ("smoke", "laptop", "gpu"):
        gpt = new_gpt(scale, None, seed=0, vocab_size=VOCAB, n_layer=1, n_embd=32, n_head=2)
        assert isinstance(gpt, ChunkedLossGPT2LMHeadModel)
        assert gpt.config._attn_implementation == preset("gpt", scale)["attention"]
        assert gpt.config.activation_function == "gelu"  # exact GELU: one kernel, fastest
        # dropout off while pretraining; the saved config keeps 0.1 for fine-tuning
        assert all(m.p == 0 for m in gpt.modules() if isinstance(m, torch.nn.Dropout))
        assert gpt.config.resid_pdrop == gpt.config.attn_pdrop == 0.1
    assert preset("gpt", "laptop")["attention"] == "eager"  # fastest on a CPU (benchmark)
    assert recipe_config("bert", "laptop").group_by_length
    assert not recipe_config("gpt", "laptop").compile


def test_a_run_repeats_exactly_with_the_same_seed():
    data = TokenData(48, seed=3)

    def run() -> list[float]:
        model = new_gpt("smoke", None, seed=0, vocab_size=VOCAB, n_layer=2, n_embd=32,
                        n_head=2, n_positions=SEQ)
        cfg = quiet(precision="auto", max_steps=6, batch_size=8, lr=3e-3, log_every=1,
                    eval_every=0)
        history = fit(model, data, data, config=cfg)
        return [r["train_loss"] for r in history.rows if "train_loss" in r] + [
            history.final_eval["eval_loss"]]

    first = run()
    assert len(first) == 7 and first == run()  # bit for bit


def load_benchmark():
    spec = importlib.util.spec_from_file_location("train_speed",
                                                  ROOT / "benchmarks" / "train_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_speed"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_counts_only_the_steps_after_the_warmup():
    bench = load_benchmark()
    rows = [{"step": 1, "tokens": 100, "elapsed_s": 30.0},  # a slow first step (compile)
            {"step": 1, "eval_loss": 1.0},  # rows without timing are skipped
            {"step": 2, "tokens": 200, "elapsed_s": 31.0},
            {"step": 3, "tokens": 300, "elapsed_s": 31.5},
            {"step": 4, "tokens": 400, "elapsed_s": 32.0}]
    rate, cost = bench.steady_rate(SimpleNamespace(rows=rows), warmup=2)
    assert rate == pytest.approx(200 / 1.0) and cost == 31.0
    assert {"gpt", "bert"} <= set(bench.CASES)
