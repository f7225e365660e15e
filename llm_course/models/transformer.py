"""A GPT and a BERT layer in plain PyTorch, equal to transformers' own (taught in
01b_transformer).

    gpt = gpt_from_transformers(hf_gpt2)          # copy a GPT2LMHeadModel's weights
    logits = gpt(input_ids, attention_mask).logits
    ids = greedy_generate(gpt, prompt_ids, 40, use_cache=True)
    layer = bert_layer_from_transformers(hf_bert.encoder.layer[0], hf_bert.config)

`TinyGPT` is GPT-2: learned absolute positions, pre-LN blocks (LayerNorm before attention
and before the MLP, a residual connection around each), a final LayerNorm and an output
layer tied to the token embedding. `BertLayer` is one post-LN encoder layer (LayerNorm after
each residual sum). Both are built from `llm_course.models.attention`. They have no dropout:
they are for inference and for reading, and are checked against transformers to 1e-5 in
`tests/test_transformer.py`. `TinyGPT` keeps a key/value cache for generation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from llm_course.models.attention import causal_mask, multi_head_attention, padding_mask

if TYPE_CHECKING:
    from transformers import BertConfig, GPT2Config, GPT2LMHeadModel
    from transformers.models.bert.modeling_bert import BertLayer as HFBertLayer

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per block: keys and values, (B, T, d)
GELU = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}  # name -> approximate


@dataclass
class GPTConfig:
    """The sizes of a TinyGPT (GPT2Config's names)."""

    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    layer_norm_epsilon: float = 1e-5
    gelu: str = "tanh"  # GPT-2 uses the tanh approximation of GELU ("gelu_new")


class MLP(nn.Module):
    """The feed-forward part of a block: d -> 4d -> GELU -> d, the same at every position."""

    def __init__(self, d: int, hidden: int, gelu: str = "tanh"):
        super().__init__()
        self.fc, self.proj, self.gelu = nn.Linear(d, hidden), nn.Linear(hidden, d), gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate=self.gelu))


class CausalSelfAttention(nn.Module):
    """Queries, keys and values from one fused projection, multi-head attention, output
    projection. With a cache, the new keys and values are appended to the cached ones."""

    def __init__(self, d: int, n_head: int):
        super().__init__()
        self.qkv, self.proj, self.n_head = nn.Linear(d, 3 * d), nn.Linear(d, d), n_head

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache=None):
        q, k, v = self.qkv(x).split(x.size(-1), dim=-1)
        if cache is not None:  # keys and values of the earlier positions, computed once
            k, v = torch.cat([cache[0], k], dim=1), torch.cat([cache[1], v], dim=1)
        out, weights = multi_head_attention(q, k, v, self.n_head, mask)
        return self.proj(out), weights, (k, v)


