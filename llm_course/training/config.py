"""`TrainConfig`: every knob of `fit`, as plain data (taught in 00_setup, used in 02-05).

A config is checked when it is made: a wrong value fails at once, before any model or
data work, with a message that names the field and the range that makes sense, e.g.

    >>> TrainConfig(lr=5)
    ValueError: lr=5 is out of range: use 0 < lr <= 1 (typical 1e-5 .. 1e-3)

`dataclasses.replace(config, lr=3e-4)` (or `config.replace(lr=3e-4)`) makes a variant.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from llm_course.env.scale import RECIPES, preset

SCHEDULES = ("linear", "cosine", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
TASKS = (None, "lm", "classification", "token-classification")
LOG_TARGETS = (None, "tensorboard")
OPTIMIZERS = ("adamw", "adafactor")
DEFAULT_WARMUP_RATIO = 0.05
DEFAULT_EPOCHS = 1.0


class ConfigError(ValueError):
    """A TrainConfig field has a value `fit` cannot use."""


@dataclass
class TrainConfig:
    """Hyperparameters and switches for `fit`. All fields are plain Python values.

    Steps are optimizer steps: one step sees `batch_size * grad_accum` examples (per process).
    Give `max_steps` or `epochs` (neither: one epoch), and `warmup_steps` or `warmup_ratio`
    (neither: 5 % of the steps warm up).
    """

    # -- the optimizer step -------------------------------------------------------------
    optimizer: str = "adamw"  # adamw | adafactor (factored second moments: less state, 05)
    lr: float = 3e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int | None = None
    warmup_ratio: float | None = None
    schedule: str = "cosine"  # linear | cosine | constant (after warmup)
    max_grad_norm: float | None = 1.0  # None: no clipping
    # -- how long, in what batches --------------------------------------------------------
    max_steps: int | None = None
    epochs: float | None = None
    batch_size: int = 16  # per device, per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    group_by_length: bool = False  # batches of similar-length examples: less padding (06)
    # -- speed -----------------------------------------------------------------------------
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    compile: bool | str = "auto"  # True | False | "auto" (only for long runs, see training/compilation.py)
    num_workers: int = 0  # DataLoader worker processes
    # -- evaluation, early stopping ----------------------------------------------------------
    task: str | None = None  # None (guess from the model) | lm | classification | token-classification
    eval_every: int | None = None  # steps; None: about 10 evaluations per run; 0: only at the end
    eval_batch_size: int | None = None  # None: batch_size
    eval_batches: int | None = None  # cap on batches per evaluation (None: the whole eval set)
    early_stopping_patience: int | None = None  # evaluations without improvement before stopping
    best_metric: str = "eval_loss"  # what "best" means for early stopping
    # -- reproducibility, checkpoints, logging -----------------------------------------------
    seed: int = 0
    output_dir: str | None = None  # checkpoints go here
    checkpoint_every: int | None = None  # steps; None: one checkpoint at the end (with output_dir)
    keep_checkpoints: int = 2
    log_every: int | None = None  # steps between logged train-loss points; None: automatic
    log_to: str | None = None  # None | "tensorboard"
    log_dir: str | None = None  # TensorBoard's folder; None: output_dir/tensorboard
    progress: bool = True  # tqdm progress bar
    plot: bool = True  # live plot in notebooks, periodic text lines elsewhere
    verbose: bool = True  # False: no precision line and no receipt (a loop of small runs)
    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes, saved with checkpoints

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------------------------
    def validate(self, *, resume: bool = False) -> TrainConfig:
        """Check every field; raise `ConfigError` naming the first bad field and its range.

        `resume=True` (what `fit(..., resume=True)` passes) also needs `output_dir`.
        """
        _range("lr", self.lr, 0, 1, "0 < lr <= 1 (typical 1e-5 .. 1e-3)", low_open=True)
        _range("weight_decay", self.weight_decay, 0, 1, "0 <= weight_decay <= 1 (typical 0 .. 0.1)")
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2):
            raise ConfigError(f"betas={self.betas!r} must be two numbers, e.g. (0.9, 0.999)")
        for i, b in enumerate(self.betas):
            _range(f"betas[{i}]", b, 0, 1, "0 <= beta < 1 (typical 0.9 and 0.95 .. 0.999)",
                   high_open=True)
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ConfigError(
                f"warmup_steps={self.warmup_steps} and warmup_ratio={self.warmup_ratio} are both "
                "set: give one of them (the other stays None)"
            )
        if self.warmup_steps is not None:
            _int("warmup_steps", self.warmup_steps, 0, None, "an integer >= 0")
        if self.warmup_ratio is not None:
            _range("warmup_ratio", self.warmup_ratio, 0, 0.5,
                   "0 <= warmup_ratio <= 0.5 (typical 0.01 .. 0.1)")
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.max_grad_norm is not None:
            _range("max_grad_norm", self.max_grad_norm, 0, 1e6,
                   "max_grad_norm > 0 (typical 1.0), or None for no clipping", low_open=True)
        if self.max_steps is not None and self.epochs is not None:
            raise ConfigError(
                f"max_steps={self.max_steps} and epochs={self.epochs} are both set: "
                "give one of them (the other stays None)"
            )
        if self.max_steps is not None:
            _int("max_steps", self.max_steps, 1, None, "an integer >= 1")
            if self.warmup_steps is not None:
                _warmup_fits(self.warmup_steps, self.max_steps, f"max_steps={self.max_steps}")
        if self.epochs is not None:
            _range("epochs", self.epochs, 0, 10_000, "0 < epochs (e.g. 1, 3 or 0.5)",
                   low_open=True)
        _int("batch_size", self.batch_size, 1, 65_536, "1 <= batch_size <= 65536 (typical 8 .. 64)")
        _int("grad_accum", self.grad_accum, 1, 4096, "1 <= grad_accum <= 4096 (typical 1 .. 16)")
        _choice("precision", self.precision, PRECISIONS)
        if self.compile not in (True, False, "auto"):
            raise ConfigError(f"compile={self.compile!r} is not allowed: use True, False or 'auto'")
        _int("num_workers", self.num_workers, 0, 64, "0 <= num_workers <= 64 (0: load in-process)")
        _choice("task", self.task, TASKS)
        if self.eval_every is not None:
            _int("eval_every", self.eval_every, 0, None,
                 "eval_every >= 1 steps, 0 for only at the end, or None for automatic")
        if self.eval_batch_size is not None:
            _int("eval_batch_size", self.eval_batch_size, 1, 65_536, "1 <= eval_batch_size")
        if self.eval_batches is not None:
            _int("eval_batches", self.eval_batches, 1, None, "eval_batches >= 1, or None for all")
        if self.early_stopping_patience is not None:
            _int("early_stopping_patience", self.early_stopping_patience, 1, 1000,
                 "1 <= early_stopping_patience (typical 2 .. 5 evaluations), or None")
        if not isinstance(self.best_metric, str) or not self.best_metric:
            raise ConfigError(f"best_metric={self.best_metric!r} must name a metric, e.g. 'eval_loss'")
        _int("seed", self.seed, 0, 2**32 - 1, "0 <= seed < 2**32")
        if self.output_dir is not None and not isinstance(self.output_dir, str):
            self.output_dir = str(self.output_dir)  # accept pathlib.Path, keep plain data
        if self.checkpoint_every is not None:
            _int("checkpoint_every", self.checkpoint_every, 1, None, "checkpoint_every >= 1 steps")
            if self.output_dir is None:
                raise ConfigError(
                    f"checkpoint_every={self.checkpoint_every} needs output_dir: "
                    "say where checkpoints go, e.g. output_dir='runs/gpt'"
                )
        if resume and not self.output_dir:
            raise ConfigError("resume=True needs output_dir: the folder whose checkpoints the run "
                              "continues from, e.g. output_dir='runs/gpt'")
        _int("keep_checkpoints", self.keep_checkpoints, 1, 1000, "keep_checkpoints >= 1")
        if self.log_every is not None:
            _int("log_every", self.log_every, 1, None, "log_every >= 1 steps, or None (automatic)")
        _choice("log_to", self.log_to, LOG_TARGETS)
        if self.log_dir is not None and not isinstance(self.log_dir, str):
            self.log_dir = str(self.log_dir)
        if self.log_to == "tensorboard" and self.output_dir is None and self.log_dir is None:
            raise ConfigError("log_to='tensorboard' needs log_dir (or output_dir: logs then go to "
                              "output_dir/tensorboard), e.g. log_dir='runs/tensorboard/05'")
        for name in ("group_by_length", "progress", "plot", "verbose"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} must be True or False")
        if not isinstance(self.extra, dict):
            raise ConfigError(f"extra={self.extra!r} must be a dict")
        return self

    # ------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (JSON-friendly)."""
        d = asdict(self)
        d["betas"] = list(d["betas"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict such as `to_dict()` returns; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig field(s): {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        data = dict(data)
        if "betas" in data:
            data["betas"] = tuple(data["betas"])
        return cls(**data)

    def warmup_for(self, total_steps: int) -> int:
        """Warmup steps for a run of `total_steps` optimizer steps.

        `warmup_steps` longer than the run is a `ConfigError` (a run set by `epochs` learns
        its length only here), not silently shortened.
        """
        if self.warmup_steps is not None:
            _warmup_fits(self.warmup_steps, total_steps, f"the run's {total_steps} steps")
            return self.warmup_steps
        ratio = DEFAULT_WARMUP_RATIO if self.warmup_ratio is None else self.warmup_ratio
        return int(math.ceil(ratio * total_steps))


# -- checks that name the field and the allowed range ----------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _range(name: str, value: Any, low: float, high: float, hint: str,
           low_open: bool = False, high_open: bool = False) -> None:
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r} is not a number: use {hint}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        raise ConfigError(f"{name}={value!r} is out of range: use {hint}")


def _int(name: str, value: Any, low: int, high: int | None, hint: str) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} must be an integer: use {hint}")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{name}={value!r} is out of range: use {hint}")


