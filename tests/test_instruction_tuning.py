"""Instruction tuning and DPO (llm_course.finetuning.instructions, .preference; lesson 06c):
only answer tokens are in the SFT loss, our DPO loss equals TRL's on the same batch, a huge
beta keeps the policy at the reference, the held-out instructions share nothing with training,
and TRL's trainers, set up the course's way, never reach for the network."""

import copy
import socket

import pytest
import torch
from testkit import one_thread_in_a_throwaway_home, quiet

from llm_course.finetuning import instructions as ins
from llm_course.finetuning import preference as pref

WORDS = ("the a film movie review is was good bad great dull fun plot story actor music "
         "positive negative question answer what why how best worst long short funny boring "
         "continue this write headline news about team wins loses vote tech new").split()


@pytest.fixture(autouse=True)
def _one_thread(tmp_path_factory, monkeypatch):
    yield from one_thread_in_a_throwaway_home(tmp_path_factory, monkeypatch)


def word_tokenizer():
    """A word-level tokenizer over WORDS (and '?', '.', ':', newline) with the course chat format."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<|endoftext|>", "<unk>", "?", ".", ":", "\n", *WORDS])}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\n", "isolated"),
                                                 pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>",
                                   eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def chat_gpt(seed=0):
    """A 2-layer GPT-2 sized to the word tokenizer, with the course's chat template added."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = word_tokenizer()
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64,
                                       vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=0,
                                       resid_pdrop=0, embd_pdrop=0, attn_pdrop=0))
    ins.add_chat_template(model, tokenizer)
    return model, tokenizer


EXAMPLES = [
    {"kind": "sentiment", "instruction": "is this review positive or negative ?\na dull plot",
     "answer": "negative"},
    {"kind": "qa", "instruction": "what is the best movie ?", "answer": "the best movie is fun ."},
    {"kind": "continue", "instruction": "continue this review : the actor was",
     "answer": "great and the music was good ."},
]


# -- SFT: the prompt mask ----------------------------------------------------------------------

def test_only_answer_tokens_have_labels():
    model, tok = chat_gpt()
    rows = ins.encode_instructions(EXAMPLES, tok, max_length=64)
    assert len(rows) == len(EXAMPLES)
    for row, ex in zip(rows, EXAMPLES, strict=True):
        ids, labels = torch.tensor(row["input_ids"]), torch.tensor(row["labels"])
        kept = labels != ins.IGNORE
        prompt = tok(ins.chat_prompt(tok, ex["instruction"]), add_special_tokens=False)["input_ids"]
        # the labelled positions are exactly the answer and its end-of-turn marker, at the end
        assert kept.tolist() == [False] * len(prompt) + [True] * (len(ids) - len(prompt))
        answer = tok(ex["answer"], add_special_tokens=False)["input_ids"]
        assert ids[kept].tolist() == labels[kept].tolist() == answer + [tok.eos_token_id]
        assert tok.eos_token_id == tok.convert_tokens_to_ids(ins.END_OF_TURN)


def test_the_loss_is_the_answer_tokens_loss_and_ignores_the_prompt():
    model, tok = chat_gpt()
    batch = ins.pad_batch(ins.encode_instructions(EXAMPLES, tok, 64), tok.pad_token_id)
    loss = model(**batch).loss
    # by hand: cross-entropy of each answer token, predicted from the position before it
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    answer = torch.zeros_like(batch["labels"], dtype=torch.bool)
    for i, ex in enumerate(EXAMPLES):
        n_prompt = len(tok(ins.chat_prompt(tok, ex["instruction"]),
                           add_special_tokens=False)["input_ids"])
        answer[i, n_prompt:int(batch["attention_mask"][i].sum())] = True
    log_probs = logits[:, :-1].log_softmax(-1)
    picked = log_probs.gather(2, batch["input_ids"][:, 1:, None])[..., 0]
    by_hand = -picked[answer[:, 1:]].mean()
    assert torch.allclose(loss, by_hand, atol=1e-5)
    # without the mask the loss also scores the prompt tokens, and is another number
    unmasked = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, ins.IGNORE)
    assert not torch.allclose(model(**{**batch, "labels": unmasked}).loss, loss, atol=1e-3)
    # fit weights micro-batches by the items the loss averages: the answer tokens only
    from llm_course.training.evaluate import count_items

    assert count_items(batch, causal=True) == int(answer[:, 1:].sum())


