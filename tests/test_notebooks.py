"""Every lesson runs top to bottom at `smoke` scale, offline, and records what it should."""

import math
from pathlib import Path

import pytest

from llm_course.runner import find_notebooks, run_notebook

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
}

NOTEBOOKS = find_notebooks()


def test_every_notebook_has_expectations():
    assert {nb.stem for nb in NOTEBOOKS} <= set(EXPECTED), "add the new notebook to EXPECTED"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_at_smoke_scale(path: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp(path.stem)
    entry = run_notebook(path, out, scale="smoke")
    assert entry["status"] == "ok", f"cell [{entry.get('failed_cell')}] raised {entry.get('error')}"
    metrics, expected = entry["metrics"], EXPECTED[path.stem]
    assert expected["keys"] <= set(metrics), f"missing: {expected['keys'] - set(metrics)}"
    assert all(v is not None and (not isinstance(v, float) or math.isfinite(v))
               for v in metrics.values())
    assert expected["check"](metrics), metrics
    receipt = entry["receipt"]
    assert receipt["scale"] == "smoke" and receipt["seed"] is not None
    assert {"packages", "device", "wall_s"} <= set(receipt)
