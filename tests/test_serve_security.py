"""The service's protections (issue 22): API keys, rate limits, a masked request log,
Prometheus metrics, and a stop that lets requests in flight finish."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("torch")

from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from llm_course import cli  # noqa: E402
from llm_course.deployment import access, masking, serve  # noqa: E402
from llm_course.deployment.rate_limit import RateLimiter, TokenBucket, retry_after  # noqa: E402

KEYS = {"alice": "alice-secret-key-0123456789", "bob": "bob-secret-key-9876543210"}
ALICE = {"Authorization": f"Bearer {KEYS['alice']}"}
BOB = {"X-API-Key": KEYS["bob"]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory):
    """A tiny random BERT classifier with MiniLM's tokenizer, saved as safetensors."""
    from testkit import save_tiny_classifier

    return save_tiny_classifier(tmp_path_factory.mktemp("secure_classifier"))


@pytest.fixture(scope="module")
def keyed(model_dir):
    return TestClient(serve.create_app(model_dir, api_keys=KEYS, max_body_bytes=300))


def good(client: TestClient, headers: dict[str, str] = ALICE) -> int:
    return client.post("/predict", json={"text": "still serving"}, headers=headers).status_code


# --- access control -----------------------------------------------------------------------

def test_keys_from_text_file_and_environment(tmp_path):
    assert access.parse_keys("alice:K1, bob:K2", "x") == {"alice": "K1", "bob": "K2"}
    assert access.parse_keys("K1,K2", "x") == {"key-1": "K1", "key-2": "K2"}
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# team keys\nalice:K1\n\nbob: K2\n")
    assert access.load_keys(api_keys_file=keys_file) == {"alice": "K1", "bob": "K2"}
    env = {access.ENV_VAR: "carol:K3"}
    assert access.load_keys(environ=env) == {"carol": "K3"}
    assert access.load_keys(api_keys_file=keys_file, environ=env) == {"alice": "K1", "bob": "K2"}
    assert access.load_keys(api_keys={}, environ=env) == {}
    assert access.load_keys(environ={}) == {}


@pytest.mark.parametrize(("text", "words"), [
    ("alice:", "both non-empty"),
    ("alice:K1,alice:K2", "used twice"),
    ("alice:K1,bob:K1", "also given to another name"),
    ("alice:k\u00e9y", "printable ASCII"),
])
def test_bad_keys_are_named_without_showing_the_key(text, words):
    with pytest.raises(ValueError, match=words) as err:
        access.parse_keys(text, "$LLM_COURSE_API_KEYS")
    assert "K1" not in str(err.value) and "k\u00e9y" not in str(err.value)


