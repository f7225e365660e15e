"""Exercises of 08_deployment (see `llm_course.exercises` for the mechanism)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from llm_course.exercises.registry import Case, Exercise, compare_auto, describe, register

# ----------------------------------------------------------------------------------------------
# 08_deployment: int8 affine quantisation of a tensor


def int8_quantize(x: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """Affine int8 quantisation of `x` with one scale for the whole tensor: (q, scale, zero_point).

    The range [lo, hi] is x's range widened to include 0 (so that 0 is stored exactly);
    it is mapped onto the 256 int8 levels -128..127:
    scale = (hi - lo) / 255, zero_point = -128 - round(lo / scale),
    q = clamp(round(x / scale) + zero_point, -128, 127). Dequantise with scale * (q - zero_point).
    """
    lo = min(float(x.min()), 0.0)
    hi = max(float(x.max()), 0.0)
    scale = (hi - lo) / 255 if hi > lo else 1.0  # an all-zero tensor: any scale will do
    zero_point = -128 - round(lo / scale)
    q = torch.clamp(torch.round(x / scale) + zero_point, -128, 127).to(torch.int8)
    return q, scale, zero_point


def _quantize_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(8)
    yield Case((torch.randn(4, 6, generator=g),), label="a 4 x 6 matrix of standard normals")
    yield Case((torch.rand(5, 5, generator=g) * 3 + 0.5,),
               label="only positive values (0.5 to 3.5): the range must still include 0")
    yield Case((-torch.rand(8, generator=g) * 2 - 1,), label="only negative values")
    yield Case((torch.tensor([-1.0, -0.25, 0.0, 0.4, 2.0, 3.0]),), label="six values by hand")
    yield Case((torch.randn(16, 32, generator=g) * 0.05,),
               label="a 16 x 32 weight-like matrix (values near 0.05)")
    # lo / scale = -11.5 exactly: round() goes to -12 (half to even) while the top value
    # lands on 243.5 -> 244, so without the clamp q would be 128
    yield Case((torch.tensor([-0.1796875, 0.0, 1.0, 3.8046875]),),
               label="a tie in the rounding pushes the top value to 128 without the clamp")


def _compare_quantized(expected: Any, got: Any) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return f"expected a tuple (q, scale, zero_point), got {describe(got)}"
    q, scale, zero_point = got
    if not isinstance(q, torch.Tensor):
        return f"q: expected a tensor, got {describe(q)}"
    if q.is_floating_point():
        return (f"q: expected an integer tensor (torch.int8), got dtype "
                f"{str(q.dtype).removeprefix('torch.')}: round, then .to(torch.int8)")
    return compare_auto(expected, (q, scale, zero_point))


def _no_zero_in_range(x):
    lo, hi = float(x.min()), float(x.max())
    scale = (hi - lo) / 255
    zero_point = -128 - round(lo / scale)
    return torch.clamp(torch.round(x / scale) + zero_point, -128, 127).to(torch.int8), scale, \
        zero_point


def _scale_256(x):
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 256
    zero_point = -128 - round(lo / scale)
    return torch.clamp(torch.round(x / scale) + zero_point, -128, 127).to(torch.int8), scale, \
        zero_point


def _no_clamp(x):
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 255
    zero_point = -128 - round(lo / scale)
    return (torch.round(x / scale) + zero_point).to(torch.int8), scale, zero_point


def _zero_point_sign(x):
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 255
    zero_point = -128 + round(lo / scale)
    return torch.clamp(torch.round(x / scale) + zero_point, -128, 127).to(torch.int8), scale, \
        zero_point


def _symmetric(x):
    scale = float(x.abs().max()) / 127
    return torch.clamp(torch.round(x / scale), -128, 127).to(torch.int8), scale, 0


def _truncate(x):
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    scale = (hi - lo) / 255
    zero_point = -128 - int(lo / scale)
    return torch.clamp(torch.trunc(x / scale) + zero_point, -128, 127).to(torch.int8), scale, \
        zero_point


register(Exercise(
    id="08.int8_quantize",
    title="Affine int8 quantisation of a tensor",
    reference=int8_quantize,
    cases=_quantize_cases,
    compare=_compare_quantized,
    mistakes={
        "the range was not widened to include 0 (lo = min(x.min(), 0), hi = max(x.max(), 0))":
            _no_zero_in_range,
        "divided the range by 256: 256 levels have 255 steps between them, scale = (hi - lo) / 255":
            _scale_256,
        "no clamp: round(x / scale) + zero_point can land on 128, outside int8 (it wraps to -128)":
            _no_clamp,
        "the zero point has the wrong sign: lo must map to -128, zero_point = -128 - round(lo / s)":
            _zero_point_sign,
        "symmetric quantisation (scale = max|x| / 127, zero point 0): a fine scheme, not this one":
            _symmetric,
        "truncated instead of rounding (int() or .to(torch.int8) on floats cut towards 0)":
            _truncate,
    },
    hints=[
        ("Range: lo = min(x.min(), 0), hi = max(x.max(), 0). Scale: (hi - lo) / 255. "
         "Zero point: the integer that lo maps to -128, so zero_point = -128 - round(lo / scale)."),
        ("q = torch.clamp(torch.round(x / scale) + zero_point, -128, 127).to(torch.int8); "
         "return (q, scale, zero_point) with scale a float and zero_point an int."),
        "Check yourself: scale * (q - zero_point) should be within scale / 2 of x everywhere.",
    ],
))

# ----------------------------------------------------------------------------------------------
# 08_deployment: latency percentiles


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (q from 0 to 100) of `samples`, interpolating linearly between ranks.

    Sort the samples; the percentile sits at position p = (n - 1) * q / 100 (0-based); when p
    falls between two ranks, interpolate. The same as `numpy.percentile(samples, q)`.
    """
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    below, above = math.floor(position), math.ceil(position)
    fraction = position - below
    return ordered[below] + (ordered[above] - ordered[below]) * fraction


