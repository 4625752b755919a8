"""User IDs: the wire carries an int64 and sometimes a string twin; the core keeps one string.

``10001`` and ``"10001"`` name the same user. A non-empty string twin wins over the integer.
"""

from __future__ import annotations

from convhub.errors import ConvhubError, ErrorCode

MAX_USER_ID_LENGTH = 128
INT64_MAX = (1 << 63) - 1


def canonical_user(number: int | None, text: str | None, *, field: str) -> str | None:
    """The user key for an ``X``/``XStr`` pair, or None when neither names a user."""
    if text and text.strip("0"):  # "0", like 0, names nobody: the integer decides then
        if len(text) > MAX_USER_ID_LENGTH:
            raise ConvhubError(
                ErrorCode.INVALID_PARAM,
                f"{field}Str must be at most {MAX_USER_ID_LENGTH} characters",
            )
        if "\x00" in text:
            raise ConvhubError(ErrorCode.INVALID_PARAM, f"{field}Str must not contain NUL")
        if text.isdecimal() and text.isascii():
            return str(int(text))  # "0010001" and 10001 are one user
        return text
    if number is None or number == 0:
        return None
    if number < 0:
        raise ConvhubError(ErrorCode.INVALID_PARAM, f"{field} must be a positive user ID")
    return str(number)


def user_number(user: str) -> int:
    """The int64 form of a user key: the number itself, or 0 when the key is not numeric."""
    if user.isdecimal() and user.isascii():
        value = int(user)
        if value <= INT64_MAX:
            return value
    return 0
