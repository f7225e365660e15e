"""Attention from scratch: scaled dot-product attention, its masks, multi-head attention
(taught in 01b_transformer).

    out, weights = scaled_dot_product_attention(q, k, v, mask)   # softmax(q k^T / sqrt(d_k)) v
    mask = causal_mask(T) & padding_mask(attention_mask)          # (B, 1, T, T), True = may look
    out, weights = multi_head_attention(q, k, v, n_heads, mask)   # (B, T, d) in and out

A mask is boolean and True where a query may attend to a key; masks combine with `&` and
broadcast. `llm_course.models.transformer` builds GPT-2 and BERT blocks from these
functions, and `tests/test_transformer.py` checks them against transformers' own.
"""

from __future__ import annotations

import torch


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 mask: torch.Tensor | None = None,
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k)) v over the last two dimensions; returns (output, weights).

    q is (..., T_q, d_k), k is (..., T_k, d_k), v is (..., T_k, d_v); `mask` (True = may
    attend) broadcasts to (..., T_q, T_k). A masked score becomes the most negative float
    rather than -inf, so a query that may see nothing (a padding position) gets a harmless
    average instead of NaN.
    """
    scores = q @ k.transpose(-2, -1) * q.size(-1) ** -0.5  # (..., T_q, T_k), times 1/sqrt(d_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)  # each query's weights over the keys add up to 1
    return weights @ v, weights


def causal_mask(size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(size, size) bool, True on and below the diagonal: position i sees positions 0..i."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) of 1 (token) and 0 (padding) -> (B, 1, 1, T) bool: no query looks at padding."""
    return attention_mask.bool()[:, None, None, :]


def multi_head_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int,
                         mask: torch.Tensor | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Split d into `n_heads` heads, attend in each, merge: (B, T, d) -> (B, T, d).

    Returns (output, weights) with weights (B, n_heads, T_q, T_k). Each head works on its
    own d / n_heads features and scales by the square root of that width.
    """
    batch, t_q, d = q.shape

    def split(x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, heads, T, d / heads)
        return x.reshape(batch, x.size(1), n_heads, d // n_heads).transpose(1, 2)

    out, weights = scaled_dot_product_attention(split(q), split(k), split(v), mask)
    out = out.transpose(1, 2).reshape(batch, t_q, d)  # merge: back to (B, T, d)
    return out, weights
