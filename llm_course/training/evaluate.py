"""Evaluation: loss and perplexity, accuracy and macro-F1, entity F1 (taught in 02, 04, 05).

`evaluate(model, dataset)` runs the model over a dataset without gradients and returns
plain numbers:

* language models ("lm"): `loss` (mean cross-entropy per predicted token), `perplexity`
  (exp(loss): the model is as unsure as a uniform choice among that many tokens) and
  `accuracy` (how often the top token is right);
* sequence classification: `loss`, `accuracy`, `macro_f1` (F1 per class, averaged, so
  small classes count as much as big ones);
* token classification (NER): `loss`, `f1`, `precision`, `recall` over whole entities
  (seqeval: "B-PER I-PER" must be found completely), plus token `accuracy`. Positions
  labelled -100 (padding, later sub-tokens) are ignored; tag names come from
  `model.config.id2label`.

Losses are averaged over items (tokens, or examples), not over batches, so a short last
batch counts by its size. `metrics=` adds your own numbers: a function of `(logits, labels)`
(NumPy arrays), or of `(predictions, labels)` if its first parameter is called
`predictions` (or `preds`); it returns a number or a dict of numbers. A dict of such
functions names each result.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from llm_course.env import dry_run
from llm_course.env.device import autocast_context
from llm_course.training.data_checks import check_batch, collate

IGNORE = -100
Metrics = Callable[..., Any] | dict[str, Callable[..., Any]] | None


# -- what kind of model is this? -----------------------------------------------------------------
def base_model(model: torch.nn.Module) -> torch.nn.Module:
    """Unwrap DDP, torch.compile and PEFT wrappers to the HF model underneath."""
    for _ in range(5):
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module  # DDP
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod  # torch.compile
        elif hasattr(model, "get_base_model"):
            model = model.get_base_model()  # PEFT
        else:
            break
    return model


def is_causal_lm(model: torch.nn.Module) -> bool:
    """True for next-token models (GPT-2, Llama, ...): their labels are shifted by one."""
    m = base_model(model)
    name = type(m).__name__
    if getattr(m, "loss_type", None) == "ForCausalLM" or name.endswith("ForCausalLM"):
        return True
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:  # pragma: no cover
        return name.endswith("LMHeadModel")
    return name in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


def infer_task(model: torch.nn.Module) -> str | None:
    """'lm', 'classification', 'token-classification' from the model's class, else None."""
    name = type(base_model(model)).__name__
    if name.endswith("ForTokenClassification"):
        return "token-classification"
    if name.endswith(("ForSequenceClassification", "ForMultipleChoice")):
        return "classification"
    if is_causal_lm(model) or name.endswith(("ForMaskedLM", "ForPreTraining", "LMHeadModel")):
        return "lm"
    return None


def count_items(batch: dict[str, Any], causal: bool) -> int:
    """How many items the model's mean loss averages over in this batch.

    Tokens with a label other than -100 for token-level labels (after the one-position shift
    of causal LMs), examples for one label per example, examples when there are no labels.
    """
    labels = batch.get("labels", batch.get("label"))
    if not isinstance(labels, torch.Tensor):
        first = next((v for v in batch.values() if isinstance(v, torch.Tensor)), None)
        return int(first.shape[0]) if first is not None else 1
    if labels.dim() <= 1:
        return int(labels.shape[0]) if labels.dim() == 1 else 1
    if labels.is_floating_point():  # multi-label targets: BCE averages over every entry
        return int(labels.numel())
    if causal:
        labels = labels[..., 1:]
    return int((labels != IGNORE).sum())


def count_tokens(batch: dict[str, Any]) -> int:
    """Input tokens in a batch (padding excluded when there is an attention mask)."""
    mask = batch.get("attention_mask")
    if isinstance(mask, torch.Tensor):
        return int(mask.sum())
    ids = batch.get("input_ids")
    return int(ids.numel()) if isinstance(ids, torch.Tensor) else 0


