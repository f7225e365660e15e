"""Checkpoints that survive a crash, and resuming from them (behind `fit`; a run resumes from
its last checkpoint).

A checkpoint is a folder `output_dir/checkpoint-000120/` holding

* `model.safetensors`: the weights (safetensors; tied weights such as GPT-2's shared
  embedding/LM head are stored once and tied again on load);
* `training_state.pt`: optimizer, LR scheduler, random-number generators (Python, NumPy,
  torch, CUDA), the step and data position, and the history so far; plain tensors and
  Python values, read back with `torch.load(weights_only=True)` (no pickled code runs);
* `best_model.safetensors` (only with early stopping): the best weights so far.

It is written atomically: everything goes into a hidden temporary folder that is renamed
into place (`os.replace`) when complete, so a run killed at any moment leaves either the
previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "training_state.pt"
MODEL_FILE = "model.safetensors"
BEST_FILE = "best_model.safetensors"
_NAME = re.compile(r"^checkpoint-(\d+)$")


class CheckpointMismatch(ValueError):
    """The checkpoint was written by a different model (or is not a checkpoint of `fit`)."""


# -- random-number generators --------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The state of every random-number generator training uses, as tensors and numbers."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if getattr(torch, "mps", None) is not None and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state()` returned."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


# -- model shapes: a fingerprint to catch "resumed the wrong model" -----------------------------
def model_shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    """Parameter and buffer names with their shapes."""
    return {name: list(t.shape) for name, t in model.state_dict().items()}


def check_shapes(saved: dict[str, list[int]], model: torch.nn.Module, where: str) -> None:
    """Raise `CheckpointMismatch` with the first difference between `saved` and `model`."""
    here = model_shapes(model)
    if saved == here:
        return
    hint = ("Resume with the same model configuration, or start afresh: resume=False "
            "or another output_dir.")
    for name, shape in here.items():
        if name in saved and saved[name] != shape:
            raise CheckpointMismatch(
                f"the checkpoint in {where} was written by a different model: {name!r} has shape "
                f"{tuple(saved[name])} there but {tuple(shape)} in this model. {hint}")
    missing = sorted(set(here) - set(saved))
    extra = sorted(set(saved) - set(here))
    detail = (f"this model has {len(missing)} tensor(s) the checkpoint lacks (e.g. {missing[0]!r})"
              if missing else f"the checkpoint has {len(extra)} tensor(s) this model lacks "
              f"(e.g. {extra[0]!r})")
    raise CheckpointMismatch(
        f"the checkpoint in {where} was written by a different model: {detail}. {hint}")


# -- finding checkpoints -----------------------------------------------------------------------
def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in `output_dir`, oldest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file() and (p / MODEL_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in `output_dir`, or None."""
    found = list_checkpoints(output_dir)
    return found[-1] if found else None


def _remove_stale_tmp(root: Path) -> None:
    for p in root.glob(".tmp-checkpoint-*"):
        shutil.rmtree(p, ignore_errors=True)


# -- saving --------------------------------------------------------------------------------------
def save_checkpoint(
    output_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    *,
    best_weights: dict[str, torch.Tensor] | None = None,
    scaler: Any = None,
    keep: int = 2,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint `step` atomically and keep only the newest `keep` checkpoints.

    `state` holds the loop's plain-data state (step, data position, history, ...).
    """
    from safetensors.torch import save_file, save_model

    root = Path(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(root)
    final = root / f"checkpoint-{step:06d}"
    tmp = root / f".tmp-checkpoint-{step:06d}-{os.getpid()}"
    tmp.mkdir()
    save_model(model, str(tmp / MODEL_FILE))  # drops duplicate (tied) tensors
    if best_weights is not None:
        save_file({k: v.contiguous() for k, v in _dedupe(best_weights).items()}, str(tmp / BEST_FILE))
    full_state = dict(state)
    full_state.update(
        format=1,
        optimizer=optimizer.state_dict(),
        scheduler=scheduler.state_dict(),
        scaler=scaler.state_dict() if scaler is not None else None,
        rng=rng_state(),
        model_shapes=model_shapes(model),
    )
    torch.save(full_state, tmp / STATE_FILE)
    if config is not None:
        (tmp / "train_config.json").write_text(json.dumps(config, indent=2, default=str))
    for f in tmp.iterdir():  # make the bytes durable before the rename makes them visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # re-saving a step (e.g. a resumed run): move the old one aside first
        old = root / f".tmp-checkpoint-old-{step:06d}-{os.getpid()}"
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, final)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _dedupe(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keep one name per shared storage (safetensors refuses aliased tensors)."""
    seen: set = set()
    out = {}
    for name, t in weights.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key not in seen:
            seen.add(key)
            out[name] = t
    return out


# -- loading ------------------------------------------------------------------------------------
def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into `model` (tied weights stay tied); clear error on mismatch."""
    from safetensors.torch import load_model

    device = str(next(model.parameters()).device)
    try:
        load_model(model, str(path), strict=True, device=device)
    except RuntimeError as err:  # size mismatch, missing or unexpected tensors
        raise CheckpointMismatch(f"cannot load {path} into this model: {err}") from err


def load_best_weights(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The best weights saved with a checkpoint (early stopping), or None."""
    from safetensors.torch import load_file

    f = Path(path) / BEST_FILE
    return load_file(str(f)) if f.is_file() else None


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    scaler: Any = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNGs from checkpoint `path`; return the loop state.

    Raises `CheckpointMismatch` (with the first differing tensor) if another model wrote it.
    """
    path = Path(path)
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise CheckpointMismatch(f"{path / STATE_FILE} is not a readable fit() checkpoint: {err}"
                                 ) from err
    if not isinstance(state, dict) or state.get("format") != 1:
        raise CheckpointMismatch(f"{path} is not a checkpoint written by llm_course.fit")
    check_shapes(state["model_shapes"], model, str(path))
    load_weights(model, path / MODEL_FILE)
    optimizer.load_state_dict(state.pop("optimizer"))
    scheduler.load_state_dict(state.pop("scheduler"))
    scaler_state = state.pop("scaler", None)
    if scaler is not None and scaler_state is not None:
        scaler.load_state_dict(scaler_state)
    set_rng_state(state.pop("rng"))
    return state
