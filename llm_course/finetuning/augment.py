"""Text augmentation for few-label fine-tuning (taught in 05_fine_tuning).

With 200 labelled sentences a model soon learns them by heart. Augmentation shows it a
slightly different version of each sentence every time it comes round, so memorising the
exact words stops paying:

* `word_dropout` deletes each word with probability p ("a gripping, funny film" ->
  "a gripping, film"): the label should survive losing a word or two;
* `word_swap` replaces words by others drawn from a table of neighbours; `neighbours`
  builds such a table from a corpus, from words that appear in the same contexts
  (which, beware, often includes antonyms: "good" and "bad" share contexts);
* `AugmentingCollator` applies an augmentation to the raw texts of each training batch
  and then tokenizes, so every epoch sees fresh variants. Pass it to `fit` as the
  `collate_fn`, with a dataset that keeps its `text` column.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

WORD = re.compile(r"[a-z']+")


def word_dropout(text: str, p: float = 0.1, rng: random.Random | None = None) -> str:
    """`text` with each whitespace-separated word deleted with probability `p`.

    At least one word is always kept.
    """
    rng = rng or random.Random()
    words = text.split()
    kept = [w for w in words if rng.random() >= p]
    if not kept and words:
        kept = [rng.choice(words)]
    return " ".join(kept)


def word_swap(text: str, table: dict[str, list[str]], p: float = 0.1,
              rng: random.Random | None = None) -> str:
    """`text` with each word found in `table` replaced, with probability `p`, by a neighbour."""
    rng = rng or random.Random()
    out = []
    for word in text.split():
        options = table.get(word.lower())
        out.append(rng.choice(options) if options and rng.random() < p else word)
    return " ".join(out)


def neighbours(texts: Sequence[str], top_words: int = 3000, k: int = 5, window: int = 2,
               dims: int = 100, seed: int = 0) -> dict[str, list[str]]:
    """For each of the `top_words` most frequent words, its `k` nearest distributional neighbours.

    Counts which words occur within `window` words of each other, reweights the counts by
    positive pointwise mutual information, compresses them with a truncated SVD to `dims`
    numbers per word and takes cosine neighbours. Pure counting: no model, no labels.
    """
    from scipy.sparse import coo_matrix
    from sklearn.decomposition import TruncatedSVD

    tokenized = [WORD.findall(t.lower()) for t in texts]
    counts = Counter(w for words in tokenized for w in words)
    vocab = [w for w, _ in counts.most_common(top_words)]
    index = {w: i for i, w in enumerate(vocab)}
    rows, cols = [], []
    for words in tokenized:
        ids = [index.get(w, -1) for w in words]
        for i, a in enumerate(ids):
            if a < 0:
                continue
            for b in ids[max(0, i - window):i] + ids[i + 1:i + 1 + window]:
                if b >= 0:
                    rows.append(a)
                    cols.append(b)
    n = len(vocab)
    co = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    total = co.sum()
    row_sum = np.asarray(co.sum(1)).ravel()
    col_sum = np.asarray(co.sum(0)).ravel()
    co = co.tocoo()
    pmi = np.log(co.data * total / (row_sum[co.row] * col_sum[co.col]))
    keep = pmi > 0
    ppmi = coo_matrix((pmi[keep], (co.row[keep], co.col[keep])), shape=(n, n)).tocsr()
    svd = TruncatedSVD(n_components=min(dims, n - 1), random_state=seed)
    vectors = svd.fit_transform(ppmi)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-9)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -1)
    best = np.argsort(-sims, axis=1)[:, :k]
    return {vocab[i]: [vocab[j] for j in best[i]] for i in range(n)}


class AugmentingCollator:
    """Augment each training text, then tokenize and pad: a `collate_fn` for `fit`.

    `augment(text, rng)` returns a new text. Examples are dicts with `text` and `labels`
    (or `label`). The random draws come from one generator seeded once, so a run repeats.
    Examples that are already tokenized (no `text`) are only padded, never augmented: that
    is how `fit` evaluates a tokenized validation set with the same `collate_fn`.
    """

    def __init__(self, tokenizer: Any, augment: Callable[[str, random.Random], str],
                 max_length: int = 64, seed: int = 0) -> None:
        self.tokenizer, self.augment, self.max_length = tokenizer, augment, max_length
        self.rng = random.Random(seed)

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        if "text" not in examples[0]:
            from transformers import DataCollatorWithPadding

            return dict(DataCollatorWithPadding(self.tokenizer)(examples))
        texts = [self.augment(e["text"], self.rng) for e in examples]
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        labels = [e["labels"] if "labels" in e else e["label"] for e in examples]
        batch["labels"] = torch.as_tensor(labels)
        return dict(batch)
