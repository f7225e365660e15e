"""A hyperparameter panel for notebooks (taught in 02_pretraining_gpt; 03-09 use it).

    panel = hyperparameter_panel(config, on_train=lambda cfg: fit(model, train, val, config=cfg))

shows sliders and menus for the main `TrainConfig` fields (a log-scale slider for the
learning rate), a Train button and an output area. Clicking Train builds a new config from
the widgets (`panel.config_from_widgets()`) and calls `on_train(new_config)` inside the
output area, so the live plot and the result appear under the panel.

Nothing waits for a click: run headless (papermill, nbval, CI) the panel is displayed and
the function returns at once, and the notebook goes on with the values of its parameters
cell. Tests can press the button with `panel.button.click()`.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as w

from llm_course.training.config import PRECISIONS, SCHEDULES, TrainConfig
from llm_course.training.live_plot import inside_widget_output

DEFAULT_FIELDS = ("lr", "batch_size", "max_steps", "warmup", "weight_decay", "schedule",
                  "grad_accum", "precision", "seed")


def _controls(config: TrainConfig, fields: Sequence[str]) -> dict[str, Any]:
    """One widget per shown field, keyed by the TrainConfig field it sets."""
    style = {"description_width": "110px"}
    layout = w.Layout(width="420px")
    c: dict[str, Any] = {}
    for name in fields:
        if name == "lr":
            # the slider's grid of exponents passes through the starting value, so the
            # browser, which snaps a slider to its grid, keeps it (1e-6 ... 1 otherwise)
            exponent, step = math.log10(config.lr), 0.1
            low = exponent - step * math.floor((exponent + 6) / step + 1e-9)
            high = low + step * math.ceil(-low / step - 1e-9)
            c["lr"] = w.FloatLogSlider(value=config.lr, base=10, min=low, max=high, step=step,
                                       readout_format=".1e", description="learning rate")
        elif name == "batch_size":
            options = sorted({1, 2, 4, 8, 16, 32, 64, 128, 256, config.batch_size})
            c["batch_size"] = w.Dropdown(options=options, value=config.batch_size,
                                         description="batch size")
        elif name == "max_steps":
            if config.max_steps is not None:
                top = max(1000, 4 * config.max_steps)
                step = max(1, top // 200)
                c["max_steps"] = w.IntSlider(value=config.max_steps,
                                             min=config.max_steps % step or step, max=top,
                                             step=step, description="steps")
            else:
                epochs = 1.0 if config.epochs is None else float(config.epochs)
                c["epochs"] = w.FloatSlider(value=epochs, min=0.1, max=max(20.0, epochs),
                                            step=0.1, description="epochs")
        elif name == "warmup":
            if config.warmup_steps is not None:
                c["warmup_steps"] = w.IntSlider(value=config.warmup_steps, min=0,
                                                max=max(100, 2 * config.warmup_steps),
                                                description="warmup steps")
            else:
                ratio = 0.05 if config.warmup_ratio is None else config.warmup_ratio
                c["warmup_ratio"] = w.FloatSlider(value=ratio, min=0.0, max=0.5, step=0.01,
                                                  description="warmup ratio")
        elif name == "weight_decay":
            c["weight_decay"] = w.FloatSlider(value=config.weight_decay, min=0.0,
                                              max=max(0.3, config.weight_decay), step=0.01,
                                              description="weight decay")
        elif name == "schedule":
            c["schedule"] = w.Dropdown(options=list(SCHEDULES), value=config.schedule,
                                       description="schedule")
        elif name == "grad_accum":
            c["grad_accum"] = w.IntSlider(value=config.grad_accum, min=1,
                                          max=max(16, config.grad_accum), description="grad accum")
        elif name == "precision":
            c["precision"] = w.Dropdown(options=list(PRECISIONS), value=config.precision,
                                        description="precision")
        elif name == "seed":
            c["seed"] = w.BoundedIntText(value=config.seed, min=0, max=2**32 - 1,
                                         description="seed")
        else:
            raise ValueError(f"hyperparameter_panel has no control for {name!r}; "
                             f"choose from {', '.join(DEFAULT_FIELDS)}")
    for widget in c.values():
        widget.style = style
        widget.layout = layout
    return c


class HyperparameterPanel(w.VBox):
    """Sliders + Train button + output. `config_from_widgets()`, `button`, `output`,
    `results` (what each on_train call returned), `last_error`."""

    def __init__(self, config: TrainConfig, on_train: Callable[[TrainConfig], Any],
                 fields: Sequence[str] = DEFAULT_FIELDS) -> None:
        self.base_config = config
        self.on_train = on_train
        self.controls = _controls(config, fields)
        self._initial = {k: c.value for k, c in self.controls.items()}
        self.button = w.Button(description="Train", button_style="primary", icon="play",
                               tooltip="train with these values")
        self.status = w.HTML("")
        self.output = w.Output()
        self.results: list[Any] = []
        self.last_error: BaseException | None = None
        self.button.on_click(self._clicked)
        super().__init__([w.HTML("<b>Hyperparameters</b>"), *self.controls.values(),
                          w.HBox([self.button, self.status]), self.output])

    def changes(self) -> dict[str, Any]:
        """The fields whose widget was moved, with their new values.

        A float the browser sent back rounded to its slider's grid (1e-3 as
        0.0010000000000000002) is no move: the starting config stays exactly as it was.
        """
        return {k: c.value for k, c in self.controls.items() if not _same(c.value, self._initial[k])}

    def config_from_widgets(self) -> TrainConfig:
        """The starting config with the moved widgets' values (validated)."""
        return self.base_config.replace(**self.changes())

    def _clicked(self, _button: Any = None) -> None:
        self.button.disabled = True
        self.status.value = "<i>training...</i>"
        self.last_error = None
        self.output.clear_output(wait=True)
        with self.output:
            try:
                cfg = self.config_from_widgets()
                print("training with", self.changes() or "the starting values")
                with inside_widget_output():  # so the live plot updates in place here
                    self.results.append(self.on_train(cfg))
                self.status.value = "done"
            except Exception as err:  # noqa: BLE001 - show it, keep the panel usable
                self.last_error = err
                self.status.value = f"<span style='color:#b00'>{type(err).__name__}</span>"
                traceback.print_exc()
            finally:
                self.button.disabled = False


def hyperparameter_panel(config: TrainConfig, on_train: Callable[[TrainConfig], Any],
                         fields: Sequence[str] = DEFAULT_FIELDS,
                         show: bool = True) -> HyperparameterPanel:
    """Display (if in IPython and `show`) and return a panel; `on_train(cfg)` runs on click.

    Returns at once: nothing waits for a click.
    """
    panel = HyperparameterPanel(config, on_train, fields)
    if show:
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return panel
        if get_ipython() is not None:
            display(panel)
    return panel


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)
    return a == b
