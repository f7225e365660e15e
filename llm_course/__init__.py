"""llm-course: the helper package the course notebooks import.

The package is laid out like the course, in layers; a module imports only from its own
layer or a lower one (`tests/test_layers.py` checks it):

    env           scale presets, paths, the hub, the device, assets, doctor, records
    data          datasets and their splits, tokenizers, language-model blocks
    models        configs, loading, parameter counts, the sparse-head BERT, generation
    training      fit and its parts, checkpoints, evaluation, live plot, receipt, panel
    pretraining   lessons 02-03
    finetuning    lessons 04-07
    deployment    lesson 08
    applications  lessons 09a-09c
    exercises     every lesson's exercises, one bank per lesson
    (top)         course_models (cold starts), catalog, cli, runner, compare, report, prose_check, translate

The names below are the ones every lesson uses; everything else is imported from its
module (`from llm_course.training.loop import fit`).
"""

from llm_course import course_models as _course_models  # noqa: F401 - registers the cold-start builders
from llm_course.env.doctor import doctor
from llm_course.env.quiet import hide_unactionable_messages
from llm_course.env.record import check_band, receipt, record, recorded, save_figure
from llm_course.env.scale import PRESETS, preset, resolve_scale
from llm_course.progress_table import show_progress

hide_unactionable_messages()

__version__ = "0.1.0"
__all__ = ["PRESETS", "check_band", "doctor", "preset", "receipt", "record", "recorded",
           "resolve_scale", "save_figure", "show_progress"]
