"""Does each lesson's main training run fit a 16 GB T4 at the `gpu` scale? (the estimate is
`estimate_memory`, behind the receipt 00_setup explains)

`MAIN_RUNS` is plain data: per lesson, the preset section its main training run reads, the
model it trains, and where its batch size and sequence length come from. `main_run_estimates`
builds each model on PyTorch's `meta` device (shapes only: no memory, no weights, well under
a second) and asks `estimate_memory` whether the run fits `available_gb` (a T4 by default)
and which batch is the largest that does. `format_estimates` prints the table;
`benchmarks/memory_estimate.py` also checks the estimate against measured peaks.

Lessons 00, 01, 01b and 08 have no training run whose size follows the scale, and are absent.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

from llm_course.env.scale import PRESETS
from llm_course.training.cost import T4_GB, estimate_memory

# The architectures of the two pretrained models the course fine-tunes (their config.json;
# tests/test_memory.py checks them against the installed files). Built from these numbers,
# the estimate needs neither the weights nor the hub.
MINILM = {"model_type": "bert", "hidden_size": 384, "num_hidden_layers": 6,
          "num_attention_heads": 12, "intermediate_size": 1536, "vocab_size": 30522,
          "max_position_embeddings": 512}
SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "intermediate_size": 1536,
           "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": True,
           "head_dim": 64}


@dataclass(frozen=True)
class MainRun:
    """One lesson's main training run: what `fit` trains, and where its sizes come from.

    `batch` and `seq` are a preset key of `section` or a number; `pairs` doubles the batch
    (a bi-encoder encodes an anchor and a positive per example, DPO a chosen and a rejected
    answer); `lora` trains LoRA (r=8 on
    the query and value projections) instead of every weight.
    """

    lesson: str
    section: str
    model: str  # "gpt", "bert-mlm", "minilm", "smollm2-causal", "smollm2-classifier", "head"
    batch: str | int
    seq: str | int
    lora: bool = False
    pairs: bool = False
    note: str = ""


MAIN_RUNS: list[MainRun] = [
    MainRun("02_pretraining_gpt", "gpt", "gpt", "batch_size", "block_size"),
    MainRun("03_pretraining_bert", "bert", "bert-mlm", "batch_size", "max_length"),
    MainRun("04_transfer_learning", "transfer", "head", "ner_batch_size", 64,
            note="the NER head on frozen MiniLM features (words per tweet <= 64)"),
    MainRun("05_fine_tuning", "finetune", "minilm", "batch_size", "max_length"),
    MainRun("05_fine_tuning", "finetune_lab", "minilm", "cure_batch_size", "topics_max_length",
            note="the cures (batch 16) and BBC topics (batch 16, 256 tokens)"),
    MainRun("06_peft", "peft", "minilm", "batch_size", "max_length"),
    MainRun("06_peft", "peft", "smollm2-causal", "causal_batch_size", "causal_block_size",
            lora=True),
    MainRun("06b_prompting", "prompting", "smollm2-classifier", "lora_batch_size", 256,
            lora=True, note="reviews cut to max_words=150 plus the template: under 256 tokens"),
    MainRun("06c_instruction_tuning", "instruct", "gpt", "sft_batch_size", "gpt.block_size",
            note="full SFT of course-gpt, up to its context"),
    MainRun("06c_instruction_tuning", "instruct", "smollm2-causal", "smollm2_batch_size", 256,
            lora=True, note="LoRA SFT of SmolLM2, examples cut at 256 tokens"),
    MainRun("06c_instruction_tuning", "instruct", "gpt", "dpo_batch_size", 128, pairs=True,
            note="DPO: a chosen and a rejected answer per pair; an opening of 3-8 words in the "
                 "chat template and 24 new tokens stay under 128"),
    MainRun("07_domain_adaptation", "dapt", "bert-mlm", "batch_size", "max_length"),
    MainRun("09a_faq_assistant", "apps", "minilm", "faq_batch_size", 64, pairs=True,
            note="question pairs, 64 tokens each"),
    MainRun("09b_news_monitoring", "apps", "minilm", 16, "finetune.max_length",
            note="few-shot adaptation of course-sentiment, batch 16"),
    MainRun("09c_recommendation", "apps", "minilm", "rec_batch_size", 64, pairs=True,
            note="article pairs, 64 tokens each"),
    MainRun("10_chinese", "chinese", "bert-mlm", "bert_batch_size", "bert_max_length",
            note="character-level Chinese BERT; its fine-tunes are smaller"),
]


def run_size(run: MainRun, key: str | int, scale: str) -> int:
    """`key` of `run` at `scale`: a number as is, else the preset value ("section.key" or a
    key of the run's own section)."""
    if isinstance(key, int):
        return key
    section, _, name = key.rpartition(".")
    return int(PRESETS[scale][section or run.section][name])


def build_model(run: MainRun, scale: str = "gpu", device: str = "meta") -> torch.nn.Module:
    """The model `run` trains, at `scale`'s size and randomly initialised, on `device`.

    On "meta" (the default) it has shapes and no memory: enough for `estimate_memory`.
    """
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        BertConfig,
        BertForMaskedLM,
        LlamaConfig,
    )

    from llm_course.models.configs import bert_config, gpt_config

    with torch.device(device):
        if run.model == "gpt":
            from transformers import GPT2LMHeadModel

            model = GPT2LMHeadModel(gpt_config(scale))
        elif run.model == "bert-mlm":
            model = BertForMaskedLM(bert_config(scale))
        elif run.model == "minilm":
            model = AutoModelForSequenceClassification.from_config(
                BertConfig(**{k: v for k, v in MINILM.items() if k != "model_type"}, num_labels=5))
        elif run.model.startswith("smollm2"):
            config = LlamaConfig(**{k: v for k, v in SMOLLM2.items() if k != "model_type"},
                                 num_labels=2, pad_token_id=2)
            auto = AutoModelForCausalLM if run.model.endswith("causal") \
                else AutoModelForSequenceClassification
            model = auto.from_config(config)
        elif run.model == "head":
            model = torch.nn.Linear(4 * MINILM["hidden_size"], 21)  # 4 layers' features, 21 tags
        else:
            raise ValueError(f"unknown model {run.model!r} in {run}")
        if run.lora:
            from peft import LoraConfig, get_peft_model

            task = "CAUSAL_LM" if run.model.endswith("causal") else "SEQ_CLS"
            with warnings.catch_warnings():  # peft asks a deprecated transformers property
                warnings.simplefilter("ignore", FutureWarning)
                model = get_peft_model(model, LoraConfig(task_type=task, r=8, lora_alpha=16,
                                                         target_modules=["q_proj", "v_proj"]))
    return model


