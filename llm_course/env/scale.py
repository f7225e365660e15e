"""Scale presets: one knob that every notebook obeys (taught in 00_setup).

`smoke` runs each notebook in seconds (CI), `laptop` in minutes on a CPU with real
learning, `gpu` at full size on a Colab T4 to A100. The presets are plain data, keyed
by scale and then by the part of the course that reads them; change them here.
"""

from __future__ import annotations

import copy
import os

from llm_course.env import dry_run

SCALES = ("smoke", "laptop", "gpu")

# lesson 06's LoRA on MiniLM: every linear layer but the classifier (query, key and value, and
# the layers named "dense": attention's output, the feed-forward's two, the pooler); rank 4
# keeps it under 1 % of the parameters. The causal LM keeps peft's default targets.
ALL_LINEAR = ["query", "key", "value", "dense"]

PRESETS: dict[str, dict[str, dict]] = {
    "smoke": {
        # dataset sizes: examples per split (None = everything the source has)
        "data": {"train": 400, "validation": 100, "test": 100, "corpus_chars": 300_000},
        "tokenizer": {"vocab_size": 2048, "vocab_sizes": [256, 512, 1024, 2048]},
        # lessons 02 and 03. attention: how attention is computed ("eager": the plain matrix
        # products, fastest on a CPU at these lengths; "sdpa": PyTorch's fused kernel, for GPUs)
        "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64,
                "batch_size": 8, "max_steps": 40, "lr": 3e-3, "attention": "eager"},
        "bert": {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 64,
                 "max_length": 64, "batch_size": 8, "max_steps": 40, "lr": 3e-3,
                 "attention": "eager"},
        "finetune": {"max_length": 48, "batch_size": 16, "max_steps": 8, "lr": 5e-5},
        # lesson 02's scaling experiment: (n_layer, n_embd) per model, same tokens for each
        "gpt_scaling": {"sizes": [[1, 32], [2, 64]], "max_steps": 20},
        # lesson 01b: tokens generated per key/value-cache timing (prompt + new <= block_size),
        # timing repeats (the best counts) and CPU threads while timing
        "transformer": {"prompt_tokens": 4, "kv_new_tokens": [15, 30, 60], "timing_repeats": 5,
                        "timing_threads": 1},
        # lesson 09: FAQ retrieval, news monitoring, recommendation
        "apps": {"faq_steps": 8, "faq_batch_size": 16, "faq_max_length": 48,
                 "finance_adapt_steps": 5, "finance_folds": 3, "stream_days": 120,
                 "rec_items": 300, "rec_users": 200, "rec_themes": 10, "rec_max_length": 64,
                 "rec_steps": 5, "rec_batch_size": 16},
        # lesson 04: frozen features, linear probes, a frozen-encoder NER head
        "transfer": {"embed_max_length": 64, "curve_sizes": [20, 50, 100], "curve_draws": 2,
                     "ner_steps": 10, "ner_lr": 2e-3, "ner_batch_size": 16},
        # lesson 05: partial fine-tuning (compare_steps for top-k and head only), a learning-rate
        # sweep, few-label cures (scored on cure_eval_examples validation reviews), topics
        "finetune_lab": {"top_k": 2, "head_lr": 1e-3, "compare_steps": 6,
                         "sweep_lrs": [1e-5, 1e-3], "sweep_steps": 4, "few_labels": 40,
                         "cure_steps": 6, "cure_batch_size": 8, "eval_examples": 64,
                         "cure_eval_examples": 64, "topics_steps": 6, "topics_max_length": 64},
        # lesson 06: six ways to fine-tune MiniLM on sentiment (full fine-tuning is lesson 05's
        # course-sentiment, trained with the "finetune" preset), then LoRA on a causal LM
        "peft": {"model": "minilm", "max_length": 48, "batch_size": 16, "scratch_steps": 4, "scratch_r": 8,
                 "steps": {"head": 5, "lora": 5, "adalora": 5, "prefix": 5, "adapter": 5},
                 "lr": {"head": 2e-3, "lora": 1e-3, "adalora": 1e-2, "prefix": 1e-2,
                        "adapter": 1e-3},
                 "lora_r": 4, "lora_alpha": 16, "lora_targets": ALL_LINEAR,
                 "adalora_init_r": 12, "adalora_target_r": 4,
                 "prefix_tokens": 10, "adapter_size": 32,
                 "causal_model": "course-gpt", "causal_lora_r": 8, "causal_steps": 10, "causal_lr": 2e-3,
                 "causal_block_size": 64, "causal_batch_size": 8},
        # lesson 07: continued masked-LM pretraining of course-bert on review text
        "dapt": {"model": "course-bert", "max_length": 48, "batch_size": 16,
                 "dapt_steps": 10, "dapt_lr": 5e-4, "finetune_steps": 10, "finetune_lr": 2e-4,
                 "general_share": 0.5, "eval_examples": 200},
        # lesson 08: how much to measure (texts, timing repeats, variants, load test, drift)
        "deploy": {"eval_texts": 100, "repeats": 3, "sparsities": [0.5], "drop_layers": 2,
                   "repair_texts": 100, "latency_samples": 20, "load_requests": 40,
                   "concurrency": 4, "drift_texts": 100},
    },
    "laptop": {
        "data": {"train": None, "validation": None, "test": None, "corpus_chars": None},
        "tokenizer": {"vocab_size": 8192, "vocab_sizes": [512, 1024, 2048, 4096, 8192, 16384]},
        "gpt": {"n_layer": 4, "n_head": 4, "n_embd": 256, "block_size": 128,
                "batch_size": 16, "max_steps": 700, "lr": 1e-3, "attention": "eager"},
        "bert": {"num_hidden_layers": 4, "num_attention_heads": 4, "hidden_size": 256,
                 "max_length": 128, "batch_size": 16, "max_steps": 1200, "lr": 1e-3,
                 "attention": "eager"},
        # 2 epochs of grouped batches; lr 1e-4 chosen on validation (issue #23: 83.7 % against
        # 79.8 % for the earlier 250 random batches at 5e-5; averaging checkpoints did not help)
        "finetune": {"max_length": 64, "batch_size": 32, "max_steps": 638, "lr": 1e-4},
        "gpt_scaling": {"sizes": [[2, 64], [3, 128], [4, 192]], "max_steps": 200},
        "transformer": {"prompt_tokens": 4, "kv_new_tokens": [15, 30, 60, 124],
                        "timing_repeats": 3, "timing_threads": 1},
        "apps": {"faq_steps": 150, "faq_batch_size": 32, "faq_max_length": 48,
                 "finance_adapt_steps": 40, "finance_folds": 3, "stream_days": 120,
                 "rec_items": None, "rec_users": 600, "rec_themes": 30, "rec_max_length": 128,
                 "rec_steps": 100, "rec_batch_size": 32},
        "transfer": {"embed_max_length": 64, "curve_sizes": [50, 200, 1000], "curve_draws": 5,
                     "ner_steps": 600, "ner_lr": 2e-3, "ner_batch_size": 32},
        "finetune_lab": {"top_k": 2, "head_lr": 1e-3, "compare_steps": 250,
                         "sweep_lrs": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], "sweep_steps": 60,
                         "few_labels": 200, "cure_steps": 60, "cure_batch_size": 16,
                         "eval_examples": 500, "cure_eval_examples": 250, "topics_steps": 100,
                         "topics_max_length": 128},
        "peft": {"model": "minilm", "max_length": 64, "batch_size": 32, "scratch_steps": 30, "scratch_r": 8,
                 "steps": {"head": 150, "lora": 638, "adalora": 150, "prefix": 150,
                           "adapter": 150},
                 "lr": {"head": 2e-3, "lora": 1e-3, "adalora": 1e-2, "prefix": 1e-2,
                        "adapter": 1e-3},
                 "lora_r": 4, "lora_alpha": 16, "lora_targets": ALL_LINEAR,
                 "adalora_init_r": 12, "adalora_target_r": 4,
                 "prefix_tokens": 20, "adapter_size": 64,
                 "causal_model": "course-gpt", "causal_lora_r": 8, "causal_steps": 150, "causal_lr": 2e-3,
                 "causal_block_size": 128, "causal_batch_size": 16},
        "dapt": {"model": "course-bert", "max_length": 64, "batch_size": 32,
                 "dapt_steps": 300, "dapt_lr": 5e-4, "finetune_steps": 400, "finetune_lr": 2e-4,
                 "general_share": 0.5, "eval_examples": 1000},
        "deploy": {"eval_texts": None, "repeats": 7, "sparsities": [0.3, 0.5, 0.7, 0.9],
                   "drop_layers": 2, "repair_texts": 2000, "latency_samples": 100,
                   "load_requests": 300, "concurrency": 8, "drift_texts": 400},
    },
    "gpu": {
        "data": {"train": None, "validation": None, "test": None, "corpus_chars": None},
        "tokenizer": {"vocab_size": 16384, "vocab_sizes": [1024, 4096, 8192, 16384, 32768]},
        "gpt": {"n_layer": 8, "n_head": 8, "n_embd": 512, "block_size": 256,
                "batch_size": 32, "max_steps": 5000, "lr": 6e-4, "attention": "sdpa"},
        "bert": {"num_hidden_layers": 8, "num_attention_heads": 8, "hidden_size": 512,
                 "max_length": 128, "batch_size": 64, "max_steps": 5000, "lr": 2e-4,
                 "attention": "sdpa"},
        "finetune": {"max_length": 128, "batch_size": 32, "max_steps": 1500, "lr": 3e-5},
        "gpt_scaling": {"sizes": [[2, 128], [4, 256], [8, 512]], "max_steps": 1000},
        "transformer": {"prompt_tokens": 4, "kv_new_tokens": [30, 60, 124, 252],
                        "timing_repeats": 3, "timing_threads": 1},
        "apps": {"faq_steps": 400, "faq_batch_size": 64, "faq_max_length": 48,
                 "finance_adapt_steps": 60, "finance_folds": 3, "stream_days": 120,
                 "rec_items": None, "rec_users": 2000, "rec_themes": 30, "rec_max_length": 256,
                 "rec_steps": 400, "rec_batch_size": 64},
        "transfer": {"embed_max_length": 128, "curve_sizes": [50, 200, 1000], "curve_draws": 5,
                     "ner_steps": 1500, "ner_lr": 2e-3, "ner_batch_size": 32},
        "finetune_lab": {"top_k": 2, "head_lr": 1e-3, "compare_steps": 1500,
                         "sweep_lrs": [1e-5, 3e-5, 1e-4, 3e-4, 1e-3], "sweep_steps": 300,
                         "few_labels": 200, "cure_steps": 150, "cure_batch_size": 16,
                         "eval_examples": 1000, "cure_eval_examples": 1000, "topics_steps": 400,
                         "topics_max_length": 256},
        "peft": {"model": "minilm", "max_length": 128, "batch_size": 32, "scratch_steps": 100, "scratch_r": 8,
                 "steps": {"head": 1000, "lora": 1000, "adalora": 1000, "prefix": 1000,
                           "adapter": 1000},
                 "lr": {"head": 2e-3, "lora": 5e-4, "adalora": 1e-3, "prefix": 1e-2,
                        "adapter": 1e-3},
                 "lora_r": 4, "lora_alpha": 16, "lora_targets": ALL_LINEAR,
                 "adalora_init_r": 12, "adalora_target_r": 4,
                 "prefix_tokens": 20, "adapter_size": 64,
                 "causal_model": "smollm2", "causal_lora_r": 8, "causal_steps": 300, "causal_lr": 5e-4,
                 "causal_block_size": 256, "causal_batch_size": 8},
        "dapt": {"model": "course-bert", "max_length": 128, "batch_size": 64,
                 "dapt_steps": 2000, "dapt_lr": 3e-4, "finetune_steps": 1000,
                 "finetune_lr": 1e-4, "general_share": 0.5, "eval_examples": 2000},
        "deploy": {"eval_texts": 2000, "repeats": 10, "sparsities": [0.3, 0.5, 0.7, 0.9],
                   "drop_layers": 2, "repair_texts": 4000, "latency_samples": 200,
                   "load_requests": 1000, "concurrency": 16, "drift_texts": 400},
    },
}

