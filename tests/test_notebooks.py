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
