"""Exercises of lesson 08 (llm_course.exercises.lesson_08): right answers pass, typical wrong
answers fail and name the mistake, and the printed solutions run."""

import math

import numpy as np
import pytest
import torch

from llm_course import exercises
from llm_course.exercises import lesson_08 as bank


def run(exercise_id, answer, capsys, *args):
    passed = exercises.get(exercise_id).check(answer, *args)
    return passed, capsys.readouterr().out


# --- 08.int8_quantize -------------------------------------------------------------------------

def test_int8_quantize_round_trip_is_within_half_a_step():
    x = torch.randn(64, 48) * 0.1
    q, scale, zero_point = bank.int8_quantize(x)
    assert q.dtype == torch.int8 and isinstance(scale, float) and isinstance(zero_point, int)
    assert int(q.min()) == -128 and int(q.max()) == 127  # the range is used in full
    restored = scale * (q.float() - zero_point)
    assert float((restored - x).abs().max()) <= scale / 2 + 1e-6
    q0, _, z0 = bank.int8_quantize(torch.tensor([0.0, 1.0]))
    assert int(q0[0]) == z0  # zero is stored exactly
    q, scale, zero_point = bank.int8_quantize(torch.zeros(3))  # no range at all: still works
    assert (scale * (q.float() - zero_point)).tolist() == [0.0, 0.0, 0.0]


def test_int8_quantize_an_equivalent_answer_passes(capsys):
    def mine(x):  # another way to write the same thing
        lo, hi = min(x.min().item(), 0.0), max(x.max().item(), 0.0)
        s = (hi - lo) / 255
        z = int(-128 - round(lo / s))
        return (x / s).round().add(z).clamp(-128, 127).to(torch.int8), torch.tensor(s), z

    assert run("08.int8_quantize", mine, capsys)[0]


@pytest.mark.parametrize("mistake, message", [
    ("no_zero", "include 0"),
    ("by_256", "divided the range by 256"),
    ("no_clamp", "no clamp"),
    ("zp_sign", "wrong sign"),
    ("symmetric", "symmetric"),
    ("truncate", "truncated"),
])
def test_int8_quantize_mistakes_are_named(mistake, message, capsys):
    def affine(x, lo, hi, levels=255, sign=-1, clamp=True, rounding=torch.round):
        s = (hi - lo) / levels
        z = -128 + sign * round(lo / s)
        q = rounding(x / s) + z
        return (q.clamp(-128, 127) if clamp else q).to(torch.int8), s, z

    def bounds(x):
        return min(float(x.min()), 0.0), max(float(x.max()), 0.0)

    wrong = {
        "no_zero": lambda x: affine(x, float(x.min()), float(x.max())),
        "by_256": lambda x: affine(x, *bounds(x), levels=256),
        "no_clamp": lambda x: affine(x, *bounds(x), clamp=False),
        "zp_sign": lambda x: affine(x, *bounds(x), sign=1),
        "symmetric": lambda x: ((x / (x.abs().max() / 127)).round().clamp(-128, 127)
                                .to(torch.int8), float(x.abs().max()) / 127, 0),
        "truncate": lambda x: affine(x, *bounds(x), rounding=torch.trunc),
    }[mistake]
    passed, out = run("08.int8_quantize", wrong, capsys)
    assert not passed and message in out, out


def test_int8_quantize_float_q_is_refused_with_a_reason(capsys):
    def float_q(x):
        q, s, z = bank.int8_quantize(x)
        return q.float(), s, z

    passed, out = run("08.int8_quantize", float_q, capsys)
    assert not passed and "integer tensor" in out, out
    passed, out = run("08.int8_quantize", lambda x: bank.int8_quantize(x)[0], capsys)
    assert not passed and "(q, scale, zero_point)" in out, out


# --- 08.percentile ----------------------------------------------------------------------------

@pytest.mark.parametrize("q", [0, 5, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy(q):
    samples = list(np.random.default_rng(q).exponential(20, size=37))
    assert bank.percentile(samples, q) == pytest.approx(np.percentile(samples, q))


def test_numpy_percentile_passes(capsys):
    assert run("08.percentile", lambda s, q: float(np.percentile(s, q)), capsys)[0]


@pytest.mark.parametrize("wrong, message", [
    (lambda s, q: s[math.floor((len(s) - 1) * q / 100)], "sort"),
    (lambda s, q: sorted(s)[min(len(s) - 1, int(q / 100 * len(s)))], "without interpolating"),
    (lambda s, q: sorted(s)[round((len(s) - 1) * q / 100)], "rounded the position"),
    (lambda s, q: sum(s) / len(s), "mean"),
    (lambda s, q: float(np.percentile(s, q, method="lower")), "FAIL"),
])
def test_percentile_mistakes_fail(wrong, message, capsys):
    passed, out = run("08.percentile", wrong, capsys)
    assert not passed and message in out, out


def test_percentile_with_a_fraction_for_q_fails_without_raising(capsys):
    passed, out = run("08.percentile", lambda s, q: bank.percentile(s, q / 100), capsys)
    assert not passed and "FAIL" in out, out
