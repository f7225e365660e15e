"""Scale presets: one knob that every notebook obeys (taught in 00_setup).

`smoke` runs each notebook in seconds (CI), `laptop` in minutes on a CPU with real
learning, `gpu` at full size on a Colab T4 to A100. The presets are plain data, keyed
by scale and then by the part of the course that reads them; change them here.
"""

from __future__ import annotations

import copy
import os

SCALES = ("smoke", "laptop", "gpu")

PRESETS: dict[str, dict[str, dict]] = {
    "smoke": {
        # dataset sizes: examples per split (None = everything the source has)
        "data": {"train": 400, "validation": 100, "test": 100, "corpus_chars": 300_000},
        "tokenizer": {"vocab_size": 2048, "vocab_sizes": [256, 512, 1024, 2048]},
        "gpt": {"n_layer": 2, "n_head": 2, "n_embd": 64, "block_size": 64,
                "batch_size": 8, "max_steps": 40, "lr": 3e-3},
        "bert": {"num_hidden_layers": 2, "num_attention_heads": 2, "hidden_size": 64,
                 "max_length": 64, "batch_size": 8, "max_steps": 40, "lr": 3e-3},
        "finetune": {"max_length": 48, "batch_size": 16, "max_steps": 20, "lr": 5e-5},
        # lesson 02's scaling experiment: (n_layer, n_embd) per model, same tokens for each
        "gpt_scaling": {"sizes": [[1, 32], [2, 64]], "max_steps": 20},
    },
    "laptop": {
        "data": {"train": None, "validation": None, "test": None, "corpus_chars": None},
        "tokenizer": {"vocab_size": 8192, "vocab_sizes": [512, 1024, 2048, 4096, 8192, 16384]},
        "gpt": {"n_layer": 4, "n_head": 4, "n_embd": 256, "block_size": 128,
                "batch_size": 16, "max_steps": 1200, "lr": 1e-3},
        "bert": {"num_hidden_layers": 4, "num_attention_heads": 4, "hidden_size": 256,
                 "max_length": 128, "batch_size": 16, "max_steps": 1200, "lr": 1e-3},
        "finetune": {"max_length": 64, "batch_size": 32, "max_steps": 600, "lr": 5e-5},
        "gpt_scaling": {"sizes": [[2, 64], [3, 128], [4, 256]], "max_steps": 150},
    },
    "gpu": {
        "data": {"train": None, "validation": None, "test": None, "corpus_chars": None},
        "tokenizer": {"vocab_size": 16384, "vocab_sizes": [1024, 4096, 8192, 16384, 32768]},
        "gpt": {"n_layer": 8, "n_head": 8, "n_embd": 512, "block_size": 256,
                "batch_size": 32, "max_steps": 5000, "lr": 6e-4},
        "bert": {"num_hidden_layers": 8, "num_attention_heads": 8, "hidden_size": 512,
                 "max_length": 128, "batch_size": 64, "max_steps": 5000, "lr": 5e-4},
        "finetune": {"max_length": 128, "batch_size": 32, "max_steps": 2000, "lr": 3e-5},
        "gpt_scaling": {"sizes": [[2, 128], [4, 256], [8, 512]], "max_steps": 1000},
    },
}


def resolve_scale(scale: str | None = None) -> str:
    """Return the scale to use: the argument, else $LLM_COURSE_SCALE, else gpu/laptop.

    `None` means: the `LLM_COURSE_SCALE` environment variable if set, otherwise `gpu`
    when CUDA is available, otherwise `laptop`.
    """
    if scale is None:
        scale = os.environ.get("LLM_COURSE_SCALE") or None
    if scale is None:
        import torch

        scale = "gpu" if torch.cuda.is_available() else "laptop"
    scale = str(scale).strip().lower()
    if scale not in SCALES:
        raise ValueError(
            f"unknown scale {scale!r}: choose one of {', '.join(SCALES)} "
            "(or set LLM_COURSE_SCALE to one of them)"
        )
    return scale


def preset(section: str, scale: str | None = None) -> dict:
    """A copy of the preset `section` (e.g. "gpt", "data") for `scale`."""
    scale = resolve_scale(scale)
    sections = PRESETS[scale]
    if section not in sections:
        raise KeyError(f"no preset section {section!r}; known: {', '.join(sorted(sections))}")
    return copy.deepcopy(sections[section])
