"""Frozen features and linear probes (llm_course.finetuning.probes, lessons 04-05)."""

import numpy as np
import pytest
import torch
from testkit import tiny_bert
from transformers import BertForSequenceClassification

from llm_course.finetuning import probes as features


class WordTokenizer:
    """A stand-in tokenizer: one id per character class, enough to drive a tiny BERT."""

    def __call__(self, texts, padding=True, truncation=True, max_length=16, return_tensors="pt"):
        rows = [[1] + [4 + (ord(c) % 20) for c in t[: max_length - 2]] + [2] for t in texts]
        width = max(map(len, rows))
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
        from transformers import BatchEncoding

        return BatchEncoding({"input_ids": ids, "attention_mask": (ids != 0).long()})


@pytest.fixture(scope="module")
def tiny():
    return tiny_bert("base", vocab_size=32, hidden_size=16, num_hidden_layers=2)


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(features.mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))


def test_embed_keeps_order_and_matches_one_by_one(tiny):
    tok = WordTokenizer()
    mode = tiny.training
    texts = ["a long sentence here", "hi", "medium text", "x"]
    together = features.embed(tiny, tok, texts, batch_size=3, precision="fp32")
    alone = np.concatenate([features.embed(tiny, tok, [t], precision="fp32") for t in texts])
    assert together.shape == (4, 16) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert tiny.training == mode


def test_embed_uses_the_body_of_a_task_model_and_restores_train_mode(tiny):
    clf = BertForSequenceClassification(tiny.config)
    clf.bert.load_state_dict(tiny.state_dict(), strict=False)
    clf.train()
    a = features.embed(clf, WordTokenizer(), ["abc", "de"], precision="fp32")
    b = features.embed(tiny, WordTokenizer(), ["abc", "de"], precision="fp32")
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert clf.training


def test_embed_layer_zero_is_the_embedding_output(tiny):
    first = features.embed(tiny, WordTokenizer(), ["abc"], layer=0, precision="fp32")
    last = features.embed(tiny, WordTokenizer(), ["abc"], precision="fp32")
    assert not np.allclose(first, last)


def test_probe_chooses_c_on_validation_and_scores_test():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    y = (x[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    fitted = features.probe(x[:200], y[:200], x[200:250], y[200:250], Cs=(0.001, 1.0))
    assert set(fitted.scores) == {0.001, 1.0}
    assert fitted.valid_accuracy == max(fitted.scores.values())
    assert fitted.accuracy(x[250:], y[250:]) > 0.8


def test_tfidf_probe_reads_raw_text():
    texts = ["great fun film", "awful boring mess", "great acting", "boring plot"] * 10
    labels = [1, 0, 1, 0] * 10
    fitted = features.tfidf_probe(texts, labels, texts[:8], labels[:8], Cs=(1.0, 10.0))
    assert fitted.accuracy(["great great", "so boring"], [1, 0]) == 1.0


def test_tfidf_probe_handles_more_than_two_classes():
    texts = ["shares fell on the market", "the striker scored twice", "the minister won the vote",
             "profits and shares rose", "a late goal for the striker", "voters and the minister"] * 5
    labels = [0, 1, 2, 0, 1, 2] * 5
    fitted = features.tfidf_probe(texts, labels, texts[:6], labels[:6], Cs=(1.0, 10.0))
    assert fitted.accuracy(["shares of the market", "a goal by the striker", "the vote"],
                           [0, 1, 2]) == 1.0


def test_random_twin_same_shape_new_weights(tiny):
    twin = features.random_twin(tiny, seed=1)
    assert type(twin) is type(tiny)
    shapes = [p.shape for p in tiny.parameters()]
    assert [p.shape for p in twin.parameters()] == shapes
    assert not torch.equal(twin.encoder.layer[0].attention.self.query.weight,
                           tiny.encoder.layer[0].attention.self.query.weight)
    again = features.random_twin(tiny, seed=1)
    assert torch.equal(again.encoder.layer[0].attention.self.query.weight,
                       twin.encoder.layer[0].attention.self.query.weight)


def test_subsample_is_stratified_and_seeded():
    labels = [0] * 80 + [1] * 20
    idx = features.subsample(labels, 20, seed=3)
    assert len(idx) == 20 and sorted(idx) == list(idx)
    assert sum(labels[i] for i in idx) == 4
    assert list(idx) == list(features.subsample(labels, 20, seed=3))
    assert list(features.subsample(labels, 500)) == list(range(100))


def test_token_features_keep_the_labelled_positions(tiny):
    rows = [{"input_ids": [1, 5, 6, 7, 2], "attention_mask": [1] * 5, "labels": [-100, 3, -100, 4, -100]},
            {"input_ids": [1, 8, 2], "attention_mask": [1] * 3, "labels": [-100, 0, -100]}]

    def collate(batch):
        width = max(len(r["input_ids"]) for r in batch)
        pad = lambda key, value: torch.tensor([r[key] + [value] * (width - len(r[key])) for r in batch])
        return {"input_ids": pad("input_ids", 0), "attention_mask": pad("attention_mask", 0),
                "labels": pad("labels", -100)}

    out = features.token_features(tiny, rows, collate, layers=2, batch_size=2, precision="fp32")
    assert [r["labels"].tolist() for r in out] == [[3, 4], [0]]
    assert out[0]["features"].shape == (2, 32)  # 2 layers x 16
    alone = features.token_features(tiny, rows[1:], collate, layers=2, precision="fp32")
    assert torch.allclose(alone[0]["features"], out[1]["features"], atol=1e-5)


def test_token_head_trains_with_fit_and_evaluates_entities():
    from llm_course.training.config import TrainConfig
    from llm_course.training.evaluate import evaluate
    from llm_course.training.loop import fit

    torch.manual_seed(0)
    names = ["O", "B-x", "I-x"]
    rows = []
    for i in range(40):  # the tag is written in the first feature: easy to learn
        tags = torch.tensor([(i + j) % 3 for j in range(3 + i % 4)])
        feats = torch.randn(len(tags), 6) * 0.1
        feats[:, 0] = tags.float()
        feats[:, 1] = (tags == 1).float()
        rows.append({"features": feats, "labels": tags})
    batch = features.pad_token_features(rows[:3])
    assert batch["features"].shape == (3, 5, 6) and (batch["labels"][0, 3:] == -100).all()
    head = features.TokenHead(6, names, hidden=16, dropout=0.0)
    history = fit(head, rows, rows, config=TrainConfig(
        lr=1e-2, max_steps=150, batch_size=8, task="token-classification", progress=False,
        plot=False, precision="fp32", compile=False, eval_every=0),
        collate_fn=features.pad_token_features)
    result = evaluate(head, rows, task="token-classification",
                      collate_fn=features.pad_token_features)
    assert history.steps == 150 and result["accuracy"] > 0.95 and result["f1"] > 0.9
