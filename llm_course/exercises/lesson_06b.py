"""Exercises and quiz of 06b_prompting (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import torch

from llm_course.exercises.registry import Case, Exercise, compare_tensors, register

# ----------------------------------------------------------------------------------------------
# 06b_prompting: scoring label words by their next-token log-probability


def score_labels(next_token_logits: torch.Tensor, tokenizer, words: list[str]) -> torch.Tensor:
    """log P(" word" | prompt) for each word: (batch, vocab) logits -> (batch, len(words)).

    The prompt ends right before the label ("...Sentiment:"), so the label is the word with its
    leading space, one token here.
    """
    ids = [tokenizer.encode(" " + word, add_special_tokens=False)[0] for word in words]
    log_probs = torch.log_softmax(next_token_logits.float(), dim=-1)  # over the whole vocabulary
    return log_probs[:, ids]


TOY_WORDS = ["positive", "negative", "good", "bad", "great", "terrible", "fresh", "rotten"]


@lru_cache(maxsize=1)
def toy_tokenizer():
    """A byte-level word tokenizer like GPT-2's, small enough to read: "positive" and
    " positive" (stored as "Ġpositive") are different tokens, and `encode` adds a <s> first
    unless `add_special_tokens=False`, as Llama's tokenizers do."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tokens = ["<unk>", "<s>", "<pad>", "Review", ":", "Sentiment", "Ċ"]
    tokens += [w for word in TOY_WORDS for w in (word, "Ġ" + word)]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   pad_token="<pad>")


def _score_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(61)
    tokenizer = toy_tokenizer()
    vocab = len(tokenizer)
    for batch, words in [(3, ["negative", "positive"]), (1, ["bad", "good"]),
                         (4, ["terrible", "great", "rotten"]), (2, ["rotten", "fresh"])]:
        logits = torch.randn(batch, vocab, generator=g) * 3
        yield Case((logits, tokenizer, words), label=f"{batch} prompt(s), words {words}")


register(Exercise(
    id="06b.score_labels",
    title="Score label words by their next-token log-probability",
    reference=score_labels,
    cases=_score_cases,
    compare=lambda expected, got: compare_tensors(expected, got, rtol=1e-4, atol=1e-5),
    mistakes={
        "no leading space: after 'Sentiment:' the next token is ' positive' (Ġpositive), a "
        "different token from 'positive'":
            lambda logits, tok, words: torch.log_softmax(logits.float(), -1)[
                :, [tok.encode(w, add_special_tokens=False)[0] for w in words]],
        "encode() added the <s> token first, so [0] picked <s> for every word: pass "
        "add_special_tokens=False":
            lambda logits, tok, words: torch.log_softmax(logits.float(), -1)[
                :, [tok.encode(" " + w)[0] for w in words]],
        "log_softmax over the label words only: that is P(label | one of these words), not "
        "the model's log-probability; take log_softmax over the whole vocabulary, then pick":
            lambda logits, tok, words: torch.log_softmax(logits.float()[
                :, [tok.encode(" " + w, add_special_tokens=False)[0] for w in words]], -1),
        "returned raw logits: turn them into log-probabilities with log_softmax first":
            lambda logits, tok, words: logits.float()[
                :, [tok.encode(" " + w, add_special_tokens=False)[0] for w in words]],
        "returned probabilities (softmax): the exercise asks for log-probabilities":
            lambda logits, tok, words: torch.softmax(logits.float(), -1)[
                :, [tok.encode(" " + w, add_special_tokens=False)[0] for w in words]],
        "normalised over the batch (dim=0) instead of over the vocabulary (dim=-1)":
            lambda logits, tok, words: torch.log_softmax(logits.float(), 0)[
                :, [tok.encode(" " + w, add_special_tokens=False)[0] for w in words]],
    },
    hints=[
        ("Find each label's token id: tokenizer.encode(' ' + word, add_special_tokens=False) "
         "gives a list with one id. Mind the space, and keep special tokens out."),
        ("torch.log_softmax(next_token_logits, dim=-1) turns a row of logits into "
         "log-probabilities over the whole vocabulary."),
        "Then pick the columns of the label ids: log_probs[:, ids] has shape (batch, words).",
    ],
))

