"""The parts `fit` is built from (taught alongside train.py in 00_setup and 02).

Each function here is one decision the training loop needs: which precision, which
Accelerator, which optimizer and schedule, which batches in which order, whether to
compile, and whether the run has diverged. `train.py` keeps the loop itself.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from .device import best_device, cpu_has_fast_bf16
from .train_config import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss or the gradients became NaN/inf, or the loss exploded; no update was applied.

    `.history` holds what was logged up to the failure.
    """

    def __init__(self, message: str, history: Any = None) -> None:
        super().__init__(message)
        self.history = history


# -- precision -----------------------------------------------------------------------------
def choose_precision(requested: str = "auto", device: str | None = None) -> tuple[str, str]:
    """Return (precision, why): "bf16", "fp16" or "fp32" for `device`, and the reason in words."""
    kind = (device or best_device()).split(":")[0]
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if requested == "auto" and launcher in ("bf16", "fp16"):
        return launcher, f"auto: `accelerate launch` asked for {launcher}"
    if kind == "cuda":
        major, minor = torch.cuda.get_device_capability()
        name = torch.cuda.get_device_name()
        has_bf16 = major >= 8  # Ampere and newer have bf16 tensor cores
        if requested == "auto":
            if has_bf16:
                return "bf16", f"auto: {name} (compute {major}.{minor}) has bf16 tensor cores"
            return "fp16", (f"auto: {name} (compute {major}.{minor}) has no bf16 tensor cores; "
                            "fp16 autocast with loss scaling (GradScaler)")
        if requested == "bf16" and not has_bf16:
            raise ValueError(f"precision='bf16' needs a GPU with compute capability >= 8.0; "
                             f"{name} has {major}.{minor}: use 'fp16' or 'auto'")
        return requested, f"requested, on {name}"
    if kind == "mps":
        if requested == "auto":
            return "fp32", "auto: on Apple MPS mixed precision gains little and is less mature"
        if requested == "fp16":
            return "fp32", "fp16 on MPS is not supported by fit; using fp32"
        return requested, "requested, on Apple MPS"
    # CPU
    if requested == "auto":
        if cpu_has_fast_bf16():
            return "bf16", "auto: this CPU has fast bf16 matrix instructions, AMX or AVX512-BF16"
        return "fp32", "auto: this CPU has no fast bf16 instructions (neither AMX nor AVX512-BF16)"
    if requested == "fp16":
        fallback = "bf16" if cpu_has_fast_bf16() else "fp32"
        return fallback, f"fp16 needs a GPU (CPUs have no fast fp16 and no GradScaler); using {fallback}"
    if requested == "bf16" and not cpu_has_fast_bf16():
        return "bf16", "requested; this CPU has no fast bf16, expect it slower than fp32"
    return requested, "requested, on CPU"


def make_accelerator(precision: str):
    """An `accelerate.Accelerator` for `precision`, safe to make again in the same process."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState

    mixed = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]
    cpu = best_device() == "cpu"  # lets torchrun / accelerate launch run several CPU processes
    try:
        accelerator = Accelerator(mixed_precision=mixed, cpu=cpu)
    except ValueError:  # a previous fit in this process used another precision
        if PartialState().use_distributed:
            raise
        AcceleratorState._reset_state()
        accelerator = Accelerator(mixed_precision=mixed, cpu=cpu)
    # accelerate keeps some settings process-wide (e.g. from an earlier Trainer): fit does its
    # own gradient accumulation, so reset those.
    accelerator.gradient_accumulation_steps = 1
    accelerator.gradient_state._set_sync_gradients(True)
    return accelerator


# -- optimizer and learning-rate schedule --------------------------------------------------------
def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device_type: str,
                   precision: str = "fp32") -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only (not on biases or norm weights)."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # shared (tied) weights appear once
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters (all requires_grad=False)")
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    # fused: one kernel for the whole update, a little faster. Not with fp16: accelerate can
    # only see skipped (overflowing) steps of an unfused optimizer.
    fused = device_type in ("cuda", "cpu") and precision != "fp16"
    try:
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warmup, then linear or cosine decay to 0, or constant."""
    from transformers import get_scheduler

    name = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.schedule]
    return get_scheduler(name, optimizer, num_warmup_steps=cfg.warmup_for(total_steps),
                         num_training_steps=total_steps)


# -- data: which micro-batches, in which order -----------------------------------------------------
def batches_per_epoch(dataset: Any, batch_size: int, world: int = 1) -> int | None:
    """Micro-batches per epoch on each process (None for a dataset without a length)."""
    if not hasattr(dataset, "__len__"):
        return None
    per_process = len(dataset) // world
    if per_process == 0:
        raise ValueError(f"the training set has {len(dataset)} examples: too few for {world} processes")
    return math.ceil(per_process / batch_size)


