"""Optional TensorBoard logging for `fit` (`TrainConfig(tensorboard=True)`).
"""

from __future__ import annotations

import math
from typing import Any

from llm_course.training.config import TrainConfig


def tensorboard_writer(cfg: TrainConfig):
    """A TensorBoard SummaryWriter into output_dir/tensorboard, or None (log_to=None)."""
    if cfg.log_to != "tensorboard":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError("log_to='tensorboard' needs the tensorboard package: "
                          "pip install tensorboard") from err
    return SummaryWriter(log_dir=f"{cfg.output_dir}/tensorboard")


def write_scalars(writer: Any, values: dict[str, Any], step: int) -> None:
    if writer is None:
        return
    for k, v in values.items():
        if isinstance(v, (int, float)) and math.isfinite(v):
            writer.add_scalar(k, v, step)
