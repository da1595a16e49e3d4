"""The one validation pass: raw call arguments -> a tool's input model, refusals in the project's words.

Every refusal reads `Invalid `epochs` = -5: must be at least 1`: the argument, the value given, what is
allowed, and no library names or links. A misspelt argument is refused by name with the closest real one
("did you mean `epochs`?"). The model comes back with `model_fields_set` intact, so a tool can tell an
argument the caller gave from one left at its default.
"""

from __future__ import annotations

import difflib
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from tools.common import InvalidArgument, short_repr

M = TypeVar("M", bound=BaseModel)
MAX_PROBLEMS = 10  # a 100000-item list of the wrong type must not become a 100000-line answer


class InvalidArguments(ValueError):
    """One or more arguments refused; the message has one line per problem."""


def parse_arguments(model: type[M], arguments: dict[str, Any], tool: str = "this tool") -> M:
    """Validate `arguments` with `model` alone; raise InvalidArguments whose text the model can act on."""
    try:
        return model.model_validate(_pre_parse_json(model, arguments))
    except ValidationError as exc:
        raise InvalidArguments(describe_validation_error(exc, model, tool)) from None


def _pre_parse_json(model: type[BaseModel], arguments: dict[str, Any]) -> dict[str, Any]:
    """Accept a list or object sent as a JSON string (some clients do that), as the SDK does."""
    parsed = dict(arguments)
    for key, value in arguments.items():
        info = model.model_fields.get(key)
        if info is None or info.annotation is str or not isinstance(value, str):
            continue
        try:
            decoded = json.loads(value)
        except (ValueError, RecursionError):
            continue
        if not isinstance(decoded, str | int | float):
            parsed[key] = decoded
    return parsed


def describe_validation_error(
    exc: ValidationError, model: type[BaseModel] | None = None, tool: str = ""
) -> str:
    """One line per problem: the argument, the value given, and what is allowed."""
    lines: dict[str, list[str]] = {}  # argument path -> what is allowed (a union gives several)
    shown: dict[str, str] = {}
    unknown: list[str] = []
    for err in exc.errors():
        ctx = err.get("ctx") or {}
        if isinstance(ctx.get("error"), InvalidArgument):  # a validator's own refusal is already in our words
            lines.setdefault(str(ctx["error"]), [])
            continue
        path = argument_path(err["loc"])
        if err["type"] == "extra_forbidden":
            unknown.append(path)
            continue
        if err["type"] == "missing":
            lines.setdefault(f"Missing `{path}`: it is required", [])
            continue
        key = f"Invalid `{path}`"
        shown.setdefault(key, short_repr(err.get("input")))
        allowed = allowed_text(err)
        if allowed not in lines.setdefault(key, []):
            lines[key].append(allowed)
    out = [
        f"{key} = {shown[key]}: {' or '.join(allowed)}" if allowed else key for key, allowed in lines.items()
    ]
    known = sorted(model.model_fields) if model is not None else []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f": did you mean `{close[0]}`?" if close else ""
        out.append(f"Unknown argument `{name[:80]}`{' for ' + tool if tool else ''}{hint}")
    if unknown and known:
        out.append(f"Allowed arguments: {', '.join(known)}")
    if len(out) > MAX_PROBLEMS:
        out = out[:MAX_PROBLEMS] + [f"... and {len(out) - MAX_PROBLEMS} more problems"]
    return "\n".join(out)


_TYPE_TAGS = {"int", "float", "str", "bool", "list", "dict", "none", "literal", "is-instance"}


def argument_path(loc: tuple[int | str, ...]) -> str:
    """('points', 0, 'label') -> points[0].label; union-member tags such as 'list[int]' are dropped."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier() and part not in _TYPE_TAGS:
            text += f".{part}" if text else part
    return text or "arguments"


_ALLOWED = {
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number (not NaN or infinity)",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a text",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must be at least {min_length} character(s) long",
    "string_too_long": "must be at most {max_length} character(s) long",
    "string_pattern_mismatch": "must match the pattern {pattern}",
}


def allowed_text(err: Any) -> str:
    template = _ALLOWED.get(err["type"])
    if template is not None:
        try:
            return template.format(**(err.get("ctx") or {}))
        except (KeyError, IndexError):
            pass
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if msg.startswith("Input should"):  # pydantic's wording, turned into ours
        msg = "must" + msg[len("Input should") :]
    return msg[:1].lower() + msg[1:]