def total_steps_for(cfg: TrainConfig, per_epoch: int | None) -> int:
    """Optimizer steps in the run: max_steps, or epochs x micro-batches / grad_accum."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    if per_epoch is None:
        raise ValueError("this dataset has no length (an IterableDataset): set max_steps")
    epochs = 1.0 if cfg.epochs is None else cfg.epochs
    return max(1, math.ceil(epochs * per_epoch / cfg.grad_accum))


def epoch_order(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> list[int]:
    """The shuffled example indices of `epoch` for process `rank`: fixed by (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    order = order[: n - n % world]  # every process gets the same number of examples
    return order[rank::world]


def length_grouped(order: list[int], lengths: Sequence[int], batch_size: int, seed: int,
                   epoch: int, mega: int = 50) -> list[list[int]]:
    """`order` cut into batches of similar length, the batches in a shuffled order.

    Each run of `mega` batches of the shuffled order is sorted by length and cut into
    batches, so a batch pads to nearly its own examples' length instead of the longest in a
    random draw; shuffling the batches afterwards keeps long and short ones mixed over
    time. Fixed by (seed, epoch), like `epoch_order` (what Hugging Face's Trainer calls
    `group_by_length`).
    """
    span = batch_size * mega
    batches = []
    for i in range(0, len(order), span):
        chunk = sorted(order[i:i + span], key=lambda j: lengths[j], reverse=True)
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7)
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]


def example_lengths(dataset: Any) -> list[int]:
    """Tokens per example of a dataset with an `input_ids` column (for `group_by_length`)."""
    names = getattr(dataset, "column_names", None) or []
    if "input_ids" not in names:
        raise ValueError("group_by_length=True needs a dataset with an 'input_ids' column "
                         "(tokenized examples); set group_by_length=False for this data")
    return [len(ids) for ids in dataset["input_ids"]]


def micro_batches(dataset: Any, cfg: TrainConfig, collate_fn: Callable | None, start: int = 0,
                  rank: int = 0, world: int = 1, pin_memory: bool = False) -> Iterator[dict]:
    """Yield micro-batches forever, epoch after epoch, skipping the first `start`.

    The order of each epoch depends only on (seed, epoch), so a resumed run that skips the
    micro-batches it already used sees exactly what the uninterrupted run would have seen.
    """
    from torch.utils.data import DataLoader, default_collate

    collate_fn = collate_fn or default_collate
    kw = {"collate_fn": collate_fn, "num_workers": cfg.num_workers, "pin_memory": pin_memory,
          "generator": torch.Generator()}  # private generator: never touches the global RNG
    per_epoch = batches_per_epoch(dataset, cfg.batch_size, world)
    if per_epoch is None:  # streaming dataset: read and drop what was already used
        if cfg.group_by_length:
            raise ValueError("group_by_length=True needs a dataset with a length, not a stream: "
                             "set group_by_length=False, or load the data without streaming")
        loader = DataLoader(dataset, batch_size=cfg.batch_size, **kw)
        stream = itertools.chain.from_iterable(loader for _ in itertools.count())
        yield from itertools.islice(stream, start, None)
        return
    epoch, skip = divmod(start, per_epoch)
    bs = cfg.batch_size
    lengths = example_lengths(dataset) if cfg.group_by_length else None
    while True:
        order = epoch_order(len(dataset), cfg.seed, epoch, rank, world)
        if lengths is None:
            plan = [order[i:i + bs] for i in range(0, len(order), bs)][skip:]
        else:
            plan = length_grouped(order, lengths, bs, cfg.seed, epoch)[skip:]
        yield from DataLoader(dataset, batch_sampler=plan, **kw)
        epoch, skip = epoch + 1, 0


# -- torch.compile: only where it pays --------------------------------------------------------------
COMPILE_COST_S = 45.0  # a cold compile of a small transformer (33-48 s measured on a 2-core CPU)
COMPILE_GAIN = {"cuda": 0.3, "cpu": 0.15}  # typical speed-ups (CPUs vary from 0 to 35 %)


def compile_supported(device_type: str) -> tuple[bool, str]:
    """Can torch.compile work here? (needs a C++ compiler on CPU, Triton on CUDA; not MPS)"""
    if device_type == "mps":
        return False, "not on Apple MPS"
    if sys.platform == "win32":
        return False, "not on Windows"
    if device_type == "cuda" and importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed"
    if device_type == "cpu" and not any(shutil.which(c) for c in ("g++", "c++", "clang++")):
        return False, "no C++ compiler found"
    return True, ""


def compile_pays(device_type: str, seconds_per_step: float, steps_left: int) -> tuple[bool, str]:
    """Compile when the time it saves on the rest of the run is at least twice what it costs."""
    gain = COMPILE_GAIN.get(device_type, 0.0)
    left = seconds_per_step * steps_left
    need = 2 * COMPILE_COST_S / gain if gain else math.inf
    if left >= need:
        return True, (f"auto: about {left / 60:.0f} min of training left; compiling takes "
                      f"~{COMPILE_COST_S:.0f} s and saves ~{100 * gain:.0f} %")
    return False, (f"auto: about {left / 60:.1f} min of training left; compiling (~"
                   f"{COMPILE_COST_S:.0f} s) pays only for runs over ~{need / 60:.0f} min here")


