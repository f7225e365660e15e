"""Classifying with a causal language model and no task training: label words scored by their
next-token log-probability, prompt templates, few-shot prompts and contextual calibration
(taught in 06b_prompting).

    words = ("negative", "positive")                       # a verbaliser: one word per label
    prompts = [PLAIN.render(text) for text in texts]       # "Review: ...\\nSentiment:"
    ids = label_token_ids(tokenizer, PLAIN.label_texts(words))   # " negative", " positive"
    log_p = label_log_probs(model, tokenizer, prompts, ids)      # (n, 2)
    predicted = log_p.argmax(1)

* A **verbaliser** maps each label to a word; the model's score for a label is the log-probability
  of that word right after the prompt. The word's tokens depend on what comes before it: after
  "Sentiment:" the next token is " positive" *with* its leading space, a different token from
  "positive" (`Template.space_before_label` says which form a template needs).
  A word of several tokens is scored as the sum of their log-probabilities.
* A `Template` writes the prompt: an optional instruction, then for each in-context example its
  query and answer, then the query. `chat=True` wraps the turns in the tokenizer's chat template
  (an instruct model's own format); the answer then starts a new turn, without a space.
* `choose_shots` draws k examples for a few-shot prompt, as many of each label, in a seeded
  random order: the spread over seeds is the order and choice sensitivity the lesson measures.
* `contextual_calibration` (Zhao et al., 2021) divides the label probabilities by those the same
  prompt gives a content-free input ("N/A"), and renormalises: the prompt's own bias cancels.
* Speed: all prompts of one few-shot setting share their beginning; `label_log_probs` runs that
  shared prefix once, keeps its keys and values (the KV cache) and runs only each prompt's own
  tokens on top, in batches of similar length, right-padded.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from llm_course.env import dry_run
from llm_course.env.device import autocast_context

CONTENT_FREE = ("N/A", "", "[MASK]")  # the content-free inputs of Zhao et al. (2021)
VERBALISERS = {"negative/positive": ("negative", "positive"), "bad/good": ("bad", "good")}


# ----------------------------------------------------------------------------- templates ---

def clip_words(text: str, max_words: int | None) -> str:
    """The first `max_words` words of `text` (all of it when None): long reviews, short prompts."""
    if max_words is None:
        return text
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " ..."


@dataclass(frozen=True)
class Template:
    """How a prompt is written. `query` holds `{text}` and ends where the label word goes."""

    name: str
    query: str
    instruction: str = ""  # once, before any example
    separator: str = "\n\n"  # between examples
    space_before_label: bool = True  # " positive" after "Sentiment:"; "positive" in a chat turn
    chat: bool = False  # turns in the tokenizer's chat template (user: query, assistant: label)

    def label_text(self, word: str) -> str:
        """The label word as it follows the query in this template."""
        return (" " + word) if self.space_before_label else word

    def label_texts(self, words: Sequence[str]) -> list[str]:
        return [self.label_text(w) for w in words]

    def render(self, text: str, shots: Sequence[tuple[str, str]] = (), tokenizer: Any = None,
               max_words: int | None = None) -> str:
        """The prompt for `text`, after the in-context examples `shots` [(text, label word)]."""
        def query(t: str) -> str:
            return self.query.format(text=clip_words(t, max_words))

        if self.chat:
            if tokenizer is None or not getattr(tokenizer, "chat_template", None):
                raise ValueError(f"template {self.name!r} needs a tokenizer with a chat template "
                                 "(an instruct model's tokenizer)")
            turns: list[dict[str, str]] = []
            for i, (shot, word) in enumerate(shots):
                content = (self.instruction + query(shot)) if i == 0 else query(shot)
                turns += [{"role": "user", "content": content},
                          {"role": "assistant", "content": word}]
            content = query(text) if shots else self.instruction + query(text)
            turns.append({"role": "user", "content": content})
            return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        parts = [query(shot) + self.label_text(word) for shot, word in shots]
        return self.instruction + self.separator.join([*parts, query(text)])


PLAIN = Template("plain", "Review: {text}\nSentiment:")
QUESTION = Template("question", "{text}\nQuestion: is this movie review positive or negative?"
                    "\nAnswer:")
CHAT = Template("chat", "Movie review: {text}", chat=True, space_before_label=False,
                instruction="Is this movie review positive or negative? Answer with one word.\n\n")
TEMPLATES = {t.name: t for t in (PLAIN, QUESTION, CHAT)}


def choose_shots(labels: Sequence[int], k: int, seed: int, balanced: bool = True) -> list[int]:
    """Indices of `k` in-context examples drawn from `labels` (a training split), seeded.

    `balanced`: as many of each label as k allows (the rest drawn at random); then shuffled,
    so the seed sets both which examples and their order.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    if k == 0:
        return []
    if not balanced:
        picked = rng.choice(len(labels), size=k, replace=False)
    else:
        classes = np.unique(labels)
        per, extra = divmod(k, len(classes))
        counts = {c: per for c in classes}
        for c in rng.choice(classes, size=extra, replace=False):
            counts[c] += 1
        picked = np.concatenate([rng.choice(np.flatnonzero(labels == c), size=n, replace=False)
                                 for c, n in counts.items()])
        rng.shuffle(picked)
    return [int(i) for i in picked]


