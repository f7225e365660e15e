"""Comparing ways to fine-tune one classifier (taught in 06_peft).

The notebook builds each method's model in plain sight (a `peft` config, `add_adapters`, a
frozen encoder); this module holds the parts around it that are the same for every method:

* `run_method` loads a fresh pretrained classifier, lets the method change it, trains it with
  `fit`, and returns its row for the comparison table (`method_row`: trainable share, wall
  time, memory, test accuracy); `saved_model_row` gives the same row to a model another
  lesson trained and saved (06's full fine-tuning is lesson 05's `course-sentiment`);
* `training_memory` measures what one training step holds in memory: weights, gradients,
  AdamW's two moments and the activations autograd keeps for the backward pass;
* `PrefixForEncoder` makes peft's prefix tuning run on a BERT classifier under
  transformers 5 (see its docstring), and `adalora_steps` calls AdaLoRA's rank allocator
  after every optimizer step of `fit`;
* `folder_size` weighs a saved adapter.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llm_course.models.loading import quiet_loading
from llm_course.models.parameters import count_parameters
from llm_course.training.config import TrainConfig

# peft 0.21 still asks transformers 5 the old name; the warning is theirs, not the learner's
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                        category=FutureWarning)

METHODS: dict[str, str] = {
    "full": "full fine-tuning: every weight trains",
    "head": "head only: the encoder is frozen, only the pooler and the new classifier train",
    "lora": "LoRA (peft): low-rank updates of query and value",
    "adalora": "AdaLoRA (peft): LoRA whose ranks move to where they help most",
    "prefix": "prefix tuning (peft): trainable keys and values in front of every layer",
    "adapter": "bottleneck adapters (llm_course.finetuning.adapters) after each sublayer",
}


def freeze_all_but(model: nn.Module, *names: str) -> nn.Module:
    """Freeze `model` except the modules whose name is in `names` or ends in '.name'."""
    model.requires_grad_(False)
    for name, module in model.named_modules():
        if any(name == n or name.endswith("." + n) for n in names):
            module.requires_grad_(True)
    return model


class PrefixForEncoder(nn.Module):
    """peft's prefix tuning for a BERT-style classifier, wired for transformers 5.

    Prefix tuning keeps `n` trainable key and value vectors per layer (peft's prompt
    encoder) and puts them in front of the real keys and values through the model's
    key-value cache, so every token can attend to them. peft 0.21 checks that the model's
    `forward` has an argument called `past_key_values`; transformers 5 renamed it `cache`,
    so the check fails for BERT ("Model does not support past key values") even though the
    mechanism works. This wrapper does what peft
    would do: get the prefix, extend the attention mask by `n` ones, and call the model.
    The real tokens keep positions 0, 1, 2, ... as in pretraining.
    """

    def __init__(self, peft_model: nn.Module):
        super().__init__()
        self.peft_model = peft_model
        self.num_virtual_tokens = peft_model.peft_config[peft_model.active_adapter].num_virtual_tokens
        encoder = peft_model.get_base_model().base_model  # e.g. BertModel
        self.cache_arg = ("cache" if "cache" in inspect.signature(encoder.forward).parameters
                          else "past_key_values")  # transformers >= 5.x calls it `cache`

    @property
    def config(self) -> Any:
        return self.get_base_model().config

    def get_base_model(self) -> nn.Module:
        return self.peft_model.get_base_model()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **kwargs: Any) -> Any:
        batch, length = input_ids.shape
        prefix = self.peft_model.get_prompt(batch_size=batch)  # a cache holding n keys/values per layer
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        ones = attention_mask.new_ones(batch, self.num_virtual_tokens)
        positions = torch.arange(length, device=input_ids.device).expand(batch, -1)
        return self.peft_model.base_model(
            input_ids=input_ids, attention_mask=torch.cat([ones, attention_mask], dim=1),
            position_ids=positions, labels=labels, **{self.cache_arg: prefix}, **kwargs)


@contextlib.contextmanager
def adalora_steps(model: nn.Module) -> Iterator[None]:
    """While inside, every optimizer step is followed by AdaLoRA's `update_and_allocate`.

    AdaLoRA re-allocates ranks from the gradients, after `optimizer.step()` and before
    `zero_grad()`. `fit` owns its optimizer, so we hook every optimizer step instead.
    Does nothing for models that are not AdaLoRA.
    """
    inner = getattr(model, "base_model", None)
    if not hasattr(inner, "update_and_allocate"):
        yield
        return
    step = {"n": 0}

    def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
        step["n"] += 1
        inner.update_and_allocate(step["n"])

    from torch.optim.optimizer import register_optimizer_step_post_hook

    handle = register_optimizer_step_post_hook(after_step)
    try:
        yield
    finally:
        handle.remove()


def adalora_ranks(model: nn.Module) -> dict[str, int]:
    """The rank AdaLoRA kept for each adapted matrix (after training), by module name.

    Before AdaLoRA first re-allocates (a run shorter than its `tinit` steps, such as a dry
    run), every matrix still has its initial rank.
    """
    config = model.peft_config[model.active_adapter]
    pattern = config.rank_pattern or {}
    if not pattern:
        return {name.removeprefix("base_model.model."): config.init_r
                for name, module in model.named_modules() if hasattr(module, "lora_E")}
    return {name.split(".lora_E")[0].removeprefix("base_model.model."): int(sum(map(bool, keep)))
            for name, keep in pattern.items()}


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    return (t.device.type, t.untyped_storage().data_ptr())


def training_memory(model: nn.Module, batch: dict[str, torch.Tensor],
                    precision: str = "fp32") -> dict[str, float]:
    """Megabytes one training step holds: weights, gradients, AdamW state, activations.

    Weights count every parameter; gradients and AdamW's two fp32 moments only the trainable
    ones. Activations are measured, not guessed: one forward pass records every tensor
    autograd saves for the backward pass (parameters excluded, shared storage counted once).
    A frozen layer below every trainable one saves nothing, which is where head-only
    training and, partly, the adapters save memory.
    """
    params = {id(p): p for p in model.parameters()}.values()
    weights = sum(p.numel() * p.element_size() for p in params)
    trainable = [p for p in params if p.requires_grad]
    grads = sum(p.numel() * p.element_size() for p in trainable)
    adam = sum(2 * p.numel() * 4 for p in trainable)
    param_storage = {_storage_key(p) for p in params}
    saved: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in param_storage:
            saved[key] = t.untyped_storage().nbytes()
        return t

    device = next(iter(params)).device
    batch = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())
    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
            out = model(**batch)
        del out  # frees the graph; no backward needed
    finally:
        model.train(was_training)
    mb = 2.0**20
    activations = sum(saved.values())
    return {"weights_mb": weights / mb, "grads_mb": grads / mb, "adam_mb": adam / mb,
            "activations_mb": activations / mb,
            "total_mb": (weights + grads + adam + activations) / mb}


def run_method(name: str, build: Callable[[nn.Module], nn.Module], data: dict,
               config: TrainConfig, model_name: str = "minilm", seed: int = 0,
               scale: str | None = None, show: bool = False) -> tuple[nn.Module, dict]:
    """Train one method; returns (model, row for the comparison table).

    `build(model)` turns a freshly loaded classifier into the method's model (freezing,
    wrapping). The seed is set before loading, so every method starts from the same
    classifier head. With `show=False` fit's printout is kept short: one line per method.
    """
    from llm_course.models.loading import load_pretrained
    from llm_course.training.loop import fit

    torch.manual_seed(seed)
    with quiet_loading():
        base, _ = load_pretrained(model_name, task="sequence-classification",
                                  label_names=data["label_names"], scale=scale)
    base_total = count_parameters(base)[0]
    model = build(base)
    log = io.StringIO()
    start = time.perf_counter()
    with adalora_steps(model), (contextlib.nullcontext() if show
                                else contextlib.redirect_stdout(log)):
        history = fit(model, data["train"], data["validation"], config=config,
                      collate_fn=data["collator"])
    row = method_row(name, model, data, steps=history.steps, lr=config.lr,
                     train_s=history.receipt["train_seconds"],
                     wall_s=time.perf_counter() - start, precision=history.precision,
                     batch_size=config.batch_size, base_total=base_total,
                     val_accuracy=history.final_eval.get("eval_accuracy"))
    return model, row


def method_row(name: str, model: nn.Module, data: dict, *, steps: int, lr: float,
               train_s: float, wall_s: float, precision: str, batch_size: int,
               base_total: int | None = None, val_accuracy: float | None = None) -> dict:
    """One row of the comparison table for a trained `model`: trainable share, time, memory
    of a training step, test accuracy. `run_method` makes it after training; a model trained
    elsewhere (lesson 05's `course-sentiment`, the full fine-tuning row) gets the same row.
    """
    from llm_course.finetuning.tasks import by_length
    from llm_course.training.evaluate import evaluate

    total, trainable = count_parameters(model)
    test = evaluate(model, by_length(data["test"]), task="classification",
                    collate_fn=data["collator"], batch_size=64, precision="auto")
    sample = data["collator"]([data["train"][i] for i in range(min(batch_size,
                                                                   len(data["train"])))])
    memory = training_memory(model, sample, precision)
    row = {"method": name, "trainable": trainable, "total": total,
           "trainable_share": trainable / total, "added": total - (base_total or total),
           "steps": steps, "lr": lr, "train_s": train_s, "wall_s": wall_s,
           "memory_mb": memory["total_mb"], "activations_mb": memory["activations_mb"],
           "val_accuracy": val_accuracy, "accuracy": test["accuracy"]}
    print(f"{name:>8}: {trainable:>10,} trainable ({100 * row['trainable_share']:.2f} %), "
          f"{steps} steps in {wall_s:.0f} s, test accuracy {test['accuracy']:.1%}")
    return row


def saved_model_row(name: str, load: Callable[[], nn.Module], folder: str | Path, data: dict,
                    config: TrainConfig) -> tuple[nn.Module, dict]:
    """(model, row) for a model another lesson trained and saved in `folder` with `config`.

    `load()` returns the model, training it first when it is missing (a course model's cold
    start). Its training time comes from the `train_seconds` saved with it, else from this
    call when it trained here (else it is unknown: NaN).
    """
    import json

    from llm_course.training.precision import choose_precision

    meta = Path(folder) / "course_model.json"
    trained_before = meta.exists()
    start = time.perf_counter()
    with quiet_loading():
        model = load()
    seconds = time.perf_counter() - start
    saved = json.loads(meta.read_text(encoding="utf-8")).get("metrics", {}) if meta.exists() else {}
    train_s = saved.get("train_seconds", math.nan if trained_before else seconds)
    row = method_row(name, model, data, steps=saved.get("train_steps", config.max_steps),
                     lr=config.lr, train_s=train_s, wall_s=train_s,
                     precision=choose_precision(config.precision)[0],
                     batch_size=config.batch_size)
    return model, row


def folder_size(folder: str | Path) -> int:
    """Bytes of all files in `folder` (e.g. a saved adapter)."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file())
