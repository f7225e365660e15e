"""Dry runs: every loop of a lesson stops early, so a whole scale runs in minutes.

`llm-course run --dry-run` sets `LLM_COURSE_DRY_RUN=1` for the notebook kernels it starts
(a learner can set it too). Then every lesson runs all the code of its scale (models built
at their sizes, data prepared, plots drawn, records written), but the loops that repeat the
same code stop early:

* `fit`, and TRL's trainers set up with `trl_offline_args`, stop after `STEPS` (2) optimizer
  steps (`steps`);
* evaluation and prediction loops stop after one batch (`batch_slices`, or `first_batch`
  for a loop that prepares its items before batching them). A prediction loop returns as
  many rows as it was given texts: the rows it did not compute are copies of those it did
  (`fill_rows`), so the code after it sees the shapes of a real run;
* every batch, in training and in evaluation, holds at most `ROWS` (2) rows (`rows`): the
  other dimensions (sequence length, model width, vocabulary) are the scale's own, and the
  memory a full batch needs is `estimate_memory`'s to say (tests/test_memory.py checks
  every gpu preset against a 16 GB T4), not a CPU's;
* text generation (`generate_text`, `generate_answers`) adds at most `NEW_TOKENS` (8) tokens;
* a search over a grid of settings (a probe's regularisation strengths) tries the first
  `STEPS` (2) of them (`sweep`), enough to run the code that picks the best, and a timing
  is repeated at most `STEPS` times (`repeats`): a dry run's times mean nothing anyway;
* lesson 08's load test sends `REQUESTS` (8) requests (`requests`);
* `preset()` trims the settings that only repeat the same code (`PRESET_TRIMS`): the key/value
  cache is timed once, at its shortest generation (01b: the smoke and laptop runs reach the
  end of their context); few-shot prompts are drawn with one seed (06b); the beta sweep
  tries two betas besides the main one (06c); the BPE size curve trains its largest
  vocabulary (besides the one the lesson uses) (10);
* a filter on scores that 2 training steps cannot make meaningful (06c's preference margin)
  keeps everything, so the code after it still has data;
* what the lessons build (course models trained for 2 steps, tokenizers) goes to a course home
  of its own (`home`), so a real run never loads a dry run's models.

What a dry run checks is that nothing breaks: shapes, names, dtypes, memory. Its numbers
mean nothing, so its records say `"dry_run": true` and `check_band` does not compare them
with the bands. Each loop that honours the switch says so in its docstring.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llm_course.env.paths import course_home

DRY_RUN_ENV = "LLM_COURSE_DRY_RUN"
STEPS = 2  # optimizer steps per fit: the first step and one after the optimizer has state
REQUESTS = 8  # requests per load test: enough for a p50 and a p95
ROWS = 2  # rows per batch: more than one, so padding and batching code still run
NEW_TOKENS = 8  # tokens a generation adds: a few words, for the code that reads them


def is_dry_run() -> bool:
    """True when `$LLM_COURSE_DRY_RUN` is set to 1 (or true/yes/on)."""
    return os.environ.get(DRY_RUN_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def steps(n: int) -> int:
    """`n` optimizer steps, or at most `STEPS` in a dry run."""
    return min(n, STEPS) if is_dry_run() else n


def rows(batch_size: int) -> int:
    """Rows per batch: `batch_size`, or at most `ROWS` in a dry run."""
    return min(batch_size, ROWS) if is_dry_run() else batch_size


def new_tokens(n: int) -> int:
    """Tokens to generate: `n`, or at most `NEW_TOKENS` in a dry run."""
    return min(n, NEW_TOKENS) if is_dry_run() else n


def repeats(n: int) -> int:
    """How often to repeat a timing: `n`, or at most `STEPS` in a dry run."""
    return min(n, STEPS) if is_dry_run() else n


def max_batches(n: int | None) -> int | None:
    """An evaluation's batch limit (None: all), or 1 in a dry run."""
    return 1 if is_dry_run() else n


def batch_slices(n_items: int, batch_size: int) -> list[slice]:
    """The slices of `n_items` items, `batch_size` at a time; in a dry run only the first,
    of `rows(batch_size)` items."""
    if is_dry_run():
        return [slice(0, rows(batch_size))] if n_items else []
    return [slice(i, i + batch_size) for i in range(0, n_items, batch_size)]


def first_batch(items: Sequence[Any], batch_size: int) -> Sequence[Any]:
    """The items a prediction loop reaches: all, or the first `batch_size` in a dry run.

    For loops that prepare every item before batching (tokenize, sort by length): in a dry
    run they prepare only the batch they will compute; `fill_rows` restores the length.
    """
    return list(items)[:rows(batch_size)] if is_dry_run() else items


def fill_rows(rows: Any, n: int) -> Any:
    """`rows` repeated in turn up to `n` rows (a list, NumPy array or tensor); as is if long enough.

    In a dry run a prediction loop computes one batch; this gives the caller the number of
    rows it asked for. Outside a dry run the rows are already all there.
    """
    have = len(rows)
    if have >= n or have == 0:
        return rows
    if isinstance(rows, Sequence) and not hasattr(rows, "shape"):
        return [rows[i % have] for i in range(n)]
    if hasattr(rows, "index_select"):  # a torch tensor
        import torch

        return rows[torch.arange(n) % have]
    import numpy as np

    return rows[np.arange(n) % have]


def home() -> Path:
    """The course home of dry runs: `dry-run` inside the learner's (`$LLM_COURSE_HOME`)."""
    base = course_home()
    return base if base.name == "dry-run" else base / "dry-run"


def sweep(values: Sequence[Any]) -> list[Any]:
    """The settings a grid search tries: all of `values`, or the first `STEPS` in a dry run."""
    return list(values)[:STEPS] if is_dry_run() else list(values)


# What a dry run keeps of preset settings that repeat the same code: section -> key -> trim.
PRESET_TRIMS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "transformer": {"timing_repeats": lambda n: 1, "kv_new_tokens": lambda lengths: lengths[:1]},
    "prompting": {"seeds": lambda n: 1},
    "instruct": {"dpo_betas": lambda betas: list(betas)[:STEPS]},
    "chinese": {"bpe_sizes": lambda sizes: list(sizes)[-1:]},
}


def trim_preset(section: str, values: dict) -> dict:
    """`values` (a preset section) as a dry run uses it: as is, or trimmed by `PRESET_TRIMS`."""
    if not is_dry_run():
        return values
    trims = PRESET_TRIMS.get(section, {})
    return {key: trims[key](value) if key in trims else value for key, value in values.items()}


def requests(n: int) -> int:
    """`n` requests for a load test, or at most `REQUESTS` in a dry run."""
    return min(n, REQUESTS) if is_dry_run() else n
