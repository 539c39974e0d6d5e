"""Validation problems as one line each: `FILE:KEY: problem (did you mean X?)`.

Pydantic reports an error at a location inside the validated types; this module walks that location
through the spec's sections (discriminated unions included) to the key the user wrote, and words the
problem the way the harness words every bad input.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from harness.common.errors import HarnessError
from harness.common.registry import did_you_mean

DISCRIMINATORS = ("arch", "op", "name")  # the keys that pick a registry entry


class Problem(NamedTuple):
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.key}: {self.message}" if self.key else f"{self.file}: {self.message}"


class SpecError(HarnessError):
    """Raised with every problem found; `str()` gives one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def key_parts(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for token in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        parts.append(int(token[1:-1]) if token.startswith("[") else token)
    return parts


def depth(raw: Any, parts: list[str | int]) -> int:
    """How many leading parts of a key exist in a raw (unvalidated) table."""
    depth = 0
    for part in parts:
        if (
            isinstance(part, str)
            and isinstance(raw, dict)
            and part in raw
            or isinstance(part, int)
            and isinstance(raw, tuple)
            and part < len(raw)
        ):
            raw = raw[part]
        else:
            break
        depth += 1
    return depth


def format_key(parts: Iterable[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def members(tp: Any) -> list[Any]:
    """The concrete types behind Annotated / Optional / Union wrappers."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) if arg is not type(None) for m in members(arg)]
    return [tp]


def section_types(types_: list[Any]) -> list[type[BaseModel]]:
    return [t for t in types_ if inspect.isclass(t) and issubclass(t, BaseModel)]


def _tag(model: type[BaseModel]) -> str | None:
    for key in DISCRIMINATORS:
        info = model.model_fields.get(key)
        if info is not None and get_origin(info.annotation) is Literal:
            return get_args(info.annotation)[0]
    return None


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[str | int], list[Any]]:
    """Follow a pydantic error location through the section types: (display key, types at the end).

    Discriminated unions put the chosen tag into the location; it is dropped from the display key.
    """
    display: list[str | int] = []
    current: list[Any] = [root]
    for part in loc:
        models = section_types(current)
        if isinstance(part, int):
            current = [m for t in current if get_origin(t) in (tuple, list) for m in members(get_args(t)[0])]
            display.append(part)
            continue
        tagged = {_tag(m): m for m in models}
        if len(models) > 1 and part in tagged:
            current = [tagged[part]]
            continue
        dicts = [t for t in current if get_origin(t) is dict]
        display.append(part)
        if dicts and not models:
            current = members(get_args(dicts[0])[1])
            continue
        current = next((members(m.model_fields[part].annotation) for m in models if part in m.model_fields), [])
    return display, current


def _quoted(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


def problems_from(
    error: ValidationError, root: type[BaseModel], file: str, prefix: str = "", top_keys: Iterable[str] = ()
) -> list[Problem]:
    """Turn pydantic's errors into one-line `FILE:KEY: problem (did you mean X?)` problems.

    `prefix` places the problems under a key (a variant's table); `top_keys` are the keys valid there.
    """
    problems = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        display, _ = _walk(root, loc)
        kind = item["type"]
        ctx = item.get("ctx") or {}
        if kind == "extra_forbidden":
            _, parent = _walk(root, loc[:-1])
            known = sorted({f for m in section_types(parent) for f in m.model_fields})
            if not section_types(parent) and prefix and len(loc) == 1:
                known = sorted(top_keys)
            message = f"unknown key{did_you_mean(str(loc[-1]), known)}"
        elif kind == "missing":
            message = "missing required key"
        elif kind == "union_tag_invalid":
            names = _quoted(ctx.get("expected_tags", ""))
            what = "augment op" if ctx.get("discriminator") == "'op'" else str(display[-1])
            message = f"unknown {what} {ctx.get('tag')!r}{did_you_mean(str(ctx.get('tag')), names)}; known: {', '.join(names)}"
        elif kind == "union_tag_not_found":
            message = f"missing required key {ctx.get('discriminator', '').strip(chr(39))!r}"
        elif kind == "literal_error":
            choices = _quoted(str(ctx.get("expected", "")))
            message = f"{item['input']!r} is not one of {', '.join(repr(c) for c in choices)}{did_you_mean(str(item['input']), choices)}"
        else:
            message = item["msg"].removeprefix("Value error, ")
            if not isinstance(item.get("input"), dict):
                message += f" (got {item['input']!r})"
        key = format_key(display)
        problems.append(Problem(file, f"{prefix}.{key}" if prefix and key else (prefix or key), message))
    return problems


def is_key_of(root: type[BaseModel], key: str) -> bool:
    """Whether a dotted key names a field of `root` (through nested sections and unions)."""
    parts = [p for p in key_parts(key) if isinstance(p, str)]
    current: list[Any] = [root]
    for part in parts:
        models = section_types(current)
        nxt = [
            m for model in models if part in model.model_fields for m in members(model.model_fields[part].annotation)
        ]
        if not nxt:
            return False
        current = [m for t in nxt for m in (members(get_args(t)[0]) if get_origin(t) in (tuple, list) else [t])]
    return True


def all_keys(root: type[BaseModel]) -> list[str]:
    """Every dotted key of `root`, for suggestions."""
    keys: list[str] = []

    def visit(prefix: str, tp_list: list[Any]) -> None:
        for model in section_types(tp_list):
            for name, info in model.model_fields.items():
                key = f"{prefix}.{name}" if prefix else name
                keys.append(key)
                inner = members(info.annotation)
                inner = [m for t in inner for m in (members(get_args(t)[0]) if get_origin(t) in (tuple, list) else [t])]
                visit(key, inner)

    visit("", [root])
    return sorted(set(keys))
