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


# ----------------------------------------------------------------------------------------------
# The end-of-lesson quiz (shown by `exercises.quiz("03")`)

QUIZ = [
    {
        "question": "Of the tokens BERT picks, 80 % become `[MASK]`, 10 % a random token and 10 % "
                    "stay unchanged. Why not make them all `[MASK]`?",
        "choices": {
            "a": "To make training faster.",
            "b": "`[MASK]` never appears in real text, where the model is used later; if only "
                 "`[MASK]` positions were tested, the model would need good vectors only there. "
                 "With random and unchanged tokens, any token may be a test, so it must represent "
                 "every token well.",
            "c": "Because 15 % of `[MASK]` tokens would make the sentences unreadable.",
            "d": "The random tokens are data augmentation against overfitting, nothing more.",
        },
        "answer": "b",
        "why": {
            "a": "The rule costs the same to compute either way; it changes what is learnt, not "
                 "the speed.",
            "b": "Right: it narrows the gap between pretraining inputs (with `[MASK]`) and "
                 "fine-tuning inputs (without).",
            "c": "The share of picked tokens, 15 %, is the same under any replacement rule.",
            "d": "Random tokens do add noise, but their main job is that the model cannot tell "
                 "which positions are tested.",
        },
    },
    {
        "question": "Why is an encoder like BERT not pretrained on the next-token objective of "
                    "lesson 02?",
        "choices": {
            "a": "Every token attends to every other, left and right, so the next token is "
                 "already in its input: predicting it would be trivial.",
            "b": "Encoders have no output layer over the vocabulary.",
            "c": "Next-token prediction only works on English.",
            "d": "It would need a bigger vocabulary.",
        },
        "answer": "a",
        "why": {
            "a": "Right: without a causal mask there is nothing to predict, so BERT hides tokens "
                 "instead and asks for them back.",
            "b": "A masked-LM has exactly such a layer (the head); the question is what it is "
                 "asked to predict.",
            "c": "The objective works on any language; GPT models are trained with it on many.",
            "d": "The vocabulary has nothing to do with it; the same WordPiece would serve.",
        },
    },
    {
        "question": "In the accuracy panel of section 3, at `laptop` scale, the BERT curve first "
                    "sits on the red dashed line (always the most frequent token) and only later "
                    "climbs above it (at `smoke` it never leaves it). What is the model doing while "
                    "it sits on the line?",
        "figure": "masked-token accuracy against steps, right panel of the plot in section 3",
        "choices": {
            "a": "Nothing: its weights are not moving.",
            "b": "Overfitting the training text.",
            "c": "It has learnt the cheapest trick, the word frequencies, and gives every blank "
                 "the same guess; reading the context around the blank comes later.",
            "d": "Waiting for the warmup to end.",
        },
        "answer": "c",
        "why": {
            "a": "The loss falls during the plateau: the model is learning the frequencies, which "
                 "alone give exactly the baseline's accuracy.",
            "b": "Overfitting would lift training accuracy and lower validation accuracy; on the "
                 "plateau neither moves away from the baseline.",
            "c": "Right: the loss sits near the unigram entropy there. Too high a learning rate, "
                 "or dropout in this small post-LN BERT, can keep it on the plateau for good.",
            "d": "Warmup is 10 % of the steps; the plateau can last much longer, and it is about "
                 "what is learnt first, not about the schedule.",
        },
    },
    {
        "question": "The validation set is masked once, with a fixed seed, while each training "
                    "batch gets new masks. Why the difference?",
        "choices": {
            "a": "Masking the validation set is too slow to repeat.",
            "b": "Evaluations must be comparable: the same blanks before training, after it and "
                 "in any later run. Training gains from new blanks each time: more varied "
                 "questions from the same text.",
            "c": "The collator cannot mask validation data.",
            "d": "Fresh validation masks would leak the answers.",
        },
        "answer": "b",
        "why": {
            "a": "It takes a fraction of a second; the reason is comparability.",
            "b": "Right: with fresh masks, two evaluations would differ by the luck of the draw, "
                 "not only by the model.",
            "c": "The same collator could mask it; `frozen_masks` fixes the draw on purpose.",
            "d": "Masks hide tokens; fresh masks would not reveal answers, they would just "
                 "change the questions.",
        },
    },
    {
        "question": "`SparseHeadBertForMaskedLM` computes the vocabulary scores only at the masked "
                    "positions while training. Why does the loss stay exactly the same?",
        "choices": {
            "a": "It does not: it is an approximation, traded for speed.",
            "b": "The other positions are scored later, at evaluation.",
            "c": "It uses a smaller vocabulary.",
            "d": "Only masked positions have a label; the others are $-100$ and add nothing to "
                 "the loss, so their scores were wasted work.",
        },
        "answer": "d",
        "why": {
            "a": "A test checks the loss and the gradients against `BertForMaskedLM`: they match.",
            "b": "Evaluation runs the ordinary forward pass, but that is not why the training "
                 "loss is unchanged.",
            "c": "The vocabulary is the same 8,192 (at `laptop`); only the positions differ.",
            "d": "Right: about 85 % of the head's work was thrown away; skipping it made a step "
                 "1.5 times faster here.",
        },
    },
    {
        "question": "MiniLM is a far better encoder than `course-bert`, yet its fill-mask guesses "
                    "are noise. Why?",
        "choices": {
            "a": "MiniLM was never pretrained.",
            "b": "MiniLM's tokenizer has no `[MASK]` token.",
            "c": "Its published weights have no masked-LM head: `transformers` fills the missing "
                 "head with random values, while the knowledge sits in the body.",
            "d": "MiniLM only works on sentence pairs.",
        },
        "answer": "c",
        "why": {
            "a": "It was distilled from a pretrained BERT and then trained on a billion sentence "
                 "pairs.",
            "b": "It has one; the pipeline ran and returned guesses, just random ones.",
            "c": "Right: the load report says the `cls.predictions` weights are MISSING. Lesson "
                 "04 uses the body, which is what MiniLM is good at.",
            "d": "It was trained on pairs to make sentence embeddings, but it encodes a single "
                 "sentence well, as lesson 04 shows.",
        },
    },
    {
        "question": "Why does a masked-LM learn more slowly per token read than a GPT?",
        "choices": {
            "a": "Only the 15 % masked tokens give a training signal, while a GPT learns from "
                 "every position.",
            "b": "Bidirectional attention is slower to compute.",
            "c": "WordPiece makes more tokens than BPE.",
            "d": "It does not: both learn equally fast.",
        },
        "answer": "a",
        "why": {
            "a": "Right: this is one reason later encoders such as ELECTRA changed the objective "
                 "to learn from every token.",
            "b": "Attention costs about the same with or without a causal mask.",
            "c": "The tokenizer changes how many tokens a text has, not how much each teaches.",
            "d": "Per token read, a masked-LM gets about a seventh of the labels a GPT gets.",
        },
    },
]
