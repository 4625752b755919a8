"""OpenAPI 3.1 documents of both dialects, generated from the declarations the server reads
requests through (``convhub.wire``) and the tables it answers errors from: what a document says
is what the server enforces. The server serves them at ``/openapi/<name>``, and
``python -m convhub.openapi`` writes them into ``docs/openapi/`` (a test keeps those equal).

It sits above both dialects, as the composition root does: each document reads one dialect's
actions and error table, and ``schemas`` turns wire forms into JSON Schema for either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from convhub.openapi.coze import coze_document
from convhub.openapi.volcengine import volcengine_document

DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "volcengine.json": volcengine_document,
    "coze.json": coze_document,
}


def render(document: dict[str, Any]) -> bytes:
    """The bytes served and committed: indented, keys in declaration order, one final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def rendered() -> dict[str, bytes]:
    """Every document by file name, rendered."""
    return {name: render(build()) for name, build in DOCUMENTS.items()}


__all__ = ["DOCUMENTS", "coze_document", "render", "rendered", "volcengine_document"]