class GPTBlock(nn.Module):
    """Pre-LN: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        d, eps = config.n_embd, config.layer_norm_epsilon
        self.ln_1, self.attn = nn.LayerNorm(d, eps=eps), CausalSelfAttention(d, config.n_head)
        self.ln_2, self.mlp = nn.LayerNorm(d, eps=eps), MLP(d, 4 * d, config.gelu)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache=None):
        attended, weights, cache = self.attn(self.ln_1(x), mask, cache)
        x = x + attended  # residual connection
        x = x + self.mlp(self.ln_2(x))  # residual connection
        return x, weights, cache


class GPTOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, vocab)
    cache: KVCache  # pass it back with the next token only
    attentions: list[torch.Tensor]  # per block: (B, heads, T, T_keys)


class TinyGPT(nn.Module):
    """GPT-2: token + learned position embeddings, pre-LN blocks, final LayerNorm, tied head."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)  # token embeddings
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)  # one vector per position
        self.blocks = nn.ModuleList(GPTBlock(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> GPTOutput:
        """`attention_mask` (B, T_past + T) marks real tokens with 1 and padding with 0;
        with a `cache`, `input_ids` holds only the new tokens."""
        past = cache[0][0].size(1) if cache else 0
        total = past + input_ids.size(1)
        if total > self.config.n_positions:
            raise ValueError(f"{total} positions, but the model learned only "
                             f"{self.config.n_positions}: crop the input")
        positions = torch.arange(past, total, device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(positions)
        mask = causal_mask(total, input_ids.device)[past:]  # the rows of the new positions
        if attention_mask is not None:
            mask = mask & padding_mask(attention_mask)  # (B, 1, T, T_past + T)
        new_cache, attentions = [], []
        for block, block_cache in zip(self.blocks, cache or [None] * len(self.blocks)):
            x, weights, kv = block(x, mask, block_cache)
            new_cache.append(kv)
            attentions.append(weights)
        logits = self.ln_f(x) @ self.wte.weight.T  # the output layer shares the embedding
        return GPTOutput(logits, new_cache, attentions)


@torch.no_grad()
def greedy_generate(model: TinyGPT, input_ids: torch.Tensor, max_new_tokens: int,
                    use_cache: bool = True) -> torch.Tensor:
    """Append `max_new_tokens` tokens, each the likeliest next one (no padding in the prompt).

    Without the cache every step runs the whole sequence again; with it, each step runs one
    new token and reads the earlier keys and values from the cache. Same tokens either way.
    """
    ids, cache = input_ids, None
    for _ in range(max_new_tokens):
        if use_cache:
            out = model(ids if cache is None else ids[:, -1:], cache=cache)
            cache = out.cache
        else:
            out = model(ids)
        next_id = out.logits[:, -1].argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    return ids


class BertLayer(nn.Module):
    """One post-LN encoder layer (BERT): LayerNorm(x + attention(x)), LayerNorm(x + MLP(x)).

    No causal mask: every token sees every other one that is not padding.
    """

    def __init__(self, d: int, n_head: int, hidden: int, eps: float = 1e-12,
                 gelu: str = "none"):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out, self.n_head = nn.Linear(d, d), n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.mlp = MLP(d, hidden, gelu)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None):
        """Returns (output, attention weights); `attention_mask` is (B, T) of 1 and 0."""
        mask = None if attention_mask is None else padding_mask(attention_mask)
        attended, weights = multi_head_attention(self.query(x), self.key(x), self.value(x),
                                                 self.n_head, mask)
        x = self.ln_1(x + self.out(attended))  # residual, then LayerNorm (post-LN)
        x = self.ln_2(x + self.mlp(x))
        return x, weights


# ----------------------------------------------------------------------------------------------
# Loading transformers' weights


def _gelu(activation: str) -> str:
    if activation not in GELU:
        raise ValueError(f"activation {activation!r} is not supported here; known: {list(GELU)}")
    return GELU[activation]


def gpt_config_from_transformers(config: GPT2Config) -> GPTConfig:
    """The TinyGPT sizes of a GPT2Config (refuses the GPT-2 options TinyGPT leaves out)."""
    if config.n_inner not in (None, 4 * config.n_embd) or not config.scale_attn_weights \
            or config.scale_attn_by_inverse_layer_idx or config.add_cross_attention:
        raise ValueError("TinyGPT is plain GPT-2: 4x MLP, attention scaled by 1/sqrt(d_head), "
                         "no layer-wise scaling, no cross-attention")
    return GPTConfig(config.vocab_size, config.n_positions, config.n_embd, config.n_layer,
                     config.n_head, config.layer_norm_epsilon,
                     _gelu(config.activation_function))


@torch.no_grad()
def gpt_from_transformers(hf_model: GPT2LMHeadModel) -> TinyGPT:
    """A TinyGPT holding a copy of a `GPT2LMHeadModel`'s weights, in eval mode.

    GPT-2 stores its layers as `Conv1D`, which keeps the weight as (in, out): the transpose
    of `nn.Linear`'s (out, in).
    """
    hf = hf_model.transformer
    model = TinyGPT(gpt_config_from_transformers(hf_model.config))
    model.wte.weight.copy_(hf.wte.weight)
    model.wpe.weight.copy_(hf.wpe.weight)
    model.ln_f.load_state_dict(hf.ln_f.state_dict())
    for ours, theirs in zip(model.blocks, hf.h, strict=True):
        ours.ln_1.load_state_dict(theirs.ln_1.state_dict())
        ours.ln_2.load_state_dict(theirs.ln_2.state_dict())
        for linear, conv in [(ours.attn.qkv, theirs.attn.c_attn), (ours.attn.proj, theirs.attn.c_proj),
                             (ours.mlp.fc, theirs.mlp.c_fc), (ours.mlp.proj, theirs.mlp.c_proj)]:
            linear.weight.copy_(conv.weight.T)
            linear.bias.copy_(conv.bias)
    if not torch.equal(hf_model.lm_head.weight, hf.wte.weight):
        raise ValueError("TinyGPT ties its output layer to the token embedding; this model "
                         "has a separate lm_head")
    return model.eval()


@torch.no_grad()
def bert_layer_from_transformers(hf_layer: HFBertLayer, config: BertConfig) -> BertLayer:
    """A BertLayer holding a copy of one transformers `BertLayer`'s weights, in eval mode."""
    layer = BertLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                      config.layer_norm_eps, _gelu(config.hidden_act))
    attention = hf_layer.attention
    for ours, theirs in [(layer.query, attention.self.query), (layer.key, attention.self.key),
                         (layer.value, attention.self.value), (layer.out, attention.output.dense),
                         (layer.ln_1, attention.output.LayerNorm),
                         (layer.mlp.fc, hf_layer.intermediate.dense),
                         (layer.mlp.proj, hf_layer.output.dense),
                         (layer.ln_2, hf_layer.output.LayerNorm)]:
        ours.load_state_dict(theirs.state_dict())
    return layer.eval()
