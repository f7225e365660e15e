"""Pieces around the loop: live view, widgets, compute receipt, checkpoints, data order,
precision choice (llm_course.training: live_plot, widgets, cost, checkpoint, batches, precision)."""

from __future__ import annotations

import json
import math

import ipywidgets
import pytest
import torch
from testkit import ToyClassifier, VectorData, quiet

from llm_course.training import cost, live_plot
from llm_course.training.batches import epoch_order, length_grouped, micro_batches
from llm_course.training.checkpoint import latest_checkpoint, list_checkpoints, save_checkpoint
from llm_course.training.compilation import compile_pays
from llm_course.training.history import History
from llm_course.training.optimizer import make_optimizer
from llm_course.training.precision import choose_precision

ROWS = [{"step": 1, "train_loss": 3.0, "lr": 1e-3, "tokens_per_s": 1000.0},
        {"step": 2, "train_loss": 2.5, "eval_loss": 2.7, "eval_accuracy": 0.4},
        {"step": 3, "train_loss": 2.2}]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLM_COURSE_PLOT", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- live view ---------------------------------------------------------------------------------------
def test_headless_view_prints_throttled_text_lines():
    lines: list[str] = []
    view = live_plot.LiveView("auto", total_steps=3, write=lines.append, text_interval=3600)
    assert view.mode == "text"  # no notebook kernel here
    view.update(ROWS[:1])
    view.update(ROWS[:1])  # throttled: nothing new
    assert lines == ["step 1/3 | loss 3.0000 | lr 1.00e-03 | 1,000 tok/s"]
    view.update(ROWS[:2])  # a new evaluation is always shown
    assert "eval_loss 2.7000" in lines[-1] and len(lines) == 2
    view.close(ROWS)  # the final state once more
    assert lines[-1].startswith("step 3/3") and "eval_loss 2.7000" in lines[-1]
    view.close(ROWS)
    assert len(lines) == 3


