"""The `llm-course` command line ends every user error with one line and a non-zero status.

Commands run in-process through `llm_course.cli.main`; one test runs the real entry point
(`python -m llm_course.cli`) to check that no traceback reaches the terminal.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from llm_course import cli, runner
from llm_course.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """(status, stderr) of `llm-course ARGV`, run in this process."""
    status = main(list(argv))
    return status, capsys.readouterr().err


def assert_one_line(err: str, *words: str) -> None:
    """stderr is one `llm-course: ...` line holding `words`, and no traceback.

    transformers' "Loading weights" progress bar may come first (the folder loaded that far).
    """
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("Loading weights")]
    assert len(lines) == 1 and lines[0].startswith("llm-course: "), err
    for word in words:
        assert word in lines[0], err


@pytest.fixture
def no_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a notebook would start."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a notebook ran before --out was checked")

    monkeypatch.setattr(runner, "run_notebook", refuse)


# --- run --out ---------------------------------------------------------------------------

def test_run_out_is_a_file(capsys, tmp_path, no_notebook_runs):
    target = tmp_path / "results.txt"
    target.write_text("not a folder")
    status, err = run_cli(capsys, "run", "--scale", "smoke", "--only", "00", "--out", str(target))
    assert status == 2
    assert_one_line(err, str(target), "is a file, not a folder")
    assert target.read_text() == "not a folder"


def test_run_out_below_a_file(capsys, tmp_path, no_notebook_runs):
    (tmp_path / "file").write_text("x")
    below = tmp_path / "file" / "sub"
    status, err = run_cli(capsys, "run", "--scale", "smoke", "--out", str(below))
    assert status == 2
    assert_one_line(err, "is a file, not a folder")


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write to (root ignores modes: then /sys, else skip)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    for candidate in (folder, Path("/sys")):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return candidate
    pytest.skip("no unwritable folder here (running as root without /sys)")


def test_run_out_not_writable(capsys, tmp_path, no_notebook_runs):
    folder = _unwritable_folder(tmp_path)
    try:
        status, err = run_cli(capsys, "run", "--scale", "smoke", "--out", str(folder))
    finally:
        (tmp_path / "read_only").chmod(0o755)
    assert status == 2
    assert_one_line(err, f"cannot write to {folder}", "--out")


def test_run_out_not_creatable(capsys, tmp_path, no_notebook_runs, monkeypatch):
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(runner.tempfile, "TemporaryFile", refuse)
    status, err = run_cli(capsys, "run", "--scale", "smoke", "--out", str(tmp_path / "new"))
    assert status == 2
    assert_one_line(err, "cannot write to", "Permission denied")


# --- serve -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT classifier with MiniLM's tokenizer, saved as safetensors."""
    pytest.importorskip("fastapi")
    pytest.importorskip("torch")
    from testkit import save_tiny_classifier

    return save_tiny_classifier(tmp_path_factory.mktemp("cli_model") / "good")


def _edit_config(folder: Path, **changes: object) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del config[key]
    (folder / "config.json").write_text(json.dumps(config))


def _truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


BROKEN_FOLDERS = {
    "missing folder": (lambda d: shutil.rmtree(d), "model folder not found"),
    "a file": (lambda d: (shutil.rmtree(d), d.write_text("x")), "is a file, not a folder"),
    "no config.json": (lambda d: (d / "config.json").unlink(), "no config.json"),
    "config not JSON": (lambda d: (d / "config.json").write_text("{oops"), "not valid JSON"),
    "config a list": (lambda d: (d / "config.json").write_text("[1, 2]"), '"model_type"'),
    "no model_type": (lambda d: _edit_config(d, model_type=None), '"model_type"'),
    "field of wrong type": (lambda d: _edit_config(d, hidden_size="big"),
                            "not a valid model config"),
    "config and weights disagree": (lambda d: _edit_config(d, hidden_size=48),
                                    "do not match its config.json"),
    "truncated weights": (lambda d: _truncate(d / "model.safetensors", 0.5),
                          "truncated or corrupt"),
    "empty weights": (lambda d: _truncate(d / "model.safetensors", 0), "truncated or corrupt"),
    "garbage weights": (lambda d: (d / "model.safetensors").write_bytes(b"\xff" * 64),
                        "truncated or corrupt"),
    "pickle only": (lambda d: (d / "model.safetensors").rename(d / "pytorch_model.bin"),
                    "no .safetensors weights"),
    "no tokenizer": (lambda d: [p.unlink() for p in d.iterdir()
                                if p.name not in ("config.json", "model.safetensors")],
                     "no tokenizer vocabulary"),
}


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail (instead of blocking) if a test's `serve` gets as far as starting uvicorn."""
    import uvicorn

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(uvicorn.Server, "run", refuse)


