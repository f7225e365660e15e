"""Is the Hugging Face hub reachable? A short probe that never hangs, and the error that
says what to do when it is not (the doctor of 00_setup runs the probe).

Used by the doctor and by `llm_course.data.loaders` / `llm_course.models.loading` for `source="auto"`.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from functools import lru_cache

OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def offline_forced() -> str | None:
    """The name of the HF offline variable that is set to a true value, if any."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return var
    return None


@lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """True if the hub answers within `timeout` seconds and no offline variable is set.

    The request runs in a daemon thread, so a slow DNS lookup cannot hang the caller.
    The answer is cached for the life of the process; callers then load with
    `local_files_only=True`. A "no" also switches huggingface_hub's telemetry off.
    """
    if offline_forced():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    answer: list[bool] = []

    def probe() -> None:
        try:
            req = urllib.request.Request(f"{endpoint}/api/models/gpt2", method="HEAD")
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                answer.append(resp.status < 500)
        except (OSError, ValueError):  # refused, timed out, no DNS, bad HF_ENDPOINT
            answer.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    if not (answer and answer[0]):
        _skip_hub_telemetry()
        return False
    return True


def _skip_hub_telemetry() -> None:
    """Switch off huggingface_hub's user-agent telemetry for this process.

    Building the headers of any hub call, even a `local_files_only` one, fetches an
    "agent harness" list from the hub (3 s timeout); with the hub unreachable that is only
    a wait. Telemetry changes nothing else, so turning it off is safe.
    """
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_DISABLE_TELEMETRY = True


class HubUnavailableError(ConnectionError):
    """The hub was asked for but cannot be used now; the message says what to do instead."""


def require_hub(what: str, alternative: str) -> None:
    """Raise HubUnavailableError at once if the hub cannot be used (never waits long)."""
    forced = offline_forced()
    if forced:
        raise HubUnavailableError(
            f"{what} needs the Hugging Face hub, but {forced}=1 is set, so the hub is off.\n"
            f"Fix: unset {forced} (and the other HF_*_OFFLINE variables) before Python "
            f"starts, or {alternative}.")
    if not hub_reachable():
        raise HubUnavailableError(
            f"{what} needs the Hugging Face hub, which did not answer (no network?).\n"
            f"Fix: {alternative}.")
