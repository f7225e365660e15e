"""A GPT-2 whose training loss runs the output layer a chunk of positions at a time (lesson 02's
`new_gpt` builds it; taught in 02_pretraining_gpt).

A small GPT spends a large share of each training step on its output layer and loss. For
lesson 02's laptop GPT (width 256, vocabulary 8,192, batch 16 x 128) the logits are a
2,048 x 8,192 table: 16.8 M numbers. `GPT2LMHeadModel` writes that table in bf16, copies it
to fp32 for the loss, takes its log-softmax, and in the backward pass fills a table of zeros
of the same size, adds the log-softmax gradient into it and copies it back to bf16. Each of
these passes reads and writes tens of megabytes, more than the CPU's caches hold.

`ChunkedLossGPT2LMHeadModel` computes the same loss, and the same gradients, a few hundred
positions at a time, while a chunk's logits are still in the cache: the logits, their
softmax, the loss, and at once the gradient (the softmax minus the one-hot target), which
two matrix products turn into the gradients of the hidden states and of the output
weights. The full table never exists. Evaluation, generation and anything without labels run the ordinary
forward pass, the weights are the same, and checkpoints load as plain `GPT2LMHeadModel`.
`benchmarks/train_speed.py` measures what it saves.
"""

from __future__ import annotations

import copy

import torch
from transformers import GPT2LMHeadModel
from transformers.modeling_outputs import CausalLMOutputWithCrossAttentions

CHUNK = 256  # positions per chunk: 256 x 8,192 fp32 logits are 8 MB (256 measured fastest here)
IGNORE = -100  # labels with this value are not scored (as in transformers)
PASSED_ON = {"attention_mask", "position_ids", "token_type_ids"}  # what the fast path accepts


class _ChunkedNextTokenLoss(torch.autograd.Function):
    """Mean cross-entropy of `hidden @ weight.T` against `targets`, chunk by chunk.

    The gradients are computed in the forward pass, while each chunk is at hand, and the
    backward pass only scales them by the incoming gradient (the loss is a scalar).
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                chunk: int) -> torch.Tensor:
        w = weight.to(hidden.dtype)  # bf16 under autocast, as GPT2LMHeadModel's matmul would be
        scored = targets != IGNORE
        n = scored.sum().clamp(min=1).float()
        safe = torch.where(scored, targets, 0)[:, None]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        for start in range(0, hidden.shape[0], chunk):
            rows = slice(start, start + chunk)
            logits = (hidden[rows] @ w.T).float()
            top_logit, top = logits.max(dim=-1, keepdim=True)
            probs = torch.softmax(logits, dim=-1)
            # loss = logsumexp - logit(target), and logsumexp = top logit - log p(top): p(top)
            # is at least 1/vocab, so this never takes the log of an underflowed probability
            lse = top_logit - torch.log(probs.gather(1, top))
            row_loss = (lse - logits.gather(1, safe[rows])).squeeze(1)
            total += (row_loss * scored[rows]).sum()
            probs.scatter_add_(1, safe[rows], -torch.ones_like(lse))  # minus the one-hot target
            if not scored[rows].all():
                probs[~scored[rows]] = 0.0
            g = probs.to(hidden.dtype)  # n x d(mean loss)/d(logits): divided by n below, in fp32
            grad_hidden[rows] = ((g @ w).float() / n).to(hidden.dtype)
            grad_weight += (g.T @ hidden[rows]).float()
        grad_weight /= n
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total / n

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_out.to(grad_hidden.dtype), grad_weight * grad_out, None, None


def chunked_next_token_loss(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                            chunk: int = CHUNK) -> torch.Tensor:
    """The causal-LM loss of `GPT2LMHeadModel` (position t predicts labels[t + 1], -100 is not
    scored, mean over the scored positions) from the last hidden states `hidden` (batch, T, d)
    and the output weights `weight` (vocab, d), without the (batch, T, vocab) logits."""
    d = hidden.shape[-1]
    kind = hidden.device.type
    if torch.is_autocast_enabled(kind):
        hidden = hidden.to(torch.get_autocast_dtype(kind))
    h = hidden[:, :-1].reshape(-1, d)
    targets = labels[:, 1:].reshape(-1).to(hidden.device)
    with torch.autocast(kind, enabled=False):  # the dtypes are chosen above
        return _ChunkedNextTokenLoss.apply(h, weight, targets, chunk)


class ChunkedLossGPT2LMHeadModel(GPT2LMHeadModel):
    """`GPT2LMHeadModel` whose training loss never builds the full logits table.

    In training with labels (and gradients on) it returns the loss and no logits;
    otherwise it is the ordinary model.
    """

    def forward(self, input_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                **kwargs) -> CausalLMOutputWithCrossAttentions:
        passed = {k: v for k, v in kwargs.items() if v is not None}
        if (labels is None or not self.training or not torch.is_grad_enabled()
                or input_ids is None or set(passed) - PASSED_ON):
            return super().forward(input_ids=input_ids, labels=labels, **kwargs)
        hidden = self.transformer(input_ids, **passed).last_hidden_state
        loss = chunked_next_token_loss(hidden, self.lm_head.weight, labels, CHUNK)
        return CausalLMOutputWithCrossAttentions(loss=loss)

    @classmethod
    def from_model(cls, model: GPT2LMHeadModel) -> ChunkedLossGPT2LMHeadModel:
        """A chunked-loss copy of a loaded `GPT2LMHeadModel` (`model` itself is left as it is)."""
        chunked = cls(copy.deepcopy(model.config))
        chunked.load_state_dict(model.state_dict())
        return chunked.to(model.device)

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """Save as a plain `GPT2LMHeadModel`, so any transformers install loads it."""
        super().save_pretrained(save_directory, **kwargs)
        self.config.architectures = ["GPT2LMHeadModel"]
        self.config.save_pretrained(save_directory)