def test_missing_or_empty_keys_file(tmp_path):
    with pytest.raises(ValueError, match="cannot read the API keys file"):
        access.load_keys(api_keys_file=tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(ValueError, match="holds no keys"):
        access.load_keys(api_keys_file=tmp_path / "empty.txt")


def test_key_ring_identifies_the_key_by_name():
    ring = access.KeyRing(KEYS)
    assert ring.identify(KEYS["bob"]) == "bob"
    assert ring.identify(KEYS["bob"] + "x") is None
    assert ring.identify("") is None
    assert not access.KeyRing({})
    assert access.presented_key({"authorization": "bearer  abc "}) == "abc"
    assert access.presented_key({"x-api-key": "abc"}) == "abc"
    assert access.presented_key({"authorization": "Basic abc"}) is None


def test_who_can_reach_the_server():
    assert access.exposure_warning("127.0.0.1", False) == (
        "no API keys: serving on 127.0.0.1 only; anyone on this machine can call it")
    assert access.exposure_warning("127.0.0.1", True) == ""
    for host in ("0.0.0.0", "192.168.1.10", "::", "my-host.example"):
        with pytest.raises(ValueError, match="--api-keys-file") as err:
            access.exposure_warning(host, False)
        assert access.ENV_VAR in str(err.value) and "--insecure-public" in str(err.value)
        assert "without API keys" in access.exposure_warning(host, False, True)
        assert "other machines" in access.exposure_warning(host, True)
    assert access.is_loopback("::1") and access.is_loopback("127.0.0.2")
    assert access.is_loopback("localhost") and not access.is_loopback("0.0.0.0")


def test_public_host_without_keys_is_refused_before_loading(tmp_path, model_dir, monkeypatch):
    monkeypatch.delenv(access.ENV_VAR, raising=False)
    with pytest.raises(ValueError, match="refusing to listen on 0.0.0.0"):
        serve.start_background(tmp_path / "no-model-here", host="0.0.0.0")
    with pytest.raises(ValueError, match="refusing to listen on 0.0.0.0"):
        serve.serve(tmp_path / "no-model-here", host="0.0.0.0", port=0)
    with pytest.raises(ValueError, match="refusing to listen on 0.0.0.0"):
        serve.BackgroundServer(serve.create_app(model_dir), host="0.0.0.0")


def test_status_codes_and_the_server_goes_on(keyed):
    assert keyed.get("/health").status_code == 200  # open
    r = keyed.post("/predict", json={"text": "hi"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer KEY" in r.json()["error"]
    assert good(keyed) == 200
    r = keyed.post("/predict", json={"text": "hi"}, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 403 and "not accepted" in r.json()["error"]
    assert good(keyed) == 200
    r = keyed.post("/predict", json={"text": "hi"}, headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
    assert good(keyed, BOB) == 200  # X-API-Key works too
    r = keyed.post("/predict", json={"text": "y" * 500}, headers=ALICE)
    assert r.status_code == 413 and "300 bytes" in r.json()["error"]
    assert good(keyed) == 200
    r = keyed.post("/predict", json={"texts": ["a"] * 33}, headers=ALICE)
    assert r.status_code == 422 and "at most 32" in r.json()["error"]
    assert good(keyed) == 200
    for path in ("/metrics", "/metrics.json", "/nowhere"):
        assert keyed.get(path).status_code == 401
        assert keyed.get(path, headers={"X-API-Key": "wrong"}).status_code == 403
    assert keyed.get("/metrics", headers=ALICE).status_code == 200
    assert keyed.get("/metrics.json", headers=BOB).json()["responses_by_status"]["401"] == 2
    assert keyed.get("/openapi.json").json()["components"]["securitySchemes"]


def test_keys_from_the_environment(model_dir, monkeypatch):
    monkeypatch.setenv(access.ENV_VAR, "ci:env-key-123456")
    c = TestClient(serve.create_app(model_dir))
    assert c.post("/predict", json={"text": "hi"}).status_code == 401
    assert good(c, {"Authorization": "Bearer env-key-123456"}) == 200


# --- rate limits --------------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_throttles():
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=3, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token comes back in 1 / rate s
    clock.now += 0.5
    assert bucket.take() == 0.0 and bucket.take() > 0
    clock.now += 60  # a long pause refills to the burst, no more
    assert [bucket.take() for _ in range(4)].count(0.0) == 3


def test_limiter_keeps_one_bucket_per_caller():
    clock = FakeClock()
    limiter = RateLimiter(rate=1, burst=2, clock=clock)
    assert [limiter.wait_seconds("alice") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.wait_seconds("bob") == 0.0
    assert retry_after(1.0) == "1" and retry_after(0.01) == "1" and retry_after(2.2) == "3"
    assert RateLimiter(rate=2.5).burst == 3
    for rate, burst in ((0, 1), (-1, 1), (1, 0), (float("inf"), 1)):
        with pytest.raises(ValueError):
            RateLimiter(rate, burst)


def test_one_key_throttled_while_another_is_served(model_dir):
    c = TestClient(serve.create_app(model_dir, api_keys=KEYS, rate=0.01, burst=2))
    assert [good(c) for _ in range(2)] == [200, 200]
    r = c.post("/predict", json={"text": "one more"}, headers=ALICE)
    assert r.status_code == 429 and "too many requests" in r.json()["error"]
    assert int(r.headers["retry-after"]) >= 1
    assert good(c, BOB) == 200  # bob has his own bucket
    assert c.get("/health").status_code == 200  # never limited
    assert c.get("/metrics", headers=ALICE).status_code == 429


def test_without_keys_the_limit_is_per_client_address(model_dir):
    c = TestClient(serve.create_app(model_dir, api_keys={}, rate=0.01, burst=1))
    assert good(c, {}) == 200
    assert c.post("/predict", json={"text": "again"}).status_code == 429


# --- the request log ----------------------------------------------------------------------

SENSITIVE = {
    "<email>": ["john.doe@example.com", "A.B+tag@sub.mail.co.uk", "UPPER_CASE@EXAMPLE.ORG",
                "x-y@mail-server.io"],
    "<phone>": ["+1 (555) 123-4567", "555-123-4567", "(020) 7946 0958", "+44 20 7946 0958",
                "555.123.4567", "5551234567", "+33 1 23 45 67 89"],
    "<card>": ["4111 1111 1111 1111", "4111-1111-1111-1111", "378282246310005",
               "6011000990139424", "3782 822463 10005", "6304000000000000000"],
    "<url>": ["https://example.com/watch?v=abc123", "http://10.1.2.3:8080/admin",
              "www.my-site.org/page", "HTTPS://WWW.EXAMPLE.COM"],
    "<ip>": ["192.168.0.1", "10.0.0.255", "2001:db8::8a2e:370:7334", "fe80::1",
             "2001:0db8:0000:0000:0000:ff00:0042:8329"],
}
ORDINARY = ["10 out of 10", "in 1999", "2 hours 15 minutes", "released 2024-01-15",
            "the 1980-1989 decade", "rated 4.5 stars", "Chapter 11"]


@pytest.mark.parametrize("kind", list(SENSITIVE))
def test_mask_replaces_each_kind(kind):
    for value in SENSITIVE[kind]:
        assert masking.mask(f"see {value}, thanks") == f"see {kind}, thanks", value


def test_mask_keeps_ordinary_words_and_numbers():
    for text in ORDINARY:
        assert masking.mask(f"A fine film, {text}.") == f"A fine film, {text}.", text


def test_the_request_log_never_holds_the_texts(model_dir, tmp_path):
    log = tmp_path / "requests.jsonl"
    c = TestClient(serve.create_app(model_dir, api_keys=KEYS, log_path=log))
    texts = [f"Mail me at {value} now" for values in SENSITIVE.values() for value in values]
    for start in range(0, len(texts), 8):
        r = c.post("/predict", json={"texts": texts[start:start + 8]}, headers=ALICE)
        assert r.status_code == 200
    ordinary = [f"Great film, {text}." for text in ORDINARY]
    assert c.post("/predict", json={"texts": ordinary}, headers=BOB).status_code == 200
    assert c.post("/predict", json={"text": "x"}).status_code == 401
    c.app.state.request_log.close()

    raw = log.read_text()
    for values in SENSITIVE.values():
        for value in values:
            assert value.lower() not in raw.lower(), value
    for secret in KEYS.values():
        assert secret not in raw
    lines = [json.loads(line) for line in raw.splitlines()]
    assert [(e["key"], e["status"], e["n_texts"]) for e in lines[-2:]] == [
        ("bob", 200, len(ORDINARY)), (None, 401, 0)]
    logged = [t for e in lines for t in e["texts"]]
    assert len(logged) == len(texts) + len(ORDINARY)
    for text, entry in zip(texts + ordinary, logged, strict=True):
        assert entry["sha256_16"] == hashlib.sha256(text.encode()).hexdigest()[:16]
        assert entry["chars"] == len(text)
        assert entry["preview"].startswith("Mail me at <") or entry["preview"] == text
    assert {"time", "key", "endpoint", "status", "latency_ms"} <= set(lines[0])


def test_preview_is_cut_after_masking():
    text = "x" * 50 + " john.doe@example.com and more words after it " * 3
    entry = masking.describe_text(text)
    assert entry["preview"] == "x" * 50 + " <email> a..."
    assert entry["chars"] == len(text)


# --- Prometheus metrics -------------------------------------------------------------------

def families(client: TestClient) -> dict:
    r = client.get("/metrics", headers=ALICE)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def test_prometheus_text_holds_the_four_kinds(model_dir):
    c = TestClient(serve.create_app(model_dir, api_keys=KEYS))
    other = TestClient(serve.create_app(model_dir, api_keys=KEYS))  # its own registry
    c.post("/predict", json={"texts": ["good", "bad", "fine"]}, headers=ALICE)
    c.post("/predict", json={"text": "no key"})
    found = families(c)
    kinds = {name: f.type for name, f in found.items() if name.startswith("llm_course")}
    assert kinds["llm_course_requests"] == "counter"
    assert kinds["llm_course_errors"] == "counter"
    assert kinds["llm_course_request_duration_seconds"] == "histogram"
    assert kinds["llm_course_requests_in_flight"] == "gauge"
    assert kinds["llm_course_predicted_labels"] == "counter"

    def value(name: str, **labels: str) -> float:
        return sum(s.value for s in found[name].samples
                   if s.name == name + "_total" and labels.items() <= s.labels.items())

    assert value("llm_course_requests", endpoint="/predict", status="200") == 1
    assert value("llm_course_errors", endpoint="/predict", status="401") == 1
    assert value("llm_course_predicted_labels") == 3
    assert {s.labels["label"] for s in found["llm_course_predicted_labels"].samples} == {
        "negative", "positive"}
    counts = [s for s in found["llm_course_request_duration_seconds"].samples
              if s.name.endswith("_count") and s.labels["endpoint"] == "/predict"]
    assert counts[0].value == 2
    labels_elsewhere = families(other)["llm_course_predicted_labels"].samples
    assert sum(s.value for s in labels_elsewhere if s.name.endswith("_total")) == 0


# --- graceful stop ------------------------------------------------------------------------

def test_stop_lets_a_request_in_flight_finish(model_dir):
    import httpx

    app = serve.create_app(model_dir, api_keys=KEYS)
    model = app.state.model
    forward = model.forward
    entered = threading.Event()

    def slow_forward(*args, **kwargs):
        entered.set()
        time.sleep(1.5)
        return forward(*args, **kwargs)

    model.forward = slow_forward
    handle = serve.BackgroundServer(app, port=0, timeout=30)
    replies: list = []

    def call() -> None:
        replies.append(httpx.post(handle.url + "/predict", json={"text": "slow"},
                                  headers=ALICE, timeout=30))

    caller = threading.Thread(target=call)
    try:
        caller.start()
        assert entered.wait(20), "the request never reached the model"
        start = time.monotonic()
        handle.stop(timeout=20)
        assert time.monotonic() - start < 15
    finally:
        caller.join(30)
        handle.stop()
    assert not handle.running
    assert replies and replies[0].status_code == 200, replies
    assert replies[0].json()["predictions"][0]["label"] in {"negative", "positive"}
    with pytest.raises(httpx.TransportError):
        httpx.get(handle.url + "/health", timeout=2)


def test_start_background_warns_without_keys(model_dir, capsys, monkeypatch):
    monkeypatch.delenv(access.ENV_VAR, raising=False)
    with serve.start_background(model_dir, port=0) as handle:
        assert "no API keys: serving on 127.0.0.1 only" in capsys.readouterr().out
        report = serve.load_test(handle.url, ["fine"], n_requests=4, concurrency=2)
        assert report["ok"] == 4
    with serve.start_background(model_dir, port=0, api_keys=KEYS) as handle:
        assert "no API keys" not in capsys.readouterr().out
        assert serve.load_test(handle.url, ["fine"], n_requests=4, concurrency=2)["ok"] == 0
        report = serve.load_test(handle.url, ["fine"], n_requests=4, concurrency=2,
                                 api_key=KEYS["bob"])
        assert report["ok"] == 4


# --- the command line ---------------------------------------------------------------------

def run_cli(capsys, *argv: str) -> tuple[int, str]:
    status = cli.main(list(argv))
    return status, capsys.readouterr().err


def test_cli_refuses_a_public_host_without_keys(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv(access.ENV_VAR, raising=False)
    status, err = run_cli(capsys, "serve", str(tmp_path), "--host", "0.0.0.0", "--port", "0")
    assert status == 2 and "--api-keys-file" in err and "LLM_COURSE_API_KEYS" in err
    assert len(err.strip().splitlines()) == 1
    status, err = run_cli(capsys, "serve", str(tmp_path), "--api-keys-file",
                          str(tmp_path / "missing"))
    assert status == 2 and "cannot read the API keys file" in err
    status, err = run_cli(capsys, "serve", str(tmp_path), "--burst", "3")
    assert status == 2 and "--burst needs --rate" in err
    for bad in ("0", "-1", "inf", "many"):
        assert run_cli(capsys, "serve", str(tmp_path), "--rate", bad)[0] == 2


def test_cli_help_names_the_options(capsys):
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--api-keys-file", "--request-log", "--rate", "--burst", "--insecure-public",
                 "LLM_COURSE_API_KEYS", "/metrics.json"):
        assert flag in out, flag


def test_cli_serves_with_keys_and_a_log_then_stops_on_sigterm(model_dir, tmp_path):
    import os

    import httpx
    from testkit import post_when_up, serve_in_subprocess

    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("\n".join(f"{n}:{k}" for n, k in KEYS.items()))
    log = tmp_path / "log.jsonl"
    env = {k: v for k, v in os.environ.items() if k != access.ENV_VAR}
    proc, url, deadline = serve_in_subprocess(
        [str(model_dir), "--port", "0", "--api-keys-file", str(keys_file), "--request-log",
         str(log), "--rate", "50"], env)
    try:
        with httpx.Client(timeout=10) as client:
            r = post_when_up(client, url + "/predict", deadline, json={"text": "call 555-123-4567"})
            assert r.status_code == 401
            r = client.post(url + "/predict", json={"text": "call 555-123-4567"}, headers=ALICE)
            assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode is not None
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["key"], e["status"]) for e in entries] == [(None, 401), ("alice", 200)]
    assert entries[1]["texts"][0]["preview"] == "call <phone>"
    assert "555-123-4567" not in log.read_text()