def _percentile_cases() -> Iterator[Case]:
    g = torch.Generator().manual_seed(80)
    # latencies in ms: mostly quick, a few slow ones (the tail a service cares about)
    quick = (10 + 4 * torch.rand(40, generator=g)).tolist()
    slow = (60 + 80 * torch.rand(4, generator=g)).tolist()
    mixed = quick[:20] + slow + quick[20:]
    yield Case(([5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 8.0, 7.0, 6.0, 10.0], 90),
               label="1 to 10, unsorted: p90")
    yield Case((mixed, 50), label="44 latencies, unsorted, with 4 slow ones: the median")
    yield Case((mixed, 95), label="the same latencies: p95 (between two ranks)")
    yield Case((mixed, 99), label="the same latencies: p99")
    yield Case(([30.0, 10.0, 20.0, 40.0], 50), label="four values: the median falls between two")
    yield Case(([12.5, 7.0, 9.5], 0), label="q = 0: the smallest")
    yield Case(([12.5, 7.0, 9.5], 100), label="q = 100: the largest")
    yield Case(([42.0], 95), label="a single sample")


def _unsorted(samples, q):
    position = (len(samples) - 1) * q / 100
    below, above = math.floor(position), math.ceil(position)
    return samples[below] + (samples[above] - samples[below]) * (position - below)


def _nearest_rank_no_interp(samples, q):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _rounded_position(samples, q):
    ordered = sorted(samples)
    return ordered[round((len(ordered) - 1) * q / 100)]


def _n_not_n_minus_1(samples, q):
    ordered = sorted(samples)
    position = min(len(ordered) - 1, len(ordered) * q / 100)
    below, above = math.floor(position), min(len(ordered) - 1, math.ceil(position))
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _mean(samples, q):
    return sum(samples) / len(samples)


register(Exercise(
    id="08.percentile",
    title="A latency percentile from samples",
    reference=percentile,
    cases=_percentile_cases,
    mistakes={
        "forgot to sort the samples first": _unsorted,
        ("took the sample at int(q / 100 * n) without interpolating (a nearest-rank rule; "
         "here we interpolate, like numpy.percentile)"): _nearest_rank_no_interp,
        "rounded the position to the nearest rank instead of interpolating": _rounded_position,
        "the position is (n - 1) * q / 100, not n * q / 100 (positions run from 0 to n - 1)":
            _n_not_n_minus_1,
        "returned the mean: the mean hides the slow tail that p95 is there to show": _mean,
    },
    hints=[
        ("Sort the samples. With n of them, positions run from 0 to n - 1, so the q-th "
         "percentile sits at position p = (n - 1) * q / 100."),
        ("When p is not a whole number, take the two neighbours below = floor(p), above = ceil(p) "
         "and interpolate: v[below] + (v[above] - v[below]) * (p - below)."),
        "Check yourself against numpy.percentile(samples, q).",
    ],
    setup="import math",
))

