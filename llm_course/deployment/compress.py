"""Make smaller or faster variants of a fine-tuned classifier and measure them (taught in 08_deployment).

Every variant is wrapped as a *predictor*: a function from a list of texts to a numpy array
of logits, shape (n, num_labels). The torch variants here and the ONNX Runtime ones in
`llm_course.deployment.onnx_export` share that interface, so one set of measurements covers them all:
`size_on_disk_mb`, `latency_ms`, `accuracy`, `agreement`, and `compare_variants`, which puts
them in one table.

Every builder copies the model first: the fine-tuned original is never modified.
"""

from __future__ import annotations

import copy
import re
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from llm_course.env import dry_run

Predictor = Callable[[Sequence[str]], np.ndarray]

DEFAULT_VARIANTS = ("fp32", "bf16", "int8_dynamic", "prune:0.5", "drop:2", "onnx", "onnx_int8")


class TorchPredictor:
    """Texts -> logits for a torch sequence classifier: tokenize, run, return float32 numpy.

    `padding="longest"` pads each batch to its longest text, as a server does;
    "max_length" pads everything to `max_length`, which makes timings comparable.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int = 64,
                 padding: str = "longest") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.padding = padding

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.tokenizer(list(texts), padding=self.padding, truncation=True,
                             max_length=self.max_length, return_tensors="pt")
        with torch.inference_mode():
            logits = self.model(**enc).logits
        return logits.float().numpy()


# --- variant builders -------------------------------------------------------------------

def fp32(model: nn.Module) -> nn.Module:
    """The baseline: a float32 copy in eval mode."""
    return copy.deepcopy(model).float().eval()


def bf16(model: nn.Module) -> nn.Module:
    """A copy with its weights cast to bfloat16 (half the bytes).

    Chosen over `torch.autocast` at inference after measuring both on MiniLM (2-core CPU
    with AMX): the cast weights were as fast or faster at batch 1 and 32 (autocast re-casts
    every weight on every call), halve the file and the memory, and agreed with fp32 as
    often as autocast did (99.8 % of labels). bf16 keeps fp32's range, unlike fp16, so
    LayerNorm and softmax survive. Without AMX/AVX512-BF16 a CPU emulates bf16: slower.
    """
    return copy.deepcopy(model).to(torch.bfloat16).eval()


def _quantize_dynamic_torch_ao(model: nn.Module, per_channel: bool) -> nn.Module:
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is deprecated in favour of torchao; see below.
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions")
        from torch.ao.quantization import (
            default_dynamic_qconfig,
            per_channel_dynamic_qconfig,
            quantize_dynamic,
        )

        qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
        return quantize_dynamic(model, {nn.Linear: qconfig}, dtype=torch.qint8)


def int8_dynamic(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """A copy whose Linear layers use int8 weights, activations quantized on the fly.

    Uses `torch.ao.quantization.quantize_dynamic`. PyTorch marks torch.ao deprecated in
    favour of the separate `torchao` package (its warning is silenced here, on purpose):
    we measured torchao's `Int8DynamicActivationInt8WeightConfig` slower than fp32 on this
    CPU, while torch.ao's fbgemm/onednn kernels are about twice as fast as fp32. If a
    future torch drops torch.ao, use `onnx_export.quantize_onnx_int8` (ONNX Runtime).
    One scale per output row (`per_channel`) costs no time and, on MiniLM, kept 90 %
    of labels equal to fp32's against 84 % with one scale per matrix.
    Embeddings stay fp32, so the file shrinks by about a third, not by four.
    """
    model = copy.deepcopy(model).float().eval()
    try:
        return _quantize_dynamic_torch_ao(model, per_channel)
    except (ImportError, AttributeError) as err:
        raise RuntimeError(
            "torch.ao.quantization.quantize_dynamic is not available in this torch; "
            "quantize the ONNX export instead (llm_course.deployment.onnx_export.quantize_onnx_int8)"
        ) from err


def _linears(model: nn.Module, include_head: bool = False) -> list[nn.Linear]:
    head = getattr(model, "classifier", None)
    head_ids = {id(m) for m in head.modules()} if isinstance(head, nn.Module) else set()
    return [m for m in model.modules()
            if isinstance(m, nn.Linear) and (include_head or id(m) not in head_ids)]


def prune_unstructured(model: nn.Module, sparsity: float) -> nn.Module:
    """A copy with the smallest `sparsity` fraction of each Linear weight set to zero.

    L1 (magnitude) unstructured pruning with `torch.nn.utils.prune`, made permanent with
    `prune.remove`. The classifier head is left alone. The tensors keep their shape: dense
    kernels still multiply the zeros, so this saves neither time nor bytes on its own
    (see `sparse_matmul_demo`).
    """
    from torch.nn.utils import prune

    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    model = copy.deepcopy(model).eval()
    for layer in _linears(model):
        prune.l1_unstructured(layer, name="weight", amount=sparsity)
        prune.remove(layer, "weight")
    return model


def linear_sparsity(model: nn.Module) -> float:
    """Fraction of exactly-zero weights in the Linear layers (the head excluded)."""
    zeros = total = 0
    for layer in _linears(model):
        zeros += int((layer.weight == 0).sum())
        total += layer.weight.numel()
    return zeros / max(total, 1)


def sparse_matmul_demo(sparsity: float = 0.5, size: int = 1024, batch: int = 64,
                       repeats: int = 20) -> dict[str, float]:
    """Time x @ W for a dense W, the same W with `sparsity` zeros, and W as a sparse CSR.

    The zeros change nothing for the dense kernel; the sparse format pays off only at very
    high sparsity (measured on a 2-core CPU, 1024 x 1024: CSR 1.4x slower than dense at
    50 % zeros, 4.6x faster at 95 %). Returns milliseconds per product. A dry run
    (`llm_course.env.dry_run`) times each product twice.
    """
    repeats = dry_run.repeats(repeats)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, size, generator=gen)
    dense = torch.randn(size, size, generator=gen)
    zeros = dense * (torch.rand(size, size, generator=gen) >= sparsity)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        csr = zeros.t().contiguous().to_sparse_csr()  # (W^T x^T)^T with a sparse W^T

    def run(fn: Callable[[], torch.Tensor]) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times)

    return {"dense_ms": run(lambda: x @ dense),
            "dense_with_zeros_ms": run(lambda: x @ zeros),
            "sparse_csr_ms": run(lambda: torch.sparse.mm(csr, x.t()).t()),
            "sparsity": float((zeros == 0).float().mean())}


def _encoder_layers(model: nn.Module) -> tuple[nn.Module, str]:
    """The module holding the encoder's layer list, and the list's attribute name."""
    base = getattr(model, "base_model", model)
    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        *parents, name = path.split(".")
        obj: Any = base
        for part in parents:
            obj = getattr(obj, part, None)
        if isinstance(getattr(obj, name, None), nn.ModuleList):
            return obj, name
    raise ValueError(f"no encoder layer list found in {type(model).__name__}")


def drop_top_layers(model: nn.Module, n: int) -> nn.Module:
    """A copy without its top `n` encoder layers: a structured cut that really saves time.

    The whole layer goes, so every matrix product left is as dense as before but there are
    fewer of them: time and size fall by about n / num_layers of the encoder's share.
    `config.num_hidden_layers` is updated, so `save_pretrained` / `from_pretrained`
    round-trip. Accuracy falls unless the model is fine-tuned again after the cut.
    (Attention-head pruning, `model.prune_heads`, was removed in transformers 5.)
    """
    model = copy.deepcopy(model).eval()
    parent, name = _encoder_layers(model)
    layers = getattr(parent, name)
    if not 0 <= n < len(layers):
        raise ValueError(f"can drop 0 to {len(layers) - 1} of {len(layers)} layers, not {n}")
    kept = nn.ModuleList(list(layers)[: len(layers) - n])
    setattr(parent, name, kept)
    model.config.num_hidden_layers = len(kept)
    return model


def fit_head(model: nn.Module, tokenizer: Any, texts: Sequence[str], labels: Sequence[int],
             max_length: int = 64, c: float = 1.0) -> nn.Module:
    """Fit the classifier head by logistic regression on the pooled features, in place.

    A quick stand-in for fine-tuning when a demo or a test needs a classifier with a real
    decision boundary (a random head puts every logit near zero, so tiny numeric changes
    flip labels). Expects a BERT-style model: `model.bert` (pooler) + `model.classifier`.
    A dry run (`llm_course.env.dry_run`) encodes one batch and repeats its features.
    """
    from sklearn.linear_model import LogisticRegression

    base = model.base_model
    feats = []
    with torch.inference_mode():
        for part in dry_run.batch_slices(len(texts), 32):
            enc = tokenizer(list(texts[part]), padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt")
            feats.append(base(**enc).pooler_output.float())
    x = dry_run.fill_rows(torch.cat(feats), len(texts)).double().numpy()
    # standardise, so C means the same whatever the features' scale (after a layer cut the
    # pooled features can vary by 1e-3 only), then fold the scaling into the head's weights
    mean, std = x.mean(0), x.std(0) + 1e-12
    clf = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / std, np.asarray(labels))
    coef = clf.coef_ if clf.coef_.shape[0] > 1 else np.vstack([-clf.coef_, clf.coef_]) / 2
    bias = clf.intercept_ if clf.intercept_.shape[0] > 1 else np.r_[-clf.intercept_,
                                                                     clf.intercept_] / 2
    coef = coef / std
    bias = bias - coef @ mean
    with torch.no_grad():
        model.classifier.weight.copy_(torch.as_tensor(coef, dtype=torch.float32))
        model.classifier.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    return model.eval()


# --- measurements -----------------------------------------------------------------------

def size_on_disk_mb(variant: Any) -> float:
    """Megabytes the variant's weights take on disk.

    A torch module is saved to a temporary folder as safetensors; a dynamically quantized
    one with `torch.save` (safetensors cannot hold its packed int8 weights). An ONNX
    variant (a path, or an object with `.path`) is the .onnx file plus any external data.
    """
    from llm_course.deployment.onnx_export import onnx_files

    if isinstance(variant, TorchPredictor):
        variant = variant.model
    if not isinstance(variant, nn.Module):
        path = Path(getattr(variant, "path", variant))
        return sum(f.stat().st_size for f in onnx_files(path)) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        state = variant.state_dict()
        if all(isinstance(v, torch.Tensor) and not v.is_quantized for v in state.values()):
            from safetensors.torch import save_model

            save_model(variant, f"{tmp}/model.safetensors")
        else:
            torch.save(state, f"{tmp}/model.pt")
        return sum(f.stat().st_size for f in Path(tmp).iterdir()) / 1e6


def latency_ms(predict_fn: Predictor, batch_texts: Sequence[str], repeats: int = 10,
               warmup: int = 2) -> float:
    """Median wall-clock milliseconds of `predict_fn(batch_texts)`, after `warmup` calls.

    A dry run (`llm_course.env.dry_run`) times at most 2 calls.
    """
    repeats = dry_run.repeats(repeats)
    for _ in range(warmup):
        predict_fn(batch_texts)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict_fn(batch_texts)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def throughput(predict_fn: Predictor, batch_texts: Sequence[str], repeats: int = 10) -> float:
    """Examples per second at the batch size of `batch_texts` (from the median latency)."""
    return 1000 * len(batch_texts) / latency_ms(predict_fn, batch_texts, repeats)


def predict_labels(predict_fn: Predictor, texts: Sequence[str], batch_size: int = 32
                   ) -> np.ndarray:
    """Arg-max label ids of `predict_fn` over `texts`, in batches.

    A dry run (`llm_course.env.dry_run`) predicts one batch and repeats it for the rest.
    """
    out = [predict_fn(texts[part]).argmax(-1)
           for part in dry_run.batch_slices(len(texts), batch_size)]
    return dry_run.fill_rows(np.concatenate(out), len(texts)) if out else np.zeros(0, dtype=int)


def accuracy(predict_fn: Predictor, texts: Sequence[str], labels: Sequence[int]) -> float:
    """Fraction of `texts` whose arg-max prediction equals the label id."""
    return float((predict_labels(predict_fn, texts) == np.asarray(labels)).mean())


def agreement(predict_a: Predictor, predict_b: Predictor, texts: Sequence[str]) -> float:
    """Fraction of `texts` on which two predictors choose the same label."""
    return float((predict_labels(predict_a, texts) == predict_labels(predict_b, texts)).mean())


# --- all together -----------------------------------------------------------------------

def build_variant(spec: str, model: nn.Module, tokenizer: Any, max_length: int = 64,
                  workdir: str | Path | None = None, padding: str = "longest") -> Any:
    """A predictor for one variant name.

    Names: "fp32", "bf16", "int8_dynamic", "prune:S" (sparsity S, e.g. prune:0.5),
    "drop:N" (drop the top N layers), "onnx", "onnx_int8" (these two write into `workdir`).
    """
    from llm_course.deployment import onnx_export

    if spec in ("onnx", "onnx_int8"):
        workdir = Path(workdir or tempfile.mkdtemp(prefix="llm_course_onnx_"))
        path = workdir / "model.onnx"
        if not path.exists():
            onnx_export.export_onnx(model, tokenizer, path, max_length)
        if spec == "onnx_int8":
            path = onnx_export.quantize_onnx_int8(path, workdir / "model.int8.onnx")
        return onnx_export.OnnxPredictor(path, tokenizer, max_length, padding=padding)
    builders: dict[str, Callable[[nn.Module], nn.Module]] = {
        "fp32": fp32, "bf16": bf16, "int8_dynamic": int8_dynamic}
    if spec in builders:
        built = builders[spec](model)
    elif m := re.fullmatch(r"prune:([0-9.]+)", spec):
        built = prune_unstructured(model, float(m.group(1)))
    elif m := re.fullmatch(r"drop:(\d+)", spec):
        built = drop_top_layers(model, int(m.group(1)))
    else:
        raise ValueError(f"unknown variant {spec!r}; try one of {DEFAULT_VARIANTS}")
    return TorchPredictor(built, tokenizer, max_length, padding=padding)


def compare_variants(model: nn.Module, tokenizer: Any, texts: Sequence[str],
                     labels: Sequence[int] | None = None,
                     variants: Sequence[str] = DEFAULT_VARIANTS, max_length: int = 64,
                     repeats: int = 5, workdir: str | Path | None = None,
                     padding: str = "max_length") -> Any:
    """Build each variant and measure it: one row per variant, as a pandas DataFrame.

    Columns: variant, size_mb, latency_ms_bs1, latency_ms_bs32, throughput_bs32 (examples/s),
    accuracy (NaN without labels) and agreement (share of labels equal to fp32's).
    Timings pad to `max_length` by default so every variant sees the same shapes; they are
    taken round-robin across variants (a burst of load on a shared machine then hits all
    of them, not one) and are medians of `repeats`. Compare ratios within one table. A dry run
    (`llm_course.env.dry_run`) times twice, and its "batch of 32" holds 2 rows.
    """
    import pandas as pd

    texts = list(texts)
    batch1, batch32 = texts[:1], (texts * 32)[:dry_run.rows(32)]  # 2 rows in a dry run
    built = {spec: build_variant(spec, model, tokenizer, max_length, workdir, padding)
             for spec in variants}
    reference = built.get("fp32") or TorchPredictor(fp32(model), tokenizer, max_length, padding)
    ref_labels = predict_labels(reference, texts)
    timings: dict[tuple[str, int], list[float]] = {}
    for fn in built.values():  # warm-up
        fn(batch1)
        fn(batch32)
    for _ in range(dry_run.repeats(repeats)):
        for spec, fn in built.items():
            for size, batch in ((1, batch1), (32, batch32)):
                timings.setdefault((spec, size), []).append(
                    latency_ms(fn, batch, repeats=1, warmup=0))
    rows = []
    for spec, fn in built.items():
        preds = predict_labels(fn, texts)
        bs32 = statistics.median(timings[(spec, 32)])
        rows.append({
            "variant": spec,
            "size_mb": round(size_on_disk_mb(fn), 1),
            "latency_ms_bs1": round(statistics.median(timings[(spec, 1)]), 1),
            "latency_ms_bs32": round(bs32, 1),
            "throughput_bs32": round(32_000 / bs32, 1),
            "accuracy": (float((preds == np.asarray(labels)).mean()) if labels is not None
                         else float("nan")),
            "agreement": float((preds == ref_labels).mean()),
        })
    return pd.DataFrame(rows)


def plot_variants(df: Any) -> Any:
    """Two panels: size vs batch-32 latency (one labelled point per variant), accuracy bars."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.scatter(df["size_mb"], df["latency_ms_bs32"])
    for _, row in df.iterrows():
        left.annotate(row["variant"], (row["size_mb"], row["latency_ms_bs32"]),
                      textcoords="offset points", xytext=(4, 4))
    left.set_xlabel("size on disk (MB)")
    left.set_ylabel("latency, batch of 32 (ms)")
    left.set_title("smaller and faster is down-left")
    score = "accuracy" if df["accuracy"].notna().any() else "agreement"
    right.bar(df["variant"], df[score])
    right.set_ylim(0, 1)
    right.set_ylabel(score)
    right.set_title(f"{score} per variant")
    right.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig
