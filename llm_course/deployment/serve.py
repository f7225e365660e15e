"""Serve a fine-tuned classifier over HTTP with FastAPI, and load-test it (taught in 08_deployment).

`create_app(model_dir)` loads the model once and returns a FastAPI app with
`POST /predict`, `GET /health`, `GET /metrics` (Prometheus text) and `GET /metrics.json`.
`serve` runs it with uvicorn (what `llm-course serve MODEL_DIR` does); `start_background`
runs it in a thread of a notebook's own process; `load_test` sends it concurrent requests
and reports latency percentiles. Stopping either server (`handle.stop()`, Ctrl-C, SIGTERM)
lets the requests in flight finish and get their answers first.

Safety: the model folder is loaded by `model_folder.load_classifier` (safetensors only,
never remote code; a folder that cannot be served raises `ModelFolderError` in one line),
and requests are checked by `requests` (every bad request gets a 4xx whose JSON body has
an "error" message, and the server goes on). API keys (`access`), a rate limit per key
(`rate_limit`) and a request log without the texts (`masking`) are options of `create_app`;
without keys the service listens on this machine only.
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from llm_course.deployment import access
from llm_course.deployment.masking import RequestLog
from llm_course.deployment.model_folder import load_classifier
from llm_course.deployment.monitor import Monitor, endpoint_label
from llm_course.deployment.rate_limit import RateLimiter, retry_after
from llm_course.deployment.requests import (
    body_error,
    is_json,
    printable,
    readable_errors,
    request_model,
)
from llm_course.env import dry_run


def create_app(model_dir: str | Path, max_batch: int = 32, max_chars: int = 2000,
               truncate: bool = True, max_body_bytes: int = 1_000_000,
               variant: str = "fp32", api_keys: Mapping[str, str] | None = None,
               api_keys_file: str | Path | None = None, rate: float | None = None,
               burst: int | None = None, log_path: str | Path | None = None) -> Any:
    """A FastAPI app serving the classifier in `model_dir` (loaded once, here).

    `variant` "bf16" or "int8_dynamic" serves a compressed copy (`llm_course.deployment.compress`).

    Texts longer than `max_chars` are cut to `max_chars` when `truncate` is true (the reply
    says so per text), refused with 422 otherwise. The tokenizer then truncates to the
    model's maximum length. Bodies over `max_body_bytes` get 413. Model calls are
    serialised by a lock: torch already uses every core for one batch.

    Access (see `access`): `api_keys` {name: key}, else `api_keys_file`, else
    $LLM_COURSE_API_KEYS; with keys, every path but /health and the API docs needs one (401
    without, 403 with a wrong one). `rate` requests per second (and `burst` at once) per key,
    or per client address without keys, else 429 (see `rate_limit`). `log_path`: a JSON-lines
    request log with masked previews, never the texts (see `masking`).
    """
    import torch
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from fastapi.utils import is_body_allowed_for_status_code
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from llm_course.deployment import compress

    builders = {"fp32": compress.fp32, "bf16": compress.bf16,
                "int8_dynamic": compress.int8_dynamic}
    if variant not in builders:
        raise ValueError(f"variant must be one of {sorted(builders)}, not {variant!r}")
    keys = access.KeyRing(access.load_keys(api_keys, api_keys_file))
    limiter = RateLimiter(rate, burst) if rate is not None else None
    request_log = RequestLog(log_path) if log_path is not None else None
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
    app.state.api_key_names = keys.names  # empty: no keys (BackgroundServer checks the host)
    app.state.request_log = request_log

    hint = 'POST JSON such as {"text": "..."} or {"texts": ["...", "..."]}'

    def refuse(status: int, error: str, headers: dict[str, str] | None = None,
               **extra: str) -> JSONResponse:
        return JSONResponse(status_code=status, headers=headers, content={"error": error, **extra})

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
        return refuse(500, f"internal server error ({type(exc).__name__}); see the server log")

    def admit(request: Request) -> JSONResponse | None:
        """The refusal for a request that may not go on (401, 403, 429, 411, 413, 415)."""
        path = request.url.path
        if keys and path not in access.OPEN_PATHS:
            presented = access.presented_key(request.headers)
            if presented is None:
                return refuse(401, f"this server needs an API key: {access.HOW_TO_SEND}",
                              {"WWW-Authenticate": "Bearer"})
            request.state.key_name = keys.identify(presented)
            if request.state.key_name is None:
                return refuse(403, "this API key is not accepted: check it, or ask for one")
        if limiter is not None and path not in access.OPEN_PATHS:
            caller = request.state.key_name or (request.client.host if request.client else "?")
            wait = limiter.wait_seconds(caller)
            if wait:
                return refuse(429, f"too many requests: at most {limiter.rate:g} per second "
                              f"(bursts of {limiter.burst}); retry after the Retry-After seconds",
                              {"Retry-After": retry_after(wait)})
        if path != "/predict" or request.method != "POST":
            return None
        size = request.headers.get("content-length", "")
        if not size.isdigit():
            return refuse(411, "send a Content-Length header (a JSON body, not a stream)")
        if int(size) > max_body_bytes:
            return refuse(413, f"request body over {max_body_bytes} bytes")
        if not is_json(request.headers.get("content-type", "")):
            return refuse(415, "send JSON (Content-Type: application/json)", hint=hint)
        return None

    @app.middleware("http")
    async def _guard_and_measure(request: Request, call_next: Any) -> Any:
        start = time.perf_counter()
        request.state.key_name = None
        request.state.texts = []
        status = 500  # unless an answer comes: a bug or a model failure, FastAPI answers 500
        monitor.in_flight.inc()
        try:
            response = admit(request) or await call_next(request)
            status = response.status_code
            return response
        finally:
            monitor.in_flight.dec()
            seconds = time.perf_counter() - start
            endpoint = endpoint_label(request.url.path)
            monitor.record_request(endpoint, status, seconds)
            if request_log is not None and request.url.path not in access.OPEN_PATHS:
                # Masking a long batch takes a moment: off the event loop, like the model.
                await run_in_threadpool(request_log.write, key_name=request.state.key_name,
                                        endpoint=endpoint, status=status,
                                        latency_ms=1000 * seconds, texts=request.state.texts)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": Path(model_dir).name, "variant": variant,
                "labels": labels,
                "max_batch": max_batch, "max_chars": max_chars, "truncate": truncate}

    @app.get("/metrics", summary="the Prometheus text format", response_class=Response)
    def metrics() -> Any:  # a Response (FastAPI reads the annotation, only names it can see)
        return Response(monitor.prometheus_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/metrics.json", summary="counts of POST /predict answers, as JSON")
    def metrics_json() -> dict[str, Any]:
        return monitor.snapshot()

    def predict(body: Any, request: Any) -> dict[str, Any]:
        texts = [body.text] if body.text is not None else list(body.texts)
        request.state.texts = texts  # for the request log, which keeps only masked previews
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
    predict.__annotations__.update(body=PredictRequest, request=Request)
    app.post("/predict", summary="labels and probabilities for one text or a batch")(predict)
    if keys:  # the /docs page gets an "Authorize" button that sends the key
        schema = app.openapi()
        schema.setdefault("components", {})["securitySchemes"] = {
            "apiKey": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"apiKey": []}]
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
          allow_public_without_keys: bool = False, drain_seconds: float = 30.0,
          **app_options: Any) -> None:
    """Run the service in the foreground with uvicorn until Ctrl-C or SIGTERM.

    The keys are read and the address is taken before the model loads, so a missing keys
    file, a public host without keys (see `access.exposure_warning`) or a busy port fails at
    once (ValueError). On stop, requests in flight get up to `drain_seconds` to finish.
    """
    import uvicorn

    keys = access.load_keys(app_options.pop("api_keys", None),
                            app_options.pop("api_keys_file", None))
    warning = access.exposure_warning(host, bool(keys), allow_public_without_keys)
    sock = listen_socket(host, port)
    try:
        app = create_app(model_dir, api_keys=keys, **app_options)
        port = sock.getsockname()[1]
        if warning:
            print(warning)
        shown = f"[{host}]" if ":" in host else host
        print(f"serving {model_dir} on http://{shown}:{port} (try /docs, /health, /metrics)")
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info",
                                               timeout_graceful_shutdown=drain_seconds))
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """A uvicorn server running in a daemon thread; `.url`, `.stop()`, usable with `with`.

    Like `serve`, it refuses a non-loopback host for an app without API keys unless
    `allow_public_without_keys`.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = 30.0, allow_public_without_keys: bool = False) -> None:
        import uvicorn

        has_keys = bool(getattr(app.state, "api_key_names", None))
        warning = access.exposure_warning(host, has_keys, allow_public_without_keys)
        if warning:
            print(warning)
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
        """Stop taking requests, let those in flight finish (up to `timeout` s), then exit."""
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
                     timeout: float = 30.0, allow_public_without_keys: bool = False,
                     **app_options: Any) -> BackgroundServer:
    """Serve `model_dir` from a thread of this process (for notebooks); returns when ready.

    `port=0` picks a free port; read it from `handle.url`. Stop with `handle.stop()`.
    `app_options` go to `create_app` (e.g. `api_keys={"me": "..."}`, `rate=5`).
    """
    keys = access.load_keys(app_options.pop("api_keys", None),
                            app_options.pop("api_keys_file", None))
    access.exposure_warning(host, bool(keys), allow_public_without_keys)  # before loading
    return BackgroundServer(create_app(model_dir, api_keys=keys, **app_options), host, port,
                            timeout, allow_public_without_keys)


def load_test(url: str, texts: Sequence[str], n_requests: int = 200, concurrency: int = 8,
              batch_size: int = 1, timeout: float = 30.0,
              api_key: str | None = None) -> dict[str, Any]:
    """Send `n_requests` POST /predict requests from `concurrency` threads; summarise.

    Loopback only (this is a classroom tool, not a way to load someone else's server), at
    most 10,000 requests and 64 threads. Returns counts, p50/p95/max latency in ms and
    requests (and texts) per second over the whole run. `api_key` is sent as a Bearer token.
    A dry run (`llm_course.env.dry_run`) sends at most 8 requests.
    """
    import httpx

    if not access.is_loopback(urlsplit(url).hostname or ""):
        raise ValueError(f"load_test only targets this machine (127.0.0.1), not {url}")
    if not texts:
        raise ValueError("no texts to send")
    n_requests = dry_run.requests(max(1, min(int(n_requests), 10_000)))
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

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=timeout, headers=headers,
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

