"""Loading a classifier folder to serve, safely, or saying in one line why not (used by
`serve`, which 08_deployment shows).

Weights load only from safetensors (a pickle file can run code when loaded), never with
`trust_remote_code`, and only from the local folder. A folder that cannot be served
(missing, no or broken config.json, truncated weights, pickle-only, no tokenizer) raises
`ModelFolderError` with one line that names the problem and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class ModelFolderError(ValueError):
    """A model folder that cannot be served; the message names the problem and the fix."""


RESAVE = "re-save it with model.save_pretrained(folder) and tokenizer.save_pretrained(folder)"


def first_line(err: BaseException, limit: int = 300) -> str:
    """An error's message on one line, cut to `limit` characters."""
    line = " ".join(part.strip() for part in str(err).splitlines() if part.strip())
    line = line or type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _check_config(model_dir: Path) -> None:
    """config.json exists, is a JSON object and names a `model_type`."""
    path = model_dir / "config.json"
    if not path.is_file():
        raise ModelFolderError(f"no config.json in {model_dir}: this is not a save_pretrained "
                               f"folder; {RESAVE}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path} is not valid JSON ({first_line(err)}); "
                               f"restore it or {RESAVE}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("model_type"), str):
        raise ModelFolderError(f'{path} has no "model_type" (is it a model config?); '
                               f"restore it or {RESAVE}")


def _check_safetensors(path: Path) -> None:
    """The header of a safetensors file parses and covers the whole file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as err:
        raise ModelFolderError(f"{path} is truncated or corrupt ({first_line(err)}); "
                               f"copy it again or {RESAVE}") from err


def load_classifier(model_dir: str | Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a `save_pretrained` folder, safely; clear errors otherwise.

    Raises FileNotFoundError for a missing folder and ModelFolderError (a ValueError) for
    one that cannot be served; either message is one line naming the fix.
    """
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    model_dir = Path(model_dir)
    if not model_dir.exists():
        raise FileNotFoundError(f"model folder not found: {model_dir} (pass the folder that "
                                "model.save_pretrained(folder) wrote)")
    if not model_dir.is_dir():
        raise ModelFolderError(f"{model_dir} is a file, not a folder: pass the folder that "
                               "model.save_pretrained(folder) wrote")
    weights = sorted(model_dir.glob("*.safetensors"))
    if not weights:
        found = sorted(p.name for p in model_dir.iterdir())
        raise ModelFolderError(
            f"no .safetensors weights in {model_dir} (found: {', '.join(found) or 'nothing'}). "
            "This server loads only safetensors: pickled weights (.bin, .pt) can run code "
            "when loaded. Re-save the model with model.save_pretrained(folder).")
    _check_config(model_dir)
    for path in weights:
        _check_safetensors(path)
    try:
        config = AutoConfig.from_pretrained(model_dir, local_files_only=True,
                                            trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - transformers raises many kinds for a bad config
        raise ModelFolderError(f"{model_dir / 'config.json'} is not a valid model config "
                               f"({first_line(err)}); restore it or {RESAVE}") from err
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True,
                                                  trust_remote_code=False)
    except Exception as err:  # noqa: BLE001
        raise ModelFolderError(f"cannot load the tokenizer in {model_dir} ({first_line(err)}); "
                               f"{RESAVE}") from err
    if len(tokenizer) <= len(tokenizer.all_special_tokens):  # only [CLS], [UNK], ...: no vocab
        raise ModelFolderError(f"no tokenizer vocabulary in {model_dir} (every word would be "
                               "unknown); save it with tokenizer.save_pretrained(folder)")
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a mismatch report is a table; we say it in a line
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_dir, config=config, use_safetensors=True, local_files_only=True,
            trust_remote_code=False, ignore_mismatched_sizes=True, output_loading_info=True)
    except Exception as err:  # noqa: BLE001
        raise ModelFolderError(f"cannot load the weights in {model_dir} ({first_line(err)}); "
                               f"{RESAVE}") from err
    finally:
        transformers.logging.set_verbosity(verbosity)
    if info.get("mismatched_keys"):
        key, saved, wanted = sorted(info["mismatched_keys"])[0]
        raise ModelFolderError(
            f"the weights in {model_dir} do not match its config.json "
            f"({len(info['mismatched_keys'])} tensors differ, e.g. {key}: saved "
            f"{tuple(saved)}, config wants {tuple(wanted)}); restore config.json or {RESAVE}")
    return model.eval(), tokenizer
