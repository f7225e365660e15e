"""Dry runs (`llm-course run --dry-run`): every loop stops early, records say so, and the `gpu`
scale's lessons run on this CPU (issue 24).

The unit tests below check each loop that honours the switch on tiny models. The last test
runs every lesson at `--scale gpu --dry-run` the way a learner would (see CI_GROUPS);
`benchmarks/dry_run.py` does too, with the time each lesson and its slowest cells took.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from testkit import (
    TokenData,
    ToyClassifier,
    VectorData,
    one_thread_in_a_throwaway_home,
    quiet,
    tiny_bert,
    tiny_gpt,
)

from llm_course.env import dry_run
from llm_course.env import record as rec
from llm_course.training.evaluate import evaluate
from llm_course.training.loop import fit

REPO = Path(__file__).resolve().parent.parent
# Every lesson runs at --scale gpu --dry-run in CI, in two processes of one thread each. Each
# group holds the lesson that builds a course model with those that load it (02's course-gpt:
# 06c; 03's course-bert: 07; 05's course-sentiment: 06, 06b, 08), and the two take about as long.
CI_GROUPS = [["00_", "02_", "04_", "09a", "01b", "06c", "10_", "09c"],
             ["01_", "03_", "05_", "09b", "06_", "06b", "07_", "08_"]]


@pytest.fixture(autouse=True)
def _one_thread(tmp_path_factory, monkeypatch):
    yield from one_thread_in_a_throwaway_home(tmp_path_factory, monkeypatch)


@pytest.fixture
def dry(monkeypatch):
    monkeypatch.setenv(dry_run.DRY_RUN_ENV, "1")


# -- the switch ---------------------------------------------------------------------------------
def test_switch_is_off_unless_the_variable_says_so(monkeypatch):
    monkeypatch.delenv(dry_run.DRY_RUN_ENV, raising=False)
    assert not dry_run.is_dry_run()
    assert dry_run.steps(500) == 500 and dry_run.max_batches(None) is None
    assert dry_run.batch_slices(10, 4) == [slice(0, 4), slice(4, 8), slice(8, 12)]
    assert dry_run.requests(300) == 300
    assert dry_run.sweep([1, 2, 3]) == [1, 2, 3] and dry_run.repeats(10) == 10
    assert dry_run.first_batch([1, 2, 3], 2) == [1, 2, 3] and dry_run.rows(32) == 32
    assert dry_run.new_tokens(40) == 40
    for off in ("0", "", "no"):
        monkeypatch.setenv(dry_run.DRY_RUN_ENV, off)
        assert not dry_run.is_dry_run()


def test_switch_caps_each_kind_of_loop(dry):
    assert dry_run.is_dry_run()
    assert dry_run.steps(500) == 2 and dry_run.steps(1) == 1
    assert dry_run.max_batches(None) == 1 and dry_run.max_batches(20) == 1
    assert dry_run.batch_slices(10, 4) == [slice(0, 2)] and dry_run.batch_slices(0, 4) == []
    assert dry_run.batch_slices(10, 1) == [slice(0, 1)]
    assert dry_run.requests(1000) == 8 and dry_run.requests(3) == 3
    assert dry_run.sweep([1, 2, 3]) == [1, 2] and dry_run.repeats(10) == 2
    assert dry_run.first_batch([1, 2, 3], 2) == [1, 2] and dry_run.first_batch([1, 2, 3], 8) == [1, 2]
    assert dry_run.rows(32) == 2 and dry_run.rows(1) == 1
    assert dry_run.new_tokens(40) == 8 and dry_run.new_tokens(3) == 3


def test_preset_trims_only_what_repeats_the_same_code(monkeypatch):
    from llm_course.env.scale import PRESETS, preset

    real = {section: preset(section, "gpu") for section in dry_run.PRESET_TRIMS}
    assert real["transformer"] == PRESETS["gpu"]["transformer"]
    monkeypatch.setenv(dry_run.DRY_RUN_ENV, "1")
    trimmed = {section: preset(section, "gpu") for section in dry_run.PRESET_TRIMS}
    kv = trimmed["transformer"]
    assert kv["timing_repeats"] == 1
    assert kv["kv_new_tokens"] == real["transformer"]["kv_new_tokens"][:1]  # the shortest
    assert trimmed["prompting"]["seeds"] == 1
    assert trimmed["instruct"]["dpo_betas"] == real["instruct"]["dpo_betas"][:2]
    assert trimmed["chinese"]["bpe_sizes"] == [max(real["chinese"]["bpe_sizes"])]
    for section, values in trimmed.items():  # every other setting is the gpu one
        untouched = set(values) - set(dry_run.PRESET_TRIMS[section])
        assert {k: values[k] for k in untouched} == {k: real[section][k] for k in untouched}
    assert preset("gpt", "gpu") == PRESETS["gpu"]["gpt"]  # sizes are never trimmed


def test_fill_rows_repeats_what_was_computed_up_to_the_length_asked():
    assert dry_run.fill_rows(["a", "b"], 5) == ["a", "b", "a", "b", "a"]
    assert dry_run.fill_rows(np.arange(3), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
    filled = dry_run.fill_rows(torch.eye(2), 3)
    assert filled.shape == (3, 2) and torch.equal(filled[2], filled[0])
    assert dry_run.fill_rows([1, 2, 3], 2) == [1, 2, 3]  # never shortens


def test_a_dry_run_keeps_its_own_course_home(dry, monkeypatch, tmp_path):
    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path))
    assert dry_run.home() == tmp_path / "dry-run"
    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path / "dry-run"))
    assert dry_run.home() == tmp_path / "dry-run"  # not dry-run/dry-run


# -- the loops ----------------------------------------------------------------------------------
def test_fit_stops_after_two_steps_of_two_rows_and_evaluates_one_batch(dry, monkeypatch):
    model = tiny_gpt()
    history = fit(model, TokenData(64), TokenData(40, seed=1),
                  config=quiet(max_steps=50, batch_size=8, eval_batch_size=8))
    assert history.steps == 2 and history.receipt["steps"] == 2
    assert history.receipt["examples"] == 2 * dry_run.ROWS  # two steps of 2 rows, not of 8
    assert "eval_loss" in history.final_eval
    # the dry run evaluated one batch of 2 rows: the loss is those rows', as a real run sees them
    whole = evaluate(model, TokenData(40, seed=1), task="lm", batch_size=8)  # still 2 rows
    monkeypatch.delenv(dry_run.DRY_RUN_ENV)
    first = evaluate(model, torch.utils.data.Subset(TokenData(40, seed=1), range(dry_run.ROWS)),
                     task="lm", batch_size=8)
    assert history.final_eval["eval_loss"] == pytest.approx(first["loss"], rel=1e-5)
    assert whole["loss"] == pytest.approx(first["loss"], rel=1e-5)


def test_evaluate_reads_one_batch(dry):
    calls = []
    model = ToyClassifier()
    model.register_forward_hook(lambda *args: calls.append(1))
    evaluate(model, VectorData(50), task="classification", batch_size=8)
    assert len(calls) == 1


def test_prediction_loops_compute_one_batch_and_keep_the_length(dry):
    from llm_course.applications.monitoring import predict_proba
    from llm_course.deployment.compress import predict_labels
    from llm_course.finetuning.probes import embed

    texts = [f"text number {i} " * (1 + i % 5) for i in range(70)]
    calls = []

    class Tok:  # a whitespace tokenizer with the HF calling convention
        def __call__(self, batch, **kw):
            n = max(len(t.split()) for t in batch)
            ids = torch.tensor([[1 + len(w) for w in t.split()] + [0] * (n - len(t.split()))
                                for t in batch])
            return _Enc(input_ids=ids, attention_mask=(ids > 0).long())

    model = tiny_bert(vocab_size=100, num_labels=3, max_position_embeddings=64)
    model.register_forward_hook(lambda *args: calls.append(1))
    probs = predict_proba(model, Tok(), texts, batch_size=16)
    assert probs.shape == (70, 3) and len(calls) == 1
    vectors = embed(model, Tok(), texts, batch_size=16)
    assert vectors.shape == (70, 32) and np.abs(vectors).sum(1).min() > 0  # no row left empty
    labels = predict_labels(lambda batch: calls.append(1) or np.ones((len(batch), 2)), texts, 16)
    assert labels.shape == (70,) and len(calls) == 2


class _Enc(dict):
    def to(self, device):
        return self


def test_label_scores_come_from_the_first_batch_of_prompts(dry, monkeypatch):
    from llm_course.exercises import lesson_06b
    from llm_course.finetuning import prompting

    tokenizer = lesson_06b.toy_tokenizer()
    encoded = []
    real_encode = tokenizer.encode
    monkeypatch.setattr(tokenizer, "encode",
                        lambda text, **kw: encoded.append(text) or real_encode(text, **kw))
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=len(tokenizer),
                                       n_positions=64, bos_token_id=1, eos_token_id=1)).eval()
    prompts = prompting.few_shot_prompts(prompting.PLAIN, ["good", "bad", "great", "rotten",
                                                           "fresh"], ())
    ids = prompting.label_token_ids(tokenizer, prompting.PLAIN.label_texts(("negative",
                                                                            "positive")))
    encoded.clear()
    got = prompting.label_log_probs(model, tokenizer, prompts, ids, batch_size=2,
                                    precision="fp32")
    assert got.shape == (5, 2) and len(encoded) == 2  # two prompts read, five rows returned
    assert torch.equal(got[2], got[0]) and torch.equal(got[3], got[1])
    assert dry_run.first_batch(prompts, 2) == prompts[:2]


def test_load_test_sends_a_few_requests(dry, tmp_path):
    from testkit import save_tiny_classifier

    from llm_course.deployment import serve

    handle = serve.start_background(save_tiny_classifier(tmp_path / "model"), port=0, timeout=30)
    try:
        report = serve.load_test(handle.url, ["good film"], n_requests=500, concurrency=4)
    finally:
        handle.stop()
    assert report["requests"] == dry_run.REQUESTS and report["ok"] == dry_run.REQUESTS


def test_generation_adds_a_few_tokens(dry):
    from llm_course.models.generate import generate_text

    class Tok:  # one id per character, the HF calling convention
        pad_token_id = eos_token_id = 0

        def __call__(self, text, **kw):
            return {"input_ids": torch.tensor([[1 + ord(c) % 30 for c in text]])}

        def decode(self, ids, **kw):
            return " ".join(map(str, ids.tolist()))

    model = tiny_gpt()
    model.generation_config.eos_token_id = None  # never stops early
    text = generate_text(model, Tok(), "abc", max_new_tokens=40, seed=0)
    assert len(text.split()) == 3 + dry_run.NEW_TOKENS  # the prompt's 3 ids, then 8 new ones


def test_bias_probe_scores_two_texts_and_reports_every_pair(dry):
    from llm_course.deployment import bias_probe

    seen = []
    pairs = bias_probe.counterfactual_pairs("female", "male")
    report = bias_probe.run_probe(
        lambda texts: seen.append(len(texts)) or np.tile([0.4, 0.6], (len(texts), 1)), pairs)
    assert seen == [dry_run.ROWS] and len(report.pairs) == len(pairs) > dry_run.ROWS


def test_timings_repeat_twice(dry):
    from llm_course.deployment.compress import latency_ms
    from llm_course.finetuning.prompting import median_latency_ms

    calls = []
    latency_ms(lambda batch: calls.append(1), ["a"], repeats=10, warmup=1)
    assert len(calls) == 1 + 2
    calls.clear()
    median_latency_ms(lambda text: calls.append(text), [str(i) for i in range(50)], warmup=1)
    assert calls == ["0", "0", "1"]  # the warm-up, then two timed texts


def test_preference_pairs_keep_every_prompt(dry):
    """Found by the gpu dry run of 06c: a 2-step judge leaves no pair above the margin."""
    from llm_course.finetuning.preference import preference_pairs

    pairs = preference_pairs(["p", "q"], [["a", "b"], ["c", "c"]], torch.tensor([.5, .5, .4, .6]),
                             min_margin=0.2)
    assert [p["prompt"] for p in pairs] == ["p", "q"]


def test_probe_tries_two_strengths(dry):
    from llm_course.finetuning.probes import probe

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    fitted = probe(x, y, x, y, Cs=(0.1, 1.0, 10.0, 100.0))
    assert list(fitted.scores) == [0.1, 1.0]


def test_adalora_ranks_exist_before_its_first_reallocation():
    """Found by the gpu dry run of 06: 2 steps end before AdaLoRA's `tinit`."""
    from peft import AdaLoraConfig, get_peft_model

    from llm_course.finetuning.peft_methods import adalora_ranks

    model = get_peft_model(tiny_bert(), AdaLoraConfig(
        task_type="SEQ_CLS", init_r=6, target_r=2, target_modules=["query", "value"],
        total_step=100, tinit=10, tfinal=20))
    ranks = adalora_ranks(model)
    assert ranks == {f"bert.encoder.layer.{i}.attention.self.{m}": 6
                     for i in range(2) for m in ("query", "value")}


