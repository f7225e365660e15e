"""Method-comparison helpers (llm_course.finetuning.peft_methods, notebook 06_peft)."""

import pytest
import testkit
import torch
from peft import AdaLoraConfig, PrefixTuningConfig, get_peft_model
from transformers import BertForSequenceClassification

from llm_course.finetuning import peft_methods as pm

HIDDEN, LAYERS = 32, 2


def tiny_bert() -> BertForSequenceClassification:
    return testkit.tiny_bert(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_labels=2).eval()


@pytest.fixture
def batch():
    ids = torch.randint(1, 100, (4, 10), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.tensor([0, 1, 1, 0])}


def prefix_model(n=5):
    return pm.PrefixForEncoder(get_peft_model(tiny_bert(), PrefixTuningConfig(
        task_type="SEQ_CLS", num_virtual_tokens=n)))


def test_prefix_tuning_runs_on_bert_and_trains_only_the_prefix_and_head(batch):
    model = prefix_model()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("prompt_encoder" in n for n in trainable)
    assert all("prompt_encoder" in n or "classifier" in n for n in trainable), trainable
    model.train()
    out = model(**batch)
    assert out.logits.shape == (4, 2)
    out.loss.backward()
    prompt = next(p for n, p in model.named_parameters() if "prompt_encoder" in n)
    assert prompt.grad is not None and prompt.grad.abs().sum() > 0
    assert model.config.num_labels == 2 and model.get_base_model().__class__.__name__.startswith("Bert")


def test_prefix_changes_the_output_and_padding_is_masked(batch):
    model = prefix_model().eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        plain = tiny_bert()(**inputs).logits
        with_prefix = model(**inputs).logits
        assert not torch.allclose(plain, with_prefix)  # the prefix is attended to
        # the same text with padding after it gives the same logits: the mask covers the prefix
        short = {"input_ids": batch["input_ids"][:1, :6], "attention_mask": torch.ones(1, 6, dtype=torch.long)}
        padded = {"input_ids": torch.cat([short["input_ids"], torch.zeros(1, 4, dtype=torch.long)], 1),
                  "attention_mask": torch.cat([short["attention_mask"], torch.zeros(1, 4, dtype=torch.long)], 1)}
        torch.testing.assert_close(model(**short).logits, model(**padded).logits, atol=1e-5, rtol=1e-4)


def test_adalora_steps_calls_the_allocator_after_each_step_then_unhooks(batch):
    total = 12
    model = get_peft_model(tiny_bert(), AdaLoraConfig(
        task_type="SEQ_CLS", init_r=6, target_r=2, target_modules=["query", "value"],
        total_step=total, tinit=2, tfinal=3, deltaT=1))
    calls = []
    original = model.base_model.update_and_allocate
    model.base_model.update_and_allocate = lambda step: (calls.append(step), original(step))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    with pm.adalora_steps(model):
        for _ in range(total):
            model(**batch).loss.backward()
            opt.step()
            opt.zero_grad()
    assert calls == list(range(1, total + 1))
    ranks = pm.adalora_ranks(model)
    assert len(ranks) == 2 * LAYERS and all(k.endswith((".query", ".value")) for k in ranks)
    assert sum(ranks.values()) == 2 * 2 * LAYERS  # the budget: target_r per matrix on average
    opt.step()  # outside the block: no more calls
    assert len(calls) == total
    with pm.adalora_steps(tiny_bert()):  # not AdaLoRA: a no-op
        pass


def test_training_memory_counts_what_trains(batch):
    full = pm.training_memory(tiny_bert(), batch)
    head = pm.training_memory(pm.freeze_all_but(tiny_bert(), "classifier"), batch)
    assert full["weights_mb"] == pytest.approx(head["weights_mb"])
    assert full["grads_mb"] > 100 * head["grads_mb"] > 0
    assert full["adam_mb"] == pytest.approx(2 * full["grads_mb"])  # two fp32 moments
    assert full["activations_mb"] > 5 * head["activations_mb"]  # a frozen encoder saves nothing
    parts = full["weights_mb"] + full["grads_mb"] + full["adam_mb"] + full["activations_mb"]
    assert full["total_mb"] == pytest.approx(parts)


def test_freeze_all_but_and_folder_size(tmp_path):
    model = pm.freeze_all_but(tiny_bert(), "classifier")
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "classifier.weight", "classifier.bias"}
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b").write_bytes(b"x" * 5)
    assert pm.folder_size(tmp_path) == 15
    assert list(pm.METHODS) == ["full", "head", "lora", "adalora", "prefix", "adapter"]


def test_run_method_end_to_end_on_a_few_reviews():
    from llm_course.finetuning.tasks import classification_data
    from llm_course.models.loading import load_pretrained
    from llm_course.training.config import recipe_config

    _, tokenizer = load_pretrained("minilm")
    data = classification_data("sentiment", tokenizer, scale="smoke", max_length=16)
    data.update(train=data["train"].select(range(8)), validation=data["validation"].select(range(8)),
                test=data["test"].select(range(8)))
    config = recipe_config("finetune", "smoke", max_steps=2, batch_size=4, eval_every=0, progress=False,
                             plot=False)
    model, row = pm.run_method("head", lambda m: pm.freeze_all_but(m, "classifier"), data, config,
                               scale="smoke")
    assert row["method"] == "head" and row["steps"] == 2 and row["trainable"] == 384 * 2 + 2
    assert 0 < row["trainable_share"] < 1e-3 and 0 <= row["accuracy"] <= 1
    assert row["memory_mb"] > row["activations_mb"] >= 0