# lesson 06b: prompting against fine-tuning, PRESETS[scale]["prompting"]. test_examples: the
# first n test reviews every method is scored on (None: the whole split); k: examples in the
# prompt, each drawn `seeds` times (choice and order); max_words: words kept per review;
# speed_prompts: prompts timed in the batching demo; latency_texts: batch-1 predictions timed
# per method; lora_*: the short LoRA run of SmolLM2 as a classifier (eval on a validation subset).
_PROMPTING = {
    "smoke": {"test_examples": 12, "k": [2, 4, 8], "seeds": 2, "max_words": 25, "batch_size": 8,
              "speed_prompts": 3, "latency_texts": 2, "lora_steps": 3, "lora_batch_size": 4,
              "lora_lr": 3e-4, "lora_r": 8, "lora_alpha": 16, "lora_eval_every": 3,
              "lora_eval_examples": 8},
    "laptop": {"test_examples": 300, "k": [2, 4, 8], "seeds": 5, "max_words": 60,
               "batch_size": 16, "speed_prompts": 8, "latency_texts": 10, "lora_steps": 40,
               "lora_batch_size": 16, "lora_lr": 3e-4, "lora_r": 8, "lora_alpha": 16,
               "lora_eval_every": 10, "lora_eval_examples": 64},
    "gpu": {"test_examples": None, "k": [2, 4, 8], "seeds": 5, "max_words": 150,
            "batch_size": 64, "speed_prompts": 32, "latency_texts": 50, "lora_steps": 600,
            "lora_batch_size": 32, "lora_lr": 2e-4, "lora_r": 8, "lora_alpha": 16,
            "lora_eval_every": 100, "lora_eval_examples": 256},
}
for _scale, _section in _PROMPTING.items():
    PRESETS[_scale]["prompting"] = _section

