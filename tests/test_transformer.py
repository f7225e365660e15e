"""The Transformer of lesson 01b (llm_course.models.attention, .transformer, .attention_maps):
the learner's GPT and BERT layer compute what transformers computes, to 1e-5 in fp32, on random
weights and inputs, with padding; generation with the key/value cache equals generation
without it."""

import pytest
import torch
import torch.nn.functional as F
from testkit import tiny_bert, tiny_gpt

from llm_course.models.attention import (
    causal_mask,
    multi_head_attention,
    padding_mask,
    scaled_dot_product_attention,
)
from llm_course.models.attention_maps import attention_explorer
from llm_course.models.parameters import count_parameters
from llm_course.models.transformer import (
    bert_layer_from_transformers,
    gpt_from_transformers,
    greedy_generate,
)

TOLERANCE = 1e-5  # fp32; measured differences are below 1e-6


def scrambled(model, std: float = 0.3, seed: int = 0):
    """The model in eval mode with every weight redrawn: transformers' own init (std 0.02)
    gives tiny logits, which would make any comparison easy."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


PADDINGS = {  # 1 = token, 0 = padding; three sequences of 12 positions
    "none": [[1] * 12] * 3,
    "right": [[1] * 12, [1] * 7 + [0] * 5, [1] * 3 + [0] * 9],
    "left": [[1] * 12, [0] * 5 + [1] * 7, [0] * 9 + [1] * 3],
}


# --- attention and masks ----------------------------------------------------------------------

def test_attention_matches_torch_with_causal_and_padding_masks():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 2, 12, 8, generator=g) for _ in range(3))
    mask = causal_mask(12) & padding_mask(torch.tensor(PADDINGS["right"]))  # (3, 1, 12, 12)
    ours, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask))
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 12))
    assert weights.masked_select(~mask).abs().max() == 0  # hidden keys get exactly nothing


def test_masks_have_the_agreed_shapes_and_meaning():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False],
                                       [True, True, True]]
    assert padding_mask(torch.tensor([[1, 1, 0]])).shape == (1, 1, 1, 3)
    # a query that may see nothing (padding under a left-padded causal mask) gives no NaN
    out, _ = scaled_dot_product_attention(torch.randn(2, 4), torch.randn(2, 4), torch.randn(2, 3),
                                          torch.tensor([[False, False], [True, True]]))
    assert torch.isfinite(out).all()


def test_multi_head_attention_is_heads_side_by_side():
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 5, 12, generator=g) for _ in range(3))
    out, weights = multi_head_attention(q, k, v, n_heads=3)
    assert out.shape == (2, 5, 12) and weights.shape == (2, 3, 5, 5)
    for h in range(3):  # head h works on features 4h .. 4h+3 alone
        cut = slice(4 * h, 4 * h + 4)
        alone, _ = scaled_dot_product_attention(q[..., cut], k[..., cut], v[..., cut])
        torch.testing.assert_close(out[..., cut], alone)


# --- GPT-2 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("padding", sorted(PADDINGS))
def test_gpt_logits_match_transformers(padding):
    hf = scrambled(tiny_gpt())
    ours = gpt_from_transformers(hf)
    assert count_parameters(ours) == count_parameters(hf)
    ids = torch.randint(hf.config.vocab_size, (3, 12), generator=torch.Generator().manual_seed(3))
    attention_mask = torch.tensor(PADDINGS[padding])
    with torch.no_grad():
        theirs = hf(ids, attention_mask=attention_mask).logits
        mine = ours(ids, attention_mask).logits
    real = attention_mask.bool()  # padding positions are nobody's output
    assert theirs[real].abs().max() > 1  # large enough for the comparison to mean something
    assert (mine - theirs)[real].abs().max() < TOLERANCE


def test_gpt_attention_weights_match_transformers_eager():
    hf = scrambled(tiny_gpt())
    hf.set_attn_implementation("eager")  # only eager attention returns its weights
    ours = gpt_from_transformers(hf)
    ids = torch.randint(hf.config.vocab_size, (2, 10), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        theirs = hf(ids, output_attentions=True).attentions
        mine = ours(ids).attentions
    assert len(mine) == len(theirs) == hf.config.n_layer
    for a, b in zip(mine, theirs):
        assert (a - b).abs().max() < TOLERANCE


def test_a_future_token_cannot_change_the_past():
    ours = gpt_from_transformers(scrambled(tiny_gpt()))
    ids = torch.randint(64, (1, 10), generator=torch.Generator().manual_seed(5))
    changed = ids.clone()
    changed[0, 6] = (ids[0, 6] + 1) % 64
    with torch.no_grad():
        before, after = ours(ids).logits, ours(changed).logits
    assert (before[:, :6] - after[:, :6]).abs().max() == 0
    assert (before[:, 6:] - after[:, 6:]).abs().amax(dim=-1).min() > 0


def test_loading_refuses_what_tinygpt_does_not_do():
    hf = tiny_gpt()
    hf.config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(ValueError, match="layer-wise scaling"):
        gpt_from_transformers(hf)
    hf = tiny_gpt()
    hf.config.activation_function = "relu"
    with pytest.raises(ValueError, match="relu"):
        gpt_from_transformers(hf)


# --- generation and the key/value cache ------------------------------------------------------

def test_generation_with_the_cache_equals_generation_without_it_and_transformers():
    hf = scrambled(tiny_gpt(), std=0.1)
    ours = gpt_from_transformers(hf)
    prompt = torch.randint(64, (2, 4), generator=torch.Generator().manual_seed(6))
    with_cache = greedy_generate(ours, prompt, 12, use_cache=True)
    without = greedy_generate(ours, prompt, 12, use_cache=False)
    assert with_cache.shape == (2, 16) and torch.equal(with_cache, without)
    assert len(set(with_cache[0, 4:].tolist())) > 2  # real text, not one token repeated
    theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                         max_new_tokens=12, min_new_tokens=12, pad_token_id=0)
    assert torch.equal(with_cache, theirs)


def test_the_cache_gives_the_logits_of_a_full_pass():
    ours = gpt_from_transformers(scrambled(tiny_gpt()))
    ids = torch.randint(64, (2, 11), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        full = ours(ids).logits
        out = ours(ids[:, :5])  # the prompt, then one token at a time
        steps, cache = [out.logits], out.cache
        for t in range(5, 11):
            out = ours(ids[:, t:t + 1], cache=cache)
            steps.append(out.logits)
            cache = out.cache
    assert cache[0][0].shape == (2, 11, 32)  # keys of every position, per block
    assert (torch.cat(steps, dim=1) - full).abs().max() < TOLERANCE


def test_a_sequence_longer_than_the_positions_is_refused():
    ours = gpt_from_transformers(tiny_gpt())
    with pytest.raises(ValueError, match="learned only 16"):
        ours(torch.zeros(1, 17, dtype=torch.long))


# --- BERT ------------------------------------------------------------------------------------

@pytest.mark.parametrize("padding", ["none", "right"])
def test_bert_layers_match_transformers(padding):
    hf = scrambled(tiny_bert("base", add_pooling_layer=False), std=0.2)
    hf.set_attn_implementation("eager")
    ids = torch.randint(100, (3, 12), generator=torch.Generator().manual_seed(8))
    attention_mask = torch.tensor(PADDINGS[padding])
    with torch.no_grad():
        out = hf(ids, attention_mask=attention_mask, output_hidden_states=True,
                 output_attentions=True)
        for i, hf_layer in enumerate(hf.encoder.layer):
            layer = bert_layer_from_transformers(hf_layer, hf.config)
            mine, weights = layer(out.hidden_states[i], attention_mask)
            assert (mine - out.hidden_states[i + 1]).abs().max() < TOLERANCE, i
            assert (weights - out.attentions[i]).abs().max() < TOLERANCE, i


# --- the layer/head explorer ------------------------------------------------------------------

def test_attention_explorer_draws_without_a_click_and_redraws_on_a_slider():
    weights = [torch.softmax(torch.randn(1, 2, 4, 4), -1) for _ in range(3)]
    box = attention_explorer(weights, ["a", "b", "c", "d"])
    (layer, head), picture = box.children[0].children, box.children[1]
    first = bytes(picture.value)
    assert first.startswith(b"\x89PNG") and layer.max == 2 and head.max == 1
    head.value = 1
    assert bytes(picture.value) != first


# --- the lesson's exercises name the typical mistakes ----------------------------------------

@pytest.mark.parametrize("exercise_id", ["01b.attention", "01b.causal_mask",
                                         "01b.multi_head_attention"])
def test_each_listed_mistake_is_named_when_made(exercise_id, capsys):
    from llm_course import exercises

    ex = exercises.get(exercise_id)
    for description, wrong in ex.mistakes.items():
        assert not ex.check(wrong)
        assert f"common mistake: {description}" in capsys.readouterr().out, description