def _warmup_fits(warmup_steps: int, total_steps: int, what: str) -> None:
    """Warmup longer than the run would never reach the peak learning rate: refuse it."""
    if warmup_steps > total_steps:
        raise ConfigError(
            f"warmup_steps={warmup_steps} is more than {what}: the learning "
            "rate would still be warming up when the run ends. Use warmup_steps <= "
            f"{total_steps} (typically 5-10 % of the steps, e.g. "
            f"warmup_steps={round(0.05 * total_steps)}), or warmup_ratio=0.05 instead")


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        shown = ", ".join(repr(a) for a in allowed)
        raise ConfigError(f"{name}={value!r} is not allowed: choose one of {shown}")


def recipe_config(name: str, scale: str | None = None, **overrides: Any) -> TrainConfig:
    """The TrainConfig of a lesson's recipe at `scale`, e.g. recipe_config("gpt", "laptop").

    The settings come from `llm_course.env.scale.RECIPES` (the same at every scale) and the
    preset section it names (learning rate, steps and batch size); `overrides` win.
    """
    if name not in RECIPES:
        raise ValueError(f"no training recipe {name!r}: choose one of {', '.join(RECIPES)}")
    section, lr, steps, batch = RECIPES[name]["preset"]
    p = preset(section, scale)
    settings = {"lr": p[lr], "max_steps": p[steps], "batch_size": p[batch],
                **RECIPES[name]["settings"], **overrides}
    return TrainConfig(**settings)