# lesson 06c: instruction tuning (SFT) and preference tuning (DPO), PRESETS[scale]["instruct"].
# *_per_kind: instruction examples per kind; max_words / answer_words: words kept of an input /
# a free-text answer; sft_*: course-gpt's full SFT (fit and TRL alike); smollm2_*: its short LoRA
# run (examples used, steps, held-out examples scored); dpo_*: prompts, answers sampled per
# prompt, tokens per answer, training, the beta sweep; eval_samples: answers per held-out prompt.
_INSTRUCT = {
    "smoke": {"train_per_kind": 48, "heldout_per_kind": 16, "max_words": 12, "answer_words": 8,
              "sft_steps": 30, "sft_lr": 3e-3, "sft_batch_size": 8,
              "smollm2_examples": 8, "smollm2_steps": 2, "smollm2_lr": 1e-3,
              "smollm2_batch_size": 4, "smollm2_eval": 4,
              "dpo_prompts": 48, "dpo_heldout": 24, "dpo_samples": 4, "dpo_new_tokens": 12,
              "dpo_steps": 12, "dpo_lr": 5e-4, "dpo_batch_size": 8, "dpo_beta": 0.1,
              "dpo_betas": [0.1, 1.0], "dpo_min_margin": 0.0, "eval_samples": 2},
    "laptop": {"train_per_kind": 500, "heldout_per_kind": 100, "max_words": 30,
               "answer_words": 16, "sft_steps": 150, "sft_lr": 1e-3, "sft_batch_size": 16,
               "smollm2_examples": 192, "smollm2_steps": 24, "smollm2_lr": 1e-3,
               "smollm2_batch_size": 8, "smollm2_eval": 48,
               "dpo_prompts": 512, "dpo_heldout": 100, "dpo_samples": 4, "dpo_new_tokens": 20,
               "dpo_steps": 60, "dpo_lr": 3e-4, "dpo_batch_size": 16, "dpo_beta": 0.1,
               "dpo_betas": [0.02, 0.1, 0.5], "dpo_min_margin": 0.2, "eval_samples": 2},
    "gpu": {"train_per_kind": 700, "heldout_per_kind": 200, "max_words": 60,
            "answer_words": 24, "sft_steps": 600, "sft_lr": 1e-3, "sft_batch_size": 32,
            "smollm2_examples": 1000, "smollm2_steps": 200, "smollm2_lr": 5e-4,
            "smollm2_batch_size": 16, "smollm2_eval": 200,
            "dpo_prompts": 1000, "dpo_heldout": 200, "dpo_samples": 4, "dpo_new_tokens": 24,
            "dpo_steps": 200, "dpo_lr": 2e-4, "dpo_batch_size": 32, "dpo_beta": 0.1,
            "dpo_betas": [0.02, 0.05, 0.1, 0.3, 1.0], "dpo_min_margin": 0.2, "eval_samples": 4},
}
for _scale, _section in _INSTRUCT.items():
    PRESETS[_scale]["instruct"] = _section

