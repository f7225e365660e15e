"""Where the course keeps what lessons build (tokenizers, checkpoints, caches)."""

from __future__ import annotations

import os
from pathlib import Path


def course_home() -> Path:
    """$LLM_COURSE_HOME, or ~/.cache/llm_course: one folder per scale inside it."""
    return Path(os.environ.get("LLM_COURSE_HOME") or Path.home() / ".cache" / "llm_course")
