"""The readers compiled from wire declarations: what they accept, refuse and hand on."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired, TypedDict

import pytest

from convhub.dialects.coze import codec as coze_codec
from convhub.dialects.coze.actions import ENDPOINTS
from convhub.dialects.fields import reader
from convhub.dialects.volc.actions import ACTIONS
from convhub.domain import messages
from convhub.domain.models import ConversationType
from convhub.domain.ports import UserOrder
from convhub.errors import ConvhubError, ErrorCode
from convhub.wire import coze, volc
from convhub.wire.coze import ListConversationsQuery, MessageQuery
from convhub.wire.kinds import DigitsId, FreeReference, Int32, Int64, Minimum, Width, object_form


class Inner(TypedDict):
    Id: Annotated[int, Width(64), Minimum(1)]
    Note: NotRequired[str]


class Outer(TypedDict):
    Small: Int32
    Big: NotRequired[Int64]
    Flag: NotRequired[bool]
    Ext: NotRequired[dict[str, str]]
    Inner: NotRequired[Inner]
    Items: NotRequired[list[Inner]]
    Users: NotRequired[list[Int64 | None]]
    Ids: NotRequired[list[Int64]]


class Choices(TypedDict):
    Kind: Annotated[Literal[1, 2, 100], Width(32)]
    Role: NotRequired[Literal["user", "assistant"]]


class Lenient(TypedDict):
    Id: NotRequired[DigitsId]
    Bot: NotRequired[FreeReference]


read_outer = reader(Outer, element_codes={"Ids": ErrorCode.INVALID_CONVERSATION_ID_ELEMENT})


def refused(body: Any) -> ConvhubError:
    with pytest.raises(ConvhubError) as raised:
        read_outer(body)
    return raised.value


def test_a_valid_body_is_handed_on_as_it_came() -> None:
    body = {"Small": 1, "Big": 1 << 62, "Items": [{"Id": 3}], "Users": [7, None], "Unknown": []}
    assert read_outer(body) is body
    assert body["Big"] == 1 << 62  # exact: never through a float


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "Small is required"),
        ({"Small": None}, "Small is required"),  # null counts as absent
        ({"Small": "1"}, "Small must be an integer"),
        ({"Small": 1.0}, "Small must be an integer"),
        ({"Small": True}, "Small must be an integer"),
        ({"Small": 1 << 31}, "Small is out of range for a 32-bit integer"),
        ({"Small": 1, "Big": 1 << 63}, "Big is out of range for a 64-bit integer"),
        ({"Small": 1, "Flag": 0}, "Flag must be a boolean"),
        ({"Small": 1, "Ext": {"a": 1}}, "Ext must map strings to strings"),
        ({"Small": 1, "Inner": []}, "Inner must be an object"),
        ({"Small": 1, "Inner": {}}, "Inner.Id is required"),
        ({"Small": 1, "Inner": {"Id": 0}}, "Inner.Id must be positive"),
        ({"Small": 1, "Items": [{"Id": 1}, {"Id": 2, "Note": 5}]},
         "Items[1].Note must be a string"),
        ({"Small": 1, "Items": {}}, "Items must be an array of objects"),
        ({"Small": 1, "Users": [1, "2"]}, "Users must hold only integers"),
        ({"Small": 1, "Ids": [1, None]}, "Ids must hold only integers"),
        ({"Small": 1, "Ids": [1, True]}, "Ids must hold only integers"),
        ({"Small": 1, "Ids": [5, 1 << 63, 7]},
         "Ids holds a value out of range for a 64-bit integer"),
        ({"Small": 1, "Ids": [-(1 << 63) - 1]},
         "Ids holds a value out of range for a 64-bit integer"),
        ({"Small": 1, "Users": [1 << 63, "x"]},
         "Users holds a value out of range for a 64-bit integer"),  # the first wrong one tells
        ({"Small": 1, "Users": ["x", 1 << 63]}, "Users must hold only integers"),
    ],
)  # fmt: skip
def test_a_body_that_breaks_its_declaration_is_refused_naming_the_field(
    body: dict[str, Any], message: str
) -> None:
    error = refused(body)
    assert str(error) == message
    assert error.code in (ErrorCode.INVALID_PARAM, ErrorCode.INVALID_CONVERSATION_ID_ELEMENT)


def test_an_integer_array_at_its_bounds_is_handed_on() -> None:
    body = {"Small": 1, "Ids": [-(1 << 63), (1 << 63) - 1], "Users": [None, 1 << 62]}
    assert read_outer(body) is body


def test_an_element_of_the_wrong_type_raises_the_fields_own_code() -> None:
    assert refused({"Small": 1, "Ids": [1, "x"]}).code is ErrorCode.INVALID_CONVERSATION_ID_ELEMENT
    assert refused({"Small": 1, "Ids": [1 << 63]}).code is ErrorCode.INVALID_PARAM
    assert refused({"Small": 1, "Users": ["x"]}).code is ErrorCode.INVALID_PARAM


def test_lenient_coze_forms_hand_the_handler_one_python_type() -> None:
    read = reader(Lenient)
    assert read({"Id": "0012", "Bot": 73}) == {"Id": 12, "Bot": "73"}
    assert read({"Id": 0})["Id"] is None  # 0, "0" and "" name nothing
    assert read({"Id": ""})["Id"] is None
    for bad in ("12a", "9" * 20, 1 << 63, 1.5, -1):
        with pytest.raises(ConvhubError):
            read({"Id": bad})


def test_a_bare_int_is_not_declarable() -> None:
    class Vague(TypedDict):
        Count: int

    with pytest.raises(TypeError, match="Int32 or Int64"):
        object_form(Vague)


def test_every_action_reads_its_body_through_its_declared_request() -> None:
    for action in ACTIONS.values():
        assert object_form(action.request).fields, action.name
        object_form(action.result)  # declarable, widths given
        with pytest.raises(ConvhubError) as raised:
            action.read({"AppId": "1"})
        assert str(raised.value) == "AppId must be an integer", action.name


def test_coze_query_strings_are_read_through_their_declarations() -> None:
    read = coze_codec.query_reader(ListConversationsQuery)
    assert read({"bot_id": ["b"], "page_size": ["7"], "sort_order": [""]}) == {
        "bot_id": "b",
        "page_size": 7,
    }  # a blank value counts as absent
    for query, message in [
        ({}, "bot_id is required"),
        ({"bot_id": ["b", "c"]}, "bot_id is given more than once"),
        ({"bot_id": ["b"], "page_num": ["-1"]}, "page_num must be a non-negative 32-bit integer"),
        ({"bot_id": ["b"], "page_num": [str(1 << 31)]},
         "page_num must be a non-negative 32-bit integer"),
    ]:  # fmt: skip
        with pytest.raises(ConvhubError) as raised:
            read(query)
        assert str(raised.value) == message
    ids = coze_codec.query_reader(MessageQuery)
    assert ids({"conversation_id": ["0042"], "message_id": ["7"]}) == {
        "conversation_id": 42,
        "message_id": 7,
    }
    for bad in ("0", "x1", "9" * 20):
        with pytest.raises(ConvhubError):
            ids({"conversation_id": [bad], "message_id": ["7"]})


def test_every_coze_endpoint_declares_what_it_reads_and_answers() -> None:
    by_operation = {e.operation: e for e in ENDPOINTS}
    for endpoint in ENDPOINTS:
        object_form(endpoint.answer)
        assert endpoint.reads_body == (endpoint.body is not None)
    assert by_operation["CreateConversation"].reads_body
    assert not by_operation["RetrieveConversation"].reads_body
    assert by_operation["RetrieveMessage"].query is MessageQuery
    with pytest.raises(ConvhubError, match="role is required"):
        by_operation["CreateMessage"].read_body({"content": "hi"})


def test_a_literal_allows_its_values_only() -> None:
    read = reader(Choices)
    assert read({"Kind": 100, "Role": "user"}) == {"Kind": 100, "Role": "user"}
    for body, message in [
        ({"Kind": 3}, "Kind must be 1, 2 or 100"),
        ({"Kind": True}, "Kind must be an integer"),
        ({"Kind": 1, "Role": "system"}, "Role must be user or assistant"),
        ({"Kind": 1, "Role": "User"}, "Role must be user or assistant"),
    ]:
        with pytest.raises(ConvhubError) as raised:
            read(body)
        assert str(raised.value) == message


def test_the_wire_enumerations_are_the_domains() -> None:
    """The client ships the declarations without the domain, so each enumeration is written in
    both; this keeps the two the same."""

    def values(declared: type, *path: str) -> set[object]:
        form = object_form(declared)
        for name in path:
            field = next(f for f in form.fields if f.name == name)
            form = field.form if field.form.item is None else field.form.item
        return set(form.enum)

    assert values(volc.NewConversationCoreInfo, "ConversationType") == set(ConversationType)
    assert values(volc.GetUserConversationsRequest, "DataType") == {o.value for o in UserOrder}
    assert values(coze.CreateMessageBody, "role") == set(messages.ROLES)
    assert values(coze.CreateConversationBody, "messages", "role") == set(messages.ROLES)
    assert values(coze.FeedbackBody, "feedback_type") == set(messages.FEEDBACK_TYPES)
    assert values(volc.DeleteConversationMessageRequest, "DeleteType") == {0, 1}
    assert values(volc.RecallMessageRequest, "RecallRole") == {0, 1, 2}
