"""How each ``ErrorCode`` looks on the Volcengine wire: (Code, CodeN, HTTP status).

Gateway codes and their CodeN and status follow the Volcengine common error pages. IM business
codes (doc 412253) have no published CodeN: ours are fixed, numbered 1000001… in the page's order,
and never change. Business errors answer HTTP 400 (InternalError 500).
"""

from __future__ import annotations

from convhub.errors import ErrorCode

# Code -> CodeN for the IM business codes, in the order of doc 412253.
IM_CODES: dict[str, int] = {
    name: 1_000_001 + index
    for index, name in enumerate(
        [
            "JsonParsingError",
            "ConversationNotFound",
            "ParticipantNotInConversation",
            "InvalidParam",
            "MessageNotFound",
            "SettingNotFound",
            "ParticipantNotFound",
            "ConversationParticipantsMoreThanLimit",
            "CreateSingleConversationNeedOtherParticipantId",
            "SingleConversationNotSupport",
            "OnlySingleConversationSupport",
            "ConversationShortIdsHasInvalidElem",
            "OwnerShouldBeEqual",
            "OnlyOwnerCanOperator",
            "MoreThanUserConversationLimit",
            "AppNotFound",
            "AppStatusException",
            "NoAuth",
            "LiveConversationNotSupport",
            "OnlyLiveConversationSupport",
            "ManagerMoreThanLimit",
            "BlockConversationWhiteParticipantMoreThanLimit",
            "ConversationMarkTypeMoreThanLimit",
        ]
    )
}


def _im(code: str, status: int = 400) -> tuple[str, int, int]:
    return code, IM_CODES[code], status


VOLC_ERRORS: dict[ErrorCode, tuple[str, int, int]] = {
    ErrorCode.MISSING_PARAMETER: ("MissingParameter", 100002, 400),
    ErrorCode.UNKNOWN_ACTION: ("InvalidActionOrVersion", 100008, 404),
    # The common pages name these two without a CodeN; ours echo the HTTP status.
    ErrorCode.METHOD_NOT_ALLOWED: ("MethodNotAllowed", 100405, 405),
    ErrorCode.RATE_LIMITED: ("FlowLimitExceeded", 100429, 429),
    ErrorCode.MALFORMED_JSON: _im("JsonParsingError"),
    ErrorCode.INVALID_PARAM: _im("InvalidParam"),
    ErrorCode.PAYLOAD_TOO_LARGE: _im("InvalidParam", 413),
    ErrorCode.MISSING_AUTH: ("MissingRequestInfo", 100004, 400),
    ErrorCode.INVALID_TIMESTAMP: ("InvalidTimestamp", 100006, 400),
    ErrorCode.SERVICE_NOT_FOUND: ("ServiceNotFound", 100007, 404),
    ErrorCode.UNKNOWN_ACCESS_KEY: ("InvalidAccessKey", 100009, 401),
    ErrorCode.SIGNATURE_MISMATCH: ("SignatureDoesNotMatch", 100010, 401),
    ErrorCode.ACCESS_DENIED: ("AccessDenied", 100013, 403),
    ErrorCode.APP_NOT_FOUND: _im("AppNotFound"),
    ErrorCode.APP_DISABLED: _im("AppStatusException"),
    ErrorCode.APP_OF_OTHER_ACCOUNT: _im("NoAuth"),
    ErrorCode.CONVERSATION_NOT_FOUND: _im("ConversationNotFound"),
    ErrorCode.PARTICIPANT_NOT_IN_CONVERSATION: _im("ParticipantNotInConversation"),
    ErrorCode.SINGLE_NEEDS_OTHER_USER: _im("CreateSingleConversationNeedOtherParticipantId"),
    ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED: _im("SingleConversationNotSupport"),
    ErrorCode.INVALID_CONVERSATION_ID_ELEMENT: _im("ConversationShortIdsHasInvalidElem"),
    ErrorCode.ONLY_OWNER: _im("OnlyOwnerCanOperator"),
    ErrorCode.OWNER_SHOULD_BE_EQUAL: _im("OwnerShouldBeEqual"),
    ErrorCode.TOO_MANY_PARTICIPANTS: _im("ConversationParticipantsMoreThanLimit"),
    ErrorCode.TOO_MANY_USER_CONVERSATIONS: _im("MoreThanUserConversationLimit"),
    ErrorCode.ONLY_LIVE_GROUP: _im("OnlyLiveConversationSupport"),
    ErrorCode.TOO_MANY_MARK_TYPES: _im("ConversationMarkTypeMoreThanLimit"),
    ErrorCode.SETTING_NOT_FOUND: _im("SettingNotFound"),
    # Too many writes queued: the throttling answer, which the SDKs know to retry after a pause.
    ErrorCode.OVERLOADED: ("FlowLimitExceeded", 100429, 429),
    # Shutting down, no ID node, the database unreachable: convhub's own code, a plain 503.
    ErrorCode.UNAVAILABLE: ("ServiceUnavailable", 100503, 503),
    ErrorCode.INTERNAL: ("InternalError", 100014, 500),
    # Raised by the core for Coze callers; a Volcengine caller never meets them, but the table
    # is total so that any error has a Volcengine form.
    ErrorCode.INVALID_TOKEN: ("InvalidAccessKey", 100009, 401),
    ErrorCode.PERMISSION_DENIED: ("AccessDenied", 100013, 403),
    ErrorCode.ROUTE_NOT_FOUND: ("InvalidActionOrVersion", 100008, 404),
    ErrorCode.META_DATA_OVER_LIMIT: _im("InvalidParam"),
    ErrorCode.MESSAGE_NOT_FOUND: _im("MessageNotFound"),
}
