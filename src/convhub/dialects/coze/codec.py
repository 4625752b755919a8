"""Coze wire <-> core: strict decoding of query, path and body fields, encoding of results.

JSON types are checked exactly: a String field must be a JSON string, a number field a JSON integer
(never a float, a boolean or a numeric string). IDs (conversation, message, paging positions) are
accepted as JSON strings of ASCII digits or as JSON integers, within a signed 64-bit range, and are
always answered as strings: cozepy refuses a JSON number where it expects an ID. Other references
(``bot_id``, ``connector_id``, ``chat_id``) are free strings, a JSON integer being taken as its
digits. ``null`` counts as absent, because cozepy sends null for every unset field.

Query parameters come from the raw query string; a parameter the endpoint reads may appear once.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

# Re-exported: each dialect's codec is the one place its handlers read fields from.
from convhub.dialects.fields import Body as Body
from convhub.dialects.fields import bad as bad
from convhub.dialects.fields import string as string
from convhub.dialects.fields import string_map as string_map
from convhub.domain.models import Conversation, Message

Query = dict[str, list[str]]

INT32_MAX = (1 << 31) - 1
INT64_MAX = (1 << 63) - 1
_MAX_ID_DIGITS = len(str(INT64_MAX))


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


def query_id(query: Query, name: str) -> int:
    value = query_value(query, name, required=True)
    assert value is not None
    return _positive_id(_digits(value, name), name)


def query_int(query: Query, name: str, *, default: int) -> int:
    value = query_value(query, name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > INT32_MAX:
        raise bad(f"{name} must be a non-negative 32-bit integer")
    return int(value)


def path_id(segment: str, name: str) -> int:
    return _positive_id(_digits(segment, name), name)


def _digits(value: str, name: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > _MAX_ID_DIGITS:
        raise bad(f"{name} must be a string of at most {_MAX_ID_DIGITS} digits")
    number = int(value)
    if number > INT64_MAX:
        raise bad(f"{name} is out of range for a 64-bit ID")
    return number


def _positive_id(number: int, name: str) -> int:
    if number <= 0:
        raise bad(f"{name} must be a positive ID")
    return number


# --- body -----------------------------------------------------------------------------------------


def reference(body: Body, name: str) -> str | None:
    """A free-form reference such as ``bot_id``: a JSON string, or a JSON integer as its digits."""
    value = body.get(name)
    if value is None or type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    raise bad(f"{name} must be a string")


def identifier(body: Body, name: str) -> int | None:
    """An ID given as a string of digits or as an integer; 0, "0" and "" mean "none"."""
    value = body.get(name)
    if value is None:
        return None
    if type(value) is int:
        if not 0 <= value <= INT64_MAX:
            raise bad(f"{name} is out of range for a 64-bit ID")
        number = value
    elif type(value) is str:
        if value == "":
            return None
        number = _digits(value, name)
    else:
        raise bad(f"{name} must be a string of digits")
    return number or None


def integer(body: Body, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int:
        raise bad(f"{name} must be an integer")
    if not -INT32_MAX - 1 <= value <= INT32_MAX:
        raise bad(f"{name} is out of range for a 32-bit integer")
    return value


def meta_data(body: Body, name: str = "meta_data") -> dict[str, str] | None:
    return string_map(body, name)


def string_list(body: Body, name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not list or not all(type(v) is str for v in value):
        raise bad(f"{name} must be an array of strings")
    return value


def object_list(body: Body, name: str) -> list[Body]:
    value = body.get(name)
    if value is None:
        return []
    if type(value) is not list:
        raise bad(f"{name} must be an array of objects")
    for item in value:
        if type(item) is not dict:
            raise bad(f"{name} must hold only objects")
    return value


# --- results --------------------------------------------------------------------------------------


def conversation(c: Conversation) -> Body:
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


def message(m: Message) -> Body:
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
