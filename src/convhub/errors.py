"""One error type for the whole service, with stable codes.

A code says what went wrong, never how a dialect shows it: each dialect owns a table from
``ErrorCode`` to its wire code and HTTP status, and a test checks every code has an entry there.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    # Request shape and transport
    MISSING_PARAMETER = "missing_parameter"
    UNKNOWN_ACTION = "unknown_action"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MALFORMED_JSON = "malformed_json"
    INVALID_PARAM = "invalid_param"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    # Authentication and authorisation
    MISSING_AUTH = "missing_auth"
    INVALID_TIMESTAMP = "invalid_timestamp"
    SERVICE_NOT_FOUND = "service_not_found"
    UNKNOWN_ACCESS_KEY = "unknown_access_key"
    SIGNATURE_MISMATCH = "signature_mismatch"
    ACCESS_DENIED = "access_denied"
    APP_NOT_FOUND = "app_not_found"
    APP_DISABLED = "app_disabled"
    APP_OF_OTHER_ACCOUNT = "app_of_other_account"
    RATE_LIMITED = "rate_limited"
    INVALID_TOKEN = "invalid_token"
    PERMISSION_DENIED = "permission_denied"
    ROUTE_NOT_FOUND = "route_not_found"
    # Conversations
    CONVERSATION_NOT_FOUND = "conversation_not_found"
    PARTICIPANT_NOT_IN_CONVERSATION = "participant_not_in_conversation"
    SINGLE_NEEDS_OTHER_USER = "single_needs_other_user"
    SINGLE_CONVERSATION_NOT_SUPPORTED = "single_conversation_not_supported"
    INVALID_CONVERSATION_ID_ELEMENT = "invalid_conversation_id_element"
    ONLY_OWNER = "only_owner"
    OWNER_SHOULD_BE_EQUAL = "owner_should_be_equal"
    TOO_MANY_PARTICIPANTS = "too_many_participants"
    TOO_MANY_USER_CONVERSATIONS = "too_many_user_conversations"
    ONLY_LIVE_GROUP = "only_live_group"
    TOO_MANY_MARK_TYPES = "too_many_mark_types"
    SETTING_NOT_FOUND = "setting_not_found"
    META_DATA_OVER_LIMIT = "meta_data_over_limit"
    # Messages
    MESSAGE_NOT_FOUND = "message_not_found"
    # The service itself: too busy to queue the write, or unable to serve it right now (shutting
    # down, no ID node held, database unreachable). Both are worth a retry later.
    OVERLOADED = "overloaded"
    UNAVAILABLE = "unavailable"
    # Anything unexpected
    INTERNAL = "internal"


class ConvhubError(Exception):
    """The only exception a dialect turns into an error response."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ConvhubError({self.code.value!r}, {self.message!r})"


class ConfigError(ValueError):
    """A setting (a flag, a ``CONVHUB_*`` variable, the database URL) or the database it names
    cannot be used as given. Raised before anything is served, never on the wire: the message is
    one line for a person, saying what is wrong and what to do."""
