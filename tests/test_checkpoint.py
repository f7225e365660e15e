"""Damaged checkpoints (llm_course.training.checkpoint): checksums in a manifest, falling back
to the last good checkpoint, clear errors when none is usable, and rotation that keeps the
last good checkpoint of a run that diverged."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from testkit import (
    TokenData,
    ToyClassifier,
    VectorData,
    one_thread_in_a_throwaway_home,
    quiet,
    tiny_gpt,
)

from llm_course.training.checkpoint import (
    MANIFEST_FILE,
    MODEL_FILE,
    STATE_FILE,
    CheckpointDamaged,
    list_checkpoints,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
    verify_checkpoint,
)
from llm_course.training.config import ConfigError, TrainConfig
from llm_course.training.loop import fit
from llm_course.training.optimizer import make_optimizer


@pytest.fixture(autouse=True)
def _course_home(tmp_path_factory, monkeypatch):
    yield from one_thread_in_a_throwaway_home(tmp_path_factory, monkeypatch)


# -- helpers -------------------------------------------------------------------------------------
def _parts(seed: int = 0):
    model = ToyClassifier(seed=seed)
    opt = make_optimizer(model, quiet(), "cpu")
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def _save(root: Path, step: int, losses: list[float] | None = None, keep: int = 5,
          fill: float | None = None) -> Path:
    """A checkpoint of ToyClassifier at `step`; `fill` sets every weight (to tell them apart)."""
    model, opt, sched = _parts()
    if fill is not None:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(fill)
    state = {"step": step, "recent_losses": losses if losses is not None else [1.0]}
    return save_checkpoint(root, step, model, opt, sched, state, keep=keep)


def _truncate(f: Path) -> None:
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def _zero_tensor_bytes(f: Path) -> None:
    """Zero every tensor byte of a safetensors file, keeping its header (a valid file)."""
    data = bytearray(f.read_bytes())
    start = 8 + struct.unpack("<Q", data[:8])[0]
    data[start:] = bytes(len(data) - start)
    f.write_bytes(bytes(data))


def _names(root: Path) -> list[str]:
    return [p.name for p in list_checkpoints(root)]


# -- the manifest ------------------------------------------------------------------------------------
def test_each_checkpoint_carries_sizes_checksums_and_loss(tmp_path):
    path = _save(tmp_path, 3, losses=[2.0, 4.0])
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    assert manifest["step"] == 3 and manifest["train_loss"] == 3.0
    assert set(manifest["files"]) == {MODEL_FILE, STATE_FILE}
    assert manifest["files"][MODEL_FILE]["bytes"] == (path / MODEL_FILE).stat().st_size
    assert verify_checkpoint(path) is True


def test_zeroed_tensor_bytes_are_caught_by_the_checksum(tmp_path, capsys):
    from safetensors.torch import load_file

    _save(tmp_path, 1, fill=0.5)
    bad = _save(tmp_path, 2, fill=0.25)
    _zero_tensor_bytes(bad / MODEL_FILE)
    assert all((t == 0).all() for t in load_file(str(bad / MODEL_FILE)).values())  # still loads
    with pytest.raises(CheckpointDamaged, match="model.safetensors: checksum mismatch"):
        verify_checkpoint(bad)
    model, opt, sched = _parts(seed=9)
    with pytest.raises(CheckpointDamaged, match="checkpoint-000002 is damaged"):
        load_checkpoint(bad, model, opt, sched)

    path, state, _ = resume_checkpoint(tmp_path, model, opt, sched)
    assert path.name == "checkpoint-000001" and state["step"] == 1
    assert all((p == 0.5).all() for p in model.parameters())  # the good weights, not zeros
    assert ("resume: checkpoint-000002 is damaged (model.safetensors: checksum mismatch); "
            "resuming from checkpoint-000001 instead") in capsys.readouterr().out


# -- resuming past a damaged newest checkpoint ----------------------------------------------------------
def _run_config(output_dir: Path) -> TrainConfig:
    return quiet(max_steps=12, batch_size=4, lr=2e-3, checkpoint_every=4, keep_checkpoints=3,
                 output_dir=str(output_dir), seed=7, eval_every=0)


def test_truncated_newest_weights_resume_from_the_previous_checkpoint(tmp_path, capsys):
    uninterrupted = fit(tiny_gpt(seed=1, dropout=0.1), TokenData(48, seed=2),
                        config=_run_config(tmp_path))
    assert _names(tmp_path) == ["checkpoint-000004", "checkpoint-000008", "checkpoint-000012"]
    _truncate(tmp_path / "checkpoint-000012" / MODEL_FILE)
    capsys.readouterr()

    resumed = fit(tiny_gpt(seed=1, dropout=0.1), TokenData(48, seed=2),
                  config=_run_config(tmp_path), resume=True)
    out = capsys.readouterr().out
    assert "resume: checkpoint-000012 is damaged (model.safetensors: truncated, " in out
    assert "resuming from checkpoint-000008 instead" in out
    assert "resumed from" in out and "at step 8" in out
    assert resumed.steps == 12  # steps 9..12 again, with the same data and dropout masks
    assert resumed.train_loss == pytest.approx(uninterrupted.train_loss, abs=1e-6)
    assert list(resumed.df.index) == list(uninterrupted.df.index)
    assert verify_checkpoint(tmp_path / "checkpoint-000012")  # written afresh


def test_truncated_weights_of_an_old_style_checkpoint_are_named_too(tmp_path, capsys):
    for step in (1, 2):
        (_save(tmp_path, step) / MANIFEST_FILE).unlink()  # as the previous version wrote them
    _truncate(tmp_path / "checkpoint-000002" / MODEL_FILE)
    path, _, _ = resume_checkpoint(tmp_path, *_parts())
    out = capsys.readouterr().out
    assert path.name == "checkpoint-000001"
    assert "checkpoint-000002 is damaged (model.safetensors: unreadable: " in out
    assert "resuming from checkpoint-000001 instead" in out
    assert out.count("checkpoint-000001 has no checksums (written by an older llm_course)") == 1


def test_an_old_checkpoint_without_manifest_still_loads(tmp_path, capsys):
    fit(ToyClassifier(), VectorData(16), config=quiet(max_steps=2, batch_size=8,
                                                       output_dir=str(tmp_path)))
    (tmp_path / "checkpoint-000002" / MANIFEST_FILE).unlink()
    history = fit(ToyClassifier(), VectorData(16), resume=True,
                  config=quiet(max_steps=3, batch_size=8, output_dir=str(tmp_path)))
    out = capsys.readouterr().out
    assert history.steps == 3
    assert out.count("has no checksums") == 1 and "resumed from" in out


# -- nothing usable: a clear error, not a silent restart ---------------------------------------------
def _two_checkpoints(root: Path) -> None:
    fit(ToyClassifier(), VectorData(16), config=quiet(max_steps=2, batch_size=8, checkpoint_every=1,
                                                       output_dir=str(root)))
    assert _names(root) == ["checkpoint-000001", "checkpoint-000002"]


def test_all_checkpoints_damaged_is_a_clear_error(tmp_path):
    _two_checkpoints(tmp_path)
    _zero_tensor_bytes(tmp_path / "checkpoint-000002" / MODEL_FILE)
    _truncate(tmp_path / "checkpoint-000001" / STATE_FILE)
    with pytest.raises(CheckpointDamaged) as info:
        fit(ToyClassifier(), VectorData(16), resume=True,
            config=quiet(max_steps=4, batch_size=8, output_dir=str(tmp_path)))
    message = str(info.value)
    assert f"no checkpoint in {tmp_path} is usable" in message
    assert "checkpoint-000002 is damaged (model.safetensors: checksum mismatch)" in message
    assert "checkpoint-000001 is damaged (training_state.pt: truncated, " in message
    assert "resume=False or another output_dir" in message


def test_incomplete_checkpoint_is_reported_as_incomplete(tmp_path, capsys):
    _two_checkpoints(tmp_path)
    (tmp_path / "checkpoint-000002" / STATE_FILE).unlink()
    history = fit(ToyClassifier(), VectorData(16), resume=True,
                  config=quiet(max_steps=3, batch_size=8, output_dir=str(tmp_path)))
    out = capsys.readouterr().out
    assert ("resume: checkpoint-000002 is incomplete (no training_state.pt); resuming from "
            "checkpoint-000001 instead") in out
    assert "no checkpoint" not in out and history.steps == 3


def test_only_incomplete_checkpoints_are_an_error_not_a_fresh_start(tmp_path):
    (tmp_path / ".tmp-checkpoint-000005-4242").mkdir()  # killed while writing the first one
    (tmp_path / "checkpoint-000003").mkdir()  # a half-copied folder
    (tmp_path / "checkpoint-000003" / MODEL_FILE).write_bytes(b"")
    with pytest.raises(CheckpointDamaged) as info:
        fit(ToyClassifier(), VectorData(16), resume=True,
            config=quiet(max_steps=2, batch_size=8, output_dir=str(tmp_path)))
    message = str(info.value)
    assert ".tmp-checkpoint-000005-4242 is an unfinished save" in message
    assert "checkpoint-000003 is incomplete (no training_state.pt)" in message
    assert message.index("000005") < message.index("checkpoint-000003")  # newest first


def test_resume_without_output_dir_is_a_config_error():
    with pytest.raises(ConfigError, match="resume=True needs output_dir"):
        fit(ToyClassifier(), VectorData(16), config=quiet(max_steps=1), resume=True)
    with pytest.raises(ConfigError, match="resume=True needs output_dir"):
        TrainConfig().validate(resume=True)


# -- rotation keeps the last good checkpoint of a diverging run ------------------------------------------
@pytest.mark.parametrize("keep", [1, 2])
def test_diverging_run_does_not_rotate_out_the_last_good_checkpoint(tmp_path, keep):
    _save(tmp_path, 10, [3.2], keep=keep)
    _save(tmp_path, 20, [3.0], keep=keep)  # the last good one
    for step, loss in ((30, 40.0), (40, 900.0), (50, 1e5)):  # finite but huge: diverging
        _save(tmp_path, step, [loss], keep=keep)
        assert "checkpoint-000020" in _names(tmp_path)
    newest = ["checkpoint-000040", "checkpoint-000050"][-keep:]
    assert _names(tmp_path) == ["checkpoint-000020", *newest]  # keep + 1 at most
    _save(tmp_path, 60, [2.5], keep=keep)  # recovered: back to the newest `keep`
    assert _names(tmp_path) == ["checkpoint-000050", "checkpoint-000060"][-keep:]


def test_healthy_noisy_run_keeps_exactly_keep(tmp_path):
    for step, loss in ((1, 3.0), (2, 3.3), (3, 2.9), (4, 5.5)):  # never 2x worse than the best
        _save(tmp_path, step, [loss], keep=2)
    assert _names(tmp_path) == ["checkpoint-000003", "checkpoint-000004"]


def test_resume_points_at_the_kept_good_checkpoint(tmp_path, capsys):
    _save(tmp_path, 1, [3.0], keep=1)
    _save(tmp_path, 2, [500.0], keep=1)
    path, _, _ = resume_checkpoint(tmp_path, *_parts())
    out = capsys.readouterr().out
    assert path.name == "checkpoint-000002"
    assert "checkpoint-000001 has a much lower training loss (3)" in out
    assert "move the newer checkpoint folders out of" in out
