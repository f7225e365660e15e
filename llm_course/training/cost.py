"""What a run costs: the compute receipt and a memory estimate (behind the receipt `fit` prints,
which 00_setup explains).

* `matmul_peak()` times a large matrix multiply once per device, dtype and thread count and
  caches the result in `$LLM_COURSE_HOME/matmul_peak.json` (default `~/.cache/llm_course`).
  It is the practical ceiling for FLOP/s on this machine.
* `compute_receipt()` turns a run's counts into tokens/s, achieved FLOP/s (6·N·tokens: about
  2·N for the forward pass and 4·N for the backward pass per token) and the fraction of the
  matmul peak that training used.
* `estimate_memory()` adds weights + gradients + AdamW states + activations and says whether
  the run fits, e.g. "needs about 11 GB; this Tesla T4 has 15 GB: fits", and names the
  largest batch that does. `available_gb=T4_GB` asks about a T4 from any machine.
"""

from __future__ import annotations

import json
import math
import os
import platform
import resource
import sys
import time
from typing import Any

import torch

from llm_course.env.device import best_device
from llm_course.env.paths import course_home
from llm_course.models.parameters import count_parameters

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
T4_GB = 14.75  # what PyTorch reports for a "16 GB" Tesla T4: 15,835,660,288 bytes, in GiB
_OVERHEAD = 0.25 * 2**30  # CUDA context, allocator slack, small buffers
_USABLE = 0.9  # the share of the memory a run may plan for (fragmentation, spikes)


def device_name(device: str | None = None) -> str:
    """A short human name for the device, e.g. 'Tesla T4' or 'CPU (AMD EPYC, 2 threads)'."""
    kind = device or best_device()
    if kind.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(kind))
    if kind == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({_cpu_model()}, {torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# -- matmul peak -------------------------------------------------------------------------------
def _sync(kind: str) -> None:
    if kind.startswith("cuda"):
        torch.cuda.synchronize()
    elif kind == "mps":
        torch.mps.synchronize()


def measure_matmul_peak(device: str, precision: str = "fp32", seconds: float = 0.4) -> float:
    """Time square matmuls on `device` in `precision`; return the best FLOP/s seen."""
    dtype = _DTYPES[precision]
    n = 2048 if device == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=torch.float32).to(dtype)
    b = torch.randn(n, n, device=device, dtype=torch.float32).to(dtype)
    torch.matmul(a, b)  # warm-up (kernel selection, page faults)
    _sync(device)
    best, spent = 0.0, 0.0
    while spent < seconds:
        t0 = time.perf_counter()
        torch.matmul(a, b)
        _sync(device)
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, 2 * n**3 / dt)
    return best


def matmul_peak(device: str | None = None, precision: str = "fp32", refresh: bool = False) -> float:
    """This device's matmul FLOP/s in `precision`, measured once and cached on disk."""
    device = device or best_device()
    kind = device.split(":")[0]
    key = "|".join([device_name(device), precision, f"torch {torch.__version__}"])
    path = course_home() / "matmul_peak.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache and not refresh:
        return float(cache[key])
    if precision == "fp16" and kind == "cpu":
        value = measure_matmul_peak(device, "fp32")  # fp16 has no fast CPU path: fp32 is the bar
    else:
        value = measure_matmul_peak(device, precision)
    # a machine busy with other work measures too low a peak: keep the best ever seen
    value = max(value, float(cache.get(key, 0.0)))
    cache[key] = value
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home only costs a re-measurement next time
    return value


# -- memory ----------------------------------------------------------------------------------
def peak_memory(device: str | None = None) -> tuple[float, str]:
    """(bytes, what was measured): CUDA max allocated, or this process's max RSS on CPU/MPS."""
    kind = (device or best_device()).split(":")[0]
    if kind == "cuda":
        return float(torch.cuda.max_memory_allocated()), "CUDA max allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return float(rss * scale), "process max RSS"


def available_memory(device: str | None = None) -> tuple[float, str]:
    """(bytes, description) of the memory a run can use on `device`."""
    kind = (device or best_device()).split(":")[0]
    if kind == "cuda":
        props = torch.cuda.get_device_properties(torch.device(device or "cuda"))
        return float(props.total_memory), f"this {props.name} has"
    if kind == "mps":
        try:
            return float(torch.mps.recommended_max_memory()), "this Mac's GPU may use"
        except (AttributeError, RuntimeError):
            pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024, "this machine has free"
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "this machine has"
    except (ValueError, OSError, AttributeError):
        return math.inf, "this machine has"


