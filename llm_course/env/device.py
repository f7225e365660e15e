"""Which device we train on and what it is good at (used by the doctor and `fit`)."""

from __future__ import annotations

import os
import platform
from functools import lru_cache


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when this CPU has bf16 matrix instructions (Intel AMX or AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def best_device() -> str:
    """"cuda" if a CUDA GPU is usable, else "mps" on Apple silicon, else "cpu"."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def describe_device() -> dict:
    """A plain-data description of the compute device, for the doctor and receipts."""
    import torch

    kind = best_device()
    info: dict = {"kind": kind}
    if kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(
            name=props.name,
            memory_gb=round(props.total_memory / 2**30, 1),
            capability=f"{props.major}.{props.minor}",
            bf16=bool(torch.cuda.is_bf16_supported()),
            count=torch.cuda.device_count(),
        )
    elif kind == "mps":
        info.update(name="Apple MPS", bf16=False)
    else:
        info.update(
            name=platform.processor() or platform.machine(),
            threads=torch.get_num_threads(),
            cores=os.cpu_count(),
            bf16=cpu_has_fast_bf16(),
        )
    return info


def autocast_context(device, precision: str = "auto"):
    """bf16 autocast where `precision` asks for it ("auto": on CUDA, or a CPU with fast bf16).

    "fp32" (or "auto" on a device without fast bf16) gives a no-op context.
    """
    import contextlib

    import torch

    device = torch.device(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    fast = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
    if precision == "bf16" or (precision == "auto" and fast):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