# lesson 10: Chinese, PRESETS[scale]["chinese"]. tokenizer_chars: characters of People's Daily
# training text the tokenizers learn from (None: all); bpe_sizes: the byte-level BPE vocabularies
# of the size curve; vocab_size: the character-level WordPiece that the Chinese BERT reads;
# bert_*: its pretraining (lesson 03's recipe and model size, on pieces of bert_max_length;
# bert_eval_pieces: validation pieces masked once and scored, None: all);
# cls_*: fine-tuning it (and its random twin) on the reviews; ner_*: fine-tuning it for names;
# ner_eval_sentences: test sentences both NER methods are scored on (None: all).
_CHINESE = {
    "smoke": {"tokenizer_chars": 100_000, "bpe_sizes": [300, 600, 1200], "vocab_size": 3000,
              "bert_max_length": 64, "bert_steps": 30, "bert_batch_size": 16, "bert_lr": 1e-3,
              "bert_eval_pieces": 256, "cls_max_length": 48, "cls_steps": 8,
              "cls_batch_size": 16, "cls_lr": 2e-4, "ner_max_length": 64, "ner_steps": 8,
              "ner_batch_size": 16, "ner_lr": 5e-4, "ner_eval_sentences": 100},
    "laptop": {"tokenizer_chars": 400_000, "bpe_sizes": [500, 1000, 2000, 4000, 8000, 16000],
               "vocab_size": 8000, "bert_max_length": 64, "bert_steps": 400,
               "bert_batch_size": 32, "bert_lr": 1e-3, "bert_eval_pieces": 1024,
               "cls_max_length": 48, "cls_steps": 300, "cls_batch_size": 32, "cls_lr": 5e-4,
               "ner_max_length": 128, "ner_steps": 150, "ner_batch_size": 32, "ner_lr": 5e-4,
               "ner_eval_sentences": 1000},
    "gpu": {"tokenizer_chars": None, "bpe_sizes": [1000, 2000, 4000, 8000, 16000, 32000],
            "vocab_size": 8000, "bert_max_length": 128, "bert_steps": 5000, "bert_batch_size": 64,
            "bert_lr": 5e-4, "bert_eval_pieces": None, "cls_max_length": 128, "cls_steps": 1000,
            "cls_batch_size": 32, "cls_lr": 1e-4, "ner_max_length": 128, "ner_steps": 1500,
            "ner_batch_size": 32, "ner_lr": 3e-4, "ner_eval_sentences": None},
}
for _scale, _section in _CHINESE.items():
    PRESETS[_scale]["chinese"] = _section


