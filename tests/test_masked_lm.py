"""The sparse-head masked-LM BERT gives BertForMaskedLM's loss and saves as one (lesson 03)."""

from __future__ import annotations

import torch
from testkit import tiny_bert_config
from transformers import BertConfig, BertForMaskedLM

from llm_course.models.masked_lm import SparseHeadBertForMaskedLM


def tiny_pair():
    config = tiny_bert_config(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                              max_position_embeddings=16, dropout=0.0)
    torch.manual_seed(0)
    sparse = SparseHeadBertForMaskedLM(config)
    dense = BertForMaskedLM(config)
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 50, (3, 12), generator=g)
    labels = torch.full_like(ids, -100)
    blanks = torch.rand(ids.shape, generator=g) < 0.3
    labels[blanks] = ids[blanks]
    ids[blanks] = 4  # the "mask" token
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def test_training_loss_and_gradients_match_the_dense_head():
    sparse, dense = tiny_pair()
    sparse.train(), dense.train()
    b = batch()
    out_sparse, out_dense = sparse(**b), dense(**b)
    assert out_sparse.logits.shape == (int((b["labels"] != -100).sum()), 50)  # blanks only
    torch.testing.assert_close(out_sparse.loss, out_dense.loss, rtol=1e-5, atol=1e-6)
    out_sparse.loss.backward()
    out_dense.loss.backward()
    grads_dense = dict(dense.named_parameters())
    for name, p in sparse.named_parameters():
        torch.testing.assert_close(p.grad, grads_dense[name].grad, rtol=1e-4, atol=1e-6)


def test_eval_mode_is_the_ordinary_forward():
    sparse, dense = tiny_pair()
    sparse.eval(), dense.eval()
    b = batch()
    out = sparse(**b)
    assert out.logits.shape == (3, 12, 50)
    torch.testing.assert_close(out.logits, dense(**b).logits)


def test_saves_as_a_plain_bert_for_masked_lm(tmp_path):
    sparse, _ = tiny_pair()
    sparse.save_pretrained(tmp_path)
    config = BertConfig.from_pretrained(tmp_path)
    assert config.architectures == ["BertForMaskedLM"]
    loaded = BertForMaskedLM.from_pretrained(tmp_path).eval()
    b = batch()
    torch.testing.assert_close(loaded(**b).logits, sparse.eval()(**b).logits)


def test_from_model_copies_a_loaded_bert():
    sparse, dense = tiny_pair()
    copy = SparseHeadBertForMaskedLM.from_model(dense)
    assert type(copy) is SparseHeadBertForMaskedLM and copy is not dense
    copy.eval(), dense.eval()
    b = batch()
    with torch.no_grad():
        torch.testing.assert_close(copy(**b).logits, dense(**b).logits)
    # the output layer stays tied to the word embeddings, and the original is untouched
    assert copy.cls.predictions.decoder.weight.data_ptr() == copy.bert.embeddings.word_embeddings.weight.data_ptr()
    with torch.no_grad():
        copy.bert.embeddings.word_embeddings.weight.add_(1.0)
    assert not torch.equal(copy.bert.embeddings.word_embeddings.weight,
                           dense.bert.embeddings.word_embeddings.weight)