# ----------------------------------------------------------------------------------------------
# 06b_prompting: contextual calibration (Zhao et al., 2021)


def calibrate(label_probs: torch.Tensor, content_free_probs: torch.Tensor) -> torch.Tensor:
    """Divide out the prompt's own bias: p_cal = p / p_cf, renormalised per row.

    label_probs (n, labels) and content_free_probs (m, labels) hold label-word probabilities;
    each row is first normalised over the labels, and p_cf is the mean of the m content-free rows.
    """
    p = label_probs / label_probs.sum(dim=-1, keepdim=True)
    p_cf = (content_free_probs / content_free_probs.sum(dim=-1, keepdim=True)).mean(dim=0)
    calibrated = p / p_cf  # (n, labels) / (labels,): broadcasts over the rows
    return calibrated / calibrated.sum(dim=-1, keepdim=True)


def _calibrate_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(62)
    for n, m, labels in [(4, 3, 2), (5, 1, 2), (3, 3, 3), (6, 2, 2)]:
        # label-word probabilities as a model gives them: small, and not summing to 1
        probs = torch.rand(n, labels, generator=g) * 0.2 + 0.01
        free = torch.rand(m, labels, generator=g) * torch.rand(m, 1, generator=g) * 0.3 + 0.01
        yield Case((probs, free), label=f"{n} texts, {m} content-free input(s), {labels} labels")


register(Exercise(
    id="06b.calibrate",
    title="Contextual calibration",
    reference=calibrate,
    cases=_calibrate_cases,
    compare=compare_tensors,
    mistakes={
        "multiplied by p_cf: the bias must be divided out, not doubled":
            lambda p, cf: (lambda q: q / q.sum(-1, keepdim=True))(
                (p / p.sum(-1, keepdim=True)) * (cf / cf.sum(-1, keepdim=True)).mean(0)),
        "the rows do not sum to 1: renormalise after dividing":
            lambda p, cf: (p / p.sum(-1, keepdim=True)) / (cf / cf.sum(-1, keepdim=True)).mean(0),
        "subtracted p_cf instead of dividing by it":
            lambda p, cf: (p / p.sum(-1, keepdim=True)) - (cf / cf.sum(-1, keepdim=True)).mean(0),
        "used only the first content-free input: average all of them":
            lambda p, cf: (lambda q: q / q.sum(-1, keepdim=True))(
                (p / p.sum(-1, keepdim=True)) / (cf[0] / cf[0].sum())),
        "averaged the content-free rows before normalising each one over the labels":
            lambda p, cf: (lambda q: q / q.sum(-1, keepdim=True))(
                (p / p.sum(-1, keepdim=True)) / (cf.mean(0) / cf.mean(0).sum())),
    },
    hints=[
        ("Normalise each row over the labels: x / x.sum(dim=-1, keepdim=True). Do it for the "
         "texts' rows and for each content-free row."),
        ("p_cf is the mean of the normalised content-free rows (dim=0): one number per label. "
         "Divide every text's row by it; broadcasting does the rest."),
        "The divided rows no longer sum to 1: normalise them once more.",
    ],
))

# ----------------------------------------------------------------------------------------------
# 06b_prompting: the end-of-lesson quiz (plain data; `exercises.quiz("06b")` shows and checks it)

