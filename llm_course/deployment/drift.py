"""Has the traffic changed? A simple drift check for a deployed classifier (taught in 08_deployment).

A model in service sees inputs nobody labels, so we watch what we can see without labels:
the distribution of its *predicted labels* and of the *input lengths*. `drift_report`
compares a new batch against a reference batch (e.g. the validation set, or last week) on
both signals, with two numbers each:

- the population stability index, PSI = sum over bins of (new - ref) * ln(new / ref),
  an effect size: below 0.1 "no change", 0.1 to 0.25 "some", above 0.25 "major" (the
  usual credit-scoring rule of thumb);
- a test p-value (chi-square for labels, Kolmogorov-Smirnov for lengths): how surprising
  the difference is for samples of this size.

A signal drifts when both agree: PSI above `psi_threshold` (0.25) AND p below `alpha`
(0.01). The p-value alone fires on trivial differences once batches are large; PSI alone
is noisy on small batches. With these defaults, fresh samples of the same movie reviews
stay quiet, while BBC business news sent to a movie-review model (texts 15 times longer,
labels skewed) fires on both signals (see tests/test_drift.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PSI_THRESHOLD = 0.25
ALPHA = 0.01


def psi(reference_counts: Sequence[float], new_counts: Sequence[float],
        smoothing: float = 0.5) -> float:
    """Population stability index between two histograms over the same bins.

    `smoothing` is added to every count, so an empty bin (common in small batches) gives
    a large but finite term instead of an infinite one.
    """
    ref = np.asarray(reference_counts, dtype=float) + smoothing
    cur = np.asarray(new_counts, dtype=float) + smoothing
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def label_drift(reference_preds: Sequence[Any], new_preds: Sequence[Any],
                psi_threshold: float = PSI_THRESHOLD, alpha: float = ALPHA) -> dict[str, Any]:
    """Compare predicted-label shares: PSI and a chi-square test of homogeneity."""
    from scipy.stats import chi2_contingency

    labels = sorted({*map(str, reference_preds), *map(str, new_preds)})
    ref_counts, new_counts = Counter(map(str, reference_preds)), Counter(map(str, new_preds))
    table = np.array([[ref_counts[k] for k in labels], [new_counts[k] for k in labels]])
    if len(labels) > 1:
        chi2, p_value = (float(x) for x in chi2_contingency(table)[:2])
    else:  # one label in both batches: nothing has moved
        chi2, p_value = 0.0, 1.0
    value = psi(table[0], table[1])
    return {
        "psi": round(value, 4), "chi2": round(chi2, 2), "p_value": p_value,
        "reference": {k: round(ref_counts[k] / len(reference_preds), 3) for k in labels},
        "new": {k: round(new_counts[k] / len(new_preds), 3) for k in labels},
        "drift": bool(value > psi_threshold and p_value < alpha),
    }


def length_drift(reference_lengths: Sequence[float], new_lengths: Sequence[float],
                 bins: int = 10, psi_threshold: float = PSI_THRESHOLD,
                 alpha: float = ALPHA) -> dict[str, Any]:
    """Compare input lengths: PSI over the reference's deciles and a two-sample KS test."""
    from scipy.stats import ks_2samp

    ref = np.asarray(reference_lengths, dtype=float)
    cur = np.asarray(new_lengths, dtype=float)
    inner = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = np.r_[-np.inf, inner, np.inf]  # open ends: new extremes land in the end bins
    ref_hist, _ = np.histogram(ref, edges)
    new_hist, _ = np.histogram(cur, edges)
    value = psi(ref_hist, new_hist)
    ks = ks_2samp(ref, cur)
    return {
        "psi": round(value, 4), "ks": round(float(ks.statistic), 4),
        "p_value": float(ks.pvalue),
        "reference_median": float(np.median(ref)), "new_median": float(np.median(cur)),
        "drift": bool(value > psi_threshold and ks.pvalue < alpha),
    }


def drift_report(reference_texts: Sequence[str], reference_preds: Sequence[Any],
                 new_texts: Sequence[str], new_preds: Sequence[Any],
                 psi_threshold: float = PSI_THRESHOLD, alpha: float = ALPHA,
                 length: Callable[[str], float] = len) -> dict[str, Any]:
    """Per-signal statistics for predicted labels and input lengths, and one `alert`.

    `length` measures a text (characters by default; pass e.g.
    `lambda t: len(tokenizer(t)["input_ids"])` for tokens). `alert` is true when any
    signal drifts (PSI > `psi_threshold` and p < `alpha`; see the module docstring).
    """
    if not reference_texts or not new_texts:
        raise ValueError("both batches need at least one text")
    if len(reference_texts) != len(reference_preds) or len(new_texts) != len(new_preds):
        raise ValueError("each batch needs one prediction per text")
    labels = label_drift(reference_preds, new_preds, psi_threshold, alpha)
    lengths = length_drift([length(t) for t in reference_texts],
                           [length(t) for t in new_texts],
                           psi_threshold=psi_threshold, alpha=alpha)
    return {
        "n_reference": len(reference_texts), "n_new": len(new_texts),
        "labels": labels, "length": lengths,
        "thresholds": {"psi": psi_threshold, "alpha": alpha},
        "alert": labels["drift"] or lengths["drift"],
    }


def format_drift_report(report: dict[str, Any]) -> str:
    """A few readable lines for a notebook or a log."""
    lab, ln = report["labels"], report["length"]
    flag = "ALERT: drift" if report["alert"] else "no drift"
    return "\n".join([
        f"{flag} ({report['n_new']} new vs {report['n_reference']} reference texts; "
        f"drift = PSI > {report['thresholds']['psi']} and p < {report['thresholds']['alpha']})",
        f"  labels: PSI {lab['psi']:.3f}, chi-square p {lab['p_value']:.2g}, "
        f"shares {lab['reference']} -> {lab['new']}{'  <- drift' if lab['drift'] else ''}",
        f"  length: PSI {ln['psi']:.3f}, KS p {ln['p_value']:.2g}, median "
        f"{ln['reference_median']:.0f} -> {ln['new_median']:.0f}"
        f"{'  <- drift' if ln['drift'] else ''}",
    ])
