"""Training in bf16, fp16 or fp32: which precision a run uses, and the Accelerator for it.

Part of `fit` (llm_course.training.loop); the receipt of 00_setup says which
precision ran and why.
"""

from __future__ import annotations

import os

import torch

from llm_course.env.device import best_device, cpu_has_fast_bf16


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
