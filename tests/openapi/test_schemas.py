"""Wire forms as JSON Schema: one walk, the same bounds the readers enforce."""

from __future__ import annotations

from typing import Annotated, NotRequired, TypedDict

import pytest

from convhub.openapi.schemas import Schemas
from convhub.wire.kinds import (
    DigitsId,
    Doc,
    FreeReference,
    Int32,
    Int64,
    Minimum,
    Width,
    form_of,
)


class Inner(TypedDict):
    """An object used twice."""

    Value: Int32


class Outer(TypedDict):
    Count: Int32
    Id: Annotated[int, Width(64), Minimum(1), Doc("an ID")]
    Name: NotRequired[str]
    Flag: NotRequired[bool]
    Ext: NotRequired[dict[str, str]]
    Users: NotRequired[list[Int64 | None]]
    First: Inner
    Rest: list[Inner]
    Maybe: NotRequired[list[Inner | None]]
    Extra: NotRequired[Inner]


def test_integers_carry_their_width_and_bounds() -> None:
    schemas = Schemas()
    assert schemas.of(form_of(Int32)) == {
        "type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1,
    }  # fmt: skip
    assert schemas.of(form_of(Int64)) == {
        "type": "integer", "format": "int64", "minimum": -(2**63), "maximum": 2**63 - 1,
    }  # fmt: skip
    positive = schemas.of(form_of(Annotated[int, Width(64), Minimum(1), Doc("an ID")]))
    assert positive["minimum"] == 1 and positive["description"] == "an ID"


def test_an_object_is_a_component_referred_to_once_written() -> None:
    schemas = Schemas()
    assert schemas.of_declaration(Outer, request=False) == {"$ref": "#/components/schemas/Outer"}
    outer = schemas.components["Outer"]
    assert outer["required"] == ["Count", "Id", "First", "Rest"]
    properties = outer["properties"]
    assert properties["Name"] == {"type": "string"}
    assert properties["Flag"] == {"type": "boolean"}
    assert properties["Ext"] == {"type": "object", "additionalProperties": {"type": "string"}}
    assert properties["Users"]["items"]["type"] == ["integer", "null"]
    assert properties["First"] == {"$ref": "#/components/schemas/Inner"}
    assert properties["Rest"] == {"type": "array", "items": {"$ref": "#/components/schemas/Inner"}}
    assert properties["Maybe"]["items"] == {
        "anyOf": [{"$ref": "#/components/schemas/Inner"}, {"type": "null"}]
    }
    assert schemas.components["Inner"] == {
        "type": "object",
        "description": "An object used twice.",
        "properties": {"Value": schemas.of(form_of(Int32))},
        "required": ["Value"],
    }


def test_coze_lenient_forms_allow_both_json_types() -> None:
    schemas = Schemas()
    digits = schemas.of(form_of(DigitsId))
    assert digits["type"] == ["string", "integer"]
    assert digits["pattern"] == "^[0-9]{0,19}$" and digits["maximum"] == 2**63 - 1
    assert schemas.of(form_of(FreeReference))["type"] == ["string", "integer"]


def test_optional_request_fields_also_allow_null_which_counts_as_absent() -> None:
    schemas = Schemas()
    schemas.of_declaration(Outer, request=True)
    properties = schemas.components["Outer"]["properties"]
    assert properties["Count"]["type"] == "integer"  # required: null is refused
    assert properties["Name"] == {"type": ["string", "null"]}
    assert properties["Users"]["type"] == ["array", "null"]
    assert properties["Extra"] == {
        "anyOf": [{"$ref": "#/components/schemas/Inner"}, {"type": "null"}]
    }


def test_two_different_objects_of_one_name_are_refused() -> None:
    class Inner(TypedDict):  # the same name as the module's, another shape
        Other: str

    schemas = Schemas()
    schemas.of_declaration(Outer, request=False)
    with pytest.raises(ValueError, match="Inner"):
        schemas.of_declaration(Inner, request=False)


def test_an_object_is_either_a_requests_or_an_answers() -> None:
    schemas = Schemas()
    schemas.of_declaration(Outer, request=False)
    with pytest.raises(ValueError, match="Outer is both"):
        schemas.of_declaration(Outer, request=True)
