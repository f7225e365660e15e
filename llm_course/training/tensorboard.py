"""Optional TensorBoard logging for `fit` (`TrainConfig(log_to="tensorboard", log_dir=...)`).

Lesson 05 logs its main run and shows how to open the logs.
"""

from __future__ import annotations

import math
from typing import Any

from llm_course.training.config import TrainConfig


def tensorboard_writer(cfg: TrainConfig):
    """A TensorBoard SummaryWriter into log_dir (or output_dir/tensorboard); None when log_to=None."""
    if cfg.log_to != "tensorboard":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("log_to='tensorboard' needs the tensorboard package: "
                          "pip install tensorboard") from err
    return SummaryWriter(log_dir=cfg.log_dir or f"{cfg.output_dir}/tensorboard")


def write_scalars(writer: Any, values: dict[str, Any], step: int) -> None:
    if writer is None:
        return
    for k, v in values.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
            writer.add_scalar(k, v, step)