# -- records ------------------------------------------------------------------------------------
def test_dry_run_records_say_so_and_bands_are_not_compared(dry, monkeypatch, tmp_path, capsys):
    path = tmp_path / "results.json"
    monkeypatch.setenv(rec.RESULTS_ENV, str(path))
    monkeypatch.setattr(rec, "_RESULTS", {"metrics": {}, "receipt": {}})
    rec.record(val_loss=9.9)
    receipt = rec.receipt(seed=0, scale="gpu", show=True)
    saved = json.loads(path.read_text())
    assert receipt["dry_run"] is True and saved["receipt"]["dry_run"] is True
    assert saved["dry_run"] is True
    assert "dry run" in capsys.readouterr().out
    assert rec.check_band("val_loss", 9.9, {"gpu": (1.0, 2.0)}, scale="gpu") is None
    assert "dry run: not compared" in capsys.readouterr().out


def test_real_runs_still_compare_with_bands(monkeypatch, capsys):
    monkeypatch.delenv(dry_run.DRY_RUN_ENV, raising=False)
    assert rec.check_band("val_loss", 9.9, {"gpu": (1.0, 2.0)}, scale="gpu") is False


# -- the runner ---------------------------------------------------------------------------------
def test_runner_sets_the_switch_and_a_home_for_the_kernel_only(tmp_path, monkeypatch):
    import nbformat

    from llm_course.runner import format_results, run_course

    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(dry_run.DRY_RUN_ENV, raising=False)
    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("scale = None", metadata={"tags": ["parameters"]}),
                  nbformat.v4.new_code_cell(
                      "import os, llm_course\n"
                      "llm_course.record(switch=os.environ.get('LLM_COURSE_DRY_RUN'),\n"
                      "                  home=os.environ.get('LLM_COURSE_HOME'))\n"
                      "llm_course.receipt(seed=0)")]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    (tmp_path / "notebooks").mkdir()
    nbformat.write(book, tmp_path / "notebooks" / "00_probe.ipynb")
    results = run_course("smoke", out=tmp_path / "out", notebooks=tmp_path / "notebooks",
                         dry_run=True)
    entry = results["00_probe"]
    assert entry["status"] == "ok", entry
    assert entry["metrics"] == {"switch": "1", "home": str(tmp_path / "home" / "dry-run")}
    assert entry["dry_run"] and entry["receipt"]["dry_run"]
    assert format_results(results).startswith("A dry run")
    assert dry_run.DRY_RUN_ENV not in os.environ  # set for the kernel, not left behind
    assert os.environ["LLM_COURSE_HOME"] == str(tmp_path / "home")


