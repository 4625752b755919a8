"""The Coze dialect as an OpenAPI 3.1 document: one operation per endpoint, at its own path."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from convhub.dialects.coze.actions import ENDPOINTS, Endpoint
from convhub.dialects.coze.errors import COZE_ERRORS
from convhub.openapi.schemas import RETRY_AFTER, Schema, Schemas, document, integer, ref
from convhub.wire.kinds import Field, object_form

SECURITY = "cozeToken"

_INT64_MAX = (1 << 63) - 1

_DESCRIPTION = """\
The Coze conversation API as convhub serves it (the endpoints `cozepy` and `@coze/api` call),
authenticated with a Bearer token.

Every answer is a JSON object with `code` (0 on success), `msg` and `detail.logid` (also sent as
the `x-tt-logid` header); success adds the endpoint's fields (`data` for most). A request that
fails answers `code` and a non-empty `msg` with the HTTP status of its code, and writes nothing.

IDs are answered as strings of digits. In bodies they may be strings of digits or integers. Body
fields are read strictly: a field has exactly its JSON type or is absent, `null` counts as absent,
unknown fields are ignored, and integers are written as JSON integers (`1`, never `1.0`). A query
parameter may appear once; a blank one counts as absent.
"""

_TOKEN = """\
A Coze access token, sent as `Authorization: Bearer <token>`: a token belongs to one user of an
account, acts in one of its apps, and holds the permissions it was created with (`convhub tokens
create --account NAME --user USER [--permissions p1,p2]`; all by default). Each operation names the
permission it needs.
"""


def coze_document() -> dict[str, Any]:
    schemas = Schemas()
    schemas.components["Detail"] = {
        "type": "object",
        "required": ["logid"],
        "properties": {"logid": {"type": "string", "description": "also the x-tt-logid header"}},
    }
    schemas.components["Success"] = {
        "type": "object",
        "description": "What every successful answer holds besides the endpoint's own fields.",
        "required": ["code", "msg", "detail"],
        "properties": {"code": {"const": 0}, "msg": {"type": "string"}, "detail": ref("Detail")},
    }
    statuses = _codes_by_status()
    for status, codes in statuses.items():
        schemas.components[f"Error{status}"] = _error_envelope(codes)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        path = _openapi_path(endpoint.path)
        paths.setdefault(path, {})[endpoint.method.lower()] = _operation(
            endpoint, schemas, statuses
        )
    return document(
        title="convhub: Coze conversation API",
        description=_DESCRIPTION,
        security=(SECURITY, {"type": "http", "scheme": "bearer", "description": _TOKEN}),
        paths=paths,
        headers={"LogId": {"required": True, "schema": {"type": "string"}}},
        responses={
            f"Error{status}": {
                "description": ", ".join(str(code) for code in codes),
                "headers": {
                    "x-tt-logid": {"$ref": "#/components/headers/LogId"},
                    **({"Retry-After": RETRY_AFTER} if status == 429 else {}),
                },
                "content": {"application/json": {"schema": ref(f"Error{status}")}},
            }
            for status, codes in statuses.items()
        },
        schemas=schemas,
    )


def _openapi_path(path: str) -> str:
    """``/v1/conversations/:conversation_id`` -> ``/v1/conversations/{conversation_id}``."""
    return "/".join(f"{{{s[1:]}}}" if s.startswith(":") else s for s in path.split("/"))


def _operation(endpoint: Endpoint, schemas: Schemas, statuses: dict[int, list[int]]) -> Schema:
    parameters = [
        {
            "name": segment[1:],
            "in": "path",
            "required": True,
            "description": "a positive ID, written in digits",
            "schema": _positive_id(),
        }
        for segment in endpoint.path.split("/")
        if segment.startswith(":")
    ]
    if endpoint.query is not None:
        parameters += [_query_parameter(f) for f in object_form(endpoint.query).fields]
    answer = {"allOf": [ref("Success"), schemas.of_declaration(endpoint.answer, request=False)]}
    responses: dict[str, Any] = {
        "200": {
            "description": "success",
            "headers": {"x-tt-logid": {"$ref": "#/components/headers/LogId"}},
            "content": {"application/json": {"schema": answer}},
        }
    }
    for status in statuses:
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    operation: Schema = {
        "operationId": endpoint.operation,
        "summary": endpoint.summary,
        "description": (
            f"Needs the permission `{endpoint.permission.value}`. At most {endpoint.qps} "
            "requests a second per account."
        ),
    }
    if parameters:
        operation["parameters"] = parameters
    if endpoint.body is not None:
        operation["requestBody"] = {
            "description": "an empty body counts as `{}`",
            "content": {
                "application/json": {"schema": schemas.of_declaration(endpoint.body, request=True)}
            },
        }
    operation["responses"] = responses
    return operation


def _positive_id() -> Schema:
    return {
        "type": "integer",
        "format": "int64",
        "minimum": 1,
        "maximum": _INT64_MAX,
    }


def _query_parameter(field: Field) -> Schema:
    form = field.form
    if form.kind == "id":
        schema = _positive_id()
    elif form.kind == "integer":
        schema = integer(form)
    elif form.kind == "string":
        schema = {"type": "string", "minLength": 1} if field.required else {"type": "string"}
    else:
        raise TypeError(f"query parameter {field.name}: no query form for {form.kind}")
    if not field.required and form.kind != "string":
        schema = {"anyOf": [schema, {"const": ""}]}  # blank: absent
    parameter: Schema = {"name": field.name, "in": "query", "required": field.required}
    if form.doc:
        parameter["description"] = form.doc
    parameter["schema"] = schema
    return parameter


def _codes_by_status() -> dict[int, list[int]]:
    """HTTP status -> the Coze codes answered with it, from the error table."""
    found: dict[int, set[int]] = defaultdict(set)
    for code, status in COZE_ERRORS.values():
        found[status].add(code)
    return {status: sorted(found[status]) for status in sorted(found)}


def _error_envelope(codes: list[int]) -> Schema:
    return {
        "type": "object",
        "required": ["code", "msg", "detail"],
        "properties": {
            "code": {"type": "integer", "enum": codes},
            "msg": {"type": "string", "minLength": 1},
            "detail": ref("Detail"),
        },
        "not": {"required": ["data"]},
    }
