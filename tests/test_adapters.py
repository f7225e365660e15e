"""Bottleneck adapters (llm_course.finetuning.adapters, notebook 06_peft): exact start, what trains."""

import pytest
import testkit
import torch
from torch import nn
from transformers import BertForSequenceClassification

from llm_course.finetuning.adapters import (
    BottleneckAdapter,
    WithAdapter,
    adapter_state_dict,
    add_adapters,
)

HIDDEN, LAYERS, M = 32, 2, 4


def tiny_bert() -> BertForSequenceClassification:
    return testkit.tiny_bert(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_labels=2).eval()


@pytest.fixture
def batch():
    ids = torch.randint(1, 100, (3, 10), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 1])}


def test_adapter_is_the_identity_at_init_and_a_bottleneck():
    adapter = BottleneckAdapter(8, bottleneck=3)
    h = torch.randn(2, 5, 8)
    assert torch.equal(adapter(h), h)
    assert adapter.down.weight.shape == (3, 8) and adapter.up.weight.shape == (8, 3)
    with pytest.raises(ValueError, match="bottleneck"):
        BottleneckAdapter(8, bottleneck=0)


def test_bert_with_adapters_starts_equal_and_trains_only_adapters_norms_head(batch):
    base, model = tiny_bert(), add_adapters(tiny_bert(), bottleneck=M)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        assert torch.equal(base(**inputs).logits, model(**inputs).logits)
    wrapped = [n for n, m in model.named_modules() if isinstance(m, WithAdapter)]
    assert len(wrapped) == 2 * LAYERS  # after attention and after the feed-forward block
    assert all(n.endswith(("attention.output.dense", ".output.dense")) for n in wrapped)

    per_adapter = 2 * HIDDEN * M + M + HIDDEN
    layernorms = (1 + 2 * LAYERS) * 2 * HIDDEN  # embeddings + two per layer
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 2 * LAYERS * per_adapter + layernorms + HIDDEN * 2 + 2

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(2):
        model(**batch).loss.backward()
        opt.step()
        opt.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert any(".adapter.up." in n for n in changed)
    assert all(".adapter." in n or "LayerNorm" in n or n.startswith("classifier.") for n in changed)
    assert set(adapter_state_dict(model)) == {n for n, p in model.named_parameters() if p.requires_grad}


def test_without_layernorms_and_errors():
    model = add_adapters(tiny_bert(), bottleneck=M, train_layernorm=False)
    assert not any(p.requires_grad for n, p in model.named_parameters() if "LayerNorm" in n)
    with pytest.raises(ValueError, match="no nn.Linear matches"):
        add_adapters(tiny_bert(), targets=("q_proj",))
    lone = WithAdapter(nn.Linear(4, 6), bottleneck=2)
    assert not lone.layer.weight.requires_grad and lone(torch.randn(1, 4)).shape == (1, 6)
