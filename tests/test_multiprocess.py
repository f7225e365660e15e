"""`fit` under `accelerate launch` (lesson 02, "Across several GPUs").

Two CPU processes talking over gloo stand in for two GPUs. With the same global batch
(2 processes x 4 rows against 1 process x 8 rows) and no dropout, the loss curve must be the
same as one process's, to 1e-5 in fp32: the data is sharded so that the two processes' batches
together are the single process's batch (`llm_course.training.batches.epoch_order`), each
micro-batch's loss is weighted by its share of the items of the whole step across processes
(ragged rows make the shares differ), and DDP averages the gradients. A checkpoint written by
the main process resumes in either mode.

One `accelerate launch` runs both two-process runs (about 30 s here, most of it starting the
processes); the one-process runs happen in the test process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from multiprocess_child import CHECKPOINT_AT, STEPS, run

HERE = Path(__file__).parent
TOLERANCE = 1e-5  # fp32; measured differences are under 1e-6 (gloo sums in another order)
LAUNCH_TIMEOUT_S = 300


def _free_port() -> int:
    """A free TCP port for the processes' rendezvous (29500, the default, may be taken by
    another test run on a shared machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two_processes(runs: list[dict], folder: Path) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes 2` of multiprocess_child.py: without a
    GPU, accelerate runs the processes on the CPU with the gloo backend."""
    runs_file = folder / "runs.json"
    runs_file.write_text(json.dumps(runs))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONPATH=os.pathsep.join(
        [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))  # CPU even on a GPU box
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--main_process_port", str(_free_port()),
               str(HERE / "multiprocess_child.py"), str(runs_file)]
    done = subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def _only_checkpoint(source: Path, step: int, target: Path) -> Path:
    """A fresh output_dir holding only `source`'s checkpoint at `step`, to resume from."""
    name = f"checkpoint-{step:06d}"
    shutil.copytree(source / name, target / name)
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, dict]:
    """one: one process, batch 8. two: two processes, batch 4 each. two_from_one: two processes
    resuming one's step-4 checkpoint. one_from_two: one process resuming two's."""
    root = tmp_path_factory.mktemp("multiprocess")
    # One thread, like the children: the first run then measures the matmul peak for the
    # receipt (cached per device and thread count in the course home) so that the launched
    # main process finds it, instead of measuring while the other process waits for it.
    mp = pytest.MonkeyPatch()
    mp.setenv("LLM_COURSE_HOME", str(tmp_path_factory.getbasetemp() / "llm_course_home"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = run(str(root / "one"), str(root / "one.json"), batch_size=8)
        _only_checkpoint(root / "one", CHECKPOINT_AT, root / "two_from_one")
        _launch_two_processes([
            {"output_dir": str(root / "two"), "result": str(root / "two.json"), "batch_size": 4},
            {"output_dir": str(root / "two_from_one"), "result": str(root / "two_from_one.json"),
             "batch_size": 4, "resume": True},
        ], root)
        _only_checkpoint(root / "two", CHECKPOINT_AT, root / "one_from_two")
        one_from_two = run(str(root / "one_from_two"), str(root / "one_from_two.json"),
                           batch_size=8, resume=True)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    out = {"one": one, "one_from_two": one_from_two, "root": root}
    for name in ("two", "two_from_one"):
        out[name] = json.loads((root / f"{name}.json").read_text(),
                               object_hook=lambda d: {int(k) if k.isdigit() else k: v
                                                      for k, v in d.items()})
    return out


def _assert_same_curve(got: dict, want: dict, what: str) -> None:
    assert sorted(got["losses"]) == sorted(want["losses"]) == list(range(1, STEPS + 1))
    for step, loss in want["losses"].items():
        assert got["losses"][step] == pytest.approx(loss, abs=TOLERANCE), f"step {step}"
    assert got["eval_loss"] == pytest.approx(want["eval_loss"], abs=TOLERANCE)
    gap = max(abs(got["losses"][s] - want["losses"][s]) for s in want["losses"])
    print(f"\n{what}: largest loss difference {gap:.1e}")  # shown with -s


def test_two_processes_give_the_loss_curve_of_one_with_the_same_global_batch(runs):
    one, two = runs["one"], runs["two"]
    assert (one["world"], two["world"], two["backend"]) == (1, 2, "gloo")
    assert one["losses"][STEPS] < one["losses"][1] - 0.05, "the curve must move to mean anything"
    _assert_same_curve(two, one, "2 processes vs 1")


def test_a_checkpoint_of_the_main_process_resumes_in_either_mode(runs):
    root = runs["root"]
    saved = sorted(p.name for p in (root / "two").iterdir())
    assert saved == [f"checkpoint-{CHECKPOINT_AT:06d}", f"checkpoint-{STEPS:06d}"]  # once, by rank 0
    _assert_same_curve(runs["two_from_one"], runs["one"], "written by 1, resumed by 2")
    _assert_same_curve(runs["one_from_two"], runs["one"], "written by 2, resumed by 1")
