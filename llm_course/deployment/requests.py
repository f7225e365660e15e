"""What the service accepts: the request body's schema and readable errors (used by `serve`,
08_deployment).

Every bad request (not JSON, not UTF-8, lone surrogates, wrong fields, too long) gets a
4xx whose JSON body has an "error" message that says what to send instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator, model_validator

from llm_course.deployment.model_folder import first_line


def request_model(max_batch: int, max_chars: int, truncate: bool) -> type:
    """The pydantic model of a /predict body, with this app's limits built in."""

    def check(text: str, what: str = "text") -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as err:  # a lone surrogate such as "\ud800" from a JSON escape
            raise ValueError(f"{what} is not valid Unicode: {ascii(text[err.start])} at character "
                             f"{err.start} is a lone surrogate; send UTF-8 text") from None
        if not text.strip():
            raise ValueError(f"{what} is empty (or only whitespace)")
        if len(text) > max_chars and not truncate:
            raise ValueError(f"{what} has {len(text)} characters; the limit is {max_chars} "
                             "(this server refuses longer texts instead of truncating them)")
        return text

    class PredictRequest(BaseModel):
        """Exactly one of `text` (one string) or `texts` (a list of 1 to max_batch strings)."""

        model_config = ConfigDict(extra="forbid")
        text: StrictStr | None = None
        texts: list[StrictStr] | None = Field(default=None, min_length=1, max_length=max_batch)

        @field_validator("text")
        @classmethod
        def _one(cls, value: str | None) -> str | None:
            return None if value is None else check(value)

        @field_validator("texts")
        @classmethod
        def _many(cls, value: list[str] | None) -> list[str] | None:
            if value is None:
                return None
            for i, text in enumerate(value):
                check(text, f"item {i}")
            return value

        @model_validator(mode="after")
        def _exactly_one(self) -> Any:
            if (self.text is None) == (self.texts is None):
                raise ValueError('send exactly one of "text" (a string) or "texts" '
                                 f"(a list of at most {max_batch} strings)")
            return self

    return PredictRequest


def printable(value: Any) -> Any:
    """`value` with any text made encodable as UTF-8 (lone surrogates become \\udXXXX)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value


def readable_errors(errors: Sequence[dict[str, Any]]) -> str:
    """One line per pydantic error: where, then what (never echoing the input text)."""
    lines = []
    for err in errors:
        if err.get("type") == "json_invalid":
            lines.append(f"the body is not valid JSON ({err.get('msg')})")
            continue
        loc = [part for part in err.get("loc", ()) if part != "body"]
        if not loc and err.get("type") == "missing":
            lines.append("the body is empty")
            continue
        if err.get("type") == "string_unicode":  # e.g. a key with a lone surrogate
            lines.append("the body is not valid Unicode (a lone surrogate such as \\ud800); "
                         "send UTF-8 text")
            continue
        where = ".".join(str(part) for part in loc)
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{where}: {msg}" if where else msg)
    return "; ".join(lines)


def body_error(exc: BaseException) -> str | None:
    """What was wrong with a body FastAPI could not parse (it says only "error parsing")."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return (f"the body is not valid UTF-8 ({cause.reason} at byte {cause.start}); "
                "send JSON encoded as UTF-8")
    if isinstance(cause, RecursionError):
        return "the body is nested too deeply to parse; send a flat JSON object"
    if isinstance(cause, ValueError):  # e.g. an integer of more than 4300 digits
        return f"the body is not valid JSON ({printable(first_line(cause).split(';')[0])})"
    return None


def is_json(content_type: str) -> bool:
    """True for application/json and application/*+json, with any parameters."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))