def prepare_batch(batch: dict[str, Any], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Keep the tensors of a batch (drop strings), call `label` `labels`, move to `device`."""
    if "labels" not in batch:
        for alt in ("label", "label_ids"):
            if alt in batch:
                batch = {("labels" if k == alt else k): v for k, v in batch.items()}
                break
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()
            if isinstance(v, torch.Tensor)}


# -- metric functions on plain arrays ---------------------------------------------------------------
def perplexity(loss: float) -> float:
    """exp(loss), capped so a huge loss gives inf instead of an overflow error."""
    return math.exp(loss) if loss < 700 else math.inf


def classification_metrics(predictions: Any, labels: Any) -> dict[str, float]:
    """Accuracy and macro-F1 of class predictions (labels -100 are ignored)."""
    from sklearn.metrics import accuracy_score, f1_score

    p, y = np.asarray(predictions).reshape(-1), np.asarray(labels).reshape(-1)
    keep = y != IGNORE
    p, y = p[keep], y[keep]
    if len(y) == 0:
        return {"accuracy": math.nan, "macro_f1": math.nan}
    return {"accuracy": float(accuracy_score(y, p)),
            "macro_f1": float(f1_score(y, p, average="macro", zero_division=0))}


def token_classification_metrics(predictions: Any, labels: Any,
                                 id2label: dict[int, str]) -> dict[str, float]:
    """Entity-level precision/recall/F1 (seqeval) plus token accuracy; -100 positions ignored.

    `predictions` and `labels` are (sentences, positions) arrays or lists of lists of ids.
    """
    from seqeval.metrics import f1_score, precision_score, recall_score

    id2label = {int(k): v for k, v in id2label.items()}
    true_tags, pred_tags = [], []
    right = total = 0
    for p_row, y_row in zip(predictions, labels, strict=True):
        t_seq, p_seq = [], []
        for p, y in zip(p_row, y_row, strict=False):
            if int(y) == IGNORE:
                continue
            t_seq.append(id2label[int(y)])
            p_seq.append(id2label.get(int(p), "O"))
            right += int(p) == int(y)
            total += 1
        true_tags.append(t_seq)
        pred_tags.append(p_seq)
    kw = {"zero_division": 0}
    return {
        "f1": float(f1_score(true_tags, pred_tags, **kw)),
        "precision": float(precision_score(true_tags, pred_tags, **kw)),
        "recall": float(recall_score(true_tags, pred_tags, **kw)),
        "accuracy": right / total if total else math.nan,
    }


def _wants_predictions(fn: Callable[..., Any]) -> bool:
    try:
        first = next(iter(inspect.signature(fn).parameters))
    except (StopIteration, TypeError, ValueError):
        return False
    return first in ("predictions", "preds", "pred", "y_pred")


def _pad_cat(arrays: list[np.ndarray], fill: float) -> np.ndarray:
    """Concatenate along axis 0, padding axis 1 (sequence length) to the longest."""
    if not arrays:
        return np.zeros((0,))
    if arrays[0].ndim < 2 or len({a.shape[1] for a in arrays}) == 1:
        return np.concatenate(arrays)
    width = max(a.shape[1] for a in arrays)
    out = []
    for a in arrays:
        pad = [(0, 0)] * a.ndim
        pad[1] = (0, width - a.shape[1])
        out.append(np.pad(a, pad, constant_values=fill))
    return np.concatenate(out)


def _user_metrics(metrics: Metrics, logits: np.ndarray | None, preds: np.ndarray,
                  labels: np.ndarray) -> dict[str, float]:
    fns = metrics if isinstance(metrics, dict) else {getattr(metrics, "__name__", "metric"): metrics}
    out: dict[str, float] = {}
    for name, fn in fns.items():
        value = fn(preds, labels) if _wants_predictions(fn) else fn(logits, labels)
        if isinstance(value, dict):
            out.update({k: float(v) for k, v in value.items()})
        else:
            out[name] = float(value)
    return out


# -- the evaluation loop ----------------------------------------------------------------------------
@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: Any,
    *,
    task: str | None = None,
    batch_size: int = 32,
    collate_fn: Callable[[list], dict] | None = None,
    metrics: Metrics = None,
    id2label: dict[int, str] | None = None,
    max_batches: int | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    precision: str = "fp32",
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Loss and task metrics of `model` on `dataset` (see the module docstring).

    `autocast` is a context-manager factory for mixed precision (fit passes its own);
    without one, `precision="auto"` evaluates in bf16 where the device is fast at it, as
    `fit` does (about twice as fast on a CPU with AMX), and "fp32" (the default) does not.
    `max_batches` evaluates only the first batches (in dataset order) to save time. The
    first batch is checked against the model's config (ids, length, labels: a `DataError`
    with the fix, see `llm_course.training.data_checks`). A dry run (`llm_course.env.dry_run`)
    evaluates the first batch only, of 2 rows.
    """
    from torch.utils.data import DataLoader

    max_batches, batch_size = dry_run.max_batches(max_batches), dry_run.rows(batch_size)
    task = task or infer_task(model)
    causal = is_causal_lm(model)
    device = device or next(model.parameters()).device
    if autocast is None:
        autocast = functools.partial(autocast_context, device, precision)
    if collate_fn is None and hasattr(dataset, "with_format") and dataset.format["type"] is None:
        dataset = dataset.with_format("torch")  # an HF Dataset of Python lists
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        collate_fn=collate_fn or collate)  # collate: unpadded data gets the fix
    was_training = model.training
    model.eval()
    keep_logits = metrics is not None and not all(
        _wants_predictions(f) for f in (metrics.values() if isinstance(metrics, dict) else [metrics]))
    loss_sum = torch.zeros((), dtype=torch.float64)
    n_items = 0
    all_preds, all_labels, all_logits = [], [], []
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            if i == 0:  # ids, lengths and labels the model cannot take: a DataError with the fix
                check_batch(model, batch, task, where="evaluation")
            batch = prepare_batch(batch, device)
            n = count_items(batch, causal)
            with autocast():
                out = model(**batch)
            if out.loss is not None and n > 0:
                loss_sum += out.loss.detach().double().cpu() * n
                n_items += n
            labels = batch.get("labels")
            if labels is None or task is None:
                continue
            logits = out.logits
            preds = logits.argmax(-1)
            if task == "lm" and causal:  # the logits at position t predict the token at t+1
                preds, labels = preds[..., :-1], labels[..., 1:]
                logits = logits[..., :-1, :]
            all_preds.append(preds.cpu().numpy())
            all_labels.append(labels.cpu().numpy())
            if keep_logits:
                all_logits.append(logits.float().cpu().numpy())
    finally:
        model.train(was_training)

    result: dict[str, float] = {}
    if n_items:
        result["loss"] = float(loss_sum / n_items)
        if task == "lm":
            result["perplexity"] = perplexity(result["loss"])
    if all_labels:
        labels = _pad_cat(all_labels, IGNORE)
        preds = _pad_cat(all_preds, IGNORE)
        if task == "lm":
            keep = labels != IGNORE
            result["accuracy"] = float((preds[keep] == labels[keep]).mean()) if keep.any() else math.nan
        elif task == "classification":
            result.update(classification_metrics(preds, labels))
        elif task == "token-classification":
            id2label = id2label or getattr(getattr(base_model(model), "config", None), "id2label", None)
            if not id2label:
                raise ValueError("token-classification metrics need id2label "
                                 "(model.config.id2label or id2label=...)")
            result.update(token_classification_metrics(preds, labels, id2label))
        if metrics is not None:
            logits = _pad_cat(all_logits, 0.0) if keep_logits else None
            result.update(_user_metrics(metrics, logits, preds, labels))
    return result
