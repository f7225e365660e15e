"""Text augmentation and FGM adversarial training (lesson 05)."""

import random

import pytest
import torch
from testkit import tiny_bert

from llm_course.finetuning import adversarial, augment


def test_word_dropout_drops_about_p_and_keeps_one_word():
    rng = random.Random(0)
    text = " ".join(f"w{i}" for i in range(1000))
    kept = augment.word_dropout(text, 0.2, rng).split()
    assert 750 < len(kept) < 850
    assert kept == [w for w in text.split() if w in set(kept)]  # order kept
    assert augment.word_dropout("one", 1.0, rng) == "one"
    assert augment.word_dropout("", 0.5, rng) == ""
    assert augment.word_dropout(text, 0.2, random.Random(1)) == \
        augment.word_dropout(text, 0.2, random.Random(1))


def test_word_swap_uses_the_table():
    table = {"good": ["great"], "film": ["movie"]}
    assert augment.word_swap("A good film", table, p=1.0) == "A great movie"
    assert augment.word_swap("A good film", table, p=0.0) == "A good film"


def test_neighbours_finds_words_used_alike():
    texts = (["the cat sat on the mat", "the dog sat on the mat", "a cat ran home",
              "a dog ran home", "we ate red apples", "we ate green apples"] * 20)
    table = augment.neighbours(texts, top_words=50, k=1, dims=5)
    assert table["cat"] == ["dog"] and table["red"] == ["green"]


def test_augmenting_collator_tokenizes_fresh_variants():
    class Tok:
        def __call__(self, texts, padding, truncation, max_length, return_tensors):
            rows = [[len(w) for w in t.split()][:max_length] for t in texts]
            width = max(map(len, rows))
            ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
            return {"input_ids": ids, "attention_mask": (ids != 0).long()}

    collate = augment.AugmentingCollator(Tok(), lambda t, rng: augment.word_dropout(t, 0.5, rng),
                                         max_length=8, seed=0)
    examples = [{"text": "aa bbb c dddd ee f", "labels": 1}, {"text": "x yy", "label": 0}]
    first, second = collate(examples), collate(examples)
    assert first["labels"].tolist() == [1, 0]
    assert first["input_ids"].shape[0] == 2
    assert first["input_ids"].tolist() != second["input_ids"].tolist()  # new draws each batch


def test_fgm_perturbation_has_norm_epsilon_per_example():
    grad = torch.randn(3, 4, 5)
    r = adversarial.fgm_perturbation(grad, 0.7)
    assert torch.allclose(r.reshape(3, -1).norm(dim=1), torch.full((3,), 0.7))
    assert torch.allclose(r[0] / 0.7, grad[0] / grad[0].norm(), atol=1e-6)
    assert (torch.sign(r) == torch.sign(grad)).all()


@pytest.fixture
def tiny_classifier():
    return tiny_bert(vocab_size=30, hidden_size=16, num_hidden_layers=1, max_position_embeddings=16,
                     num_labels=2, dropout=0.0)


def test_fgm_model_is_the_model_in_eval_and_adds_the_attack_in_training(tiny_classifier):
    ids = torch.randint(3, 30, (4, 7))
    mask = torch.ones_like(ids)
    labels = torch.tensor([0, 1, 1, 0])
    wrapped = adversarial.FGMModel(tiny_classifier, epsilon=1.0)
    wrapped.eval()
    plain = tiny_classifier(input_ids=ids, attention_mask=mask, labels=labels)
    same = wrapped(input_ids=ids, attention_mask=mask, labels=labels)
    assert torch.allclose(plain.loss, same.loss) and torch.allclose(plain.logits, same.logits)
    wrapped.train()
    out = wrapped(input_ids=ids, attention_mask=mask, labels=labels)
    # the attacked loss is higher than the clean one, so the sum is more than twice the clean
    assert out.loss.item() > 2 * plain.loss.item()
    out.loss.backward()
    assert tiny_classifier.bert.embeddings.word_embeddings.weight.grad is not None
    assert wrapped.config is tiny_classifier.config


def test_fgm_model_trains_with_fit(tiny_classifier):
    from llm_course.training.config import TrainConfig
    from llm_course.training.loop import fit

    data = [{"input_ids": torch.randint(3, 30, (6,)), "attention_mask": torch.ones(6, dtype=torch.long),
             "labels": torch.tensor(i % 2)} for i in range(16)]
    wrapped = adversarial.FGMModel(tiny_classifier, epsilon=0.5)
    history = fit(wrapped, data, data, config=TrainConfig(
        max_steps=3, batch_size=8, task="classification", progress=False, plot=False,
        precision="fp32", compile=False))
    assert history.steps == 3 and "eval_accuracy" in history.final_eval