@pytest.mark.parametrize("case", list(BROKEN_FOLDERS))
def test_serve_broken_folder_gets_one_line(capsys, tmp_path, good_model, no_server, case):
    folder = tmp_path / "model"
    shutil.copytree(good_model, folder)
    breakage, words = BROKEN_FOLDERS[case]
    breakage(folder)
    status, err = run_cli(capsys, "serve", str(folder), "--port", "0")
    assert status == 2, err
    assert_one_line(err, words)


def test_serve_busy_port_fails_before_loading(capsys, good_model, no_server):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.perf_counter()
        status, err = run_cli(capsys, "serve", str(good_model), "--port", str(port))
    assert status == 2
    assert_one_line(err, f"cannot listen on 127.0.0.1:{port}", "--port")
    assert time.perf_counter() - start < 5


def test_serve_bad_port_is_a_usage_error(capsys):
    status, err = run_cli(capsys, "serve", "anywhere", "--port", "70000")
    assert status == 2 and "out of range" in err and "Traceback" not in err


def test_serve_runs_and_answers(good_model):
    """The real entry point serves the folder on a free loopback port until interrupted."""
    httpx = pytest.importorskip("httpx")
    from testkit import post_when_up, serve_in_subprocess

    proc, url, deadline = serve_in_subprocess([str(good_model), "--port", "0"], dict(os.environ))
    try:
        with httpx.Client(timeout=5) as client:
            reply = post_when_up(client, url + "/predict", deadline, json={"text": "fine"})
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- assets, --debug, internal errors ----------------------------------------------------

def test_assets_unknown_carrier(capsys):
    status, err = run_cli(capsys, "assets", "install", "no-such-carrier")
    assert status == 2
    assert_one_line(err, "unknown carrier 'no-such-carrier'", "choose from")


def test_debug_shows_the_traceback_with_the_same_status(capsys, tmp_path):
    missing = str(tmp_path / "missing")
    for argv in (["--debug", "serve", missing], ["serve", missing, "--debug"]):
        status, err = run_cli(capsys, *argv)
        assert status == 2
        assert "Traceback" in err and "FileNotFoundError" in err
        assert err.strip().splitlines()[-1].startswith("llm-course: model folder not found")


def test_a_bug_is_an_internal_error(capsys, monkeypatch):
    def broken(args: object) -> int:
        return {}["missing key"]

    monkeypatch.setattr(cli, "_doctor", broken)
    status, err = run_cli(capsys, "doctor", "--no-hub")
    assert status == 1
    assert_one_line(err, "internal error: KeyError: 'missing key'", "--debug")
    status, err = run_cli(capsys, "--debug", "doctor", "--no-hub")
    assert status == 1
    assert "Traceback" in err and 'return {}["missing key"]' in err


def test_usage_errors_and_help_return_their_status(capsys):
    assert main(["no-such-command"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out


def test_no_traceback_from_the_real_entry_point(tmp_path, good_model):
    broken = tmp_path / "model"
    shutil.copytree(good_model, broken)
    _truncate(broken / "model.safetensors", 0.3)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for argv, words in ((["serve", str(broken)], "truncated or corrupt"),
                        (["run", "--scale", "smoke", "--out", str(a_file)], "is a file")):
        done = subprocess.run([sys.executable, "-m", "llm_course.cli", *argv],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert words in done.stderr.strip().splitlines()[-1]