def _notebook(folder: Path, name: str, code: str) -> None:
    import nbformat

    book = nbformat.v4.new_notebook()
    book.cells = [nbformat.v4.new_code_cell("scale = None", metadata={"tags": ["parameters"]}),
                  nbformat.v4.new_code_cell(code)]
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    folder.mkdir(exist_ok=True)
    nbformat.write(book, folder / name)


def test_a_hung_dry_run_lesson_fails_with_the_reason_then_runs_once_more(tmp_path, monkeypatch):
    """Seen once in CI's two side-by-side dry runs: kernel and papermill both waiting."""
    from llm_course import runner

    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(runner, "DRY_RUN_CELL_TIMEOUT", 3)
    marker = tmp_path / "hung-once"
    _notebook(tmp_path / "notebooks", "00_hangs_once.ipynb",
              f"import pathlib, time\nmarker = pathlib.Path({str(marker)!r})\n"
              "if not marker.exists():\n    marker.touch()\n    time.sleep(120)")
    start = time.time()
    results = runner.run_course("smoke", out=tmp_path / "out", notebooks=tmp_path / "notebooks",
                                dry_run=True)
    entry = results["00_hangs_once"]
    assert entry["status"] == "ok" and "3 s limit" in entry["retried_after"], entry
    assert time.time() - start < 90  # not the 120 s the first run would have slept

    _notebook(tmp_path / "notebooks", "01_hangs.ipynb", "import time\ntime.sleep(120)")
    hung = runner.run_notebook(tmp_path / "notebooks" / "01_hangs.ipynb", tmp_path / "out",
                               "smoke", timeout=2, dry_run=True)
    assert hung["status"] == "failed" and hung["timed_out"], hung
    assert "ran past the 2 s limit" in hung["error"]


