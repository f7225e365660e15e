"""Serve a fine-tuned classifier over HTTP with FastAPI, and load-test it (taught in 08_deployment).

`create_app(model_dir)` loads the model once and returns a FastAPI app with
`POST /predict`, `GET /health` and `GET /metrics`. `serve` runs it with uvicorn (what
`llm-course serve MODEL_DIR` does); `start_background` runs it in a thread of a notebook's
own process; `load_test` sends it concurrent requests and reports latency percentiles.

Safety: the model folder is loaded by `model_folder.load_classifier` (safetensors only,
never remote code; a folder that cannot be served raises `ModelFolderError` in one line),
and requests are checked by `requests` (every bad request gets a 4xx whose JSON body has
an "error" message, and the server goes on).
"""

from __future__ import annotations

import bisect
import socket
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from llm_course.deployment.model_folder import load_classifier
from llm_course.deployment.requests import (
    body_error,
    is_json,
    printable,
    readable_errors,
    request_model,
)

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Monitor:
    """Counters behind `GET /metrics`, plus a bounded log of recent inputs for drift checks."""

    def __init__(self, labels: Sequence[str], recent: int = 2000) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.status = Counter()
        self.texts = 0
        self.truncated = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
        self.latency_sum_ms = 0.0
        self.labels = Counter({label: 0 for label in labels})
        self.recent: deque[tuple[int, str]] = deque(maxlen=recent)  # (characters, label)

    def record_request(self, status: int, elapsed_ms: float) -> None:
        with self.lock:
            self.requests += 1
            self.status[str(status)] += 1
            if status < 400:
                self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_MS, elapsed_ms)] += 1
                self.latency_sum_ms += elapsed_ms

    def record_predictions(self, texts: Sequence[str], labels: Sequence[str],
                           truncated: int) -> None:
        with self.lock:
            self.texts += len(texts)
            self.truncated += truncated
            self.labels.update(labels)
            self.recent.extend((len(t), label) for t, label in zip(texts, labels, strict=True))

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            edges = [f"<={b}" for b in LATENCY_BUCKETS_MS] + [f">{LATENCY_BUCKETS_MS[-1]}"]
            ok = sum(self.latency_counts)
            return {
                "requests": self.requests,
                "responses_by_status": dict(self.status),
                "texts_predicted": self.texts,
                "texts_truncated": self.truncated,
                "latency_ms_histogram": dict(zip(edges, self.latency_counts, strict=True)),
                "latency_ms_mean": round(self.latency_sum_ms / ok, 2) if ok else None,
                "predicted_labels": dict(self.labels),
            }


