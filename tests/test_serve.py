"""Lesson 08's classifier service: validation, metrics, a real background server."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")

from fastapi.testclient import TestClient  # noqa: E402

from llm_course.deployment import serve  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random BERT classifier with MiniLM's tokenizer, saved as safetensors."""
    from testkit import save_tiny_classifier

    return save_tiny_classifier(tmp_path_factory.mktemp("tiny_classifier"))


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
    assert c.get("/metrics.json").json()["texts_truncated"] == 1


def test_health_and_metrics_count(model_dir):
    c = TestClient(serve.create_app(model_dir))
    assert c.get("/health").json()["labels"] == ["negative", "positive"]
    for _ in range(3):
        c.post("/predict", json={"text": "hello"})
    c.post("/predict", json={"texts": ["a", "b"]})
    c.post("/predict", json={"text": ""})
    m = c.get("/metrics.json").json()
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
        assert httpx.get(handle.url + "/metrics.json", timeout=10).json()["requests"] == 24
    finally:
        handle.stop()
    assert not handle.running
    with pytest.raises(ValueError, match="this machine"):
        serve.load_test("http://example.com:8000", ["x"])


# --- Unicode, content types and undecodable bodies (issue 26) ----------------------------

JSON = {"content-type": "application/json"}


@pytest.mark.parametrize("body", [
    b'{"text": "\\ud800"}',                      # a lone surrogate, as a JSON escape
    b'{"text": "ok \\udfff ok"}',
    b'{"texts": ["fine", "\\udc00"]}',
    b'{"text": "\xed\xa0\x80"}',                 # the same, as raw (CESU-style) bytes
])
def test_lone_surrogate_is_a_4xx(client, body):
    r = client.post("/predict", content=body, headers=JSON)
    assert r.status_code == 422, r.text
    assert "not valid Unicode" in r.json()["error"]
    assert client.post("/predict", json={"text": "still serving"}).status_code == 200


def test_surrogate_in_a_key_is_a_4xx(client):
    r = client.post("/predict", content=b'{"text": "a", "\\ud800": 1}', headers=JSON)
    assert r.status_code == 422 and "not valid Unicode" in r.json()["error"]


@pytest.mark.parametrize("kwargs", [
    {"content": b'{"text": "hi"}', "headers": {"content-type": "text/plain"}},
    {"content": b'{"text": "hi"}', "headers": {"content-type": ""}},
    {"data": {"text": "hi"}},                                   # a form
    {"files": {"text": ("a.txt", b"hi")}},                      # multipart
])
def test_non_json_content_type_is_415(client, kwargs):
    r = client.post("/predict", **kwargs)
    assert r.status_code == 415
    assert r.json()["error"] == "send JSON (Content-Type: application/json)"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.api+json"])
def test_json_content_types_are_accepted(client, content_type):
    r = client.post("/predict", content=b'{"text": "hi"}', headers={"content-type": content_type})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("body", "status", "words"), [
    (b'{"text": "\xff\xfe bad"}', 400, "not valid UTF-8"),
    ('{"text": "café"}'.encode("latin-1"), 400, "not valid UTF-8"),
    (b'{"text": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    (b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", 400, "nested too deeply"),
    (b"", 422, "empty"),
    (b"\x00\x00", 422, "not valid JSON"),
])
def test_undecodable_body_is_a_4xx_with_a_message(client, body, status, words):
    r = client.post("/predict", content=body, headers=JSON)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    assert client.post("/predict", json={"text": "still serving"}).status_code == 200


def test_other_http_errors_answer_json(client):
    r = client.get("/predict")
    assert r.status_code == 405 and r.json()["error"] == "Method Not Allowed"
    assert "POST" in r.headers["allow"]
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"] == "Not Found"


# --- fuzz ----------------------------------------------------------------------------------

ODD = ["\ud800", "\udfff", "\x00", "\u200f", "\u202e", "\u200b", "\ufeff", "\uffff",
       "\U0010ffff", "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "e\u0301",
       "\u3000", "\n", "\t", "\r\n", " ", "\\", '"', "'", "<script>", "%s", "{}", "\x7f",
       "\u0627\u0644\u0639", "\u4e2d\u6587", "NaN", "Infinity", "-0", "null", "true", "0x1F"]