def estimate_run(run: MainRun, scale: str = "gpu", available_gb: float = T4_GB,
                 precision: str = "auto") -> dict[str, Any]:
    """`estimate_memory` for `run` at `scale` on a CUDA device with `available_gb` GiB."""
    model = build_model(run, scale)
    batch = run_size(run, run.batch, scale) * (2 if run.pairs else 1)
    seq = run_size(run, run.seq, scale)
    config = SimpleNamespace(batch_size=batch, precision=precision, grad_accum=1)
    est = estimate_memory(model, config, device="cuda", seq_len=seq, available_gb=available_gb)
    largest = est["largest_batch_size"]
    if run.pairs and largest is not None:
        largest //= 2  # in examples (pairs), as the preset counts them
    return {"lesson": run.lesson, "section": run.section, "model": run.model,
            "batch": batch // (2 if run.pairs else 1), "seq": seq,
            "total_gb": est["total_gb"], "fits": est["fits"], "largest_batch": largest,
            "note": run.note}


def main_run_estimates(scale: str = "gpu", available_gb: float = T4_GB) -> list[dict[str, Any]]:
    """One `estimate_run` row per entry of `MAIN_RUNS`."""
    return [estimate_run(run, scale, available_gb) for run in MAIN_RUNS]


def format_estimates(rows: list[dict[str, Any]], available_gb: float = T4_GB) -> str:
    """The rows as a table: lesson, preset, batch x tokens, estimated GB, fits?, largest batch."""
    head = (f"{'lesson':<22} {'preset':<13} {'model':<19} {'batch x seq':>12} {'est. GB':>8} "
            f"{'fits ' + format(available_gb, '.4g') + ' GB?':>14} {'largest batch':>14}")
    lines = [head, "-" * len(head)]
    for r in rows:
        largest = "none" if r["largest_batch"] is None else (
            "> 10,000" if r["largest_batch"] > 10_000 else f"{r['largest_batch']:,}")
        lines.append(f"{r['lesson']:<22} {r['section']:<13} {r['model']:<19} "
                     f"{r['batch']:>5} x {r['seq']:<4} {r['total_gb']:>8.2f} "
                     f"{'yes' if r['fits'] else 'NO':>14} {largest:>14}")
    return "\n".join(lines)


def sections_with_batches(scale: str = "gpu") -> set[str]:
    """The preset sections of `scale` that set a batch size (each needs a row in MAIN_RUNS)."""
    return {name for name, section in PRESETS[scale].items()
            if any("batch_size" in key for key in section)}


