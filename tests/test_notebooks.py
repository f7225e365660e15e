"""Every lesson runs top to bottom at `smoke` scale, offline, and records what it should.

The notebooks are executed once per test run, by nbval (the README's test command passes
`notebooks --nbval-lax`): `conftest.py` gives each notebook's kernel its own results file
and runs these checks after the notebooks. Without the notebooks on the command line they
are skipped with a message that says so. (`llm-course run`, which executes them with
papermill, is tested on 00_setup in test_foundation.py.)
"""

import json
import math
import os
from pathlib import Path

import pytest

from llm_course.env import reference
from llm_course.runner import find_notebooks

# The metrics each notebook must record, and a fact about them that holds even at smoke
# scale (smoke only shows the code works: its numbers are not lessons).
EXPECTED = {
    "00_setup": {
        "keys": {"loss_before", "loss_after", "log_vocab", "fit_loss"},
        "check": lambda m: abs(m["loss_before"] - m["log_vocab"]) < 0.5
        and m["loss_after"] < m["loss_before"] and m["fit_loss"] < m["log_vocab"] - 1,
    },
    "01_tokenizers": {
        "keys": {"chars_per_token", "chars_per_token_bpe", "chars_per_token_wordpiece",
                 "word_level_unk_rate"},
        # a bigger vocabulary gives longer tokens, for both kinds
        "check": lambda m: all(
            m["chars_per_token"][f"{k}_{a}"] < m["chars_per_token"][f"{k}_{b}"]
             for k in ("bpe", "wordpiece") for a, b in ((256, 512), (512, 1024), (1024, 2048))),
    },
    "01b_transformer": {
        "keys": {"block_max_abs_diff_gpt", "block_max_abs_diff_bert", "params_formula",
                 "params_counted", "kv_cache_identical"},
        # the learner's GPT and BERT layer compute transformers' numbers, the formula counts
        # every parameter, and the cache changes no token and pays at the longest length
        "check": lambda m: m["block_max_abs_diff_gpt"] < 1e-4 and m["block_max_abs_diff_bert"] < 1e-4
        and m["params_formula"] == m["params_counted"] and m["kv_cache_identical"]
        and len(speedups := {int(k.rsplit("_", 1)[1]): v for k, v in m.items()
                             if k.startswith("kv_cache_speedup_at_")}) >= 2
        and speedups[max(speedups)] > 1,
    },
    "02_pretraining_gpt": {
        "keys": {"val_loss_initial", "val_loss_final", "val_perplexity", "unigram_entropy",
                 "params", "tokens_seen", "tokens_per_s"},
        "check": lambda m: m["val_loss_final"] < m["val_loss_initial"] - 0.5,
    },
    "03_pretraining_bert": {
        "keys": {"mlm_loss_initial", "mlm_loss_final", "masked_accuracy",
                 "frequency_baseline_accuracy"},
        "check": lambda m: m["mlm_loss_final"] < m["mlm_loss_initial"] - 0.3,
    },
    "04_transfer_learning": {
        "keys": {f"probe_accuracy_{name}" for name in ("minilm", "random_minilm", "course_bert",
                                                         "random_course_bert")}
        | {"tfidf_accuracy", "ner_f1", "ner_baseline_f1", "learning_curve"},
        # all-O tags find no entity; MiniLM's probe beats always answering the majority class
        "check": lambda m: m["ner_baseline_f1"] == 0 and m["ner_source"] == "tweets"  # offline
        and m["probe_accuracy_minilm"] > m["majority_accuracy"]
        and {"minilm", "random_minilm"} <= set(m["learning_curve"]),
    },
    "05_fine_tuning": {
        "keys": {"accuracy_full", "accuracy_topk", "accuracy_head", "best_lr", "topics_accuracy"}
        | {f"accuracy_{cure}" for cure in ("plain", "dropout", "weight_decay", "early_stopping",
                                           "augment", "fgm", "lora")},
        "check": lambda m: m["trainable_params"]["full"] > m["trainable_params"]["top-2"]
        > m["trainable_params"]["head only"] and str(m["best_lr"]) in m["lr_sweep"]
        # Adafactor's factored state is a sliver of AdamW's two moments
        and 0 < m["optimizer_state_mb_adafactor"] < 0.1 * m["optimizer_state_mb_adamw"],
    },
    "06_peft": {
        "keys": {f"{kind}_{method}" for kind in ("accuracy", "trainable_share")
                 for method in ("full", "head", "lora", "adalora", "prefix", "adapter")}
        | {"lora_merge_max_abs_diff"},
        # LoRA starts exactly at the base model, merges exactly, trains a sliver, saves small
        "check": lambda m: m["lora_init_max_abs_diff"] == 0 and m["lora_merge_max_abs_diff"] < 1e-4
        and m["trainable_share_lora"] < 0.05 and m["adapter_kb"] < 1024,
    },
    "06c_instruction_tuning": {
        "keys": {"sft_answer_loss_before", "sft_answer_loss_after", "sft_heldout_accuracy",
                 "sft_heldout_type_accuracy", "dpo_positive_rate_before", "dpo_positive_rate_after",
                 "dpo_kl"},
        # SFT lowers the held-out answer loss even at smoke; DPO starts at log 2 (the policy is
        # the reference) and its price, the KL to the reference, is never negative
        "check": lambda m: m["sft_answer_loss_after"] < m["sft_answer_loss_before"]
        and abs(m["dpo_first_loss"] - 0.6931) < 1e-3 and m["dpo_kl"] >= 0
        and all(0 <= m[k] <= 1 for k in ("sft_heldout_accuracy", "dpo_positive_rate_after")),
    },
    "06b_prompting": {
        "keys": {"accuracy_zero_shot", "accuracy_calibrated", "accuracy_lora_decoder"}
        | {f"accuracy_few_shot_{k}{std}" for k in (2, 4, 8) for std in ("", "_std")}
        | {f"tokens_per_prediction_{k}" for k in (0, 2, 4, 8)}
        | {f"latency_ms_{m}" for m in ("zero_shot", "few_shot", "calibrated", "lora_decoder",
                                        "minilm", "tfidf")},
        # every example in the prompt is read again for each prediction; scores are shares
        "check": lambda m: all(m[f"tokens_per_prediction_{k}"] > m["tokens_per_prediction_0"]
                               for k in (2, 4, 8))
        and m["tokens_per_prediction_8"] > m["tokens_per_prediction_2"]
        and all(0 <= m[key] <= 1 for key in m if key.startswith("accuracy_") and
                not isinstance(m[key], dict))
        and m["accuracy_few_shot_8_std"] >= 0 and m["speedup_shared_prefix"] > 1,
    },
    "07_domain_adaptation": {
        "keys": {"accuracy_without_dapt", "accuracy_with_dapt", "general_mlm_loss_before",
                 "general_mlm_loss_after", "general_mlm_loss_mitigated"},
        # even a few steps on reviews lower the loss on held-out reviews
        "check": lambda m: m["domain_mlm_loss_after"] < m["domain_mlm_loss_before"]
        and 0 < m["unseen_word_rate"] < 1,
    },
    "08_deployment": {
        "keys": {f"{metric}_{variant}" for metric in ("size_mb", "latency_ms_bs1", "latency_ms_bs32",
                                                      "accuracy")
                 for variant in ("fp32", "bf16", "int8_dynamic", "prune50", "drop2", "onnx",
                                 "onnx_int8")}
        | {"serve_p50_ms", "serve_p95_ms", "serve_rps", "drift_alert_in_domain",
           "drift_alert_out_of_domain", "auth_unauthorized_status", "rate_limited_share",
           "alert_latency_fired", "alert_error_fired", "alert_cleared", "autoscale_p95_ms_fixed",
           "autoscale_p95_ms_auto", "autoscale_cost_ratio", "bias_flip_rate", "bias_mean_gap"},
        # bad requests all get a 4xx; business news trips the drift alert, reviews do not;
        # the int8 ONNX file is about a quarter of fp32
        "check": lambda m: m["validation_all_4xx"] and m["serve_errors"] == 0
        and m["drift_alert_out_of_domain"] and not m["drift_alert_in_domain"]
        and m["size_mb_onnx_int8"] < 0.35 * m["size_mb_fp32"]
        and m["serve_p50_ms"] <= m["serve_p95_ms"]
        # keys, masked logs, a rate limit, alerts that fire and clear; autoscaling is cheaper
        and (m["auth_unauthorized_status"], m["auth_forbidden_status"]) == (401, 403)
        and not m["log_holds_raw_text"] and 0 < m["rate_limited_share"] < 1
        and m["alert_latency_fired"] and m["alert_error_fired"] and m["alert_cleared"]
        and m["autoscale_cost_ratio"] < 1 and 0 <= m["bias_flip_rate"] <= 1,
    },
    "09a_faq_assistant": {
        "keys": {"faq_top1", "faq_top5", "faq_handover_rate"},
        "check": lambda m: m["faq_top1"] > 50 * m["faq_chance_top1"]
        and m["faq_top5"] >= m["faq_top1"],
    },
    "09b_news_monitoring": {
        "keys": {"finance_shift_accuracy_before", "finance_shift_accuracy_after",
                 "alert_precision", "alert_recall", "stream_items_seen_in_training"},
        # the topic router keeps most of the business news even at smoke
        "check": lambda m: m["route_business_recall"] > 0.5
        and 0 <= m["alert_precision"] <= 1 and 0 <= m["alert_recall"] <= 1
        # the stream is scored only by models that never trained on its headlines
        and m["stream_items_seen_in_training"] == 0,
    },
    "09c_recommendation": {
        "keys": {"rec_ndcg10_model", "rec_ndcg10_popularity"},
        # the readers' true tastes rank best; new articles reach their fans from text alone
        "check": lambda m: m["rec_ndcg10_oracle"] > m["rec_ndcg10_model"]
        and m["rec_cold_start_rank_fans"] < m["rec_cold_start_rank_others"],
    },
    "10_chinese": {
        "keys": {f"zh_chars_per_token_{t}" for t in ("characters", "jieba", "bpe", "wordpiece")}
        | {f"zh_sentiment_accuracy_{m}" for m in ("tfidf", "bert", "random_bert")}
        | {"zh_masked_accuracy", "zh_frequency_baseline_accuracy", "zh_ner_f1",
           "zh_ner_baseline_f1"},
        # characters are one token each and BERT's WordPiece cuts Chinese into characters;
        # jieba's words are longer; a bigger BPE vocabulary gives longer tokens; the masked-LM
        # loss falls; the dictionary finds some names even at smoke
        "check": lambda m: m["zh_chars_per_token_characters"] == 1.0
        and 0.95 < m["zh_chars_per_token_wordpiece"] <= 1.05
        and m["zh_chars_per_token_jieba"] > 1.2
        and len(bpe := sorted((m["zh_vocab_size"][k], v) for k, v in
                              m["zh_tokens_per_sentence"].items() if k.startswith("BPE"))) >= 3
        and all(small[1] > big[1] for small, big in zip(bpe, bpe[1:]))
        and m["zh_mlm_loss_final"] < m["zh_mlm_loss_initial"] - 0.3
        and m["zh_ner_baseline_f1"] > 0
        and all(0 <= m[k] <= 1 for k in m if k.startswith(("zh_sentiment_accuracy", "zh_ner_f1"))),
    },
}

