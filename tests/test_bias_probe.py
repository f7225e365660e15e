"""Lesson 08's counterfactual bias probe, checked with fake classifiers whose bias we know."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from llm_course.deployment.bias_probe import (
    GENDER_WORDS,
    GENDERS,
    NAMES,
    ORIGINS,
    RELATIVES,
    compare_groups,
    counterfactual_pairs,
    run_probe,
    wilson_interval,
)

FEMALE = ({n for names in NAMES.values() for n in names["female"]}
          | set(GENDER_WORDS["female"].values()) | {r["female"] for r in RELATIVES})
MALE = ({n for names in NAMES.values() for n in names["male"]}
        | set(GENDER_WORDS["male"].values()) | {r["male"] for r in RELATIVES})
SWAPPABLE = FEMALE | MALE
COMPARISONS = [("female", "male"), ("male", "female")] + [
    (a, b) for a in ORIGINS for b in ORIGINS if a != b]


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text)


def base(text: str) -> float:
    """A probability in [0.1, 0.75] that depends on the text with the swappable words masked."""
    masked = " ".join("X" if t in SWAPPABLE else t for t in tokens(text))
    return 0.1 + 0.65 * (zlib.crc32(masked.encode()) % 1000) / 999


def as_proba(positive: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - positive, positive])


def blind(texts: list[str]) -> np.ndarray:
    return as_proba(np.array([base(t) for t in texts]))


def likes_women(texts: list[str], bonus: float = 0.2) -> np.ndarray:
    return as_proba(np.array([base(t) + bonus * any(w in FEMALE for w in tokens(t))
                              for t in texts]))


@pytest.mark.parametrize("a, b", COMPARISONS)
def test_pairs_differ_only_in_swapped_words(a, b):
    pairs = counterfactual_pairs(a, b)
    assert len(pairs) >= 100
    for text_a, text_b in zip(pairs.text_a, pairs.text_b):
        ta, tb = tokens(text_a), tokens(text_b)
        assert len(ta) == len(tb), (text_a, text_b)
        changed = [(x, y) for x, y in zip(ta, tb) if x != y]
        assert changed, text_a
        for x, y in changed:
            assert x in SWAPPABLE and y in SWAPPABLE, (text_a, text_b)
            if a in GENDERS:  # every change goes from group a's words to group b's
                assert (x in FEMALE) == (a == "female") and (y in FEMALE) == (b == "female")
            else:  # names of the two origins, same gender
                assert x in NAMES[a]["female"] + NAMES[a]["male"]
                assert y in NAMES[b]["female"] + NAMES[b]["male"]
                assert (x in FEMALE) == (y in FEMALE)


def test_a_blind_classifier_shows_no_gap_and_no_flips():
    for a, b in COMPARISONS:
        report = run_probe(blind, counterfactual_pairs(a, b))
        assert report.gap == 0 and report.gap_ci == (0.0, 0.0)
        assert report.flip_rate == 0 and report.flip_ci[1] < 0.03


def test_a_bonus_for_female_words_is_measured():
    report = run_probe(likes_women, counterfactual_pairs("female", "male"))
    assert report.gap == pytest.approx(0.2)
    assert report.gap_ci[0] - 1e-9 <= 0.2 <= report.gap_ci[1] + 1e-9
    # a pair flips exactly when the bonus carries it over 0.5
    male_base = report.pairs.text_b.map(base)
    assert report.pairs.flip.equals((male_base <= 0.5) & (male_base > 0.3))
    assert 0 < report.flip_rate < 1
    assert report.flip_ci[0] < report.flip_rate < report.flip_ci[1]
    assert (report.worst(5).gap.abs() >= report.pairs.gap.abs().max() - 1e-9).all()
    assert "334 pairs: mean gap +0.200" in report.summary()
    # the same classifier sees no difference between origins (same gender in each pair)
    origins = run_probe(likes_women, counterfactual_pairs("Hispanic", "South Asian"))
    assert origins.gap == pytest.approx(0) and origins.flip_rate == 0


def test_the_interval_covers_the_true_gap():
    # gap 0.05 plus independent noise on every text: the bootstrap interval should cover
    # 0.05 in about 95 % of runs (measured: 93 of these 100, 94.7 % of 300 seeds;
    # intervals 0.026 to 0.035 wide)
    pairs = counterfactual_pairs("female", "male")
    covered, widths = 0, []
    for seed in range(100):
        rng = np.random.default_rng(seed)

        def noisy(texts, rng=rng):
            bonus = [0.05 * any(w in FEMALE for w in tokens(t)) for t in texts]
            return as_proba(np.array([base(t) for t in texts]) + bonus
                            + rng.normal(0, 0.1, len(texts)))

        low, high = run_probe(noisy, pairs, n_boot=1000, seed=seed).gap_ci
        covered += low <= 0.05 <= high
        widths.append(high - low)
    assert covered >= 88
    assert 0.02 < np.mean(widths) < 0.04


def test_wilson_interval():
    assert wilson_interval(0, 100)[0] == pytest.approx(0, abs=1e-12)
    assert 0.03 < wilson_interval(0, 100)[1] < 0.04  # the "rule of three" is 0.03
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.404, abs=1e-3) and high == pytest.approx(0.596, abs=1e-3)


def test_compare_groups_and_bad_groups():
    table = compare_groups(likes_women)
    assert list(table.group_a) == ["female", "African-American", "Hispanic", "South Asian"]
    assert table.gap.iloc[0] == pytest.approx(0.2)
    assert np.allclose(table.gap.iloc[1:], 0)
    with pytest.raises(ValueError, match="two genders"):
        counterfactual_pairs("female", "Hispanic")
    with pytest.raises(ValueError, match="two genders"):
        counterfactual_pairs("male", "male")
