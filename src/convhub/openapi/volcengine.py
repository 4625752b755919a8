"""The Volcengine dialect as an OpenAPI 3.1 document: one operation per action.

Every action is ``POST /?Action=<name>&Version=2020-12-01``, and OpenAPI allows one operation per
path and method, so each action's path key is ``/#Action=<name>``: the fragment keeps the keys
apart and is never sent (HTTP clients drop it, browsers too), and the ``Action`` and ``Version``
query parameters, each a ``const``, say what is sent. A key with a query string instead
(``/?Action=…``) would be sent as written and again from the parameters.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from convhub.dialects.volc.actions import ACTIONS, VERSION, Action
from convhub.dialects.volc.app import SERVICE
from convhub.dialects.volc.errors import VOLC_ERRORS
from convhub.openapi.schemas import RETRY_AFTER, Schema, Schemas, document, ref

SECURITY = "volcengineSignature"

_DESCRIPTION = """\
The Volcengine IM server OpenAPI (Version 2020-12-01) as convhub serves it: every action is
`POST /?Action=<Action>&Version=2020-12-01` with a JSON body, signed with HMAC-SHA256.

Request fields are read strictly: a field has exactly its JSON type or is absent, `null` counts
as absent, and unknown fields are ignored. Integers are in range for their width (`int32`,
`int64`) and written as JSON integers: `1`, never `1.0` or `1e0`, which JSON Schema counts as
integers too but the server refuses, as the official Go SDK does. A request that fails answers
the error envelope (`ResponseMetadata.Error`, no `Result`) with the HTTP status of its `Code`,
and writes nothing.

Path keys read `/#Action=<Action>`: the fragment only tells the operations apart (OpenAPI allows
one operation per path and method) and is never sent.
"""

_SIGNING = """\
Volcengine's HMAC-SHA256 request signature (service `rtc`, region `cn-north-1` or
`ap-southeast-1`), the one the official clients (`volcengine`, `volcenginesdk-core`,
`@volcengine/openapi`) compute. Send `X-Date` (`YYYYMMDDTHHMMSSZ`, UTC, within the server's
signature window: 15 minutes by default), `X-Content-Sha256` (the hex SHA-256 of the body) and
`Authorization: HMAC-SHA256 Credential=<AccessKey>/<YYYYMMDD>/<region>/rtc/request,
SignedHeaders=<names>, Signature=<hex>`; the signature covers the method, the path `/`, the query
sorted by name, the signed headers (at least `x-date`) and the body hash.
"""


def volcengine_document() -> dict[str, Any]:
    schemas = Schemas()
    schemas.components["ResponseMetadata"] = _metadata()
    statuses = _codes_by_status()
    for status, codes in statuses.items():
        schemas.components[f"Error{status}"] = _error_envelope(codes)
    paths = {
        f"/#Action={a.name}": {"post": _operation(a, schemas, statuses)} for a in ACTIONS.values()
    }
    signing = {"type": "apiKey", "in": "header", "name": "Authorization", "description": _SIGNING}
    return document(
        title="convhub: Volcengine IM server OpenAPI",
        description=_DESCRIPTION,
        security=(SECURITY, signing),
        paths=paths,
        responses={
            f"Error{status}": {
                "description": ", ".join(f"`{c}` ({n})" for c, n in codes.items()),
                **({"headers": {"Retry-After": RETRY_AFTER}} if status == 429 else {}),
                "content": {"application/json": {"schema": ref(f"Error{status}")}},
            }
            for status, codes in statuses.items()
        },
        schemas=schemas,
    )


def _operation(action: Action, schemas: Schemas, statuses: dict[int, dict[str, int]]) -> Schema:
    answer: Schema = {
        "type": "object",
        "required": ["ResponseMetadata", "Result"],
        "properties": {
            "ResponseMetadata": ref("ResponseMetadata"),
            "Result": schemas.of_declaration(action.result, request=False),
        },
    }
    responses: dict[str, Any] = {
        "200": {
            "description": "the action's `Result`",
            "content": {"application/json": {"schema": answer}},
        }
    }
    for status in statuses:
        responses[str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return {
        "operationId": action.name,
        "summary": action.summary,
        "description": f"At most {action.qps} requests a second per account.",
        "parameters": [
            _constant_query("Action", action.name),
            _constant_query("Version", VERSION),
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": schemas.of_declaration(action.request, request=True)}
            },
        },
        "responses": responses,
    }


def _constant_query(name: str, value: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": True,
        "schema": {"type": "string", "const": value},
    }


def _metadata() -> Schema:
    return {
        "type": "object",
        "description": "What every answer carries; `Action` and `Version` echo the request's.",
        "required": ["RequestId", "Action", "Version", "Service", "Region"],
        "properties": {
            "RequestId": {"type": "string"},
            "Action": {"type": "string"},
            "Version": {"type": "string"},
            "Service": {"type": "string", "const": SERVICE},
            "Region": {"type": "string"},
        },
    }


def _codes_by_status() -> dict[int, dict[str, int]]:
    """HTTP status -> {Code: CodeN} of the errors answered with it, from the error table."""
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for code, code_n, status in VOLC_ERRORS.values():
        found[status][code] = code_n
    return {status: dict(sorted(found[status].items())) for status in sorted(found)}


def _error_envelope(codes: dict[str, int]) -> Schema:
    error = {
        "type": "object",
        "required": ["Code", "CodeN", "Message"],
        "properties": {
            "Code": {"type": "string", "enum": list(codes)},
            "CodeN": {"type": "integer", "enum": sorted(set(codes.values()))},
            "Message": {"type": "string"},
        },
    }
    return {
        "type": "object",
        "required": ["ResponseMetadata"],
        "properties": {
            "ResponseMetadata": {
                "allOf": [ref("ResponseMetadata")],
                "required": ["Error"],
                "properties": {"Error": error},
            }
        },
        "not": {"required": ["Result"]},
    }