def _cfg(model: torch.nn.Module, *names: str, default: Any = None) -> Any:
    config = getattr(model, "config", None)
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def estimate_memory(
    model: torch.nn.Module,
    config: Any,
    device: str | None = None,
    seq_len: int | None = None,
    available_gb: float | None = None,
) -> dict[str, Any]:
    """Estimate the memory training `model` with `config` needs, and say if it fits `device`.

    weights + gradients (fp32, trainable only) + AdamW's two moments + activations. The
    activation term uses the usual transformer estimate: per layer about 17 values per token
    per hidden unit, plus the attention scores where they are kept (attention dropout or
    eager attention; fused attention without dropout keeps none), plus the logits. Values
    count 4 bytes even in mixed precision: autocast keeps the 16-bit copy each matmul reads
    beside the fp32 residual stream and norms (on a CPU, a bf16 step saved as much as an
    fp32 one, or more). Rough: `benchmarks/memory_estimate.py` found it within ±50 % of the
    saved tensors of GPT-2, BERT, MiniLM and SmolLM2.
    `available_gb` (GiB) checks against that much memory instead of `device`'s, e.g.
    `device="cuda", available_gb=T4_GB` on a machine without a GPU. Returns a dict of
    sizes in GB (GiB), `fits` (the total within 90 % of the memory), `largest_batch_size`
    (the largest batch that fits; None if not even 1), `suggested_batch_size` (when it does
    not fit: the batch halved until it fits) and a one-line `message`.
    """
    device = device or best_device()
    batch = int(getattr(config, "batch_size", 1))
    total, trainable = count_parameters(model)
    param_bytes = sum(p.numel() * p.element_size() for p in {id(p): p for p in
                                                              model.parameters()}.values())
    weights = float(param_bytes)
    grads = 4.0 * trainable
    adam = 8.0 * trainable
    static = weights + grads + adam

    layers = _cfg(model, "num_hidden_layers", "n_layer", "num_layers", default=None)
    hidden = _cfg(model, "hidden_size", "n_embd", "d_model", default=None)
    heads = _cfg(model, "num_attention_heads", "n_head", default=1)
    vocab = _cfg(model, "vocab_size", default=0)
    if seq_len is None:
        seq_len = min(int(_cfg(model, "max_position_embeddings", "n_positions", default=512)), 512)
    if layers and hidden:
        scores = 2.5 * heads * seq_len / hidden if _keeps_scores(model) else 0.0
        per_layer = seq_len * hidden * (17 + scores) * 4
        logits = seq_len * vocab * 12 if _is_lm(model) else 0  # and their fp32 log-softmax
        per_example = layers * per_layer + logits + seq_len * hidden * 4 * 4
    else:  # not a transformer we know: assume activations about as large as the weights
        per_example = weights / 8
    activations = per_example * batch
    need = static + activations + _OVERHEAD
    if available_gb is None:
        avail, who = available_memory(device)
    else:
        avail, who = available_gb * 2**30, "the budget is"
    fits = need <= _USABLE * avail
    room = _USABLE * avail - static - _OVERHEAD  # what activations may use
    largest = int(room // per_example) if per_example > 0 and room >= per_example else None
    suggestion = None
    if not fits:
        b = batch
        while b > 1 and static + per_example * b + _OVERHEAD > _USABLE * avail:
            b //= 2
        suggestion = b if static + per_example * b + _OVERHEAD <= _USABLE * avail else None
    gb = 2.0**30
    if fits:
        verdict = "fits"
    elif suggestion:
        accum = max(1, batch // suggestion) * int(getattr(config, "grad_accum", 1))
        verdict = (f"will probably not fit; try batch_size={suggestion} with grad_accum={accum} "
                   "(same effective batch)")
    else:
        verdict = ("will not fit even at batch_size=1; use a smaller model, LoRA (fewer trainable "
                   "weights) or a bigger device")
    message = (f"memory: needs about {_fmt_gb(need)} (weights {_fmt_gb(weights)}, gradients "
               f"{_fmt_gb(grads)}, AdamW {_fmt_gb(adam)}, activations ~{_fmt_gb(activations)} "
               f"at batch {batch}); {who} {_fmt_gb(avail)}: {verdict}")
    return {
        "weights_gb": weights / gb, "grads_gb": grads / gb, "optimizer_gb": adam / gb,
        "activations_gb": activations / gb, "total_gb": need / gb, "static_gb": static / gb,
        "available_gb": avail / gb, "fits": fits, "hopeless": static > avail,
        "suggested_batch_size": suggestion, "largest_batch_size": largest,
        "per_example_gb": per_example / gb, "seq_len": seq_len, "message": message,
    }


def _keeps_scores(model: torch.nn.Module) -> bool:
    """Does attention keep its (heads, seq, seq) scores for the backward pass?"""
    dropout = _cfg(model, "attention_probs_dropout_prob", "attn_pdrop", "attention_dropout",
                   default=0.0)
    eager = getattr(getattr(model, "config", None), "_attn_implementation", None) == "eager"
    return bool(dropout) or eager


def _is_lm(model: torch.nn.Module) -> bool:
    name = type(model).__name__
    return name.endswith(("ForCausalLM", "LMHeadModel", "ForMaskedLM")) or "LMHead" in name


def _fmt_gb(n: float) -> str:
    if not math.isfinite(n):
        return "unknown"
    gb = n / 2**30
    return f"{gb:.0f} GB" if gb >= 10 else f"{gb:.1f} GB" if gb >= 0.1 else f"{n / 2**20:.0f} MB"


# -- the receipt -----------------------------------------------------------------------------
def compute_receipt(
    model: torch.nn.Module,
    *,
    device: str,
    precision: str,
    steps: int,
    tokens: int,
    examples: int,
    seconds: float,
    compiled: bool = False,
    measure_peak: bool = True,
) -> dict[str, Any]:
    """Plain-data receipt of a training run: sizes, throughput, FLOP/s, utilisation, memory."""
    total, trainable = count_parameters(model)
    seconds = max(seconds, 1e-9)
    # 6 FLOPs per parameter per token; models without tokens (e.g. on vectors): per example
    flops = 6.0 * total * (tokens or examples) / seconds
    peak = matmul_peak(device, precision) if measure_peak else None
    if peak and flops > peak:  # the cached peak was measured on a busy machine: measure again
        peak = matmul_peak(device, precision, refresh=True)
    mem, mem_kind = peak_memory(device)
    return {
        "device": device_name(device), "precision": precision, "compiled": compiled,
        "params_total": total, "params_trainable": trainable, "steps": steps,
        "tokens": tokens, "examples": examples, "train_seconds": round(seconds, 2),
        "tokens_per_s": tokens / seconds, "examples_per_s": examples / seconds,
        "achieved_flops": flops, "peak_flops": peak,
        "utilisation": (flops / peak) if peak else None,
        "peak_memory_gb": mem / 2**30, "peak_memory_kind": mem_kind,
    }


def format_receipt(r: dict[str, Any]) -> str:
    """The receipt as a few aligned lines for people."""
    def m(n: float) -> str:
        return f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n:,.0f}"

    lines = [
        "Compute receipt",
        f"  model      {m(r['params_total'])} parameters ({m(r['params_trainable'])} trainable)",
        f"  data       {r['tokens']:,} tokens, {r['examples']:,} examples, {r['steps']:,} steps"
        f" in {r['train_seconds']:.1f} s",
        f"  speed      {r['tokens_per_s']:,.0f} tokens/s ({r['examples_per_s']:,.1f} examples/s)"
        " on average over the run (the progress bar shows the latest steps)"
        if r["tokens"] else f"  speed      {r['examples_per_s']:,.1f} examples/s on average",
    ]
    unit = "tokens" if r["tokens"] else "examples"
    achieved = f"{r['achieved_flops'] / 1e12:.3f} TFLOP/s achieved (6·N·{unit})"
    if r.get("peak_flops"):
        achieved += (f" = {100 * r['utilisation']:.0f} % of this device's measured "
                     f"{r['precision']} matmul peak ({r['peak_flops'] / 1e12:.2f} TFLOP/s)")
    lines.append(f"  compute    {achieved}")
    lines.append(f"  memory     peak {r['peak_memory_gb']:.2f} GB ({r['peak_memory_kind']})")
    lines.append(f"  device     {r['device']}, {r['precision']}"
                 f"{', torch.compile' if r.get('compiled') else ''}")
    return "\n".join(lines)
