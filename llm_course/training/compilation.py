"""Whether `torch.compile` pays for itself in a run, and compiling safely when it does.

Part of `fit` (llm_course.training.loop): a cold compile costs tens of seconds, so it is only
worth it for runs long enough to win that back.
"""

from __future__ import annotations

import importlib.util
import math
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from llm_course.training.config import TrainConfig

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
