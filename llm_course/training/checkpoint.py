"""Checkpoints that survive a crash, and resuming from them (behind `fit`; a run resumes from
its last checkpoint).

A checkpoint is a folder `output_dir/checkpoint-000120/` holding

* `model.safetensors`: the weights (safetensors; tied weights such as GPT-2's shared
  embedding/LM head are stored once and tied again on load);
* `training_state.pt`: optimizer, LR scheduler, random-number generators (Python, NumPy,
  torch, CUDA), the step and data position, and the history so far; plain tensors and
  Python values, read back with `torch.load(weights_only=True)` (no pickled code runs);
* `best_model.safetensors` (only with early stopping): the best weights so far;
* `train_config.json`: the TrainConfig, for people reading the folder;
* `manifest.json`, written last: the size and sha256 of every other file, the step and the
  recent training loss.

It is written atomically: everything goes into a hidden temporary folder that is renamed
into place (`os.replace`) when complete, so a run killed at any moment leaves either the
previous checkpoint or the new one, never half of one.

Loading checks the manifest first, so a truncated or bit-rotted file is caught by name
instead of loading wrong weights. Resuming (`resume_checkpoint`) takes the newest *usable*
checkpoint: damaged or incomplete newer ones are reported and skipped, and if none is usable
the error lists each one and what is wrong with it. Checkpoints from before the manifest
still load (unverified, with a note).

Rotation (`keep`) keeps the newest `keep` checkpoints, plus one safety net for a run that
diverged: if every kept checkpoint's recorded training loss is more than `DIVERGED_FACTOR`
(2x) the lowest recorded loss among the older ones, that older lowest-loss checkpoint is
kept too (so at most `keep + 1` folders). A healthy run, whose loss falls, never keeps extra.
Only positive recorded losses (e.g. cross-entropy) take part; checkpoints without one do not.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FILE = "training_state.pt"
MODEL_FILE = "model.safetensors"
BEST_FILE = "best_model.safetensors"
CONFIG_FILE = "train_config.json"
MANIFEST_FILE = "manifest.json"
DIVERGED_FACTOR = 2.0  # see "Rotation" above
_NAME = re.compile(r"^checkpoint-(\d+)$")
_TMP_NAME = re.compile(r"^\.tmp-checkpoint-(?:old-)?(\d+)-\d+$")


class CheckpointMismatch(ValueError):
    """The checkpoint was written by a different model (or is not a checkpoint of `fit`)."""


class CheckpointDamaged(ValueError):
    """A checkpoint cannot be used: damaged (checksum, truncated, unreadable) or incomplete.

    `line` is the one-line reason with the folder's short name, e.g.
    "checkpoint-000120 is damaged (model.safetensors: checksum mismatch)".
    """

    def __init__(self, message: str, line: str | None = None) -> None:
        super().__init__(message)
        self.line = line or message


def _unusable(path: Path, kind: str, detail: str) -> CheckpointDamaged:
    return CheckpointDamaged(f"{path} is {kind} ({detail})", f"{path.name} is {kind} ({detail})")


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


def recorded_loss(path: str | os.PathLike) -> float | None:
    """The training loss recorded in a checkpoint's manifest (mean of the last steps), or None."""
    try:
        loss = json.loads((Path(path) / MANIFEST_FILE).read_text())["train_loss"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(loss) if isinstance(loss, (int, float)) and math.isfinite(loss) else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(folder: Path, step: int, state: dict[str, Any]) -> None:
    """Record size and sha256 of every file in `folder`, plus the step and recent loss."""
    recent = [float(v) for v in state.get("recent_losses") or [] if math.isfinite(v)]
    files = {f.name: {"bytes": f.stat().st_size, "sha256": _sha256(f)}
             for f in sorted(folder.iterdir()) if f.is_file() and f.name != MANIFEST_FILE}
    manifest = {"format": 1, "step": step,
                "train_loss": sum(recent) / len(recent) if recent else None, "files": files}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))


def _last_good(older: list[Path], kept: list[Path]) -> Path | None:
    """The older checkpoint to keep because every kept one looks diverged, or None."""
    known = [(loss, p) for p in older if (loss := recorded_loss(p)) is not None and loss > 0]
    recent = [loss for p in kept if (loss := recorded_loss(p)) is not None]
    if not known or not recent:
        return None
    best_loss, best = min(known, key=lambda lp: lp[0])
    return best if min(recent) > DIVERGED_FACTOR * best_loss else None


