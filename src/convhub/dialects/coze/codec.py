"""Coze wire <-> core: query strings and path segments read, results encoded.

Bodies are read by readers compiled from the declarations in ``convhub.wire.coze`` (see
``fields.reader``): JSON types are checked exactly, IDs are accepted as JSON strings of ASCII digits
or as JSON integers within a signed 64-bit range, free references (``bot_id``, ``connector_id``,
``chat_id``) as strings or integers, and ``null`` counts as absent because cozepy sends null for
every unset field. IDs are always answered as strings: cozepy refuses a JSON number there.

Query parameters come from the raw query string; a parameter the endpoint reads may appear once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from convhub.dialects.asgi import kept_fragment
from convhub.dialects.fields import Body as Body
from convhub.dialects.fields import bad as bad
from convhub.dialects.fields import digits
from convhub.domain.models import Conversation, Message
from convhub.wire.coze import ConversationData, MessageData
from convhub.wire.kinds import object_form

Query = dict[str, list[str]]

INT32_MAX = (1 << 31) - 1


# --- query and path -------------------------------------------------------------------------------


def parse_query(raw: bytes) -> Query:
    try:
        text = raw.decode("ascii")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise bad("the query string is not valid percent-encoded UTF-8") from None
    query: Query = {}
    for name, value in pairs:
        query.setdefault(name, []).append(value)
    return query


def query_value(query: Query, name: str, *, required: bool = False) -> str | None:
    """The one value of ``name``; a blank value counts as absent."""
    values = query.get(name)
    if values is not None and len(values) > 1:
        raise bad(f"{name} is given more than once")
    value = values[0] if values else ""
    if not value:
        if required:
            raise bad(f"{name} is required")
        return None
    return value


def query_reader(declared: type) -> Callable[[Query], dict[str, Any]]:
    """A reader of the query parameters that the ``TypedDict`` ``declared`` names: each may appear
    once, a blank value counts as absent; an ``id`` must be a positive ID written in digits, an
    integer a non-negative 32-bit one, a string is taken as it is."""
    fields = [(f.name, f.required, _QUERY_KINDS[f.form.kind]) for f in object_form(declared).fields]

    def read(query: Query) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, required, convert in fields:
            value = query_value(query, name, required=required)
            if value is not None:
                found[name] = convert(value, name)
        return found

    return read


def _query_int(value: str, name: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > INT32_MAX:
        raise bad(f"{name} must be a non-negative 32-bit integer")
    return int(value)


def _query_string(value: str, name: str) -> str:
    return value


def path_id(segment: str, name: str) -> int:
    return _positive_id(digits(segment, name), name)


_QUERY_KINDS: dict[str, Callable[[str, str], Any]] = {
    "id": path_id,
    "integer": _query_int,
    "string": _query_string,
}


def _positive_id(number: int, name: str) -> int:
    if number <= 0:
        raise bad(f"{name} must be a positive ID")
    return number


# --- results --------------------------------------------------------------------------------------


def conversation(c: Conversation) -> ConversationData:
    return {
        "id": str(c.id),
        "name": c.name,
        "created_at": c.create_time,
        "updated_at": c.modify_time,
        "meta_data": dict(c.ext),
        "last_section_id": str(c.section_id),
        "creator_id": c.creator,
        "connector_id": c.connector_id,
        "bot_id": c.bot_id,
    }


def page_messages(messages: Iterable[Message]) -> list[MessageData]:
    """``message`` of each message of a page (read-only, never changed afterwards), already
    serialized: an ``orjson.Fragment`` held on the message (``Message.encoded``), so that a message
    the store kept costs one attribute read the next time a page holds it. Typed as the dict it
    stands for: nothing but the answer's serializer reads it."""
    found: list[MessageData] = []
    append = found.append
    for m in messages:
        fragment = m.encoded
        if fragment is None:
            fragment = m.encoded = kept_fragment(message(m))
        append(fragment)
    return found


def message(m: Message) -> MessageData:
    return {
        "id": str(m.id),
        "conversation_id": str(m.conversation_id),
        "section_id": str(m.section_id),
        "bot_id": m.bot_id,
        "chat_id": m.chat_id,
        "role": m.role,
        "type": m.type,
        "content": m.content,
        "content_type": m.content_type,
        "meta_data": dict(m.ext),
        "created_at": m.create_time // 1000,
        "updated_at": m.update_time // 1000,
        "reasoning_content": "",
    }