def _fuzz_string(rng) -> str:
    size = rng.choice([0, 1, 2, 5, 20, 60, 300, 3000])
    odd = rng.choice([0.01, 0.3])
    parts = [rng.choice(ODD) if rng.random() < odd else rng.choice("abc xyz")
             for _ in range(size)]
    return "".join(parts)


def _fuzz_value(rng, depth: int = 0):
    kind = rng.choice(["str", "str", "str", "int", "float", "bool", "null", "list", "dict",
                       "bigint", "special"])
    if kind == "str":
        return _fuzz_string(rng)
    if kind == "int":
        return rng.randint(-10**18, 10**18)
    if kind == "bigint":
        return rng.choice([-1, 1]) * 10 ** rng.randint(19, 4000)
    if kind == "float":
        return rng.choice([0.0, -0.0, 1e308, -1e-308, 3.14, 1e-320])
    if kind == "special":
        return rng.choice([float("nan"), float("inf"), float("-inf")])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null" or depth > 4:
        return None
    if kind == "list":
        return [_fuzz_value(rng, depth + 1) for _ in range(rng.choice([0, 1, 3, 8]))]
    return {_fuzz_string(rng)[:20]: _fuzz_value(rng, depth + 1)
            for _ in range(rng.choice([0, 1, 2, 4]))}


def _fuzz_body(rng) -> tuple[bytes, dict[str, str]]:
    """A request body: mostly /predict-shaped JSON with odd values, sometimes broken bytes."""
    import json

    shape = rng.random()
    if shape < 0.35:
        value = {"text": rng.choice([_fuzz_string(rng), _fuzz_value(rng)])}
    elif shape < 0.6:
        value = {"texts": [rng.choice([_fuzz_string(rng), _fuzz_value(rng)])
                           for _ in range(rng.choice([0, 1, 2, 4, 5, 9]))]}
    elif shape < 0.7:
        value = {"text": _fuzz_string(rng), "texts": [_fuzz_string(rng)]}
    elif shape < 0.8:
        value = {rng.choice(["txt", "Text", "texts ", "", "\ud800", "text\x00"]): _fuzz_value(rng)}
    else:
        value = _fuzz_value(rng)
    raw = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    body = raw.encode("utf-8", "surrogatepass")  # a lone surrogate becomes raw bytes
    if rng.random() < 0.1:  # flip or cut bytes
        cut = rng.randrange(len(body) + 1)
        body = body[:cut] + bytes([rng.randrange(256)]) + body[cut + 1:]
    content_type = rng.choice(["application/json"] * 9 + ["text/plain", ""])
    return body, {"content-type": content_type}


def test_fuzz_predict_never_answers_5xx(model_dir):
    """300 seeded random bodies to two apps (strict, truncating): 4xx or a prediction each."""
    import random
    import time

    apps = [TestClient(serve.create_app(model_dir, max_batch=4, max_chars=50, truncate=False)),
            TestClient(serve.create_app(model_dir, max_batch=8, max_chars=500, truncate=True))]
    rng = random.Random(0)
    statuses: dict[int, int] = {}
    start = time.monotonic()
    sent = 0
    for i in range(300):
        if time.monotonic() - start > 25:  # a slow machine: stop early, checked below
            break
        body, headers = _fuzz_body(rng)
        r = apps[i % 2].post("/predict", content=body, headers=headers)
        sent += 1
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (body[:200], r.text[:300])
        reply = r.json()
        if r.status_code == 200:
            assert reply["predictions"] and all(p["label"] in {"negative", "positive"}
                                                for p in reply["predictions"])
        else:
            assert 400 <= r.status_code < 500 and isinstance(reply["error"], str)
            assert reply["error"], r.text
    assert sent >= 100, f"only {sent} requests in 25 s"
    assert statuses.get(200, 0) >= 10 and sum(v for k, v in statuses.items() if k >= 400) >= 50, \
        statuses
    for c in apps:
        assert c.post("/predict", json={"text": "still serving"}).status_code == 200
        assert not any(s.startswith("5") for s in c.get("/metrics.json").json()["responses_by_status"])


def test_a_server_bug_still_answers_json(model_dir):
    app = serve.create_app(model_dir)

    @app.get("/boom")
    def boom() -> None:
        raise ZeroDivisionError("a bug")

    c = TestClient(app, raise_server_exceptions=False)
    r = c.get("/boom")
    assert r.status_code == 500
    assert r.json()["error"] == "internal server error (ZeroDivisionError); see the server log"
    assert c.post("/predict", json={"text": "still serving"}).status_code == 200
