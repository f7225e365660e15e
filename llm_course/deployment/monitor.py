"""What the service counts, shown two ways (used by `serve`, which 08_deployment shows).

`GET /metrics` answers in the Prometheus text format (made by prometheus-client, from a
registry of this app's own, so several apps in one process do not mix their numbers):

  llm_course_requests_total{endpoint,status}         answers, by endpoint and HTTP status
  llm_course_errors_total{endpoint,status}           the answers with a 4xx or 5xx status
  llm_course_request_duration_seconds{endpoint}      a latency histogram (every answer)
  llm_course_requests_in_flight                      requests being answered right now
  llm_course_predicted_labels_total{label}           texts predicted per label
  llm_course_texts_predicted_total, llm_course_texts_truncated_total

`GET /metrics.json` keeps the service's first, JSON view of POST /predict (counts by status,
a latency histogram in ms of the answered requests, the predicted labels), and `recent`
keeps the last inputs' lengths and labels for drift checks.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client import Counter as PromCounter

LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The endpoint label takes only these values (and "other"), so a client sending random
# paths cannot make the metrics grow without bound.
ENDPOINTS = ("/predict", "/health", "/metrics", "/metrics.json", "/docs", "/openapi.json")


def endpoint_label(path: str) -> str:
    """`path` if it is one of the service's endpoints, else "other"."""
    return path if path in ENDPOINTS else "other"


class Monitor:
    """The counters behind `/metrics` and `/metrics.json`; thread-safe."""

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

        self.registry = CollectorRegistry()
        by_status = ["endpoint", "status"]
        self.requests_total = PromCounter("llm_course_requests", "HTTP answers by endpoint "
                                          "and status", by_status, registry=self.registry)
        self.errors_total = PromCounter("llm_course_errors", "HTTP answers with a 4xx or 5xx "
                                        "status", by_status, registry=self.registry)
        self.latency = Histogram("llm_course_request_duration_seconds", "time to answer a "
                                 "request, in seconds", ["endpoint"],
                                 buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.in_flight = Gauge("llm_course_requests_in_flight", "requests being answered now",
                               registry=self.registry)
        self.label_total = PromCounter("llm_course_predicted_labels", "texts predicted, by "
                                       "label", ["label"], registry=self.registry)
        for label in labels:  # every label shows, at 0, from the start
            self.label_total.labels(label=label)
        self.texts_total = PromCounter("llm_course_texts_predicted", "texts predicted",
                                       registry=self.registry)
        self.truncated_total = PromCounter("llm_course_texts_truncated", "texts cut to "
                                           "max_chars before predicting", registry=self.registry)

    def record_request(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answer (Prometheus: every endpoint; JSON: /predict only)."""
        self.requests_total.labels(endpoint=endpoint, status=str(status)).inc()
        if status >= 400:
            self.errors_total.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)
        if endpoint != "/predict":
            return
        elapsed_ms = 1000 * seconds
        with self.lock:
            self.requests += 1
            self.status[str(status)] += 1
            if status < 400:
                self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_MS, elapsed_ms)] += 1
                self.latency_sum_ms += elapsed_ms

    def record_predictions(self, texts: Sequence[str], labels: Sequence[str],
                           truncated: int) -> None:
        """Count the texts of one answered /predict request and their labels."""
        for label, n in Counter(labels).items():
            self.label_total.labels(label=label).inc(n)
        self.texts_total.inc(len(texts))
        self.truncated_total.inc(truncated)
        with self.lock:
            self.texts += len(texts)
            self.truncated += truncated
            self.labels.update(labels)
            self.recent.extend((len(t), label) for t, label in zip(texts, labels, strict=True))

    def prometheus_text(self) -> bytes:
        """Every metric in the Prometheus text format (what `GET /metrics` answers)."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """The JSON view (what `GET /metrics.json` answers)."""
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