def test_cli_has_the_dry_run_flag():
    from llm_course.cli import build_parser

    args = build_parser().parse_args(["run", "--scale", "gpu", "--dry-run"])
    assert args.dry_run and args.scale == "gpu"
    assert not build_parser().parse_args(["run"]).dry_run


# -- the device check ---------------------------------------------------------------------------
def test_gpu_check_without_a_gpu_exits_at_once_and_says_why():
    start = time.time()
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py")],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no CUDA GPU here" in done.stderr and "nothing was checked" in done.stderr
    assert time.time() - start < 60  # imports torch, then stops: nothing runs


# -- lessons ------------------------------------------------------------------------------------
def _dry_run_group(only: list[str], out: Path, home: Path) -> subprocess.Popen:
    """`llm-course run --scale gpu --dry-run --only ...` on one thread, started in the background."""
    env = {**os.environ, "LLM_COURSE_HOME": str(home), "OMP_NUM_THREADS": "1"}
    env.pop("LLM_COURSE_RESULTS_FILE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "llm_course.cli", "run", "--scale", "gpu", "--dry-run",
         "--only", *only, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)


def test_cli_runs_the_gpu_scale_as_a_dry_run(tmp_path):
    """`llm-course run --scale gpu --dry-run` on every lesson, offline, from fresh homes.

    Two processes of one thread each share the 2-core machine (the lessons split in
    `CI_GROUPS`, balanced by their measured times).
    """
    from llm_course.runner import find_notebooks

    lessons = {p.stem for p in find_notebooks()
               if any(p.stem.startswith(prefix) for group in CI_GROUPS for prefix in group)}
    assert len(lessons) == sum(map(len, CI_GROUPS)), "a CI_GROUPS prefix matches no lesson, or two"
    assert lessons == {p.stem for p in find_notebooks()}, "a lesson is in no CI_GROUPS group"
    runs = [_dry_run_group(group, tmp_path / f"out{i}", tmp_path / f"home{i}")
            for i, group in enumerate(CI_GROUPS)]
    outputs = [run.communicate(timeout=1800)[0] for run in runs]
    for run, group, output in zip(runs, CI_GROUPS, outputs, strict=True):
        assert run.returncode == 0, (group, output[-4000:])
        assert "A dry run" in output
    seen = set()
    for i in range(len(CI_GROUPS)):
        results = json.loads((tmp_path / f"out{i}" / "results.json").read_text())
        for stem, entry in results.items():
            assert entry["status"] == "ok" and entry["dry_run"], (stem, entry)
            assert entry["receipt"]["scale"] == "gpu" and entry["receipt"]["dry_run"]
            seen.add(stem)
        assert not (tmp_path / f"home{i}" / "checkpoints").exists()  # models went to dry-run/
    assert seen == lessons
