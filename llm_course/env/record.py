"""Recording a lesson's key metrics and its receipt (taught in 00_setup).

`record(val_loss=...)` stores metrics; `receipt(seed=...)` stores and prints what the
run used (package versions, device, seed, scale, wall time). When the course runner
(`llm-course run`, or the notebook tests) executes a notebook, it sets
`LLM_COURSE_RESULTS_FILE` and both land in that JSON file; otherwise they are kept in
memory (`recorded()`) so a learner can look at them. Both also update the lesson's entry in the
learner's progress (`llm_course.env.progress`: when it ran, at which scale, its key records).
In a dry run (`llm_course.env.dry_run`) the file and the receipt say `"dry_run": true`, and
`check_band` compares nothing.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from importlib import metadata
from pathlib import Path

from llm_course.env import dry_run, progress

RESULTS_ENV = "LLM_COURSE_RESULTS_FILE"
KEY_PACKAGES = ("torch", "transformers", "datasets", "tokenizers", "accelerate", "peft")
_START = time.time()
_RESULTS: dict = {"metrics": {}, "receipt": {}}


def _plain(value):
    """Turn numpy/torch scalars and containers into JSON-friendly Python values."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


def _save() -> None:
    if dry_run.is_dry_run():
        _RESULTS["dry_run"] = True
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_RESULTS, indent=2, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def record(**metrics) -> dict:
    """Store the lesson's key metrics, e.g. `record(val_loss=5.7, params=5_300_000)`."""
    if not metrics:
        raise ValueError("record() needs at least one metric, e.g. record(val_loss=5.7)")
    _RESULTS["metrics"].update({k: _plain(v) for k, v in metrics.items()})
    _save()
    progress.note_run(metrics=_RESULTS["metrics"], scale=_RESULTS["receipt"].get("scale"))
    return dict(_RESULTS["metrics"])


def recorded() -> dict:
    """Everything recorded so far in this process: {"metrics": ..., "receipt": ...}."""
    return json.loads(json.dumps(_RESULTS))


def package_versions(names=KEY_PACKAGES) -> dict[str, str | None]:
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def receipt(seed: int | None = None, scale: str | None = None, show: bool = True, **extra) -> dict:
    """Store and print the run's receipt: versions, device, seed, scale and wall seconds."""
    from llm_course.env.device import describe_device
    from llm_course.env.scale import resolve_scale

    data = {
        "python": platform.python_version(),
        "packages": package_versions(),
        "device": describe_device(),
        "seed": seed,
        "scale": resolve_scale(scale),
        "wall_s": round(time.time() - _START, 1),
        **{k: _plain(v) for k, v in extra.items()},
        **({"dry_run": True} if dry_run.is_dry_run() else {}),
    }
    _RESULTS["receipt"] = data
    _save()
    progress.note_run(scale=data["scale"])
    if show:
        dev = data["device"]
        pk = ", ".join(f"{k} {v}" for k, v in data["packages"].items() if v)
        print("Receipt")
        print(f"  scale {data['scale']}, seed {seed}, wall {data['wall_s']} s"
              + (" (a dry run: its numbers mean nothing)" if data.get("dry_run") else ""))
        print(f"  device {dev['kind']} ({dev.get('name', '')})")
        print(f"  python {data['python']}; {pk}")
        for k, v in _RESULTS["metrics"].items():
            print(f"  {k} = {v}")
    return data


def check_band(name: str, value: float, bands: dict, scale: str | None = None) -> bool | None:
    """Say plainly whether `value` lies in the band measured for this scale.

    `bands` maps a scale to `(low, high)` (either end may be None), or to None when no
    band was measured at that scale. Returns True/False, or None when there is no band or
    this is a dry run (`llm_course.env.dry_run`: its numbers come from 2 steps).
    """
    from llm_course.env.scale import resolve_scale

    scale = resolve_scale(scale)
    if dry_run.is_dry_run():
        print(f"{name} = {value:.4g}: dry run: not compared with the band for scale {scale!r}")
        return None
    band = bands.get(scale)
    if band is None:
        print(f"{name} = {value:.4g}: no band was measured at scale {scale!r}; compare with "
              f"the other scales: {bands}")
        return None
    low, high = band
    inside = (low is None or value >= low) and (high is None or value <= high)
    shown = f"[{'-inf' if low is None else f'{low:.4g}'}, {'inf' if high is None else f'{high:.4g}'}]"
    if inside:
        print(f"OK: {name} = {value:.4g} is inside the expected band {shown} for scale {scale!r}.")
    else:
        print(f"OUTSIDE THE BAND: {name} = {value:.4g} is not in {shown}, the band measured for "
              f"scale {scale!r}. Check the parameters cell (did you change a knob?), the data "
              "and the training curve above.")
    return inside
