"""Library messages a learner cannot act on, hidden when `llm_course` is imported.

* transformers warns "`loss_type=None` was set in the config but it is unrecognized" for
  every GPT-2 (its class name says "LMHead", not "ForCausalLM"), then uses the right loss;
* datasets draws a "Map: 100%" bar for every small tokenization;
* peft 0.21 and TRL 1.16 read `model.is_gradient_checkpointing`, which transformers 5 renamed
  and warns about on every read (06c's SFT and DPO).

Everything else still shows: real warnings, and the hub's download bars (on Colab a
download of bert-base takes a while, and the bar says how long).
"""

from __future__ import annotations

import logging
import os
import warnings

UNACTIONABLE = ("`loss_type=None` was set in the config but it is unrecognized",)
RENAMED_BY_TRANSFORMERS = "`is_gradient_checkpointing` is deprecated"


class _DropUnactionable(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in UNACTIONABLE)


def hide_unactionable_messages() -> None:
    """Filter the messages above (idempotent; cheap: imports neither library)."""
    logger = logging.getLogger("transformers.modeling_utils")
    if not any(isinstance(f, _DropUnactionable) for f in logger.filters):
        logger.addFilter(_DropUnactionable())
    warnings.filterwarnings("ignore", message=RENAMED_BY_TRANSFORMERS, category=FutureWarning)
    # read by datasets when it is first imported; a learner's own setting wins
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