def test_batched_left_padded_generation_matches_one_at_a_time():
    model, tok = chat_gpt(seed=3)
    prompts = [ex["instruction"] for ex in EXAMPLES]
    together = ins.generate_answers(model, tok, prompts, max_new_tokens=5, batch_size=3)
    alone = [ins.generate_answers(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert together == alone
    assert ins.answer_matches("The review is positive.", "positive", ins.SENTIMENTS)
    assert not ins.answer_matches("positive or negative", "positive", ins.SENTIMENTS)


# -- the instruction data: nothing shared between training and held-out sets ---------------------

def test_real_instruction_mix_keeps_held_out_sets_apart():
    mix = ins.instruction_mix("smoke", train_per_kind=40, heldout_per_kind=10, max_words=12,
                              answer_words=8)
    assert ins.overlap(mix["train"], mix["heldout"] + mix["heldout_kind"]) == set()
    trained = {ex["kind"] for ex in mix["train"]}
    assert trained == set(ins.KINDS) - {ins.HELD_OUT_KIND}
    assert {ex["kind"] for ex in mix["heldout"]} == trained  # held-out examples of every kind
    assert {ex["kind"] for ex in mix["heldout_kind"]} == {ins.HELD_OUT_KIND}
    assert len(mix["heldout_kind"]) == 10 and len(mix["train"]) == 40 * len(trained)


def test_a_held_out_example_that_repeats_a_training_prompt_is_dropped(monkeypatch):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    def fake(texts_train, texts_test, extra):
        feats = Features({"text": Value("string"), "label": ClassLabel(names=extra)})
        return DatasetDict({
            "train": Dataset.from_dict({"text": texts_train, "label": [0] * len(texts_train)},
                                       features=feats),
            "test": Dataset.from_dict({"text": texts_test, "label": [1] * len(texts_test)},
                                      features=feats)})

    # two different reviews that open with the same words: "continue" prompts would collide
    same_start = "one two three four five six seven eight"
    data = {
        "sentiment": fake([same_start + " and a good ending"], [same_start + " but a bad ending",
                                                                "a quite different review here"],
                          ["negative", "positive"]),
        "topics": fake(["Headline A\n\nBody a"], ["Headline B\n\nBody b"], list(ins.SECTIONS)),
        "faq": DatasetDict({s: Dataset.from_dict({"question": [f"q {s}?"], "answer": ["a."],
                                                  "category": ["x"]}) for s in ("train", "test")}),
    }
    monkeypatch.setattr(ins, "load", lambda name, scale=None: data[name])
    mix = ins.instruction_mix("smoke", train_per_kind=5, heldout_per_kind=5)
    held_continue = [ex for ex in mix["heldout"] if ex["kind"] == "continue"]
    assert [ex["source"] for ex in held_continue] == ["a quite different review here"]
    assert ins.overlap(mix["train"], mix["heldout"] + mix["heldout_kind"]) == set()


# -- DPO: our loss is TRL's, and beta holds the policy to the reference ---------------------------

PAIRS = [
    {"prompt": "continue this review : the plot", "chosen": "was fun and great .",
     "rejected": "was dull ."},
    {"prompt": "continue this review : a movie", "chosen": "with the best music",
     "rejected": "with a boring story and bad actor"},
    {"prompt": "continue this review : this film", "chosen": "is good .",
     "rejected": "is the worst film ."},
]


def test_our_dpo_loss_equals_trls_on_the_same_batch(tmp_path):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy, tok = chat_gpt(seed=1)
    reference, _ = chat_gpt(seed=2)  # a different reference, so the margins are not all zero
    args = DPOConfig(**ins.trl_offline_args(str(tmp_path), beta=0.3, max_length=64,
                                            per_device_train_batch_size=3, use_cpu=True,
                                            bf16=False))
    trainer = DPOTrainer(model=policy, ref_model=reference, args=args,
                         train_dataset=Dataset.from_list(pref.trl_pairs(PAIRS, tok)),
                         processing_class=tok)
    ours = pref.encode_pairs(PAIRS, tok, max_length=64)
    for row, theirs in zip(ours, trainer.train_dataset, strict=True):  # the same tokens
        assert row == {k: theirs[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    policy.train()  # as in training (dropout is off in both models)
    trl_loss = trainer.compute_loss(trainer.model, batch)

    halves = {k: v.chunk(2) for k, v in batch.items()}  # TRL stacks [chosen; rejected]
    logps = {}
    for name, model in (("policy", policy), ("ref", reference)):
        for j, side in enumerate(("chosen", "rejected")):
            logps[name, side] = pref.sequence_logprobs(
                model, halves["input_ids"][j], halves["attention_mask"][j],
                halves["completion_mask"][j])
    mine = pref.dpo_loss(logps["policy", "chosen"], logps["policy", "rejected"],
                         logps["ref", "chosen"].detach(), logps["ref", "rejected"].detach(), 0.3)
    assert abs(float(mine) - 0.693) > 0.01  # not the trivial log 2 of policy == reference
    assert torch.allclose(mine, trl_loss, atol=1e-5), (float(mine), float(trl_loss))
    # and the model fit trains computes the same loss from our own collated pairs
    rows = pref.add_reference_logps(reference, ours, tok.pad_token_id)
    wrapped = pref.DPOModel(policy, beta=0.3)
    assert torch.allclose(wrapped(**pref.PairCollator(tok.pad_token_id)(rows)).loss, trl_loss,
                          atol=1e-5)


def next_token_kl(policy, reference, rows) -> float:
    """Mean KL(policy || reference) of the next-token distributions over every position."""
    batch = pref.PairCollator(0)(rows)
    inputs = {"input_ids": batch["chosen_input_ids"], "attention_mask":
              batch["chosen_attention_mask"]}
    with torch.no_grad():
        p = policy(**inputs).logits.log_softmax(-1)
        q = reference(**inputs).logits.log_softmax(-1)
    return float((p.exp() * (p - q)).sum(-1)[inputs["attention_mask"] == 1].mean())


def test_a_huge_beta_leaves_the_policy_near_the_reference():
    from llm_course.training.loop import fit

    model, tok = chat_gpt(seed=4)
    g = torch.Generator().manual_seed(0)
    rows = [{"prompt_ids": torch.randint(5, 40, (6,), generator=g).tolist(),
             "chosen_ids": torch.randint(5, 40, (5,), generator=g).tolist(),
             "rejected_ids": torch.randint(5, 40, (5,), generator=g).tolist()} for _ in range(16)]
    rows = pref.add_reference_logps(model, rows, pad_id=0)
    kl = {}
    for beta in (0.1, 10.0, 1000.0):
        policy = copy.deepcopy(model)
        # warmup, as in the lesson: Adam's first steps have full size whatever the gradient
        history = fit(pref.DPOModel(policy, beta), rows,
                      config=quiet(lr=3e-3, max_steps=60, batch_size=8, warmup_steps=30,
                                   log_every=1, verbose=False),
                      collate_fn=pref.PairCollator(0))
        kl[beta] = next_token_kl(policy, model, rows)
        losses = [r["train_loss"] for r in history.rows if "train_loss" in r]
        assert abs(losses[0] - 0.6931) < 1e-3  # policy == reference at the start: log 2
    # measured: 0.30, 0.016, 0.008 nats per token
    assert kl[0.1] > kl[10.0] > kl[1000.0], kl
    assert kl[1000.0] < kl[0.1] / 10 and kl[1000.0] < 0.02, kl


# -- TRL offline ---------------------------------------------------------------------------------

def test_trl_set_up_the_course_way_never_reaches_for_the_network(tmp_path, monkeypatch):
    """As a learner without HF_HUB_OFFLINE would run it: no telemetry ping, no connection."""
    from datasets import Dataset
    from huggingface_hub import constants
    from huggingface_hub.utils import _telemetry
    from trl import SFTConfig, SFTTrainer

    calls = []
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)
    monkeypatch.setattr(_telemetry, "_start_telemetry_thread", lambda: calls.append("telemetry"))
    monkeypatch.setattr(_telemetry._TELEMETRY_QUEUE, "put", lambda item: calls.append(item))

    def no_connect(self, address, *args):
        calls.append(address)
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", no_connect)
    model, tok = chat_gpt()
    rows = ins.encode_instructions(EXAMPLES, tok, 64)
    args = SFTConfig(**ins.trl_offline_args(str(tmp_path / "sft"), max_steps=2,
                                            per_device_train_batch_size=3, use_cpu=True,
                                            bf16=False, logging_steps=1))
    trainer = SFTTrainer(model=model, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list(
                             [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]))
    trainer.train()
    assert calls == []
    assert not (tmp_path / "sft").exists() or not any((tmp_path / "sft").rglob("*.md"))
    # and the SFT loss TRL reports for its first step is our answer-only loss
    first = next(r["loss"] for r in trainer.state.log_history if "loss" in r)
    assert first == pytest.approx(ins.answer_loss(chat_gpt()[0], rows, tok.pad_token_id), abs=1e-3)