def test_notebook_view_updates_one_display_in_place(monkeypatch):
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def fake_display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle()

    monkeypatch.setattr(live_plot, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", fake_display)
    view = live_plot.LiveView("auto", min_interval=0)
    assert view.mode == "plot"
    view.update(ROWS[:1])
    view.update(ROWS[:2])
    view.close(ROWS)
    assert [kind for kind, _ in shown] == ["display", "update", "update"]
    assert shown[0][1].data[:4] == b"\x89PNG"


def test_plot_inside_a_widget_output_updates_an_image_widget(monkeypatch):
    # display updates made inside an ipywidgets Output (a panel's button) never reach the
    # page, so there the live plot must be a widget whose value changes
    import IPython.display
    import ipywidgets

    shown = []
    monkeypatch.setattr(live_plot, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display",
                        lambda obj, display_id=False: shown.append(obj))
    view = live_plot.LiveView("auto", min_interval=0)
    with live_plot.inside_widget_output():
        view.update(ROWS[:1])
        first = view._widget.value
        view.update(ROWS[:2])
        view.close(ROWS)
    assert len(shown) == 1 and isinstance(shown[0], ipywidgets.Image)
    assert shown[0].value[:4] == b"\x89PNG" and shown[0].value != first
    assert live_plot._widget_output_depth == 0


def test_plot_gets_wider_when_eval_metrics_appear():
    fig = live_plot.draw_history([{"step": 1, "train_loss": 3.0}])
    narrow = fig.get_size_inches()[0]
    fig = live_plot.draw_history(ROWS, fig)
    assert len(fig.axes) == 2 and fig.get_size_inches()[0] == pytest.approx(2 * narrow)


def test_plot_of_a_share_starts_at_zero():
    # an accuracy that moves by 1e-4 must not fill the panel as if it jumped
    rows = [{"step": 4, "eval_loss": 7.0, "eval_accuracy": 0.03502},
            {"step": 8, "eval_loss": 6.9, "eval_accuracy": 0.03512}]
    low, high = live_plot.draw_history(rows).axes[1].get_ylim()
    assert low == 0 and high >= 0.05


def test_plot_env_switch(monkeypatch):
    monkeypatch.setenv("LLM_COURSE_PLOT", "none")
    lines: list[str] = []
    view = live_plot.LiveView("auto", write=lines.append)
    view.update(ROWS)
    view.close(ROWS)
    assert view.mode == "none" and lines == []


def test_history_df_and_plot():
    h = History(rows=[dict(r) for r in ROWS])
    h.log(3, eval_loss=2.9)
    assert list(h.df.index) == [1, 2, 3] and h.df.loc[3, "eval_loss"] == 2.9
    assert h.final_eval == {"eval_loss": 2.9} and h.train_loss == 2.2
    fig = h.plot()
    assert len(fig.axes) == 2  # losses, and eval accuracy
    assert "train_loss=2.2" in repr(h)


# -- widgets -------------------------------------------------------------------------------------------
def test_panel_headless_returns_at_once_and_button_trains():
    from llm_course.training.widgets import hyperparameter_panel

    calls = []
    panel = hyperparameter_panel(quiet(max_steps=5, batch_size=8), calls.append)
    assert calls == []  # nothing ran, nothing waits
    assert panel.config_from_widgets() == quiet(max_steps=5, batch_size=8)
    panel.controls["lr"].value = 1e-3
    panel.controls["batch_size"].value = 4
    panel.button.click()
    assert len(calls) == 1 and calls[0].lr == pytest.approx(1e-3) and calls[0].batch_size == 4
    assert panel.changes() == {"lr": pytest.approx(1e-3), "batch_size": 4}
    assert not panel.button.disabled and panel.last_error is None


@pytest.mark.parametrize("lr, max_steps", [(3e-3, 40), (1e-3, 5), (5e-5, 300), (2e-3, 700),
                                           (1e-3, 1200), (6e-4, 5000)])
def test_untouched_panel_keeps_the_preset_after_the_browser_snaps_it(lr, max_steps):
    # The browser snaps each slider to its grid and sends the value back. The grids pass
    # through the starting values, and float noise from the round trip is no change.
    from llm_course.training.widgets import hyperparameter_panel

    start = quiet(lr=lr, max_steps=max_steps, batch_size=8)
    panel = hyperparameter_panel(start, lambda cfg: cfg, show=False)
    for control in panel.controls.values():
        if isinstance(control, ipywidgets.FloatLogSlider):  # a grid of exponents
            k = round((math.log10(control.value) - control.min) / control.step)
            control.value = control.base ** (control.min + k * control.step)
        elif isinstance(control, (ipywidgets.IntSlider, ipywidgets.FloatSlider)):
            k = round((control.value - control.min) / control.step)
            control.value = type(control.value)(control.min + k * control.step)
    assert panel.changes() == {}
    assert panel.config_from_widgets() == start


def test_panel_runs_fit_and_keeps_errors_visible():
    from llm_course.training.loop import fit
    from llm_course.training.widgets import hyperparameter_panel

    panel = hyperparameter_panel(
        quiet(max_steps=3, batch_size=8), show=False,
        on_train=lambda cfg: fit(ToyClassifier(), VectorData(32), config=cfg))
    panel.button.click()
    assert isinstance(panel.results[-1], History) and panel.results[-1].steps == 3
    panel.on_train = lambda cfg: 1 / 0
    panel.button.click()
    assert isinstance(panel.last_error, ZeroDivisionError) and not panel.button.disabled


# -- cost ----------------------------------------------------------------------------------------------
def test_matmul_peak_is_measured_once_and_cached(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(cost, "measure_matmul_peak",
                        lambda device, precision="fp32", seconds=0.4: calls.append(1) or 1e11)
    assert cost.matmul_peak("cpu", "fp32") == 1e11
    assert cost.matmul_peak("cpu", "fp32") == 1e11
    assert len(calls) == 1
    cache = json.loads((tmp_path / "home" / "matmul_peak.json").read_text())
    assert list(cache.values()) == [1e11]


def test_matmul_peak_refresh_keeps_the_best_measurement(monkeypatch, tmp_path):
    measured = iter([3e11, 1e11])  # the second time, the machine is busy
    monkeypatch.setattr(cost, "measure_matmul_peak",
                        lambda device, precision="fp32", seconds=0.4: next(measured))
    assert cost.matmul_peak("cpu", "fp32") == 3e11
    assert cost.matmul_peak("cpu", "fp32", refresh=True) == 3e11


def test_receipt_measures_again_when_the_cached_peak_is_too_low(monkeypatch):
    calls = []

    def peak(device=None, precision="fp32", refresh=False):
        calls.append(refresh)
        return 1e12 if refresh else 1e2  # cached on a busy machine: below what the run achieved

    monkeypatch.setattr(cost, "matmul_peak", peak)
    r = cost.compute_receipt(ToyClassifier(), device="cpu", precision="fp32", steps=10,
                             tokens=1000, examples=10, seconds=2.0)
    assert calls == [False, True] and r["peak_flops"] == 1e12 and r["utilisation"] < 1


def test_receipt_numbers_and_text(monkeypatch):
    monkeypatch.setattr(cost, "matmul_peak", lambda device=None, precision="fp32": 1e12)
    model = ToyClassifier()
    r = cost.compute_receipt(model, device="cpu", precision="fp32", steps=10, tokens=1000,
                                examples=10, seconds=2.0)
    assert r["params_total"] == r["params_trainable"] == 18
    assert r["tokens_per_s"] == 500 and r["achieved_flops"] == 6 * 18 * 1000 / 2.0
    assert r["utilisation"] == pytest.approx(r["achieved_flops"] / 1e12)
    text = cost.format_receipt(r)
    assert "500 tokens/s" in text and "matmul peak" in text and "peak" in text


# -- checkpoints ----------------------------------------------------------------------------------------
def test_checkpoints_are_atomic_and_pruned(tmp_path):
    model = ToyClassifier()
    opt = make_optimizer(model, quiet(), "cpu")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    (tmp_path / ".tmp-checkpoint-000005-99").mkdir()  # what a crash mid-save leaves
    (tmp_path / "checkpoint-000007").mkdir()  # incomplete: no files
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model, opt, sched, {"step": step}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-000002", "checkpoint-000003"]
    assert latest_checkpoint(tmp_path).name == "checkpoint-000003"
    assert not list(tmp_path.glob(".tmp-*"))


# -- data order, optimizer groups, precision, compile ----------------------------------------------------
def test_epoch_order_is_fixed_by_seed_and_epoch():
    assert epoch_order(10, seed=1, epoch=0) == epoch_order(10, seed=1, epoch=0)
    assert epoch_order(10, seed=1, epoch=0) != epoch_order(10, seed=1, epoch=1)
    a, b = epoch_order(11, 0, 0, rank=0, world=2), epoch_order(11, 0, 0, rank=1, world=2)
    assert len(a) == len(b) == 5 and not set(a) & set(b)


def test_skipping_micro_batches_resumes_the_same_stream():
    data = VectorData(10)
    cfg = quiet(batch_size=3)
    full = micro_batches(data, cfg, None)
    first = [next(full)["x"] for _ in range(9)]  # 4 batches per epoch: crosses two epochs
    later = micro_batches(data, cfg, None, start=5)
    for expected in first[5:]:
        torch.testing.assert_close(next(later)["x"], expected)


def test_length_grouping_pads_less_and_keeps_every_example():
    lengths = [int(n) for n in torch.randint(5, 200, (1000,), generator=torch.Generator().manual_seed(0))]
    order = epoch_order(1000, seed=3, epoch=0)
    plain = [order[i:i + 16] for i in range(0, 1000, 16)]
    grouped = length_grouped(order, lengths, 16, seed=3, epoch=0, mega=10)
    assert sorted(i for b in grouped for i in b) == list(range(1000))  # each example once
    assert grouped == length_grouped(order, lengths, 16, seed=3, epoch=0, mega=10)  # seeded

    def padded(batches):
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(grouped) < 0.7 * padded(plain)  # measured 0.59 with these lengths
    longest_first = sorted(range(len(grouped)), key=lambda k: -max(lengths[i] for i in grouped[k]))
    assert longest_first != list(range(len(grouped)))  # batches are shuffled, not sorted


def test_grouped_stream_resumes_where_it_stopped():
    from datasets import Dataset

    data = Dataset.from_dict({"input_ids": [[1] * (1 + i % 7) for i in range(40)]})
    cfg = quiet(batch_size=4, group_by_length=True)
    ids = lambda batch: [len(x["input_ids"]) for x in batch]  # noqa: E731
    first = [next(s) for s in [micro_batches(data, cfg, ids)] for _ in range(14)]  # 10 per epoch
    later = micro_batches(data, cfg, ids, start=6)
    assert [next(later) for _ in range(8)] == first[6:]
    assert max(max(b) - min(b) for b in first) <= 1  # 40 examples, 7 lengths: near-equal batches


def test_group_by_length_needs_token_ids():
    with pytest.raises(ValueError, match="input_ids"):
        next(micro_batches(VectorData(10), quiet(batch_size=3, group_by_length=True), None))


def test_no_weight_decay_on_biases_and_norms():
    opt = make_optimizer(ToyClassifier(), quiet(weight_decay=0.1), "cpu")
    decay = {tuple(p.shape) for g in opt.param_groups if g["weight_decay"] for p in g["params"]}
    plain = [tuple(p.shape) for g in opt.param_groups if not g["weight_decay"] for p in g["params"]]
    assert decay == {(2, 4)} and sorted(plain) == [(2,), (4,), (4,)]


def test_precision_choice_on_cpu(monkeypatch):
    from llm_course.training import precision

    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: True)
    assert choose_precision("auto", "cpu")[0] == "bf16"
    monkeypatch.setattr(precision, "cpu_has_fast_bf16", lambda: False)
    precision, why = choose_precision("auto", "cpu")
    assert precision == "fp32" and "no fast bf16" in why
    precision, why = choose_precision("fp16", "cpu")
    assert precision == "fp32" and "fp16 needs a GPU" in why
    assert choose_precision("auto", "mps")[0] == "fp32"


def test_compile_only_pays_for_long_runs():
    assert compile_pays("cpu", seconds_per_step=0.5, steps_left=100)[0] is False
    assert compile_pays("cpu", seconds_per_step=0.5, steps_left=10_000)[0] is True
    assert compile_pays("mps", seconds_per_step=0.5, steps_left=10**6)[0] is False
