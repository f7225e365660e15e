"""Export a classifier to ONNX, run it with ONNX Runtime, quantize it to int8 (used by
`compress` in 08_deployment).

`export_onnx` uses `torch.onnx.export(..., dynamo=True)` (the torch.export-based exporter,
the default since torch 2.9) with dynamic batch and sequence axes, so one file serves any
batch size and text length. `OnnxPredictor` has the same interface as
`compress.TorchPredictor` (texts -> logits), so `compress.compare_variants` measures both.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def _quiet(*logger_names: str) -> Iterator[None]:
    """Silence the named loggers and Python warnings inside the block."""
    loggers = [logging.getLogger(name) for name in logger_names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_onnx(model: nn.Module, tokenizer: Any, path: str | Path, max_length: int = 64,
                opset_version: int | None = None) -> Path:
    """Write `model` as an ONNX graph taking the tokenizer's inputs and returning `logits`.

    Batch and sequence axes are dynamic. The weights are stored inside the .onnx file
    (fine below 2 GB). Exports in float32 (a bf16 or int8 torch model is exported from a
    float copy). Returns the path.
    """
    import copy

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).float().eval()
    # Two examples of different lengths: batch and sequence must not be specialised to 1.
    enc = tokenizer(["an example input", "a second, somewhat longer example input text"],
                    padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in tokenizer.model_input_names}
    dynamic = {name: {0: "batch", 1: "sequence"} for name in inputs}
    # The exporter logs about optional torchvision ops and warns about axis names: noise.
    with _quiet("torch.onnx._internal.exporter._registration", "torch.onnx"):
        torch.onnx.export(model, (), str(path), kwargs=inputs, input_names=list(inputs),
                          output_names=["logits"], dynamic_shapes=dynamic, dynamo=True,
                          external_data=False, opset_version=opset_version, verbose=False)
    return path


def quantize_onnx_int8(src: str | Path, dst: str | Path, per_channel: bool = True) -> Path:
    """Dynamic int8 quantization of an ONNX model with `onnxruntime.quantization`.

    Weights (embeddings included) become int8; activations are quantized at run time.
    One scale per output channel costs no time here and, on MiniLM, kept 95 % of labels
    equal to fp32's against 88 % with one scale per tensor.
    ONNX Runtime suggests a pre-processing pass (`quant_pre_process`); its symbolic shape
    inference fails on dynamo-exported graphs, and quantization works without it, so its
    suggestion is silenced.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet("root"):
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                         per_channel=per_channel)
    return Path(dst)


def onnx_files(path: str | Path) -> list[Path]:
    """The .onnx file and its external-data file, if the export wrote one."""
    path = Path(path)
    extra = path.with_name(path.name + ".data")
    return [path, extra] if extra.exists() else [path]


class OnnxPredictor:
    """Texts -> logits with an ONNX Runtime CPU session: same interface as TorchPredictor.

    By default ONNX Runtime's worker threads keep spinning on the cores after each run,
    waiting for the next one; torch code run just after (the next variant in a comparison,
    or the rest of a server) then finds the CPU busy: we saw fp32 torch at batch 1 four
    times slower right after an ONNX call. So spinning is off unless `spinning=True`.
    """

    def __init__(self, path: str | Path, tokenizer: Any, max_length: int = 64,
                 padding: str = "longest", threads: int | None = None,
                 spinning: bool = False) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding = padding
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if spinning else "0")
        self.session = ort.InferenceSession(str(self.path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer(list(texts), padding=self.padding, truncation=True,
                             max_length=self.max_length, return_tensors="np")
        feeds = {name: enc[name].astype(np.int64) for name in self.input_names}
        return self.session.run(["logits"], feeds)[0].astype(np.float32)