NOTEBOOKS = find_notebooks()


def test_every_notebook_has_expectations():
    assert {nb.stem for nb in NOTEBOOKS} <= set(EXPECTED), "add the new notebook to EXPECTED"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_recorded_what_it_should_at_smoke_scale(path: Path, request):
    if path.stem not in getattr(request.config, "notebooks_under_nbval", set()):
        pytest.skip(f"{path.name} was not executed in this run: add `notebooks --nbval-lax`")
    results = Path(os.environ["LLM_COURSE_RECORDS_DIR"]) / f"{path.stem}.json"
    assert results.exists(), f"{path.name} recorded nothing: see its failing cell above"
    recorded = json.loads(results.read_text(encoding="utf-8"))
    metrics, expected = recorded.get("metrics", {}), EXPECTED[path.stem]
    assert expected["keys"] <= set(metrics), f"missing: {expected['keys'] - set(metrics)}"
    assert all(v is not None and (not isinstance(v, float) or math.isfinite(v))
               for v in metrics.values())
    assert expected["check"](metrics), metrics
    receipt = recorded.get("receipt", {})
    assert receipt.get("scale") == "smoke" and receipt.get("seed") is not None, receipt
    assert {"packages", "device", "wall_s"} <= set(receipt)

@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_notebooks_laptop_bands_hold_the_reference_values(path, request):
    """Every check_band records its bands at every scale, so the smoke run tells whether today's
    laptop bands still contain the reference run's values (a band edited without it fails)."""
    if path.stem not in getattr(request.config, "notebooks_under_nbval", set()):
        pytest.skip(f"{path.name} was not executed in this run: add `notebooks --nbval-lax`")
    ref = reference.lesson(reference.load(), path.stem)
    if ref is None:
        pytest.skip(f"{path.stem} is not in reference/laptop.json")
    records = Path(os.environ["LLM_COURSE_RECORDS_DIR"]) / f"{path.stem}.json"
    checks = json.loads(records.read_text(encoding="utf-8")).get("checks", {})
    for name, check in checks.items():
        band, ref_check = check["bands"].get("laptop"), ref["checks"].get(name)
        if band is not None and ref_check is not None:
            assert reference.in_band(ref_check["value"], band), (
                f"{path.stem}: the laptop band {band} of {name!r} no longer holds the reference "
                f"value {ref_check['value']}")
