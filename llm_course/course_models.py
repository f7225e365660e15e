"""The course's own models, made cold when a lesson needs one that was never built (taught in
02, 03 and 08).

Lesson 01 trains the course tokenizers, 02 pretrains `course-gpt`, 03 `course-bert`, and 05
fine-tunes `course-sentiment` (and 09b `course-topics`). A learner who opens a later lesson
first still gets them: the functions here make them with the very functions those lessons
call (`llm_course.pretraining.gpt`/`bert`, `llm_course.finetuning.tasks`) and keep them in
the course home, so it happens once. Importing `llm_course` registers the builders with
`llm_course.models.loading`, so `load_pretrained("course-bert")` works from any lesson.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llm_course.env.scale import preset, resolve_scale
from llm_course.models.loading import (
    course_checkpoint_dir,
    load_pretrained,
    register_course_builder,
    save_course_model,
)

if TYPE_CHECKING:
    from pathlib import Path

    from transformers import PreTrainedTokenizerFast


def course_tokenizer(kind: str = "bpe", scale: str | None = None) -> PreTrainedTokenizerFast:
    """The course's `bpe` (GPT) or `wordpiece` (BERT) tokenizer for `scale`.

    Lesson 01 trains and saves it; when it is missing, it is trained here on the course
    corpus (a few seconds) so that any lesson can start cold.
    """
    from transformers import PreTrainedTokenizerFast

    from llm_course.data.loaders import load
    from llm_course.data.tokenizer import (
        as_transformers,
        save_course_tokenizer,
        tokenizer_dir,
        train_tokenizer,
    )

    scale = resolve_scale(scale)
    folder = tokenizer_dir(kind, scale)
    if (folder / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(folder), local_files_only=True,
                                                       trust_remote_code=False)
    print(f"No course-{kind} tokenizer for scale {scale!r} yet (lesson 01 makes it): "
          "training it now on the course corpus.")
    texts = load("corpus", scale=scale, source="offline")["train"]["text"]
    wrapped = as_transformers(train_tokenizer(texts, kind, preset("tokenizer", scale)["vocab_size"]),
                              kind)
    save_course_tokenizer(wrapped, kind, scale)
    return wrapped


def build_course_gpt(scale: str | None = None) -> Path:
    """Lesson 02 in one call (`pretrain_gpt`), saved as `course-gpt` for `scale`."""
    from llm_course.pretraining.gpt import pretrain_gpt

    scale = resolve_scale(scale)
    result = pretrain_gpt(course_tokenizer("bpe", scale), scale)
    return save_course_model("course-gpt", result["model"], result["tokenizer"], scale,
                             metrics=result["metrics"])


def build_course_bert(scale: str | None = None) -> Path:
    """Lesson 03 in one call (`pretrain_bert`), saved as `course-bert` for `scale`."""
    from llm_course.pretraining.bert import pretrain_bert

    scale = resolve_scale(scale)
    result = pretrain_bert(course_tokenizer("wordpiece", scale), scale)
    return save_course_model("course-bert", result["model"], result["tokenizer"], scale,
                             metrics=result["metrics"])


def course_classifier(dataset: str = "sentiment", scale: str | None = None):
    """The fine-tuned MiniLM classifier for `dataset` (lesson 05), as (model, tokenizer).

    Saved as `course-<dataset>` in the course home; built with `finetune_classifier` when
    missing, so lessons 08 and 09 can start cold.
    """
    from llm_course.finetuning.tasks import finetune_classifier

    scale = resolve_scale(scale)
    name = f"course-{dataset}"
    folder = course_checkpoint_dir(name, scale)
    if not (folder / "config.json").exists():
        print(f"No {name} model for scale {scale!r} yet (lesson 05 fine-tunes it): "
              "fine-tuning MiniLM now with lesson 05's recipe, once (a few minutes at "
              "laptop; the bar below shows how far it is).")
        result = finetune_classifier("minilm", dataset, scale, plot=False)
        save_course_model(name, result["model"], result["tokenizer"], scale,
                          metrics={**{f"test_{k}": v for k, v in result["test"].items()},
                                   "train_seconds": result["history"].receipt["train_seconds"],
                                   "train_steps": result["history"].steps})
    return load_pretrained(str(folder), task="sequence-classification")


register_course_builder("course-gpt", build_course_gpt)
register_course_builder("course-bert", build_course_bert)
