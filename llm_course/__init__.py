"""llm-course: the helper package the course notebooks import.

Each module says which notebook teaches it. The names below are the ones a lesson uses
most; everything else is imported from its module (`from llm_course.train import fit`).
"""

from .doctor import doctor
from .record import check_band, receipt, record, recorded
from .scale import PRESETS, preset, resolve_scale

__version__ = "0.1.0"
__all__ = ["PRESETS", "check_band", "doctor", "preset", "receipt", "record", "recorded", "resolve_scale"]
