"""Who may call the service: API keys, and where it may listen without them (used by `serve`,
which 08_deployment shows).

Keys come from, in this order: a dict `{name: key}` passed in Python, a file
(`--api-keys-file`, one `name:key` per line), or the environment variable
`LLM_COURSE_API_KEYS` ("alice:KEY1,bob:KEY2", or just "KEY1,KEY2"). A client sends its key
as `Authorization: Bearer KEY` (or `X-API-Key: KEY`); the service then knows the key's
*name*, which is what its logs and rate limits use (never the key itself).

Keys are compared in constant time: the SHA-256 digests of the presented key and of every
configured key are compared with `hmac.compare_digest`, all of them, so the time taken says
neither how much of a key was right nor which key matched.

Without keys the service may listen only on this machine (127.0.0.1); `exposure_warning`
refuses any other address unless you insist (`--insecure-public`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

ENV_VAR = "LLM_COURSE_API_KEYS"
# Paths anyone may call: the liveness check, and the API's description (no data in either).
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
HOW_TO_SEND = "send it as the header 'Authorization: Bearer KEY' (or 'X-API-Key: KEY')"


def parse_keys(text: str, source: str) -> dict[str, str]:
    """{name: key} from "name:key" entries separated by commas or new lines.

    An entry without a name ("KEY1") is named key-1, key-2, ... by its position. Blank
    entries and lines starting with # are skipped. A key cannot hold a comma.
    """
    entries = [e.strip() for line in text.splitlines() for e in line.split(",")]
    entries = [e for e in entries if e and not e.startswith("#")]
    pairs = []
    for position, entry in enumerate(entries, start=1):
        name, sep, key = entry.partition(":")
        pairs.append((name.strip(), key.strip()) if sep else (f"key-{position}", name))
    return checked_keys(pairs, source)


def checked_keys(pairs: Iterable[tuple[str, str]], source: str) -> dict[str, str]:
    """{name: key}, or ValueError naming `source` and the entry's position (never the key)."""
    keys: dict[str, str] = {}
    for position, (name, key) in enumerate(pairs, start=1):
        where = f"{source}, entry {position}"
        if not (isinstance(name, str) and isinstance(key, str) and name and key):
            raise ValueError(f"{where}: write it as name:key (both non-empty text)")
        if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
            raise ValueError(f"{where}: a key must be printable ASCII without spaces "
                             "(it travels in an HTTP header)")
        if not name.isprintable():
            raise ValueError(f"{where}: a key's name must be printable text")
        if name in keys:
            raise ValueError(f"{where}: the name {name!r} is used twice")
        if key in keys.values():
            raise ValueError(f"{where}: this key is also given to another name")
        keys[name] = key
    return keys


def load_keys(api_keys: Mapping[str, str] | None = None,
              api_keys_file: str | Path | None = None,
              environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The configured keys: `api_keys` if given, else the file, else $LLM_COURSE_API_KEYS.

    `{}` means "no keys" (the service is then open, and loopback-only). Pass `api_keys={}`
    to ignore the environment variable.
    """
    if api_keys is not None:
        return checked_keys(api_keys.items(), "api_keys")
    if api_keys_file is not None:
        path = Path(api_keys_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ValueError(f"cannot read the API keys file {path} ({err.strerror or err}): "
                             "pass a file with one name:key per line") from err
        keys = parse_keys(text, str(path))
        if not keys:
            raise ValueError(f"the API keys file {path} holds no keys: write one name:key "
                             "per line")
        return keys
    environ = os.environ if environ is None else environ
    return parse_keys(environ.get(ENV_VAR, ""), f"${ENV_VAR}")


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request sends (`Authorization: Bearer KEY` or `X-API-Key`), else None.

    `headers`: Starlette's (any case) or a dict with lower-case names.
    """
    scheme, _, value = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return headers.get("x-api-key", "").strip() or None


class KeyRing:
    """The configured keys, kept as SHA-256 digests; `identify` says whose a key is."""

    def __init__(self, keys: Mapping[str, str]) -> None:
        self._digests = {name: _digest(key) for name, key in keys.items()}

    @property
    def names(self) -> list[str]:
        return list(self._digests)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def identify(self, presented: str) -> str | None:
        """The name of the key `presented` matches, or None; same time whichever matches."""
        digest = _digest(presented)
        found = None
        for name, known in self._digests.items():  # every key, even after a match
            if hmac.compare_digest(digest, known):
                found = name
        return found


def _digest(key: str) -> bytes:
    # Equal-length digests: compare_digest would otherwise return early on a length mismatch.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.x.x.x, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: it may resolve to anything
        return False


def exposure_warning(host: str, keys_configured: bool,
                     allow_public_without_keys: bool = False) -> str:
    """What to tell the user about who can reach a server on `host`.

    Raises ValueError for a non-loopback host without keys, unless
    `allow_public_without_keys` (`--insecure-public`).
    """
    if is_loopback(host):
        if keys_configured:
            return ""
        return f"no API keys: serving on {host} only; anyone on this machine can call it"
    if keys_configured:
        return (f"warning: listening on {host}: other machines can reach this server (it asks "
                "for an API key; plain http shows keys to the network: put TLS in front)")
    if not allow_public_without_keys:
        raise ValueError(
            f"refusing to listen on {host} without API keys: anyone who can reach this machine "
            f"could call the model. Give keys with --api-keys-file FILE (one name:key per "
            f"line) or ${ENV_VAR}, or use --host 127.0.0.1; --insecure-public "
            "(allow_public_without_keys=True) does it anyway")
    return (f"warning: --insecure-public: serving on {host} without API keys; anyone who can "
            "reach this machine can call it")