def _prune(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (and the last good one, see the module doc)."""
    found = list_checkpoints(root)
    kept, older = found[-keep:], found[:-keep]
    spare = _last_good(older, kept)
    for old in older:
        if old != spare:
            shutil.rmtree(old, ignore_errors=True)


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
    """Write checkpoint `step` atomically and keep the newest `keep` checkpoints.

    `state` holds the loop's plain-data state (step, data position, history, ...); its
    `recent_losses` are recorded in the manifest. An older checkpoint whose loss is far
    better than every kept one's also stays (see "Rotation" in the module docstring).
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
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str))
    _write_manifest(tmp, step, state)  # last: it vouches for the files above
    for f in tmp.iterdir():  # make the bytes durable before the rename makes them visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # re-saving a step (e.g. a resumed run): move the old one aside first
        old = root / f".tmp-checkpoint-old-{step:06d}-{os.getpid()}"
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, final)
    _prune(root, keep)
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
def verify_checkpoint(path: str | os.PathLike) -> bool:
    """Check checkpoint folder `path` against its manifest (sizes and sha256 of every file).

    Returns True if verified, False for a checkpoint from before manifests (nothing to check
    against). Raises `CheckpointDamaged` naming the file and what is wrong with it.
    """
    path = Path(path)
    for name in (STATE_FILE, MODEL_FILE):
        if not (path / name).is_file():
            raise _unusable(path, "incomplete", f"no {name}")
    if not (path / MANIFEST_FILE).is_file():
        return False
    try:
        files = json.loads((path / MANIFEST_FILE).read_text())["files"]
        expected = {name: (int(meta["bytes"]), str(meta["sha256"])) for name, meta in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise _unusable(path, "damaged", f"{MANIFEST_FILE} is unreadable: {err}") from err
    for name, (size, sha) in expected.items():
        f = path / name
        if not f.is_file():
            raise _unusable(path, "incomplete", f"no {name}")
        try:
            actual = f.stat().st_size
            if actual < size:
                raise _unusable(path, "damaged", f"{name}: truncated, {actual:,} of {size:,} bytes")
            if actual != size:
                raise _unusable(path, "damaged", f"{name}: {actual:,} bytes, expected {size:,}")
            if _sha256(f) != sha:
                raise _unusable(path, "damaged", f"{name}: checksum mismatch")
        except OSError as err:
            raise _unusable(path, "damaged", f"{name}: cannot be read: {err}") from err
    return True


def load_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Load safetensors weights into `model` (tied weights stay tied); clear error on mismatch."""
    from safetensors.torch import load_model

    device = str(next(model.parameters()).device)
    try:
        load_model(model, str(path), strict=True, device=device)
    except RuntimeError as err:  # size mismatch, missing or unexpected tensors
        raise CheckpointMismatch(f"cannot load {path} into this model: {err}") from err
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError: the file itself is bad
        path = Path(path)
        raise _unusable(path.parent, "damaged", f"{path.name}: unreadable: {err}") from err


def load_best_weights(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The best weights saved with a checkpoint (early stopping), or None."""
    from safetensors.torch import load_file

    f = Path(path) / BEST_FILE
    if not f.is_file():
        return None
    try:
        return load_file(str(f))
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError
        raise _unusable(Path(path), "damaged", f"{BEST_FILE}: unreadable: {err}") from err


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    scaler: Any = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scheduler and RNGs from checkpoint `path`; return the loop state.

    Verifies the manifest first. Raises `CheckpointDamaged` if a file is missing, truncated,
    altered or unreadable, and `CheckpointMismatch` (with the first differing tensor) if
    another model wrote it.
    """
    path = Path(path)
    verify_checkpoint(path)
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise _unusable(path, "damaged", f"{STATE_FILE}: unreadable: {err}") from err
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


def _step(path: Path) -> int:
    m = _NAME.match(path.name) or _TMP_NAME.match(path.name)
    return int(m.group(1)) if m else -1


def resume_checkpoint(
    output_dir: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    *,
    scaler: Any = None,
    say: Callable[[str], Any] = print,
) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor] | None] | None:
    """Load the newest usable checkpoint in `output_dir`: (its path, loop state, best weights).

    Returns None only when `output_dir` holds no checkpoint at all. Newer checkpoints that are
    damaged or incomplete, and unfinished saves, are reported through `say` and skipped. If
    none is usable, raises `CheckpointDamaged` listing each one and what is wrong with it.
    `CheckpointMismatch` (another model) is raised as is: older checkpoints would not fit either.
    """
    root = Path(output_dir)
    if not root.is_dir():
        return None
    folders = sorted((p for p in root.iterdir() if _NAME.match(p.name)), key=_step)
    leftovers = [p for p in root.iterdir() if _TMP_NAME.match(p.name) and p.is_dir()]
    if not folders and not leftovers:
        return None
    problems = [(_step(p), f"{p.name} is an unfinished save (the run stopped while writing it)")
                for p in leftovers]
    for path in reversed(folders):
        try:
            if not path.is_dir():
                raise _unusable(path, "damaged", "not a folder")
            verified = (path / MANIFEST_FILE).is_file()
            state = load_checkpoint(path, model, optimizer, scheduler, scaler=scaler)
            best = load_best_weights(path)
        except CheckpointDamaged as err:
            problems.append((_step(path), err.line))
            continue
        lines = [line for step, line in sorted(problems, key=lambda sp: -sp[0]) if step > _step(path)]
        if lines:
            say(f"resume: {'; '.join(lines)}; resuming from {path.name} instead")
        if not verified:
            say(f"resume: {path.name} has no checksums (written by an older llm_course), so it "
                "was loaded unverified")
        _note_better_older(path, folders, say)
        return path, state, best
    listing = "\n".join(f"  - {line}" for _, line in sorted(problems, key=lambda sp: -sp[0]))
    raise CheckpointDamaged(
        f"resume=True, but no checkpoint in {root} is usable:\n{listing}\n"
        "Nothing was loaded. To start afresh use resume=False or another output_dir (move these "
        "folders elsewhere first if you want to keep them).")


def _note_better_older(path: Path, folders: list[Path], say: Callable[[str], Any]) -> None:
    """Point out an older checkpoint kept by rotation because this one's loss is far worse."""
    here = recorded_loss(path)
    older = [p for p in folders if _step(p) < _step(path)]
    good = _last_good(older, [path])
    if here is not None and good is not None:
        say(f"resume: note: {good.name} has a much lower training loss ({recorded_loss(good):.4g}) "
            f"than {path.name} ({here:.4g}); the run may have diverged since. To resume from "
            f"{good.name}, move the newer checkpoint folders out of {path.parent}.")
