"""LoRA from scratch (llm_course.finetuning.lora, notebook 06_peft): exactness, training, merging, peft parity."""

import copy

import pytest
import testkit
import torch
from torch import nn
from transformers import BertForSequenceClassification

from llm_course.finetuning.lora import LoRALinear, apply_lora, lora_state_dict, merge_lora
from llm_course.models.parameters import count_parameters

HIDDEN, LAYERS, R = 32, 2, 4


def tiny_bert() -> BertForSequenceClassification:
    return testkit.tiny_bert(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_labels=3).eval()


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 100, (4, 12), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.tensor([0, 1, 2, 1])}


def logits(model, batch):
    with torch.no_grad():
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits


def lora_model():
    return apply_lora(tiny_bert(), ("query", "value"), r=R, alpha=8, train_modules=("classifier",))


def test_lora_linear_starts_equal_and_is_initialised_like_peft():
    torch.manual_seed(0)
    base = nn.Linear(10, 6)
    layer = LoRALinear(copy.deepcopy(base), r=3, alpha=6)
    x = torch.randn(5, 10)
    assert torch.equal(layer(x), base(x))
    assert layer.scaling == 2.0 and layer.lora_A.shape == (3, 10) and layer.lora_B.shape == (6, 3)
    assert not layer.lora_B.any() and layer.lora_A.abs().sum() > 0
    assert layer.lora_A.abs().max() <= 1 / 10 ** 0.5  # kaiming_uniform(a=sqrt(5)) bound
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["lora_A", "lora_B"]
    assert "r=3, alpha=6" in repr(layer)


def test_lora_linear_computes_the_formula_and_dropout_only_in_training():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 4), r=2, alpha=5, dropout=0.5)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 7, 8)
    w, b, a, bb = layer.base.weight, layer.base.bias, layer.lora_A, layer.lora_B
    layer.eval()
    torch.testing.assert_close(layer(x), x @ w.T + b + 2.5 * (x @ a.T @ bb.T))
    layer.train()
    assert not torch.equal(layer(x), layer(x))  # dropout on the LoRA path
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(2, 2), r=0)


def test_wrapped_bert_equals_base_exactly_at_init(batch):
    base, wrapped = tiny_bert(), lora_model()
    assert torch.equal(logits(base, batch), logits(wrapped, batch))
    wrapped_names = [n for n, m in wrapped.named_modules() if isinstance(m, LoRALinear)]
    assert len(wrapped_names) == 2 * LAYERS
    assert all(n.endswith((".query", ".value")) for n in wrapped_names)


def test_count_parameters_and_trainable_share():
    base_total = count_parameters(tiny_bert())[0]
    model = lora_model()
    total, trainable = count_parameters(model)
    lora = LAYERS * 2 * (R * HIDDEN + HIDDEN * R)
    classifier = HIDDEN * 3 + 3
    assert trainable == lora + classifier
    assert total == base_total + lora
    assert 0 < trainable / total < 0.05


def test_training_changes_only_lora_and_classifier(batch):
    model = lora_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    start = logits(model, batch)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(3):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    assert not torch.allclose(start, logits(model, batch))
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert changed, "nothing trained"
    assert all(".lora_" in n or n.startswith("classifier.") for n in changed), changed
    assert any(n.endswith("lora_B") for n in changed)
    assert {"classifier.weight", "classifier.bias"} <= changed

    state = lora_state_dict(model)
    assert set(state) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert len([k for k in state if ".lora_" in k]) == 2 * 2 * LAYERS
    fresh = lora_model()
    _, unexpected = fresh.load_state_dict(state, strict=False)
    assert not unexpected
    assert torch.equal(logits(fresh, batch), logits(model, batch))


def test_merge_gives_the_same_outputs_without_lora_modules(batch):
    model = lora_model()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.normal_(std=0.5)
    expected = logits(model, batch)
    assert not torch.allclose(expected, logits(tiny_bert(), batch))
    merged = merge_lora(model)
    assert (merged(**batch).logits - expected).abs().max() < 1e-5
    assert not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert set(merged.state_dict()) == set(tiny_bert().state_dict())  # a plain BERT again

    layer = LoRALinear(nn.Linear(6, 3), r=2, alpha=4)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(2, 6)
    plain = merge_lora(layer)
    assert type(plain) is nn.Linear and (plain(x) - layer(x)).abs().max() < 1e-5


def test_no_matching_target_is_an_error():
    with pytest.raises(ValueError, match="no nn.Linear matches"):
        apply_lora(tiny_bert(), target_modules=("q_proj",))


def test_same_trainable_count_and_outputs_as_peft(batch):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=R, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"],
                        task_type="SEQ_CLS")
    theirs = get_peft_model(tiny_bert(), config)
    ours = lora_model()
    assert theirs.get_nb_trainable_parameters()[0] == count_parameters(ours)[1]

    # Same adapter weights -> same outputs: our forward is peft's forward.
    with torch.no_grad():
        for name, module in ours.named_modules():
            if isinstance(module, LoRALinear):
                module.lora_B.normal_(std=0.5)
                peft_layer = theirs.base_model.model.get_submodule(name)
                peft_layer.lora_A["default"].weight.copy_(module.lora_A)
                peft_layer.lora_B["default"].weight.copy_(module.lora_B)
    theirs.eval()
    torch.testing.assert_close(logits(theirs, batch), logits(ours, batch))
