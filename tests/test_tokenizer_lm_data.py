"""Tokenizer training (lesson 01) and language-model examples (lessons 02, 03)."""

import math
from pydoc_data.topics import topics

import pytest
import torch
from transformers import AutoTokenizer

from llm_course.data.lm_data import pack_blocks, token_counts, tokenize_lines, unigram_entropy
from llm_course.data.tokenizer import as_transformers, train_tokenizer

TEXTS = list(topics.values())[:150]


@pytest.fixture(scope="module")
def bpe():
    return as_transformers(train_tokenizer(TEXTS, "bpe", 1000), "bpe")


@pytest.fixture(scope="module")
def wordpiece():
    return as_transformers(train_tokenizer(TEXTS, "wordpiece", 1000), "wordpiece")


def test_bpe_never_needs_unknown_tokens(bpe):
    text = "Zyxquv naïve 東京 🙂"
    ids = bpe(text)["input_ids"]
    assert bpe.decode(ids) == text  # byte-level: every string round-trips
    assert bpe.eos_token_id == 0 and bpe.pad_token_id == 0


def test_wordpiece_is_a_real_vocabulary_and_adds_specials(wordpiece, tmp_path):
    assert wordpiece.vocab_size == 1000
    enc = wordpiece("The return statement leaves a function.")
    tokens = wordpiece.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert "[UNK]" not in tokens, "a normal sentence must not hit [UNK]"
    assert wordpiece.convert_ids_to_tokens(wordpiece("東")["input_ids"])[1] == "[UNK]"
    wordpiece.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again.is_fast and again(["a b"])["input_ids"] == wordpiece(["a b"])["input_ids"]
    assert again.mask_token == "[MASK]"


def test_bigger_vocabularies_give_longer_tokens():
    sample = " ".join(TEXTS[150:170]) if len(TEXTS) > 170 else " ".join(TEXTS[:20])
    ratios = []
    for size in (300, 1000, 3000):
        tok = train_tokenizer(TEXTS, "bpe", size)
        ratios.append(len(sample) / len(tok.encode(sample).ids))
    assert ratios[0] < ratios[1] < ratios[2]


def test_bad_tokenizer_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="choose one of"):
        train_tokenizer(TEXTS, "sentencepiece")
    with pytest.raises(ValueError, match="at least 64"):
        train_tokenizer(TEXTS, "bpe", 10)


def test_pack_blocks_uses_every_token_once(bpe):
    ds = pack_blocks(TEXTS[:20], bpe, block_size=32)
    n_tokens = sum(len(ids) + 1 for ids in bpe(TEXTS[:20], add_special_tokens=False)["input_ids"])
    assert len(ds) == n_tokens // 32
    assert ds[0]["input_ids"].shape == (32,)
    assert torch.equal(ds[0]["input_ids"], ds[0]["labels"])
    with pytest.raises(ValueError, match="not enough text"):
        pack_blocks(["hi"], bpe, block_size=512)


def test_tokenize_lines_respects_max_length(wordpiece):
    ds = tokenize_lines(TEXTS[:20], wordpiece, max_length=24)
    lengths = [len(x) for x in ds["input_ids"]]
    assert max(lengths) <= 24 and min(lengths) >= 10
    assert all(x[0] == wordpiece.cls_token_id and x[-1] == wordpiece.sep_token_id
               for x in ds["input_ids"])


def test_unigram_entropy_matches_a_hand_computation():
    train = torch.tensor([3.0, 1.0, 0.0])
    evals = torch.tensor([1.0, 1.0, 0.0])
    # add-one probabilities: 4/7, 2/7, 1/7
    expected = -(math.log(4 / 7) + math.log(2 / 7)) / 2
    assert unigram_entropy(train, evals) == pytest.approx(expected)
    from datasets import Dataset
    counts = token_counts(Dataset.from_dict({"input_ids": [[0, 0, 1], [2]]}), 4)
    assert counts.tolist() == [2, 1, 1, 0]
