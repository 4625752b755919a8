"""Strict readers of JSON body fields that both dialects share: a field has exactly its JSON
type or is absent (``null`` counts as absent); anything else is INVALID_PARAM."""

from __future__ import annotations

from typing import Any

from convhub.errors import ConvhubError, ErrorCode

Body = dict[str, Any]


def bad(message: str) -> ConvhubError:
    return ConvhubError(ErrorCode.INVALID_PARAM, message)


def string(body: Body, name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad(f"{name} is required")
        return None
    if type(value) is not str:
        raise bad(f"{name} must be a string")
    return value


def obj(body: Body, name: str, *, required: bool = False) -> Body | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad(f"{name} is required")
        return None
    if type(value) is not dict:
        raise bad(f"{name} must be an object")
    return value


def string_map(body: Body, name: str) -> dict[str, str] | None:
    value = obj(body, name)
    if value is not None and not all(type(v) is str for v in value.values()):
        raise bad(f"{name} must map strings to strings")
    return value