# How each lesson's recipe trains (TrainConfig fields; `llm_course.training.config.recipe_config`
# builds the config). "preset" names the section of PRESETS and its keys that hold the
# learning rate, the number of steps and the batch size, which change with the scale; the
# "settings" are the same at every scale.
RECIPES: dict[str, dict] = {
    # lesson 02: AdamW with GPT-style betas and weight decay, short warmup, cosine decay.
    # compile=False: whether torch.compile pays depends on how busy the machine is, and a
    # lesson's numbers must repeat.
    "gpt": {"preset": ("gpt", "lr", "max_steps", "batch_size"),
            "settings": {"weight_decay": 0.1, "betas": (0.9, 0.95), "warmup_ratio": 0.05,
                         "schedule": "cosine", "task": "lm", "eval_batches": 20, "seed": 0,
                         "compile": False}},
    # lesson 03. BERT puts its layer norm after each block (post-LN) and is touchy about the
    # rate: with dropout on, 1e-3 kept it on the unigram plateau for 1,200 laptop steps; with
    # dropout off (new_bert) 1e-3 reached 11.7 % masked accuracy, 6e-4 11.1 %, 3e-4 10.1 %.
    # group_by_length: the pieces run from 10 to 128 tokens, and batches of similar lengths
    # waste less on padding (32 % of a random batch, 1.4 % grouped; benchmarks/train_speed.py).
    "bert": {"preset": ("bert", "lr", "max_steps", "batch_size"),
             "settings": {"weight_decay": 0.01, "warmup_ratio": 0.1, "schedule": "cosine",
                          "task": "lm", "eval_batches": 20, "seed": 0, "compile": False,
                          "group_by_length": True}},
    # lesson 05: a small rate with 10 % warmup and linear decay, weight decay 0.01
    "finetune": {"preset": ("finetune", "lr", "max_steps", "batch_size"),
                 "settings": {"warmup_ratio": 0.1, "schedule": "linear", "weight_decay": 0.01,
                              "task": "classification", "best_metric": "eval_accuracy",
                              "seed": 0, "compile": False}},
    # lesson 07: continued masked-LM pretraining (lesson 03's objective), on grouped batches
    "dapt": {"preset": ("dapt", "dapt_lr", "dapt_steps", "batch_size"),
             "settings": {"weight_decay": 0.01, "warmup_ratio": 0.06, "schedule": "linear",
                          "task": "lm", "eval_batches": 10, "group_by_length": True,
                          "compile": False, "seed": 0}},
    # lesson 07: fine-tuning the small encoder on sentiment after (or without) adaptation
    "dapt_classifier": {"preset": ("dapt", "finetune_lr", "finetune_steps", "batch_size"),
                        "settings": {"warmup_ratio": 0.1, "schedule": "linear",
                                     "weight_decay": 0.01, "task": "classification",
                                     "best_metric": "eval_accuracy", "eval_batches": 10,
                                     "group_by_length": True, "compile": False, "seed": 0}},
}