def try_compile(model: torch.nn.Module, batch: dict, accelerator: Any, say: Callable
                ) -> tuple[torch.nn.Module, bool]:
    """torch.compile `model` and try it on `batch` (forward + backward, gradients discarded).

    Returns (compiled model, True), or (model, False) with a message if compiling fails.
    """
    compiled = torch.compile(model)
    t0 = time.perf_counter()
    try:
        with accelerator.autocast():
            loss = compiled(**batch).loss
        accelerator.backward(loss * 0.0)
    except Exception as err:  # noqa: BLE001 - any compiler failure: keep training without it
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
        say(f"torch.compile failed ({type(err).__name__}: {first}); continuing without it")
        model.zero_grad(set_to_none=True)
        return model, False
    model.zero_grad(set_to_none=True)
    say(f"torch.compile: ready in {time.perf_counter() - t0:.0f} s")
    return compiled, True


def compile_plan(cfg: TrainConfig, device_type: str, start: int, total: int, history: Any,
                 say: Callable) -> int | None:
    """The step at which to (consider) compiling, or None for never.

    compile=True compiles at the first step; "auto" times 10 steps first and then compiles
    only if the rest of the run is long enough to pay back the compile time.
    """
    if cfg.compile is False:
        history.compile_reason = "off"
        return None
    ok, why = compile_supported(device_type)
    if not ok:
        history.compile_reason = f"not available: {why}"
        if cfg.compile is True:
            say(f"torch.compile: {history.compile_reason}; continuing without it")
        return None
    if cfg.compile is True:
        history.compile_reason = "requested"
        return start
    if total - start < 200:  # too short to ever pay for the compile
        history.compile_reason = f"auto: {total - start} steps are too few to pay for compiling"
        return None
    return start + 10


def should_compile(cfg: TrainConfig, device_type: str, seconds_per_step: float, steps_left: int,
                   history: Any, say: Callable) -> bool:
    """Decide at the planned step; "auto" says what it decided and why."""
    if cfg.compile is True:
        return True
    pays, why = compile_pays(device_type, seconds_per_step, steps_left)
    history.compile_reason = why
    say(f"torch.compile: {'yes' if pays else 'no'} ({why})")
    return pays


# -- divergence ------------------------------------------------------------------------------------
CE_TASKS = ("lm", "classification", "token-classification")


def divergence(loss: float, grad_norm: float, state: dict, cfg: TrainConfig, precision: str,
               task: str | None, step: int, skipped_in_a_row: int = 0) -> str | None:
    """Why this step must not be applied (a sentence), or None if it looks healthy.

    NaN/inf loss or gradients stop the run at once (in fp16 only after many skipped steps:
    there the GradScaler skips overflowing steps and lowers its scale by itself). A
    cross-entropy loss that grows to 4x its starting value is also treated as divergence.
    """
    lr_hint = (f"the learning rate is probably too high (lr={cfg.lr:g}; try {cfg.lr / 10:g}, "
               "typical 1e-5 .. 1e-3)")
    finite = math.isfinite(loss) and math.isfinite(grad_norm)
    if precision == "fp16" and skipped_in_a_row >= 20:
        return (f"20 steps in a row overflowed in fp16 (inf/NaN gradients) up to step {step}: "
                f"fp16 overflow (use precision='bf16' or 'fp32'), or {lr_hint}")
    if precision == "fp16" and not finite:
        return None  # the GradScaler skips this step and lowers its scale
    if not finite:
        what = "loss" if not math.isfinite(loss) else "gradient norm"
        value = loss if not math.isfinite(loss) else grad_norm
        return f"the {what} became {value} at step {step}: {lr_hint}"
    recent = state["recent_losses"]
    first = state.get("first_loss")
    if task in CE_TASKS and first is not None and len(recent) >= 5:
        avg = sum(recent[-5:]) / 5
        if avg > 4 * max(first, 1.0):
            return (f"the loss exploded: {first:.3g} at the start, {avg:.3g} on average over the "
                    f"last 5 steps (step {step}): {lr_hint}")
    return None


# -- TensorBoard (optional) ------------------------------------------------------------------
def tensorboard_writer(cfg: TrainConfig):
    """A TensorBoard SummaryWriter into output_dir/tensorboard, or None (log_to=None)."""
    if cfg.log_to != "tensorboard":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("log_to='tensorboard' needs the tensorboard package: "
                          "pip install tensorboard") from err
    return SummaryWriter(log_dir=f"{cfg.output_dir}/tensorboard")


def write_scalars(writer: Any, values: dict[str, Any], step: int) -> None:
    if writer is None:
        return
    for k, v in values.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
            writer.add_scalar(k, v, step)
