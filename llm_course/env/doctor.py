"""The environment doctor: where you are, what you compute on, what to fix (taught in 00_setup).

`llm_course.doctor()` is the first code cell of every notebook; `llm-course doctor`
prints the same from a shell. It never hangs: the hub probe has a short timeout.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata

from packaging.version import Version

from llm_course.env.assets import CARRIERS, status
from llm_course.env.device import describe_device
from llm_course.env.hub import hub_reachable, offline_forced

# The ranges this course is tested with: (minimum inclusive, maximum exclusive).
TESTED = {
    "torch": ("2.6", None),
    "transformers": ("5.0", "6.0"),
    "datasets": ("4.0", None),
    "tokenizers": ("0.21", None),
    "accelerate": ("1.0", None),
    "peft": ("0.15", None),
    "ipywidgets": ("8.0", None),
}


def where() -> str:
    """"colab", "kaggle" or "local"."""
    if "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG"):
        return "colab"
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        return "kaggle"
    return "local"


def check_versions() -> dict[str, dict]:
    out = {}
    for name, (low, high) in TESTED.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = {"version": None, "ok": False}
            continue
        v = Version(found)
        ok = v >= Version(low) and (high is None or v < Version(high))
        out[name] = {"version": found, "ok": ok, "range": f">={low}" + (f",<{high}" if high else "")}
    return out


def doctor(show: bool = True, probe_hub: bool = True) -> dict:
    """Check the environment, print a short report with fixes, and return it as a dict."""
    report = {
        "where": where(),
        "python": sys.version.split()[0],
        "device": describe_device(),
        "packages": check_versions(),
        "assets": status(),
        "hub": None,
        "fixes": [],
    }
    forced = offline_forced()
    if probe_hub:
        report["hub"] = False if forced else hub_reachable()
    fixes = report["fixes"]
    for name, info in report["packages"].items():
        if info["version"] is None:
            fixes.append(f"install {name}: pip install -c constraints.txt -e .")
        elif not info["ok"]:
            fixes.append(f"{name} {info['version']} is outside the tested range {info['range']}")
    missing = [n for n, ok in report["assets"].items() if not ok]
    if missing:
        fixes.append(f"offline assets missing ({', '.join(missing)}): run `llm-course assets install`")
    dev = report["device"]
    if dev["kind"] == "cpu" and report["where"] == "colab":
        fixes.append("Colab gives you a CPU: Runtime > Change runtime type > T4 GPU")
    if show:
        _print(report, forced)
    return report


def _print(report: dict, forced: str | None) -> None:
    dev = report["device"]
    print(f"llm-course doctor: running {report['where']}, Python {report['python']}")
    if dev["kind"] == "cuda":
        print(f"  device  cuda: {dev['name']}, {dev['memory_gb']} GB, bf16 {dev['bf16']}")
    elif dev["kind"] == "mps":
        print("  device  mps: Apple GPU (fp32 only in this course)")
    else:
        bf = "fast bf16 (AMX/AVX512-BF16)" if dev["bf16"] else "no fast bf16"
        print(f"  device  cpu: {dev['threads']} threads of {dev['cores']} cores, {bf}")
    pk = ", ".join(
        f"{n} {i['version'] or 'MISSING'}{'' if i['ok'] else ' (!)'}"
        for n, i in report["packages"].items()
    )
    print(f"  packages {pk}")
    have = sum(report["assets"].values())
    print(f"  offline assets {have}/{len(CARRIERS)} present")
    if report["hub"] is None:
        print("  hub     not probed")
    elif forced:
        print(f"  hub     off ({forced} is set): lessons use the offline assets")
    else:
        print(f"  hub     {'reachable' if report['hub'] else 'unreachable: lessons use the offline assets'}")
    if report["fixes"]:
        print("  to fix:")
        for fix in report["fixes"]:
            print(f"   - {fix}")
    else:
        print("  all good")
