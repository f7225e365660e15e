"""Exercises of 03_pretraining_bert (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from llm_course.exercises.registry import Exercise, register

# ----------------------------------------------------------------------------------------------
# 03_pretraining_bert: BERT's 80/10/10 masking


def mask_tokens(input_ids: torch.Tensor, special_tokens_mask: torch.Tensor, mask_token_id: int,
                vocab_size: int, mlm_probability: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: pick mlm_probability of the non-special tokens; of those 80% -> [MASK],
    10% -> a random token, 10% unchanged. Labels are -100 where nothing was picked."""
    inputs, labels = input_ids.clone(), input_ids.clone()
    probability = torch.full(input_ids.shape, mlm_probability)
    probability[special_tokens_mask] = 0.0  # never pick [CLS], [SEP], [PAD]
    picked = torch.bernoulli(probability, generator=generator).bool()
    labels[~picked] = -100  # the loss only looks at picked positions

    to_mask = torch.bernoulli(torch.full(input_ids.shape, 0.8), generator=generator).bool()
    to_mask &= picked
    inputs[to_mask] = mask_token_id  # 80%

    to_random = torch.bernoulli(torch.full(input_ids.shape, 0.5), generator=generator).bool()
    to_random &= picked & ~to_mask  # half of the remaining 20%
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator,
                               dtype=input_ids.dtype)
    inputs[to_random] = random_ids[to_random]  # 10%; the last 10% stay unchanged
    return inputs, labels


MASK_ID, VOCAB = 3, 1000  # 0 = [PAD], 1 = [CLS], 2 = [SEP], 3 = [MASK]


def _masking_batch(seed: int, rows: int = 128, length: int = 256) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, VOCAB, (rows, length), generator=g)
    ends = torch.randint(length // 2, length, (rows,), generator=g)
    ids[:, 0] = 1
    ids[torch.arange(rows), ends] = 2
    ids[torch.arange(length) > ends[:, None]] = 0
    return ids, ids <= 2


def _verify_masking(fn: Callable) -> str | None:
    """Statistical checks of a masking function on a large seeded batch."""
    ids, special = _masking_batch(0)
    original = ids.clone()
    where = (f"on a batch of {tuple(ids.shape)} ids with [CLS], [SEP] and padding marked special"
             f", mask_token_id={MASK_ID}, vocab_size={VOCAB}")
    out = fn(ids, special.clone(), MASK_ID, VOCAB, 0.15, torch.Generator().manual_seed(0))
    if not (isinstance(out, (tuple, list)) and len(out) == 2
            and all(isinstance(t, torch.Tensor) for t in out)):
        return f"return a pair (inputs, labels) of tensors; got {type(out).__name__}"
    inputs, labels = out
    if inputs.shape != ids.shape or labels.shape != ids.shape:
        return f"shapes: expected {tuple(ids.shape)} twice, got {tuple(inputs.shape)}, " \
               f"{tuple(labels.shape)}"
    if not torch.equal(ids, original):
        return "you changed input_ids in place: work on copies (input_ids.clone())"
    picked = labels != -100
    if picked.float().mean() > 0.9:
        return (f"{picked.float().mean():.0%} of the labels are set: labels must be -100 at every "
                "position that was not picked (the loss ignores -100)")

    def first(bad: torch.Tensor) -> tuple[int, int]:
        return tuple(bad.nonzero()[0].tolist())

    if (bad := picked & (labels != original)).any():
        p = first(bad)
        return (f"labels{list(p)} = {labels[p].item()}, expected the original token "
                f"{original[p].item()} (picked positions) or -100 (all others)")
    if (bad := ~picked & (inputs != original)).any():
        p = first(bad)
        return (f"inputs{list(p)} changed ({original[p].item()} -> {inputs[p].item()}) but its "
                "label is -100: every changed position needs its label, others stay as they are")
    if (bad := picked & special).any():
        p = first(bad)
        return (f"the special token at {list(p)} (id {original[p].item()}) was picked: give "
                "special tokens probability 0")
    share = picked.sum().item() / (~special).sum().item()
    if abs(share - 0.15) > 0.02:
        return f"{share:.1%} of the non-special tokens were picked, expected about 15% ({where})"
    n = picked.sum().item()
    as_mask = (inputs[picked] == MASK_ID).sum().item() / n
    unchanged = (inputs[picked] == original[picked]).sum().item() / n
    for name, got, want, tol in [("replaced by [MASK]", as_mask, 0.8, 0.04),
                                 ("left unchanged", unchanged, 0.1, 0.03),
                                 ("replaced by a random token", 1 - as_mask - unchanged, 0.1, 0.03)]:
        if abs(got - want) > tol:
            return f"{got:.1%} of the picked tokens were {name}, expected about {want:.0%} " \
                   "(the 80/10/10 rule)"
    randoms = inputs[picked & (inputs != MASK_ID) & (inputs != original)]
    if randoms.min() < 0 or randoms.max() >= VOCAB or randoms.unique().numel() < 50:
        return "random replacements should be drawn uniformly from range(vocab_size)"
    again = fn(ids.clone(), special.clone(), MASK_ID, VOCAB, 0.15, torch.Generator().manual_seed(0))
    if not (torch.equal(again[0], inputs) and torch.equal(again[1], labels)):
        return ("two calls with identically seeded generators differ: pass generator=generator "
                "to every torch.bernoulli / torch.rand / torch.randint")
    ids, special = _masking_batch(1)
    _, labels = fn(ids, special, MASK_ID, VOCAB, 0.4, torch.Generator().manual_seed(1))
    share = (labels != -100).sum().item() / (~special).sum().item()
    if abs(share - 0.4) > 0.02:
        return f"with mlm_probability=0.4, {share:.1%} of the tokens were picked (use the argument)"
    return None


register(Exercise(
    id="03.mask_tokens",
    title="BERT's 80/10/10 masking",
    reference=mask_tokens,
    verify=_verify_masking,
    hints=[
        ("Three random draws, all with generator=generator: which positions are picked "
         "(probability mlm_probability, 0 for special tokens), which picked ones become [MASK] "
         "(80%), and which of the rest become a random token (half of the remaining 20%)."),
        ("torch.bernoulli(torch.full(shape, p), generator=generator).bool() gives a random "
         "boolean mask; combine masks with & and ~."),
        ("Start from inputs = input_ids.clone() and labels = input_ids.clone(); set "
         "labels[~picked] = -100, inputs[to_mask] = mask_token_id, "
         "inputs[to_random] = random_ids[to_random]."),
    ],
))
