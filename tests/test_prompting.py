"""Prompting a causal LM to classify (llm_course.finetuning.prompting, .decoder_classifier;
lesson 06b): label words scored by log-probability, shared-prefix batching that changes no
number, seeded few-shot prompts, contextual calibration, and the head started from the label
words."""

import pytest
import torch

from llm_course.exercises import lesson_06b
from llm_course.finetuning import decoder_classifier, prompting
from llm_course.finetuning.prompting import PLAIN, Template

WORDS = ("negative", "positive")


@pytest.fixture(scope="module")
def tokenizer():
    return lesson_06b.toy_tokenizer()  # byte-level words: "positive" and " positive" differ


def tiny_decoder(kind: str, vocab: int, seed: int = 0):
    """A random 2-layer GPT-2 or Llama (grouped-query attention) with room for few-shot prompts."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=vocab,
                                          n_positions=128, bos_token_id=1, eos_token_id=1)).eval()
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=1, eos_token_id=1, pad_token_id=2)).eval()


def one_by_one(model, tokenizer, prompts, label_ids):
    """The definition, one full prompt at a time: log_softmax of the last position's logits,
    plus the later pieces of a longer label fed back in."""
    rows = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tokenizer.encode(prompt)
            row = []
            for label in label_ids:
                full = torch.tensor([ids + list(label)])
                log_p = torch.log_softmax(model(full).logits[0].float(), -1)
                row.append(sum(log_p[len(ids) - 1 + i, t] for i, t in enumerate(label)))
            rows.append(torch.stack(row))
    return torch.stack(rows)


TEXTS = ["great", "terrible rotten", "fresh fresh good", "bad", "good great fresh terrible", "rotten"]
SHOTS = [("good", "positive"), ("bad", "negative"), ("great fresh", "positive")]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("shots", [(), SHOTS], ids=["zero-shot", "3-shot"])
def test_label_log_probs_match_the_definition_with_and_without_a_shared_prefix(kind, shots,
                                                                              tokenizer):
    model = tiny_decoder(kind, len(tokenizer))
    prompts = prompting.few_shot_prompts(PLAIN, TEXTS, shots)
    ids = prompting.label_token_ids(tokenizer, PLAIN.label_texts(WORDS))
    expected = one_by_one(model, tokenizer, prompts, ids)
    for share in (True, False):
        got = prompting.label_log_probs(model, tokenizer, prompts, ids, batch_size=4,
                                        share_prefix=share, precision="fp32")
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # the highest log-probability is the prediction
    assert torch.equal(got.argmax(1), expected.argmax(1))
    # a shared prefix really is shared: the few-shot prompts have one, the zero-shot ones too
    encoded = [tokenizer.encode(p) for p in prompts]
    assert prompting.shared_prefix_length(encoded) >= (len(tokenizer.encode(prompts[0]))
                                                        - 8 if shots else 1)


def test_a_label_of_several_tokens_sums_its_pieces(tokenizer):
    model = tiny_decoder("llama", len(tokenizer))
    prompts = prompting.few_shot_prompts(PLAIN, TEXTS[:4], SHOTS[:1])
    ids = prompting.label_token_ids(tokenizer, [" great fresh", " bad"])
    assert [len(i) for i in ids] == [2, 1]
    got = prompting.label_log_probs(model, tokenizer, prompts, ids, batch_size=3, precision="fp32")
    torch.testing.assert_close(got, one_by_one(model, tokenizer, prompts, ids), atol=1e-5,
                               rtol=1e-5)


def test_a_dry_run_scores_one_batch_and_repeats_its_rows(tokenizer, monkeypatch):
    """`llm-course run --dry-run`: the first batch is scored as usual, the other rows copy it."""
    from llm_course.env import dry_run

    model = tiny_decoder("gpt2", len(tokenizer))
    prompts = prompting.few_shot_prompts(PLAIN, TEXTS, SHOTS[:1])
    ids = prompting.label_token_ids(tokenizer, PLAIN.label_texts(WORDS))
    expected = one_by_one(model, tokenizer, prompts[:dry_run.ROWS], ids)  # the batch of 2 rows
    monkeypatch.setenv(dry_run.DRY_RUN_ENV, "1")
    got = prompting.label_log_probs(model, tokenizer, prompts, ids, batch_size=4, precision="fp32")
    assert got.shape == (len(TEXTS), 2) and len(TEXTS) > dry_run.ROWS
    torch.testing.assert_close(got[:dry_run.ROWS], expected, atol=1e-5, rtol=1e-5)
    for i in range(dry_run.ROWS, len(TEXTS)):  # the other rows repeat the computed ones in turn
        torch.testing.assert_close(got[i], got[i % dry_run.ROWS])


def test_scoring_picks_the_word_the_model_prefers(tokenizer):
    model = tiny_decoder("gpt2", len(tokenizer))
    ids = prompting.label_token_ids(tokenizer, PLAIN.label_texts(WORDS))
    head = torch.nn.Linear(32, len(tokenizer), bias=True)  # untie the output layer, then lean it
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[ids[1][0]] = 20.0  # " positive" far above everything
    model.lm_head = head
    scores = prompting.score_prompts(model, tokenizer, PLAIN, TEXTS, WORDS)
    assert (scores.predictions() == 1).all()
    assert scores.log_probs[:, 1].min() > -0.01  # nearly all the probability mass


def test_the_leading_space_is_a_different_token(tokenizer):
    spaced, bare = prompting.label_token_ids(tokenizer, [" positive", "positive"])
    assert len(spaced) == len(bare) == 1 and spaced != bare
    assert PLAIN.label_texts(WORDS) == [" negative", " positive"]
    chat = Template("c", "{text}", space_before_label=False)
    assert chat.label_texts(WORDS) == list(WORDS)


def test_calibration_divides_out_the_content_free_prior():
    signal = torch.tensor([2.0, -1.0, 0.5, -0.2, 1.0, -3.0])  # > 0: the text says "positive"
    bias = torch.tensor([0.0, 4.0])  # the prompt leans hard towards label 1
    logits = torch.stack([torch.zeros_like(signal), signal], 1) + bias
    probs = torch.softmax(logits, -1) * 0.3  # label-word probabilities need not sum to 1
    free = torch.softmax(bias.expand(3, 2), -1) * torch.tensor([[0.1], [0.2], [0.4]])
    assert (probs.argmax(1) == 1).all()  # raw: everything is "positive"
    calibrated = prompting.contextual_calibration(probs, free)
    torch.testing.assert_close(calibrated.sum(1), torch.ones(6))
    assert torch.equal(calibrated.argmax(1), (signal > 0).long())  # balanced: the text decides
    torch.testing.assert_close(calibrated, lesson_06b.calibrate(probs, free))  # bank == package


def test_a_biased_model_becomes_the_unbiased_one_after_calibration(tokenizer):
    model = tiny_decoder("llama", len(tokenizer), seed=3)
    plain = prompting.score_prompts(model, tokenizer, PLAIN, TEXTS, WORDS, shots=SHOTS)
    ids = prompting.label_token_ids(tokenizer, PLAIN.label_texts(WORDS))
    head = torch.nn.Linear(32, len(tokenizer), bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[ids[1][0]] = 8.0
    model.lm_head = head
    biased = prompting.score_prompts(model, tokenizer, PLAIN, TEXTS, WORDS, shots=SHOTS)
    assert (biased.predictions() == 1).all()
    # a constant push towards one word cancels exactly in p / p_cf
    torch.testing.assert_close(biased.predictions(calibrated=True),
                               plain.predictions(calibrated=True))
    y = [1, 0, 1, 0, 1, 0]
    assert biased.accuracy(y, calibrated=True) == plain.accuracy(y, calibrated=True)


def test_few_shot_prompts_are_seeded_balanced_and_hold_k_examples():
    labels = [0] * 30 + [1] * 70
    for k in (2, 4, 8):
        picked = prompting.choose_shots(labels, k, seed=5)
        assert len(picked) == len(set(picked)) == k
        assert sum(labels[i] for i in picked) == k // 2  # as many of each label
        assert picked == prompting.choose_shots(labels, k, seed=5)
    orders = {tuple(prompting.choose_shots(labels, 4, seed=s)) for s in range(6)}
    assert len(orders) > 1  # another seed, other examples or another order
    assert prompting.choose_shots(labels, 0, seed=0) == []
    shots = [(f"text {i}", WORDS[labels[i]]) for i in prompting.choose_shots(labels, 4, seed=1)]
    prompt = PLAIN.render("the test review", shots)
    assert prompt.count("Review:") == 5 and prompt.endswith("Review: the test review\nSentiment:")
    assert prompt.count("Sentiment: positive") + prompt.count("Sentiment: negative") == 4


def test_no_test_review_is_among_the_examples():
    from llm_course.data.loaders import load

    data = load("sentiment", scale="smoke", source="offline")
    test = set(data["test"]["text"])
    for seed in range(5):
        for i in prompting.choose_shots(data["train"]["label"], 8, seed):
            assert data["train"][i]["text"] not in test


def test_chat_template_turns_and_clipping():
    class FakeChat:
        chat_template = "yes"

        @staticmethod
        def apply_chat_template(turns, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return "|".join(f"{t['role']}:{t['content']}" for t in turns) + "|assistant:"

    chat = prompting.CHAT
    text = chat.render("one two three four", [("good", "positive")], FakeChat, max_words=2)
    assert text.count("user:") == 2 and "assistant:positive" in text
    assert text.endswith("Movie review: one two ...|assistant:")
    assert text.startswith("user:" + chat.instruction)
    with pytest.raises(ValueError, match="chat template"):
        chat.render("x")
    assert prompting.clip_words("a b c", None) == "a b c"


def test_kv_cache_size_and_latency_helpers():
    from transformers import LlamaConfig

    config = LlamaConfig(num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                         hidden_size=576, head_dim=64)
    # 2 (keys, values) x 30 layers x 3 heads x 64 x 2 bytes = 23,040 bytes per token
    assert prompting.kv_cache_mb(config, 1000) == pytest.approx(23_040_000 / 2**20)
    calls = []
    assert prompting.median_latency_ms(calls.append, ["a", "b", "c"]) >= 0
    assert calls == ["a", "a", "b", "c"]  # one warm-up call, then each text


def test_the_head_starts_as_the_zero_shot_classifier(tokenizer):
    from transformers import LlamaForSequenceClassification

    lm = tiny_decoder("llama", len(tokenizer), seed=1)
    config = lm.config.__class__(**{**lm.config.to_dict(), "num_labels": 2})
    classifier = LlamaForSequenceClassification(config).eval()
    classifier.model.load_state_dict(lm.model.state_dict())
    decoder_classifier.head_from_label_words(classifier, lm, tokenizer, PLAIN.label_texts(WORDS))
    prompts = prompting.few_shot_prompts(PLAIN, TEXTS, ())
    ids = prompting.label_token_ids(tokenizer, PLAIN.label_texts(WORDS))
    log_p = prompting.label_log_probs(lm, tokenizer, prompts, ids, precision="fp32")
    with torch.no_grad():
        logits = torch.stack([classifier(torch.tensor([tokenizer.encode(p)])).logits[0]
                              for p in prompts])
    # same two logits up to the shared normaliser: the same difference, the same predictions
    torch.testing.assert_close(logits[:, 1] - logits[:, 0], log_p[:, 1] - log_p[:, 0],
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="one token"):
        decoder_classifier.head_from_label_words(classifier, lm, tokenizer,
                                                 [" great fresh", " bad"])
    peft_model = decoder_classifier.lora_classifier(classifier, r=2, alpha=4)
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("score" in n for n in trainable)
    assert not any("embed_tokens" in n for n in trainable)


def test_prompted_data_writes_the_template_and_keeps_the_labels(tokenizer):
    from datasets import Dataset

    raw = {"train": Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]})}
    data = decoder_classifier.prompted_classification_data(tokenizer, raw, PLAIN)
    row = data["train"][0]
    assert row["labels"] == 1
    assert row["input_ids"] == tokenizer.encode(PLAIN.render("good"))
    batch = data["collator"]([data["train"][0], data["train"][1]])
    assert batch["input_ids"].shape[0] == 2


def test_the_exercises_agree_with_the_package_and_name_the_space_mistake(tokenizer, capsys):
    from llm_course import exercises

    model = tiny_decoder("llama", len(tokenizer), seed=2)
    prompts = prompting.few_shot_prompts(PLAIN, TEXTS, SHOTS[:2])
    with torch.no_grad():
        last = torch.stack([model(torch.tensor([tokenizer.encode(p)])).logits[0, -1]
                            for p in prompts])
    ids = prompting.label_token_ids(tokenizer, PLAIN.label_texts(WORDS))
    torch.testing.assert_close(
        lesson_06b.score_labels(last, tokenizer, list(WORDS)),
        prompting.label_log_probs(model, tokenizer, prompts, ids, precision="fp32"),
        atol=1e-5, rtol=1e-5)

    def no_space(next_token_logits, tokenizer, words):
        ids = [tokenizer.encode(w, add_special_tokens=False)[0] for w in words]
        return torch.log_softmax(next_token_logits, -1)[:, ids]

    assert not exercises.get("06b.score_labels").check(no_space)
    assert "no leading space" in capsys.readouterr().out
