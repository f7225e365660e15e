"""The course's exercises: reference solutions, hidden test inputs, typical mistakes and hints.

Notebooks reach them through `llm_course.exercises.get(id)`; the id starts with the notebook's
number (01_tokenizers, 02_pretraining_gpt, 03_pretraining_bert, 04_transfer_learning,
06_peft). References are plain torch / Python so that `ex.solution()` prints code a learner can
read and paste (each exercise's `setup` holds the imports that code needs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from llm_course.exercises import Case, Exercise, compare_tensors, register

# ----------------------------------------------------------------------------------------------
# 01_tokenizers: characters per token


def chars_per_token(encode: Callable[[str], list[int]], texts: list[str]) -> float:
    """Characters per token of `encode` over all `texts`: higher means fewer, longer tokens."""
    n_chars = sum(len(text) for text in texts)
    n_tokens = sum(len(encode(text)) for text in texts)
    return n_chars / n_tokens


def byte_encode(text: str) -> list[int]:
    """A toy tokenizer: one token per UTF-8 byte."""
    return list(text.encode("utf-8"))


def word_encode(text: str) -> list[int]:
    """A toy tokenizer: one token per whitespace-separated word."""
    return [len(word) for word in text.split()]


def pair_encode(text: str) -> list[int]:
    """A toy tokenizer: one token per two characters."""
    return [ord(text[i]) for i in range(0, len(text), 2)]


TEXTS = ["The cat sat on the mat.", "Tokenizers split text into pieces, then into ids.",
         "Grüße aus Köln!", "naïve café", "a", "Byte-pair encoding merges frequent pairs."]


def _chars_cases() -> Iterator[Case]:
    yield Case((byte_encode, TEXTS[:3]), label="a byte-level tokenizer (é, ü are 2 bytes)")
    yield Case((word_encode, TEXTS), label="a word-level tokenizer on 6 texts")
    yield Case((pair_encode, ["ab", "abcdefghijk"]), label="texts of very different lengths")


register(Exercise(
    id="01.chars_per_token",
    title="Characters per token",
    reference=chars_per_token,
    cases=_chars_cases,
    mistakes={
        "the ratio upside down (tokens per character)": lambda e, t: 1 / chars_per_token(e, t),
        "a mean of per-text ratios, which weighs a short text as much as a long one":
            lambda e, t: sum(len(x) / len(e(x)) for x in t) / len(t),
        "bytes instead of characters: len(text) counts characters":
            lambda e, t: sum(len(x.encode()) for x in t) / sum(len(e(x)) for x in t),
    },
    hints=[
        "Count two totals over all texts: characters (len(text)) and tokens (len(encode(text))).",
        ("Sum first and divide once at the end: a mean of per-text ratios gives a one-word text "
         "as much weight as a long paragraph."),
        "n_chars = sum(len(t) for t in texts); n_tokens = sum(len(encode(t)) for t in texts)",
    ],
    setup="from collections.abc import Callable",
))

# ----------------------------------------------------------------------------------------------
# 01_tokenizers: one step of byte-pair encoding


def bpe_merge_step(word_counts: dict[tuple[str, ...], int]) -> tuple[tuple[str, str], dict]:
    """Find the most frequent adjacent pair of symbols and merge it everywhere.

    `word_counts` maps a word, spelled as a tuple of symbols, to how often it occurs.
    Ties go to the pair that sorts first. Returns (the pair, the new word_counts).
    """
    pair_counts: dict[tuple[str, str], int] = {}
    for word, count in word_counts.items():
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + count
    best = min(pair_counts, key=lambda pair: (-pair_counts[pair], pair))
    merged = {}
    for word, count in word_counts.items():
        symbols, i = [], 0
        while i < len(word):
            if word[i:i + 2] == best:
                symbols.append(word[i] + word[i + 1])
                i += 2
            else:
                symbols.append(word[i])
                i += 1
        merged[tuple(symbols)] = merged.get(tuple(symbols), 0) + count
    return best, merged


def _bpe_cases() -> Iterator[Case]:
    yield Case(({("l", "o", "w"): 5, ("l", "o", "w", "e", "r"): 2, ("n", "e", "w"): 6,
                 ("w", "i", "d", "e", "r"): 3},), label="the classic low/lower/new/wider")
    yield Case(({("a", "a", "a"): 1},), label="'aaa': merge left to right, without overlap")
    yield Case(({("b", "a"): 2, ("a", "b"): 2},), label="a tie: the pair that sorts first wins")
    yield Case(({("t", "h", "e"): 10, ("th", "e", "n"): 3, ("o", "th", "e", "r"): 4},),
               label="symbols that are already merges")


register(Exercise(
    id="01.bpe_merge_step",
    title="One step of byte-pair encoding",
    reference=bpe_merge_step,
    cases=_bpe_cases,
    hints=[
        ("Count every adjacent pair (word[i], word[i+1]) in every word, weighted by the word's "
         "count: zip(word, word[1:]) gives the pairs."),
        ("The best pair has the highest count; break ties with the smallest pair: "
         "min(pairs, key=lambda p: (-counts[p], p))."),
        ("Rewrite each word left to right: where the next two symbols are the best pair, emit "
         "their concatenation and skip two; otherwise emit one symbol and move one."),
    ],
))

# ----------------------------------------------------------------------------------------------
# 02_pretraining_gpt: next-token loss and perplexity


def next_token_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of predicting token t+1 from the logits at position t."""
    vocab_size = logits.size(-1)
    predictions = logits[:, :-1, :]  # positions 0 .. T-2 predict ...
    targets = input_ids[:, 1:]  # ... tokens 1 .. T-1
    return F.cross_entropy(predictions.reshape(-1, vocab_size), targets.reshape(-1))


