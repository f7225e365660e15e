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
