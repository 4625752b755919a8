"""Limits on what a conversation may hold, written once; every dialect reaches them.

The Volcengine pages set no lengths; these are convhub's, generous enough for real clients and
small enough that one request cannot bloat a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from convhub.errors import ConvhubError, ErrorCode

MAX_NAME = 100  # Coze's documented limit, held for every conversation
MAX_AVATAR_URL = 1024
MAX_DESCRIPTION = 2048
MAX_NOTICE = 2048
MAX_IDEMPOTENT_ID = 128
MAX_EXT_PAIRS = 64
MAX_EXT_KEY = 128
MAX_EXT_VALUE = 4096
MAX_BATCH_GET = 100
# Coze meta_data (conversations and messages), as its pages document it.
MAX_META_PAIRS = 16
MAX_META_KEY = 64
MAX_META_VALUE = 512
MAX_MESSAGE_CONTENT = 100_000
MAX_PAGE_SIZE = 50
MAX_ID_TEXT = 128  # bot_id, connector_id, chat_id


def check_length(value: str | None, limit: int, field: str) -> None:
    if value is not None and len(value) > limit:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"{field} must be at most {limit} characters")
    check_text(value, field)


def check_text(value: str | None, field: str) -> None:
    """Refuse NUL: PostgreSQL text cannot hold it, and both engines must answer alike."""
    if value is not None and "\x00" in value:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"{field} must not contain NUL characters")


@dataclass(frozen=True, slots=True)
class _MapLimits:
    code: ErrorCode
    pairs: int
    pairs_word: str
    key: int
    value_min: int
    value_max: int


_EXT = _MapLimits(ErrorCode.INVALID_PARAM, MAX_EXT_PAIRS, "keys", MAX_EXT_KEY, 0, MAX_EXT_VALUE)
_META = _MapLimits(
    ErrorCode.META_DATA_OVER_LIMIT, MAX_META_PAIRS, "pairs", MAX_META_KEY, 1,
    MAX_META_VALUE,
)  # fmt: skip


def _check_map(mapping: Mapping[str, str] | None, limits: _MapLimits, field: str) -> None:
    if mapping is None:
        return
    if len(mapping) > limits.pairs:
        raise ConvhubError(
            limits.code, f"{field} may hold at most {limits.pairs} {limits.pairs_word}"
        )
    for key, value in mapping.items():
        check_text(key, f"{field} keys")
        check_text(value, f"{field} values")
        if not 1 <= len(key) <= limits.key:
            raise ConvhubError(limits.code, f"{field} keys must be 1 to {limits.key} characters")
        if not limits.value_min <= len(value) <= limits.value_max:
            bounds = (
                f"1 to {limits.value_max}" if limits.value_min else f"at most {limits.value_max}"
            )
            raise ConvhubError(limits.code, f"{field} values must be {bounds} characters")


def check_ext(ext: Mapping[str, str] | None, field: str = "Ext") -> None:
    """Volcengine Ext: up to 64 keys of 1-128 characters, values up to 4096."""
    _check_map(ext, _EXT, field)


def check_meta_data(meta: Mapping[str, str] | None) -> None:
    """Coze meta_data: up to 16 pairs, keys 1-64 and values 1-512 characters."""
    _check_map(meta, _META, "meta_data")