def _loss_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(2)
    for b, t, v, scale, label in [
        (2, 7, 11, 1.0, "2 sequences of 7 tokens, vocabulary 11"),
        (1, 5, 3, 1.0, "1 sequence of 5 tokens, vocabulary 3"),
        (3, 16, 50, 2.0, "3 sequences of 16 tokens, vocabulary 50"),
        (2, 6, 8, 100.0, "a very confident model (logits of size ~100)"),
    ]:
        logits = (torch.randn(b, t, v, generator=g) * scale).requires_grad_()
        yield Case((logits, torch.randint(v, (b, t), generator=g)), label=label)


def _ce(logits: torch.Tensor, ids: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), ids.reshape(-1),
                           reduction=reduction)


def _explain_loss(fn: Callable, case: Case) -> list[str]:
    """Per-position losses of sequence 0, got by calling `fn` on each window (t, t+1)."""
    logits, ids = case.args
    lines = [("per-position loss of sequence 0 (position t predicts token t+1), from your "
              "function on each pair of positions t, t+1:"), "      t   expected      yours"]
    for t in range(min(ids.size(1) - 1, 6)):
        expected = F.cross_entropy(logits[0, t:t + 1].detach(), ids[0, t + 1:t + 2]).item()
        got = float(fn(logits[:1, t:t + 2].detach().clone(), ids[:1, t:t + 2].clone()))
        flag = "" if math.isclose(got, expected, rel_tol=1e-4, abs_tol=1e-5) else "  <- differs"
        lines.append(f"    {t:3d} {expected:10.4f} {got:10.4f}{flag}")
    return lines if any(line.endswith("differs") for line in lines) else []


register(Exercise(
    id="02.next_token_loss",
    title="Next-token loss (cross-entropy with a shift by one)",
    reference=next_token_loss,
    cases=_loss_cases,
    compare=compare_tensors,
    mistakes={
        "no shift: position t is scored against token t instead of token t+1":
            lambda lg, ids: _ce(lg, ids),
        "shifted the wrong way: use logits[:, :-1] with input_ids[:, 1:]":
            lambda lg, ids: _ce(lg[:, 1:], ids[:, :-1]),
        "a sum instead of a mean over positions": lambda lg, ids: _ce(lg[:, :-1], ids[:, 1:], "sum"),
        "log(softmax(...)) underflows to log(0) = -inf for confident logits: use "
        "F.cross_entropy or F.log_softmax":
            lambda lg, ids: -torch.log(torch.softmax(lg[:, :-1], -1)).gather(
                -1, ids[:, 1:, None]).mean(),
    },
    explain=_explain_loss,
    hints=[
        ("The logits at position t are a guess for the NEXT token, input_ids[:, t+1]. "
         "So the last position has no target and the first token is never predicted."),
        ("Drop the last position of the logits (logits[:, :-1]) and the first token of the "
         "targets (input_ids[:, 1:])."),
        ("F.cross_entropy wants (N, V) logits and (N,) targets: flatten with .reshape(-1, V) "
         "and .reshape(-1). It works on logits directly (no softmax needed)."),
    ],
    setup="import torch\nimport torch.nn.functional as F",
))


def perplexity(mean_nll: float | torch.Tensor) -> float:
    """Perplexity from a mean negative log-likelihood in nats (what cross-entropy gives): exp."""
    return math.exp(float(mean_nll))


def _perplexity_cases() -> Iterator[Case]:
    for value in [0.0, 0.5, 2.302585, 4.6, 7.0]:
        yield Case((value,), label=f"mean_nll = {value}")
    yield Case((torch.tensor(3.2),), label="a loss tensor, as a model returns it")