def create_app(model_dir: str | Path, max_batch: int = 32, max_chars: int = 2000,
               truncate: bool = True, max_body_bytes: int = 1_000_000,
               variant: str = "fp32") -> Any:
    """A FastAPI app serving the classifier in `model_dir` (loaded once, here).

    `variant` "bf16" or "int8_dynamic" serves a compressed copy (`llm_course.deployment.compress`).

    Texts longer than `max_chars` are cut to `max_chars` when `truncate` is true (the reply
    says so per text), refused with 422 otherwise. The tokenizer then truncates to the
    model's maximum length. Bodies over `max_body_bytes` get 413. Model calls are
    serialised by a lock: torch already uses every core for one batch.
    """
    import torch
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.utils import is_body_allowed_for_status_code
    from starlette.exceptions import HTTPException

    from llm_course.deployment import compress

    builders = {"fp32": compress.fp32, "bf16": compress.bf16,
                "int8_dynamic": compress.int8_dynamic}
    if variant not in builders:
        raise ValueError(f"variant must be one of {sorted(builders)}, not {variant!r}")
    model, tokenizer = load_classifier(model_dir)
    model = builders[variant](model)
    id2label = {int(k): v for k, v in model.config.id2label.items()}
    labels = [id2label[i] for i in sorted(id2label)]
    max_tokens = min(int(getattr(model.config, "max_position_embeddings", 512)), 512)
    monitor = Monitor(labels)
    model_lock = threading.Lock()
    PredictRequest = request_model(max_batch, max_chars, truncate)  # noqa: N806

    app = FastAPI(title="llm-course classifier", version="1.0",
                  description=f"Serves {Path(model_dir).name}: POST /predict.")
    app.state.monitor = monitor
    app.state.model = model
    app.state.tokenizer = tokenizer

    hint = 'POST JSON such as {"text": "..."} or {"texts": ["...", "..."]}'

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{k: printable(e[k]) for k in ("loc", "msg", "type") if k in e}
                  for e in exc.errors()]
        return JSONResponse(status_code=422, content={
            "error": readable_errors(errors), "detail": errors, "hint": hint})

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if not is_body_allowed_for_status_code(exc.status_code):
            return Response(status_code=exc.status_code, headers=exc.headers)
        message = body_error(exc) or str(exc.detail)
        return JSONResponse(status_code=exc.status_code, headers=exc.headers,
                            content={"error": message, "detail": exc.detail})

    @app.exception_handler(Exception)
    async def _crashed(request: Request, exc: Exception) -> JSONResponse:
        # A bug or a model failure: still a JSON answer; the traceback goes to the server log.
        return JSONResponse(status_code=500, content={
            "error": f"internal server error ({type(exc).__name__}); see the server log"})

    @app.middleware("http")
    async def _measure(request: Request, call_next: Any) -> Any:
        if request.url.path != "/predict" or request.method != "POST":
            return await call_next(request)
        start = time.perf_counter()
        size = request.headers.get("content-length", "")
        if not size.isdigit():
            response: Any = JSONResponse(status_code=411, content={
                "error": "send a Content-Length header (a JSON body, not a stream)"})
        elif int(size) > max_body_bytes:
            response = JSONResponse(status_code=413, content={
                "error": f"request body over {max_body_bytes} bytes"})
        elif not is_json(request.headers.get("content-type", "")):
            response = JSONResponse(status_code=415, content={
                "error": "send JSON (Content-Type: application/json)", "hint": hint})
        else:
            try:
                response = await call_next(request)
            except Exception:  # a bug or a model failure: count it, let FastAPI answer 500
                monitor.record_request(500, 1000 * (time.perf_counter() - start))
                raise
        monitor.record_request(response.status_code, 1000 * (time.perf_counter() - start))
        return response

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": Path(model_dir).name, "variant": variant,
                "labels": labels,
                "max_batch": max_batch, "max_chars": max_chars, "truncate": truncate}

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        return monitor.snapshot()

    def predict(body: Any) -> dict[str, Any]:
        texts = [body.text] if body.text is not None else list(body.texts)
        cut = [len(t) > max_chars for t in texts]
        texts = [t[:max_chars] for t in texts]
        enc = tokenizer(texts, padding=True, truncation=True, max_length=max_tokens,
                        return_tensors="pt")
        with model_lock, torch.inference_mode():
            probs = model(**enc).logits.float().softmax(-1).tolist()
        out = []
        for row, was_cut in zip(probs, cut, strict=True):
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": id2label[best], "truncated": was_cut,
                        "probabilities": {id2label[i]: round(p, 5) for i, p in enumerate(row)}})
        monitor.record_predictions(texts, [o["label"] for o in out], sum(cut))
        return {"predictions": out}

    # The body type is built per app (its limits), so it is attached here, not in the
    # signature: FastAPI reads it from the annotations.
    predict.__annotations__["body"] = PredictRequest
    app.post("/predict", summary="labels and probabilities for one text or a batch")(predict)

    return app


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port); ValueError with the fix if that is impossible."""
    if not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port} is out of range: pick one from 1 to 65535 (0: any free one)")
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise ValueError(f"cannot listen on host {host!r} ({err.strerror}): use 127.0.0.1 "
                         "(this machine only) or an address of this machine") from err
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({err.strerror}): pick another port "
                         "with --port, or stop the program that uses it") from err
    return sock


def serve(model_dir: str | Path, host: str = "127.0.0.1", port: int = 8000,
          **app_options: Any) -> None:
    """Run the service in the foreground with uvicorn until Ctrl-C.

    The address is taken before the model loads, so a busy port fails at once (ValueError).
    """
    import uvicorn

    sock = listen_socket(host, port)
    try:
        app = create_app(model_dir, **app_options)
        port = sock.getsockname()[1]
        if host not in LOOPBACK:
            print(f"warning: listening on {host}: other machines can reach this server")
        shown = f"[{host}]" if ":" in host else host
        print(f"serving {model_dir} on http://{shown}:{port} (try /docs, /health, /metrics)")
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """A uvicorn server running in a daemon thread; `.url`, `.stop()`, usable with `with`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = 30.0) -> None:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. Without it, a keep-alive client (httpx) waits
        # ~40 ms per request: Nagle's algorithm meets delayed ACKs (measured here).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket.bind((host, port))  # port 0: the system picks a free one
        self.port = self._socket.getsockname()[1]
        self.host = host
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start within {timeout:.0f} s")
            time.sleep(0.02)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to finish open requests and exit; wait for its thread."""
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():  # still busy after `timeout`: stop waiting for requests
            self.server.force_exit = True
            self._thread.join(timeout)
        self._socket.close()

    @property
    def running(self) -> bool:
        """True while the server thread is alive."""
        return self._thread.is_alive()

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"BackgroundServer({self.url}, {state})"


def start_background(model_dir: str | Path, host: str = "127.0.0.1", port: int = 0,
                     timeout: float = 30.0, **app_options: Any) -> BackgroundServer:
    """Serve `model_dir` from a thread of this process (for notebooks); returns when ready.

    `port=0` picks a free port; read it from `handle.url`. Stop with `handle.stop()`.
    """
    return BackgroundServer(create_app(model_dir, **app_options), host, port, timeout)


def load_test(url: str, texts: Sequence[str], n_requests: int = 200, concurrency: int = 8,
              batch_size: int = 1, timeout: float = 30.0) -> dict[str, Any]:
    """Send `n_requests` POST /predict requests from `concurrency` threads; summarise.

    Loopback only (this is a classroom tool, not a way to load someone else's server), at
    most 10,000 requests and 64 threads. Returns counts, p50/p95/max latency in ms and
    requests (and texts) per second over the whole run.
    """
    import httpx

    if urlsplit(url).hostname not in LOOPBACK:
        raise ValueError(f"load_test only targets this machine (127.0.0.1), not {url}")
    if not texts:
        raise ValueError("no texts to send")
    n_requests = max(1, min(int(n_requests), 10_000))
    concurrency = max(1, min(int(concurrency), 64))
    endpoint = url.rstrip("/") + "/predict"

    def one(i: int, client: httpx.Client) -> tuple[float, int]:
        chunk = [texts[(i * batch_size + j) % len(texts)] for j in range(batch_size)]
        body = {"text": chunk[0]} if batch_size == 1 else {"texts": chunk}
        start = time.perf_counter()
        try:
            status = client.post(endpoint, json=body).status_code
        except httpx.HTTPError:
            status = 0
        return 1000 * (time.perf_counter() - start), status

    with httpx.Client(timeout=timeout,
                      limits=httpx.Limits(max_connections=concurrency)) as client, \
            ThreadPoolExecutor(concurrency) as pool:
        start = time.perf_counter()
        results = list(pool.map(lambda i: one(i, client), range(n_requests)))
        wall = time.perf_counter() - start
    latencies = sorted(ms for ms, status in results if status == 200)
    ok = len(latencies)

    def pct(q: float) -> float | None:
        return round(latencies[min(ok - 1, int(q * ok))], 1) if ok else None

    return {"requests": n_requests, "ok": ok, "errors": n_requests - ok,
            "concurrency": concurrency, "batch_size": batch_size, "wall_s": round(wall, 2),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95),
            "max_ms": round(latencies[-1], 1) if ok else None,
            "mean_ms": round(statistics.fmean(latencies), 1) if ok else None,
            "requests_per_s": round(n_requests / wall, 1),
            "texts_per_s": round(ok * batch_size / wall, 1)}

