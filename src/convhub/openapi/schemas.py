"""JSON Schema (2020-12) of wire forms (``convhub.wire.kinds``): one walk, shared by both
documents. A named object is written once into ``components/schemas`` and referred to by
``$ref`` wherever it appears.

In a request, ``null`` counts as absent: an optional field of a request object also allows
``null``, so the schema says what the readers accept. An object is therefore a request's or an
answer's, never both."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from convhub.wire.kinds import Field, Form, object_form

Schema = dict[str, Any]

_INT64_MAX = (1 << 63) - 1
_JSON_TYPES = {"string": "string", "boolean": "boolean", "integer": "integer"}


# A response header of 429 answers that both dialects send when a per-second limit refused.
RETRY_AFTER: Schema = {
    "description": "with a rate limit's refusal: the seconds to wait (limits count per second)",
    "schema": {"type": "integer", "minimum": 0},
}


def document(
    *,
    title: str,
    description: str,
    security: tuple[str, Schema],
    paths: dict[str, Any],
    responses: dict[str, Schema],
    schemas: Schemas,
    headers: dict[str, Schema] | None = None,
) -> dict[str, Any]:
    """An OpenAPI 3.1 document: one security scheme that every operation needs, the paths, and
    the components (``headers`` when given, the shared ``responses``, the walked ``schemas``)."""
    name, scheme = security
    components: dict[str, Any] = {"securitySchemes": {name: scheme}}
    if headers is not None:
        components["headers"] = headers
    components["responses"] = responses
    components["schemas"] = dict(sorted(schemas.components.items()))
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {"title": title, "version": version("convhub"), "description": description},
        "security": [{name: []}],
        "paths": paths,
        "components": components,
    }


def integer(form: Form) -> Schema:
    """An integer of its width, bounded by its declared minimum, or one of its values."""
    if form.enum:
        return {"type": "integer", "format": f"int{form.bits}", "enum": list(form.enum)}
    low, high = form.bounds
    minimum = low if form.minimum is None else max(low, form.minimum)
    return {"type": "integer", "format": f"int{form.bits}", "minimum": minimum, "maximum": high}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


class Schemas:
    """The ``components/schemas`` of one document, filled as forms are walked."""

    def __init__(self) -> None:
        self.components: dict[str, Schema] = {}
        self._fields: dict[str, tuple[Field, ...]] = {}
        self._docs: dict[str, str] = {}  # each component's description
        self._in_request: dict[str, bool] = {}

    def of_declaration(self, declared: type, *, request: bool) -> Schema:
        """A ``$ref`` to the ``TypedDict`` ``declared``, written into the components."""
        return self.of(object_form(declared), request=request)

    def of(self, form: Form, *, request: bool = False) -> Schema:
        schema = self._bare(form, request)
        if form.nullable:
            schema = _nullable(schema)
        if form.doc and not (form.kind == "object" and form.doc == self._docs[form.name]):
            known = schema.get("description")
            schema["description"] = f"{form.doc} ({known})" if known else form.doc
        return schema

    def _bare(self, form: Form, request: bool) -> Schema:
        kind = form.kind
        if kind == "integer":
            return integer(form)
        if kind in ("string", "boolean"):
            if form.enum:
                return {"type": _JSON_TYPES[kind], "enum": list(form.enum)}
            return {"type": _JSON_TYPES[kind]}
        if kind == "string_map":
            return {"type": "object", "additionalProperties": {"type": "string"}}
        if kind == "array":
            assert form.item is not None
            return {"type": "array", "items": self.of(form.item, request=request)}
        if kind == "object":
            return self._object(form, request)
        if kind == "id":
            return {
                "type": ["string", "integer"],
                "pattern": "^[0-9]{0,19}$",
                "minimum": 0,
                "maximum": _INT64_MAX,
                "description": (
                    "an ID: a string of ASCII digits or an integer, at most "
                    f'{_INT64_MAX}; 0, "0" and "" mean none'
                ),
            }
        if kind == "reference":
            return {"type": ["string", "integer"], "description": "read as a string"}
        raise TypeError(f"no JSON Schema for the form {kind}")

    def _object(self, form: Form, request: bool) -> Schema:
        # Compared by fields: a field's ``Doc`` on an object changes the form's doc, not its
        # shape, and becomes a description beside the reference.
        known = self._fields.get(form.name)
        if known is None:
            self._fields[form.name] = form.fields
            self._docs[form.name] = form.doc
            self._in_request[form.name] = request
            schema: Schema = {"type": "object"}
            if form.doc:
                schema["description"] = form.doc
            schema["properties"] = {f.name: self._field(f, request) for f in form.fields}
            required = [f.name for f in form.fields if f.required]
            if required:
                schema["required"] = required
            self.components[form.name] = schema
        elif known != form.fields:
            raise ValueError(f"two different declarations are named {form.name}")
        elif self._in_request[form.name] != request:
            raise ValueError(f"{form.name} is both a request's and an answer's: declare two")
        return ref(form.name)

    def _field(self, field: Field, request: bool) -> Schema:
        schema = self.of(field.form, request=request)
        if request and not field.required:
            described = schema.pop("description", None)
            schema = _nullable(schema)
            if described:
                schema["description"] = described
        return schema


def _nullable(schema: Schema) -> Schema:
    """``schema`` or ``null``: a type list where there is one, else ``anyOf``."""
    if "enum" in schema:
        schema = {**schema, "enum": [*schema["enum"], None]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    if isinstance(kind, list):
        return {**schema, "type": [*kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}
