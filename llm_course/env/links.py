"""Where the course lives online: one constant, from which every Colab link is built."""

from __future__ import annotations

REPO_URL = "https://github.com/llm-course/llm-course"
BRANCH = "main"


def colab_url(notebook: str) -> str:
    """The Colab address that opens `notebook` (e.g. "02_pretraining_gpt.ipynb")."""
    path = REPO_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/notebooks/{notebook}"


def colab_badge(notebook: str) -> str:
    """A markdown "Open in Colab" badge for `notebook`."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(notebook)})")


def colab_install_command() -> str:
    """What the first cell of every notebook runs on Colab to install the course."""
    return (f'pip install -q "llm-course @ git+{REPO_URL}@{BRANCH}" && llm-course assets install')
