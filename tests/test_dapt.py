"""Domain-adaptation helpers (llm_course.finetuning.dapt, notebook 07_domain_adaptation)."""

import pytest
import torch
from testkit import tiny_bert

from llm_course.env.scale import preset
from llm_course.finetuning import dapt
from llm_course.models.loading import load_pretrained
from llm_course.training.config import recipe_config


def test_classifier_from_mlm_keeps_the_encoder_and_seeds_the_head():
    mlm = tiny_bert("masked-lm", vocab_size=100, hidden_size=32, num_hidden_layers=2)
    a = dapt.classifier_from_mlm(mlm, ["neg", "pos"], seed=3)
    b = dapt.classifier_from_mlm(mlm, ["neg", "pos"], seed=3)
    c = dapt.classifier_from_mlm(mlm, ["neg", "pos"], seed=4)
    encoder = {k: v for k, v in mlm.state_dict().items() if k.startswith("bert.")}
    for name, value in encoder.items():
        assert torch.equal(a.state_dict()[name], value), name
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)
    assert a.config.id2label == {0: "neg", 1: "pos"} and a.num_labels == 2
    ids = torch.randint(0, 100, (2, 7))
    assert a(input_ids=ids).logits.shape == (2, 2)
    assert mlm.config.id2label == {0: "LABEL_0", 1: "LABEL_1"}  # the MLM model is left as it was


def test_masked_eval_set_is_fixed_and_limited():
    _, tokenizer = load_pretrained("minilm")
    texts = ["A gorgeous, witty and surprising film about growing up."] * 5 + [
        "The plot is thin but the actors carry it with charm and conviction."] * 5
    first = dapt.masked_eval_set(texts, tokenizer, max_length=32, limit=6)
    second = dapt.masked_eval_set(texts, tokenizer, max_length=32, limit=6)
    assert len(first) == 6
    assert torch.equal(first[:]["labels"], second[:]["labels"])
    assert (first[:]["labels"] != -100).any()
    examples = dapt.mlm_examples(["Too short", "This one is long enough to keep"], tokenizer, 16)
    assert len(examples) == 1  # fewer than 4 tokens is dropped


def test_train_configs_follow_the_preset():
    p = preset("dapt", "smoke")
    cfg = recipe_config("dapt", "smoke")
    assert cfg.max_steps == p["dapt_steps"] and cfg.lr == p["dapt_lr"] and cfg.task == "lm"
    cfg = recipe_config("dapt_classifier", "smoke", lr=1e-3)
    assert cfg.lr == 1e-3 and cfg.task == "classification" and cfg.max_steps == p["finetune_steps"]
    with pytest.raises(ValueError):
        recipe_config("dapt", "smoke", lr=5.0)