register(Exercise(
    id="02.perplexity",
    title="Perplexity from the loss",
    reference=perplexity,
    cases=_perplexity_cases,
    mistakes={
        "2 ** loss: that assumes bits, but cross-entropy in PyTorch uses the natural log":
            lambda x: 2 ** float(x),
        "exp(-loss): that is the geometric-mean probability, not the perplexity":
            lambda x: math.exp(-float(x)),
    },
    hints=[
        "Perplexity undoes the log of the mean negative log-likelihood.",
        "F.cross_entropy uses the natural logarithm, so the inverse is exp, not 2 ** x.",
        "math.exp(float(mean_nll)) works for a Python float and for a 0-d tensor.",
    ],
    setup="import math\n\nimport torch",
))

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

# ----------------------------------------------------------------------------------------------
# 04_transfer_learning: counting trainable parameters


def count_trainable(model: nn.Module) -> int:
    """Number of trainable parameters (numbers, not tensors) in `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class TiedLM(nn.Module):
    """A tiny model whose output layer shares its weight with the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.head = nn.Linear(6, 20, bias=False)
        self.head.weight = self.embed.weight


def _count_cases() -> Iterator[Case]:
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    yield Case((mlp,), label="a small MLP, everything trainable")
    frozen_first = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    frozen_first[0].requires_grad_(False)
    yield Case((frozen_first,), label="the same MLP with its first layer frozen")
    head = nn.Sequential(nn.Embedding(50, 8), nn.Linear(8, 3))
    head[0].requires_grad_(False)
    yield Case((head,), label="a frozen embedding under a trainable head")
    yield Case((TiedLM(),), label="tied weights: a shared parameter counts once")
    yield Case((nn.Linear(3, 3).requires_grad_(False),), label="a fully frozen layer")


register(Exercise(
    id="04.count_trainable",
    title="Count the trainable parameters",
    reference=count_trainable,
    cases=_count_cases,
    mistakes={
        "counted the frozen parameters too: keep only p.requires_grad":
            lambda m: sum(p.numel() for p in m.parameters()),
        "counted parameter tensors, not the numbers in them: use p.numel()":
            lambda m: sum(1 for p in m.parameters() if p.requires_grad),
        "counted the frozen parameters instead of the trainable ones":
            lambda m: sum(p.numel() for p in m.parameters() if not p.requires_grad),
    },
    hints=[
        "model.parameters() yields every weight tensor once (shared ones too).",
        "A tensor is trained when p.requires_grad is True; p.numel() is how many numbers it has.",
    ],
    setup="from torch import nn",
))

# ----------------------------------------------------------------------------------------------
# 06_peft: the LoRA forward pass (llm_course.lora is the full module)


def lora_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                 lora_A: torch.Tensor, lora_B: torch.Tensor, alpha: float,
                 r: int) -> torch.Tensor:
    """A frozen linear layer plus its low-rank update: x W^T + b + (alpha / r) x A^T B^T."""
    frozen = x @ weight.T + bias
    update = x @ lora_A.T @ lora_B.T  # (..., in) -> (..., r) -> (..., out)
    return frozen + (alpha / r) * update


def _lora_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(6)
    for x_shape, d_in, d_out, r, alpha in [((3,), 8, 6, 2, 16), ((2, 4), 8, 5, 4, 8),
                                           ((5,), 16, 12, 8, 32), ((2,), 4, 4, 1, 3)]:
        def rand(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=g)

        yield Case((rand(*x_shape, d_in), rand(d_out, d_in), rand(d_out),
                    rand(r, d_in).requires_grad_(), rand(d_out, r).requires_grad_(), alpha, r),
                   label=f"x {(*x_shape, d_in)}, W ({d_out}, {d_in}), r = {r}, alpha = {alpha}")


register(Exercise(
    id="06.lora_forward",
    title="The LoRA forward pass",
    reference=lora_forward,
    cases=_lora_cases,
    compare=compare_tensors,
    mistakes={
        "forgot the scaling alpha / r on the LoRA path":
            lambda x, w, b, a, bb, alpha, r: x @ w.T + b + x @ a.T @ bb.T,
        "scaled by r / alpha instead of alpha / r":
            lambda x, w, b, a, bb, alpha, r: x @ w.T + b + (r / alpha) * (x @ a.T @ bb.T),
        "scaled by alpha alone (divide by r too)":
            lambda x, w, b, a, bb, alpha, r: x @ w.T + b + alpha * (x @ a.T @ bb.T),
        "scaled the whole output: only the LoRA update gets alpha / r":
            lambda x, w, b, a, bb, alpha, r: (alpha / r) * (x @ w.T + b + x @ a.T @ bb.T),
        "forgot the bias": lambda x, w, b, a, bb, alpha, r: x @ w.T + (alpha / r) * (
            x @ a.T @ bb.T),
    },
    hints=[
        ("Two paths add up: the frozen layer x @ W.T + b, and the low-rank update "
         "x @ A.T @ B.T."),
        ("Shapes: x is (..., in), A is (r, in), B is (out, r). x @ A.T is (..., r); then @ B.T "
         "gives (..., out), like the frozen path."),
        "Scale only the update, by alpha / r: it keeps the update's size steady when you change r.",
    ],
))
