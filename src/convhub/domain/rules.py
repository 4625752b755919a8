"""Limits on what a conversation may hold, written once; every dialect reaches them.

The Volcengine pages set no lengths; these are convhub's, generous enough for real clients and
small enough that one request cannot bloat a row.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def check_ext(ext: Mapping[str, str] | None, field: str = "Ext") -> None:
    if ext is None:
        return
    if len(ext) > MAX_EXT_PAIRS:
        raise ConvhubError(
            ErrorCode.INVALID_PARAM, f"{field} may hold at most {MAX_EXT_PAIRS} keys"
        )
    for key, value in ext.items():
        check_text(key, f"{field} keys")
        check_text(value, f"{field} values")
        if not 1 <= len(key) <= MAX_EXT_KEY:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM, f"{field} keys must be 1 to {MAX_EXT_KEY} characters"
            )
        if len(value) > MAX_EXT_VALUE:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM,
                f"{field} values must be at most {MAX_EXT_VALUE} characters",
            )


def check_meta_data(meta: Mapping[str, str] | None) -> None:
    if meta is None:
        return
    if len(meta) > MAX_META_PAIRS:
        raise ConvhubError(
            ErrorCode.META_DATA_OVER_LIMIT, f"meta_data may hold at most {MAX_META_PAIRS} pairs"
        )
    for key, value in meta.items():
        check_text(key, "meta_data keys")
        check_text(value, "meta_data values")
        if not 1 <= len(key) <= MAX_META_KEY:
            raise ConvhubError(
                ErrorCode.META_DATA_OVER_LIMIT,
                f"meta_data keys must be 1 to {MAX_META_KEY} characters",
            )
        if not 1 <= len(value) <= MAX_META_VALUE:
            raise ConvhubError(
                ErrorCode.META_DATA_OVER_LIMIT,
                f"meta_data values must be 1 to {MAX_META_VALUE} characters",
            )