QUIZ = [
    {"question": "The prompt ends with `Sentiment:`. Why does the lesson score the token "
                 "`\" positive\"` (with a leading space) and not `\"positive\"`?",
     "choices": {
         "a": "It makes no difference: the tokenizer strips spaces before looking words up.",
         "b": "The space stops the model from answering with a longer word such as "
              "`positively`.",
         "c": "In a byte-level tokenizer the space belongs to the next word: in text the model "
              "read, `Sentiment: positive` continues with the token ` positive`, a different "
              "token (and a different row of the output layer) from `positive`.",
         "d": "Without the space the label would be two tokens, and only one-token labels can "
              "be scored.",
     },
     "answer": "c",
     "why": {
         "a": "No: section 1 printed different ids for `positive` and ` positive`. The space is "
              "part of the token, and which token the model expects depends on what precedes "
              "it.",
         "b": "No. A longer word starts with a different token anyway; the space decides "
              "which vocabulary entry is scored, not how long the answer is.",
         "c": "Right. The model's probability for the form that never follows `Sentiment:` in "
              "its training text is low and noisy; scoring it measures the wrong thing. In a "
              "chat turn the answer starts a new line, so there the form *without* the space "
              "is the natural one.",
         "d": "No. `positive` is one token either way here, and a label of several tokens can "
              "be scored too: add up the log-probabilities of its pieces (`label_log_probs` "
              "does).",
     }},
    {"question": "In the figure of section 2 (test accuracy against the number of in-context "
                 "examples $k$), what does the vertical spread of the dots at one $k$ show?",
     "figure": "accuracy against k, one dot per seed (section 2)",
     "choices": {
         "a": "Random noise of the model's forward pass: run the same prompt twice and the "
              "accuracy changes.",
         "b": "How much the choice and the order of the same number of examples change the "
              "accuracy: each dot is one seed, i.e. one draw of examples in one order.",
         "c": "The error of the accuracy estimate on the test subset, the width of a "
              "confidence interval.",
         "d": "The difference between the three templates of section 1.",
     },
     "answer": "b",
     "why": {
         "a": "No. Scoring is deterministic: the same prompt gives the same log-probabilities "
              "every time (no sampling is involved).",
         "b": "Right. Every dot at one $k$ uses the same model, template and test reviews; only "
              "which examples are shown and in which order differ. That spread is the prompt "
              "sensitivity of in-context learning, and for a small model it can be larger than "
              "the gain from adding examples.",
         "c": "No. The sampling error of a test subset is a separate, smaller effect "
              "(a few points at a few hundred reviews); the dots differ in their prompts.",
         "d": "No. Section 2 keeps one template (the plain one) for every $k$ and seed.",
     }},
    {"question": "Contextual calibration divides the label probabilities by those the same prompt "
                 "gives a content-free input such as `N/A`. What does that correct?",
     "choices": {
         "a": "The model's lack of knowledge about movies.",
         "b": "Overfitting to the in-context examples, by averaging over several prompts.",
         "c": "The difference in length between reviews.",
         "d": "The bias of the prompt itself towards one label (from the examples' labels, their "
              "order, or the label words' frequency), measured where the input carries no "
              "evidence and divided out of every prediction.",
     },
     "answer": "d",
     "why": {
         "a": "No. Dividing by a constant per label cannot add knowledge; it only moves the "
              "decision threshold.",
         "b": "No. The model is not trained on the examples, and calibration uses one prompt, "
              "not an average over prompts.",
         "c": "No. One content-free probability vector is used for every review, long or "
              "short.",
         "d": "Right. For `N/A` a fair classifier would say 50/50; whatever it says instead is "
              "the prompt's own lean. Dividing by it (and renormalising) sets the threshold "
              "back to the middle. It helps most when a prompt pushes nearly every review to "
              "one label; when the raw prompt was already balanced it can cost points, because "
              "`N/A` measures the lean only roughly.",
     }},
    {"question": "Section 4 starts the classifier head of SmolLM2 from the language-model head's "
                 "rows for ` negative` and ` positive`. What does that buy?",
     "choices": {
         "a": "At step 0 the classifier makes the zero-shot predictions, so the short LoRA run "
              "starts from zero-shot accuracy instead of from a coin toss.",
         "b": "Nothing measurable: a random head learns the same in the first step.",
         "c": "It freezes the head, so only LoRA's matrices train.",
         "d": "It lets the model generate the label word as text.",
     },
     "answer": "a",
     "why": {
         "a": "Right. The head computes $h \\cdot w_y$ for each label, exactly the two logits "
              "zero-shot compared, so the learning curve of section 4 starts at the zero-shot "
              "accuracy.",
         "b": "No. A random head starts from an arbitrary split of the reviews and spends its "
              "first steps finding the direction that the label words' rows already give; with "
              "a few dozen steps on a CPU that head start matters.",
         "c": "No. peft's `SEQ_CLS` task keeps the head (`score`) trainable; it moves along with "
              "the LoRA matrices.",
         "d": "No. The classifier only scores two labels; it never generates text.",
     }},
    {"question": "Why does a few-shot prediction cost more than a zero-shot one, and what "
                 "removes most of that cost when every prompt shares the same examples?",
     "choices": {
         "a": "The model must be trained on the examples first; caching the gradients removes it.",
         "b": "The label words get longer; shorter label words remove it.",
         "c": "Every prediction reads the $k$ examples' tokens as well; running that shared "
              "prefix once and reusing its keys and values (the KV cache) leaves only each "
              "review's own tokens to compute.",
         "d": "Few-shot prompts need a bigger batch; a smaller batch removes it.",
     },
     "answer": "c",
     "why": {
         "a": "No. In-context learning changes no weight: nothing is trained and there are no "
              "gradients.",
         "b": "No. The label words are the same at every $k$.",
         "c": "Right. Tokens per prediction grow with $k$ (section 2 printed them), and a hosted "
              "model bills every one. When the examples are the same for every request, their "
              "keys and values can be computed once; the lesson's `label_log_probs` does this "
              "(and hosted APIs sell it as prompt caching).",
         "d": "No. Batch size changes throughput, not the work per prediction.",
     }},
    {"question": "The lesson keeps the plain template for sections 2-4, fixed before looking at "
                 "any test score. Why not simply use whichever template scored best on the test "
                 "reviews in section 1?",
     "choices": {
         "a": "Choosing among prompts by their test score is training on the test set: the "
              "winner's score is flattered by luck, and it would no longer be a fair estimate "
              "for new reviews. Choose on validation data, or fix the choice beforehand.",
         "b": "Because the plain template is always the best one.",
         "c": "Because the chat template cannot be used with few-shot examples.",
         "d": "Because templates never change the accuracy by more than noise.",
     },
     "answer": "a",
     "why": {
         "a": "Right. Prompt engineering is model selection. Every template you try and keep "
              "because it scored well on the test set uses up that set's honesty, exactly "
              "like tuning a learning rate on it.",
         "b": "No template is always best: the ranking depends on the model, the task and the "
              "label words.",
         "c": "No. `Template.render` writes few-shot examples as earlier chat turns.",
         "d": "No. Section 1 showed wording and label words moving accuracy by far more than "
              "the noise of the test subset.",
     }},
    {"question": "You must label 2 million support tickets a day into two classes, and you have "
                 "5,000 labelled tickets. From the decision table, what is the usual choice?",
     "choices": {
         "a": "Few-shot prompting of the decoder: no training needed.",
         "b": "LoRA on the decoder, because the largest model always wins.",
         "c": "Zero-shot prompting, because labels go stale.",
         "d": "A fine-tuned classifier (a small encoder such as MiniLM, or TF-IDF as the first "
              "baseline): with thousands of labels it is more accurate, and far cheaper and "
              "faster per prediction.",
     },
     "answer": "d",
     "why": {
         "a": "No. Prompting wins when you have no or few labels; at millions of predictions a "
              "day its tokens per prediction and latency dominate the cost, and a few "
              "examples in a prompt use a sliver of the 5,000 labels you have.",
         "b": "No. LoRA on the decoder helps, but a 135 M-parameter decoder costs several times "
              "a small encoder per prediction for no gain here; 'largest' is not a rule.",
         "c": "No. Zero-shot is what you use before you have labels; with 5,000 you can do "
              "much better, and retraining on fresh labels is routine.",
         "d": "Right. With thousands of labels, fine-tuning a small model beat prompting in the "
              "table, and its latency and memory per prediction are a fraction of the "
              "decoder's. Measure TF-IDF first: it is the cheapest bar to beat.",
     }},
]