def few_shot_prompts(template: Template, texts: Sequence[str], shots: Sequence[tuple[str, str]],
                     tokenizer: Any = None, max_words: int | None = None) -> list[str]:
    """One prompt per text, every one after the same examples in the same order."""
    return [template.render(t, shots, tokenizer, max_words) for t in texts]


# ------------------------------------------------------------------------------- scoring ---

def label_token_ids(tokenizer: Any, label_texts: Sequence[str]) -> list[list[int]]:
    """The token ids of each label text, exactly as written (mind the leading space)."""
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in label_texts]
    if any(not i for i in ids):
        raise ValueError(f"a label text is empty after tokenizing: {list(label_texts)}")
    return ids


def shared_prefix_length(token_lists: Sequence[Sequence[int]]) -> int:
    """How many leading tokens all lists share, keeping at least one token of each list apart.

    Compare tokens, not strings: "...\\n\\n" alone and "...\\n\\nReview" can end in different
    tokens, so a prefix string tokenized by itself may not match the prompts.
    """
    if not token_lists:
        return 0
    first, n = token_lists[0], min(len(t) for t in token_lists) - 1
    for other in token_lists[1:]:
        i = 0
        while i < n and other[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


def _last_hidden(model: Any, rows: list[list[int]], positions: list[list[int]], cache: Any,
                 pad_id: int) -> torch.Tensor:
    """Hidden states at `positions` of each right-padded row (after the cached prefix)."""
    device = next(model.parameters()).device
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    past = None
    if cache is not None:
        past = copy.deepcopy(cache)  # the forward pass appends to it: keep the prefix's own clean
        past.batch_repeat_interleave(len(rows))
    # No attention mask: the padding sits after every real token, and a causal model never
    # looks ahead, so the real tokens' states do not depend on it.
    out = model.base_model(input_ids=ids.to(device), cache=past, use_cache=past is not None)
    hidden = out.last_hidden_state
    rows_index = torch.tensor([i for i, p in enumerate(positions) for _ in p], device=device)
    cols_index = torch.tensor([c for p in positions for c in p], device=device)
    return hidden[rows_index, cols_index]


@torch.no_grad()
def label_log_probs(model: Any, tokenizer: Any, prompts: Sequence[str],
                    label_ids: Sequence[Sequence[int]], batch_size: int = 16,
                    share_prefix: bool = True, precision: str = "auto") -> torch.Tensor:
    """log P(label | prompt) for every prompt and label: a float tensor (len(prompts), labels).

    `label_ids` from `label_token_ids`. A label of several tokens gets the sum of their
    log-probabilities (one more forward pass per such label). With `share_prefix`, the tokens
    that every prompt starts with run once and are reused from the KV cache. Prompts are
    batched by length (right-padded); the result is in the order of `prompts`. A dry run
    (`llm_course.env.dry_run`) tokenizes and scores the first batch of prompts only, and
    repeats its rows for the others.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    head = model.get_output_embeddings()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    n_prompts = len(prompts)
    prompts = dry_run.first_batch(prompts, batch_size)
    encoded = [tokenizer.encode(p) for p in prompts]
    start = shared_prefix_length(encoded) if share_prefix and len(encoded) > 1 else 0
    out = torch.zeros(len(prompts), len(label_ids))
    try:
        with autocast_context(device, precision):
            cache = None
            if start:
                prefix = torch.tensor([encoded[0][:start]], device=device)
                cache = model.base_model(input_ids=prefix, use_cache=True).cache
            order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
            for b in range(0, len(order), batch_size):
                idx = order[b:b + batch_size]
                rows = [encoded[i][start:] for i in idx]
                # the first token of every label, from one pass over the prompts
                hidden = _last_hidden(model, rows, [[len(r) - 1] for r in rows], cache, pad_id)
                log_p = torch.log_softmax(head(hidden).float(), dim=-1).cpu()
                for j, ids in enumerate(label_ids):
                    out[idx, j] = log_p[:, ids[0]]
                # the later tokens of longer labels: feed the label, read the next pieces
                for j, ids in enumerate(label_ids):
                    if len(ids) == 1:
                        continue
                    longer = [r + list(ids[:-1]) for r in rows]
                    spots = [list(range(len(r), len(r) + len(ids) - 1)) for r in rows]
                    hidden = _last_hidden(model, longer, spots, cache, pad_id)
                    log_p = torch.log_softmax(head(hidden).float(), dim=-1).cpu()
                    picked = log_p[torch.arange(len(hidden)), torch.tensor(list(ids[1:]) * len(rows))]
                    out[idx, j] += picked.view(len(rows), len(ids) - 1).sum(1)
    finally:
        model.train(was_training)
    return dry_run.fill_rows(out, n_prompts)


def contextual_calibration(label_probs: torch.Tensor,
                           content_free_probs: torch.Tensor) -> torch.Tensor:
    """Zhao et al. (2021): p_cal ∝ p / p_cf, each row renormalised over the labels.

    `label_probs` (n, labels) and `content_free_probs` (m, labels) are the label words'
    probabilities (any scale: each row is normalised over the labels first); p_cf is the mean
    of the m normalised content-free rows. Returns (n, labels), rows summing to 1.
    """
    p = label_probs / label_probs.sum(-1, keepdim=True)
    p_cf = (content_free_probs / content_free_probs.sum(-1, keepdim=True)).mean(0)
    calibrated = p / p_cf
    return calibrated / calibrated.sum(-1, keepdim=True)


def count_tokens(tokenizer: Any, prompts: Sequence[str]) -> list[int]:
    """Tokens in each prompt: what a hosted model bills, and what attention must look at."""
    return [len(tokenizer.encode(p)) for p in prompts]


def kv_cache_mb(config: Any, tokens: int, bytes_per_value: int = 2) -> float:
    """Megabytes of keys and values a decoder keeps for `tokens` tokens (bf16 by default)."""
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return 2 * layers * kv_heads * head_dim * tokens * bytes_per_value / 2**20


@dataclass
class Scores:
    """Label-word log-probabilities for one prompt setting (a template and its examples)."""

    words: tuple[str, ...]
    log_probs: torch.Tensor  # (texts, words)
    content_free_log_probs: torch.Tensor  # (content-free inputs, words)
    tokens_per_prediction: float
    seconds: float

    def _columns(self, words: Sequence[str] | None) -> list[int]:
        return list(range(len(self.words))) if words is None else [self.words.index(w)
                                                                    for w in words]

    def predictions(self, words: Sequence[str] | None = None,
                    calibrated: bool = False) -> torch.Tensor:
        """The label with the highest score (index into `words`), calibrated or not."""
        cols = self._columns(words)
        log_p = self.log_probs[:, cols]
        if calibrated:
            return contextual_calibration(log_p.exp(),
                                          self.content_free_log_probs[:, cols].exp()).argmax(1)
        return log_p.argmax(1)

    def accuracy(self, labels: Sequence[int], words: Sequence[str] | None = None,
                 calibrated: bool = False) -> float:
        """How often the prediction with the verbaliser `words` is `labels`."""
        y = torch.as_tensor(list(labels))
        return float((self.predictions(words, calibrated) == y).float().mean())


def score_prompts(model: Any, tokenizer: Any, template: Template, texts: Sequence[str],
                  words: Sequence[str], shots: Sequence[tuple[str, str]] = (),
                  max_words: int | None = None, batch_size: int = 16,
                  content_free: Sequence[str] = CONTENT_FREE) -> Scores:
    """Score every word of `words` after each text's prompt (and after content-free inputs).

    One pass covers all the words, so several verbalisers cost no more than one: choose
    among them afterwards (`Scores.accuracy(labels, words=("negative", "positive"))`).
    """
    start = time.perf_counter()
    ids = label_token_ids(tokenizer, template.label_texts(words))
    prompts = few_shot_prompts(template, texts, shots, tokenizer, max_words)
    log_p = label_log_probs(model, tokenizer, prompts, ids, batch_size=batch_size)
    free = few_shot_prompts(template, content_free, shots, tokenizer)
    free_log_p = label_log_probs(model, tokenizer, free, ids, batch_size=batch_size)
    return Scores(words=tuple(words), log_probs=log_p, content_free_log_probs=free_log_p,
                  tokens_per_prediction=float(np.mean(count_tokens(tokenizer, prompts))),
                  seconds=time.perf_counter() - start)


def median_latency_ms(predict_one: Callable[[str], Any], texts: Sequence[str],
                      warmup: int = 1) -> float:
    """Median wall time of `predict_one(text)` over `texts`, in ms (batch of one, as served).

    A dry run (`llm_course.env.dry_run`) times the first 2 texts.
    """
    texts = list(texts)[:dry_run.repeats(len(texts))]
    for text in texts[:warmup]:
        predict_one(text)
    times = []
    for text in texts:
        t0 = time.perf_counter()
        predict_one(text)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)
