"""A request log that never holds the texts themselves (used by `serve`, which 08_deployment
shows).

Each request to a protected endpoint adds one JSON line: the time, the API key's name (not
the key), the endpoint, the status, the latency, and for each text its SHA-256 (the first 16
hex digits: the same text always gives the same hash, so repeats can be counted), its length
and a short masked preview. `mask` replaces e-mail addresses, URLs, IP addresses, card-like
digit runs and phone numbers with <email>, <url>, <ip>, <card> and <phone>; the preview is
cut from the masked text, so a cut can never reveal half of something masked.

Masking is a safety net, not anonymisation: names, street addresses and anything else the
patterns do not know still reach the preview.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PREVIEW_CHARS = 60

# Applied in this order: a URL may hold an e-mail address or an IP address, and an IP
# address or a card number would otherwise look like a phone number.
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    # A URL runs to the next space or quote, less any punctuation that ends the sentence.
    ("<url>", re.compile(r"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>\"']*[^\s<>\"'.,;:!?)\]]")),
    ("<email>", re.compile(r"(?<![\w.%+-])[\w.%+-]++@[\w-]+(?:\.[\w-]+)+")),
    ("<ip>", re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\w)")),
    ("<ip>", re.compile(r"(?i)(?<![\w:])(?:(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}|"
                        r"(?:[0-9a-f]{1,4}:){0,6}[0-9a-f]{0,4}::(?:[0-9a-f]{1,4}:){0,6}"
                        r"[0-9a-f]{0,4})(?![\w:])")),
    # 13 to 19 digits, single spaces or dashes allowed between them (no Luhn check).
    ("<card>", re.compile(r"(?<![\w.])(?:\d[ -]?){12,18}\d(?!\w)")),
]
# A run of digit groups separated by one space, dash or dot, after an optional +country code
# and (area code); possessive (++, *+), so a long run is read once, never re-split.
PHONE = re.compile(r"(?<![\w.+])(?:\+\d{1,4}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d++(?:[ .-]?\d++)*+(?!\w)")
NOT_A_PHONE = [
    re.compile(r"\d+\.\d+"),                                         # a decimal number
    re.compile(r"\d{4}([-./])\d{1,2}\1\d{1,2}|\d{1,2}([-./])\d{1,2}\2\d{2,4}"),  # a date
    re.compile(r"(?:1[5-9]|20)\d\d\s?-\s?(?:1[5-9]|20)\d\d"),          # years: 1990-1999
]


def _phone(match: re.Match[str]) -> str:
    """<phone> for a run of 7 or more digits (5 with a "+" or an area code in parentheses)."""
    found = match.group()
    if any(pattern.fullmatch(found) for pattern in NOT_A_PHONE):
        return found
    digits = sum(c.isdigit() for c in found)
    if digits >= 7 or (digits >= 5 and found[0] in "+("):
        return "<phone>"
    return found


def mask(text: str) -> str:
    """`text` with e-mail addresses, URLs, IP addresses, card and phone numbers replaced."""
    for placeholder, pattern in PATTERNS:
        text = pattern.sub(placeholder, text)
    return PHONE.sub(_phone, text)


def describe_text(text: str) -> dict[str, Any]:
    """What the log may say about one text: a hash, its length and a masked preview."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    preview = mask(text)
    if len(preview) > PREVIEW_CHARS:
        preview = preview[:PREVIEW_CHARS] + "..."
    return {"sha256_16": digest, "chars": len(text), "preview": preview}


class RequestLog:
    """Appends one JSON line per request to `path` (created readable by its owner only)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as err:
            raise ValueError(f"cannot write the request log {self.path} ({err.strerror}): "
                             "pass a writable file with --request-log") from err
        self._file = os.fdopen(fd, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, *, key_name: str | None, endpoint: str, status: int, latency_ms: float,
              texts: Sequence[str] = ()) -> None:
        """Log one request; `texts` are described by `describe_text`, never written."""
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "key": key_name, "endpoint": endpoint, "status": status,
                 "latency_ms": round(latency_ms, 2), "n_texts": len(texts),
                 "texts": [describe_text(t) for t in texts]}
        line = json.dumps(entry, ensure_ascii=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
