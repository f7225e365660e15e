"""TrainConfig rejects bad values at once, naming the field and the allowed range."""

from __future__ import annotations

import pytest

from llm_course.env.scale import RECIPES, SCALES, preset
from llm_course.training.config import ConfigError, TrainConfig, recipe_config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"lr": 5}, "lr=5 is out of range: use 0 < lr <= 1 (typical 1e-5 .. 1e-3)"),
        ({"lr": 0}, "lr=0 is out of range"),
        ({"lr": "fast"}, "lr='fast' is not a number"),
        ({"batch_size": 0}, "batch_size=0 is out of range: use 1 <= batch_size"),
        ({"batch_size": 2.5}, "batch_size=2.5 must be an integer"),
        ({"grad_accum": 0}, "grad_accum=0 is out of range"),
        ({"weight_decay": -0.1}, "weight_decay=-0.1 is out of range"),
        ({"warmup_ratio": 0.9}, "warmup_ratio=0.9 is out of range: use 0 <= warmup_ratio <= 0.5"),
        ({"warmup_steps": 10, "warmup_ratio": 0.1}, "give one of them"),
        ({"max_steps": 10, "epochs": 2}, "give one of them"),
        ({"max_steps": 0}, "max_steps=0 is out of range"),
        ({"schedule": "exponential"}, "schedule='exponential' is not allowed: choose one of"),
        ({"precision": "fp8"}, "precision='fp8' is not allowed"),
        ({"compile": "yes"}, "compile='yes' is not allowed"),
        ({"task": "regression"}, "task='regression' is not allowed"),
        ({"max_grad_norm": 0}, "max_grad_norm=0 is out of range"),
        ({"betas": (0.9, 1.0)}, "betas[1]=1.0 is out of range"),
        ({"checkpoint_every": 100}, "checkpoint_every=100 needs output_dir"),
        ({"log_to": "wandb"}, "log_to='wandb' is not allowed"),
        ({"early_stopping_patience": 0}, "early_stopping_patience=0 is out of range"),
        ({"progress": "yes"}, "progress='yes' must be True or False"),
    ],
)
def test_bad_values_are_rejected_with_field_and_range(changes, message):
    with pytest.raises(ConfigError) as info:
        TrainConfig(**changes)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_defaults_and_round_trip():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.precision, cfg.compile, cfg.schedule) == (3e-4, "auto", "auto", "cosine")
    assert cfg.warmup_for(100) == 5  # 5 % by default
    assert TrainConfig(warmup_steps=7).warmup_for(100) == 7
    assert TrainConfig(warmup_ratio=0.0).warmup_for(100) == 0
    same = TrainConfig.from_dict(cfg.to_dict())
    assert same == cfg
    with pytest.raises(ConfigError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"learning_rate": 1e-3})


def test_replace_validates_again():
    cfg = TrainConfig(max_steps=10)
    assert cfg.replace(lr=1e-3).lr == 1e-3
    with pytest.raises(ConfigError, match="lr=2"):
        cfg.replace(lr=2)


def test_numpy_numbers_are_accepted():
    np = pytest.importorskip("numpy")
    cfg = TrainConfig(lr=np.float64(1e-3), batch_size=np.int64(8))
    assert cfg.batch_size == 8


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_a_valid_config_at_every_scale(name, scale):
    section, lr, steps, batch = RECIPES[name]["preset"]
    cfg = recipe_config(name, scale)
    p = preset(section, scale)
    assert (cfg.lr, cfg.max_steps, cfg.batch_size) == (p[lr], p[steps], p[batch])
    for key, value in RECIPES[name]["settings"].items():
        assert getattr(cfg, key) == value, key
    assert recipe_config(name, scale, lr=1e-4, seed=7).lr == 1e-4


def test_recipe_config_names_the_known_recipes():
    with pytest.raises(ValueError, match="choose one of"):
        recipe_config("gtp")