# lesson 10: the Chinese BERT pretrains with lesson 03's settings, and is fine-tuned on reviews
# and on names with lesson 05's; steps, rates and batch sizes come from PRESETS[...]["chinese"].
RECIPES["zh_bert"] = {"preset": ("chinese", "bert_lr", "bert_steps", "bert_batch_size"),
                      "settings": dict(RECIPES["bert"]["settings"])}
RECIPES["zh_classifier"] = {"preset": ("chinese", "cls_lr", "cls_steps", "cls_batch_size"),
                            "settings": dict(RECIPES["finetune"]["settings"])}
RECIPES["zh_ner"] = {"preset": ("chinese", "ner_lr", "ner_steps", "ner_batch_size"),
                     "settings": {**RECIPES["finetune"]["settings"],
                                  "task": "token-classification", "best_metric": "eval_f1"}}


def resolve_scale(scale: str | None = None) -> str:
    """Return the scale to use: the argument, else $LLM_COURSE_SCALE, else gpu/laptop.

    `None` means: the `LLM_COURSE_SCALE` environment variable if set, otherwise `gpu`
    when CUDA is available, otherwise `laptop`.
    """
    if scale is None:
        scale = os.environ.get("LLM_COURSE_SCALE") or None
    if scale is None:
        import torch

        scale = "gpu" if torch.cuda.is_available() else "laptop"
    scale = str(scale).strip().lower()
    if scale not in SCALES:
        raise ValueError(
            f"unknown scale {scale!r}: choose one of {', '.join(SCALES)} "
            "(or set LLM_COURSE_SCALE to one of them)"
        )
    return scale


def preset(section: str, scale: str | None = None) -> dict:
    """A copy of the preset `section` (e.g. "gpt", "data") for `scale`."""
    scale = resolve_scale(scale)
    sections = PRESETS[scale]
    if section not in sections:
        raise KeyError(f"no preset section {section!r}; known: {', '.join(sorted(sections))}")
    return dry_run.trim_preset(section, copy.deepcopy(sections[section]))
