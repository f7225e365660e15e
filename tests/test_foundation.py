"""Scale presets, record/receipt, the doctor and the command line."""

import importlib
import json
import subprocess
import sys
import time

import pytest

import llm_course
from llm_course.cli import main
from llm_course.env.hub import hub_reachable
from llm_course.env.scale import PRESETS, SCALES, preset, resolve_scale

record_mod = importlib.import_module("llm_course.env.record")  # the module, not the function


def test_scale_resolution(monkeypatch):
    assert resolve_scale("LAPTOP") == "laptop"
    monkeypatch.setenv("LLM_COURSE_SCALE", "gpu")
    assert resolve_scale(None) == "gpu"
    monkeypatch.delenv("LLM_COURSE_SCALE")
    assert resolve_scale(None) in {"laptop", "gpu"}
    with pytest.raises(ValueError, match="choose one of smoke, laptop, gpu"):
        resolve_scale("huge")


def test_presets_are_plain_data_with_the_same_shape_at_every_scale():
    assert set(PRESETS) == set(SCALES)
    for scale in SCALES:
        assert PRESETS[scale].keys() == PRESETS["smoke"].keys()
        for section, values in PRESETS[scale].items():
            assert values.keys() == PRESETS["smoke"][section].keys(), (scale, section)
    copy = preset("gpt", "smoke")
    copy["n_layer"] = 99
    assert PRESETS["smoke"]["gpt"]["n_layer"] != 99
    with pytest.raises(KeyError, match="known"):
        preset("nope", "smoke")


def test_record_and_receipt_write_the_results_file(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    monkeypatch.setenv(record_mod.RESULTS_ENV, str(target))
    monkeypatch.setattr(record_mod, "_RESULTS", {"metrics": {}, "receipt": {}})
    llm_course.record(loss=1.5, curve=[1, 2], bad=float("nan"))
    llm_course.receipt(seed=3, scale="smoke", show=False)
    saved = json.loads(target.read_text())
    assert saved["metrics"] == {"loss": 1.5, "curve": [1, 2], "bad": None}
    assert saved["receipt"]["seed"] == 3 and saved["receipt"]["scale"] == "smoke"
    assert saved["receipt"]["packages"]["torch"]
    with pytest.raises(ValueError):
        llm_course.record()


def test_doctor_honours_offline_and_reports_fixes(monkeypatch, capsys):
    start = time.time()
    report = llm_course.doctor()
    assert time.time() - start < 10
    assert report["hub"] is False  # HF_HUB_OFFLINE=1 in the tests
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().out
    assert report["device"]["kind"] in {"cpu", "cuda", "mps"}
    monkeypatch.setattr(importlib.import_module("llm_course.env.doctor"), "status",
                        lambda: {"scattertext": False})
    report = llm_course.doctor(show=False)
    assert any("llm-course assets install" in f for f in report["fixes"])


def test_hub_probe_is_off_when_offline_is_forced():
    hub_reachable.cache_clear()
    start = time.time()
    assert hub_reachable() is False
    assert time.time() - start < 1


def test_cli_doctor_answers_quickly():
    start = time.time()
    done = subprocess.run([sys.executable, "-m", "llm_course.cli", "doctor"],
                          check=False, capture_output=True, text=True, timeout=15)
    assert "llm-course doctor" in done.stdout
    assert time.time() - start < 15


def test_cli_run_rejects_unknown_lessons(capsys, tmp_path):
    assert main(["run", "--scale", "smoke", "--only", "77", "--out", str(tmp_path)]) == 2
    assert "no notebook matches 77" in capsys.readouterr().err


def test_cli_run_writes_results_with_a_receipt(tmp_path):
    # `--out results`, relative, as the README says it: the kernel runs in notebooks/, so the
    # records must still land in the folder the command was given
    done = subprocess.run(
        [sys.executable, "-m", "llm_course.cli", "run", "--scale", "smoke", "--only", "00",
         "--out", "results"], check=False, capture_output=True, text=True, timeout=300,
        cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "results"
    results = json.loads((out / "results.json").read_text())
    assert results["00_setup"]["status"] == "ok"
    assert results["00_setup"]["receipt"]["scale"] == "smoke"
    assert results["00_setup"]["metrics"], "the lesson's records did not reach results.json"
    assert "1 passed, 0 failed" in done.stdout
    assert (out / "00_setup.ipynb").exists()
    assert "without encryption" not in done.stdout + done.stderr  # ipykernel's TCP warning