# ----------------------------------------------------------------------------------------------
# 08_deployment: the end-of-lesson quiz (plain data; `exercises.quiz("08")` shows and checks it)

QUIZ = [
    {"question": "Your service receives **one review per request** and must answer within **50 ms "
                 "at p95**. How do you pick a variant from section 3's table?",
     "choices": {
         "a": "Take the variant with the lowest batch-32 latency: a fast batch means fast "
              "requests.",
         "b": "Among the variants whose **batch-1** latency leaves room under 50 ms for the tail, "
              "take the one whose accuracy and agreement stay closest to fp32; then confirm its "
              "p95 with a load test on the serving machine.",
         "c": "Take `drop:2`: it removes whole layers, so it is the structurally smallest model.",
         "d": "Take `prune:0.9`: with 90 % of the weights at zero it does a tenth of the "
              "multiplications.",
     },
     "answer": "b",
     "why": {
         "a": "No. A batch-32 call is what 32 texts wait together; one user's request runs at "
              "batch 1, where fixed costs weigh more and the ranking of variants can differ (ONNX "
              "Runtime gains most there).",
         "b": "Right. Read the column that matches how requests arrive, remember the table "
              "reports medians while the budget is on p95, prefer a variant that does not change "
              "the answers, and measure on the hardware you will serve from: timings move with "
              "the machine and its load.",
         "c": "No. With its old head it lost about 25 points of accuracy at `laptop` (it answered "
              "'positive' to almost everything); only a refitted head makes it usable, and even "
              "then it is below fp32.",
         "d": "No. Dense kernels multiply the zeros like any other number: the pruned variants "
              "are no faster and no smaller, and at 90 % they lose much of their accuracy.",
     }},
    {"question": "In section 3's variants figure, find the `prune:S` points (left: size against "
                 "batch-32 latency) and their bars (right: accuracy). What does unstructured "
                 "pruning buy this model?",
     "choices": {
         "a": "A smaller file at the same speed and accuracy.",
         "b": "Lower latency at some cost in accuracy, like `drop:2`.",
         "c": "A speed-up that grows with S, at no cost in accuracy.",
         "d": "Nothing in size or speed (the points sit on fp32's), and less accuracy as S grows: "
              "the zeros are still stored and multiplied by dense kernels.",
     },
     "answer": "d",
     "why": {
         "a": "No. The pruned points sit at fp32's size: a dense safetensors file stores a zero "
              "in 4 bytes like any other float.",
         "b": "That is what the structured cut `drop:2` does; the pruned points sit at fp32's "
              "latency, because the matrices keep their shape.",
         "c": "No. Dense kernels multiply zeros like any other number, so the time does not move; "
              "and the accuracy bars fall as more weights are zeroed.",
         "d": "Right. To gain you need a sparse format and kernel, which pay off only at very "
              "high sparsity (section 4's dense-against-CSR timing), or a structured cut that "
              "leaves a smaller dense model.",
     },
     "figure": "the variants figure of section 3 (size against latency, accuracy per variant)"},
    {"question": "Why does `int8_dynamic` (quantise the `Linear` weights once, per row, and the "
                 "activations on the fly) speed up a transformer on a CPU?",
     "choices": {
         "a": "The `Linear` layers' matrix products hold most of the compute; their weights are "
              "fixed, so they are quantised once with a scale per row, while activations change "
              "with every input, so their scale is measured on the fly, and int8 products are "
              "fast on CPUs with int8 instructions (VNNI).",
         "b": "int8 holds more precision than fp32, so fewer operations are needed.",
         "c": "Dynamic quantisation also retrains the weights to make them easier to compute.",
         "d": "It quantises every layer, embeddings included, so the whole file shrinks four "
              "times.",
     },
     "answer": "a",
     "why": {
         "a": "Right. That is where the time goes, especially at batch 32. The embeddings are a "
              "lookup, not a matrix product, and stay fp32: that is why the file shrinks by about "
              "a third, not by four. On a CPU without fast int8 units the gain can vanish.",
         "b": "No. int8 has 256 levels per row against fp32's 24-bit mantissa; it gives up "
              "precision (each value within half a step $s/2$) to gain speed and bytes.",
         "c": "No. Post-training quantisation changes how weights are stored, not what they are "
              "trained to; no data or gradient is involved.",
         "d": "No. That is `onnx_int8`, which also quantises the embeddings (about a quarter of "
              "fp32's size). `int8_dynamic` leaves them in fp32.",
     }},
    {"question": "What does the population stability index (PSI) of section 7 measure?",
     "choices": {
         "a": "How much the model's accuracy has dropped since deployment.",
         "b": "The probability that the new batch comes from the same distribution as the "
              "reference.",
         "c": "How far the shares of a new batch over the same bins (of predicted labels, or of "
              "input lengths) have moved from the reference shares: 0 when identical, above 0.25 "
              "read as a major change.",
         "d": "The average difference in characters between new and reference texts.",
     },
     "answer": "c",
     "why": {
         "a": "No. Nobody labels the incoming texts, so accuracy cannot be watched; PSI looks "
              "only at what the server sees: inputs and predictions.",
         "b": "No. That is what a test's p-value speaks to (chi-square for the labels, "
              "Kolmogorov-Smirnov for the lengths); PSI is a size of change, not a probability.",
         "c": "Right. $\\sum_i (n_i - r_i)\\ln(n_i / r_i)$ adds a non-negative term for every bin "
              "whose share moved, in either direction. It says that the traffic changed, not "
              "whether the answers are wrong.",
         "d": "No. Lengths are one of the things binned, but PSI compares the shares per bin, not "
              "a mean difference.",
     }},
    {"question": "`drift_report` raises an alert only when PSI > 0.25 **and** p < 0.01. Why "
                 "require both?",
     "choices": {
         "a": "PSI alone is noisy on small batches, and a p-value alone fires on trivial "
              "differences once batches are large: together they ask for a change that is both "
              "big and real.",
         "b": "Two conditions halve the false alarms; any two statistics would do.",
         "c": "PSI only works for labels and the p-value only for lengths.",
         "d": "The p-value says how big the change is and PSI how certain it is.",
     },
     "answer": "a",
     "why": {
         "a": "Right. PSI measures size, the test measures whether the difference could be "
              "chance. With 400 texts per batch each guards against the other's failure.",
         "b": "No. The two are chosen because they fail in opposite situations; two statistics "
              "that fail the same way would add nothing.",
         "c": "No. Section 7 computes both, PSI and a test, for the labels and for the lengths.",
         "d": "The other way round: PSI is the size of the change, the p-value how unlikely such "
              "a difference is by chance.",
     }},
    {"question": "Look at section 7's figure (input length, predicted labels). What does it show "
                 "about the business news, and what should the person on call do?",
     "choices": {
         "a": "Its lengths overlap the reviews' and its label shares match the reference: nothing "
              "to do.",
         "b": "Its lengths differ, so the model is broken and must be retrained at once.",
         "c": "Its lengths sit about ten times to the right of the reviews and its label shares "
              "differ: the traffic is no longer what the model was built for; look, and perhaps "
              "label a sample, before trusting its answers.",
         "d": "The model still answers 'positive' or 'negative' with confidence, so it is coping.",
     },
     "answer": "c",
     "why": {
         "a": "No. Read the log-scale axis: the business news histogram sits around a thousand "
              "characters or more, the reviews around a hundred, and its bar of label shares "
              "differs from the reference.",
         "b": "Not yet: an alert says the inputs changed, not that the answers are wrong. Look "
              "first; retraining may or may not be the answer.",
         "c": "Right. Drift monitoring watches what can be seen without labels; labelling a "
              "sample is how you learn whether the model still works on the new traffic.",
         "d": "No. A classifier always picks a label and cannot say 'this is not a review'; its "
              "confidence is no evidence that it is right on text it was never meant to read.",
     },
     "figure": "the drift figure of section 7 (input length, predicted labels)"},
    {"question": "Why does a service report p95 and p99 latency and not only the mean?",
     "choices": {
         "a": "The mean is harder to compute from a stream of requests.",
         "b": "Latency has a long right tail: if 1 call in 20 is slow, a page that makes 20 calls "
              "is usually slow, and the mean hides those calls.",
         "c": "Percentiles are always lower than the mean, so they make the service look better.",
         "d": "p95 and p99 measure throughput, the mean measures latency.",
     },
     "answer": "b",
     "why": {
         "a": "No. The mean is the easiest statistic of all; the problem is what it hides.",
         "b": "Right. Section 5's histogram of single calls shows the tail: the users who wait "
              "longest are the ones a budget and an alert rule are about.",
         "c": "No. On a right-skewed distribution p95 and p99 lie *above* the mean; they show the "
              "worst common cases.",
         "d": "No. All three are latencies; throughput is requests or texts per second.",
     }},
]
