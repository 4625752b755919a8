"""How each ``ErrorCode`` looks on the Coze wire: (code, HTTP status).

Codes are those of the Coze error-code page: 4000 bad request parameter, 4002 invalid
conversation, 4003 meta_data over its limits, 4005 invalid message, 4008 rate limited, 4100
invalid credentials, 4101 permission denied, 4200 resource (here: route) not found, 5000 internal.
The codes that only the Volcengine dialect raises (signatures, access keys, apps, conversation
types) are mapped to the nearest Coze meaning, so that every code has an answer here.

HTTP status: cozepy never looks at it (it reads ``code`` and ``msg`` from any JSON body), so it is
ours to pick, for plain HTTP clients and proxies: 400 for bad parameters, 401 for credentials, 403
for permissions, 404 for unknown routes and for conversations and messages not found, 405 for a
wrong method, 413 for a body over the cap, 429 for rate limits, 500 for internal errors.
"""

from __future__ import annotations

from convhub.errors import ErrorCode

BAD_PARAMETER = 4000
INVALID_CONVERSATION = 4002
META_DATA_OVER_LIMIT = 4003
INVALID_MESSAGE = 4005
RATE_LIMITED = 4008
INVALID_TOKEN = 4100
PERMISSION_DENIED = 4101
NOT_FOUND = 4200
INTERNAL = 5000

COZE_ERRORS: dict[ErrorCode, tuple[int, int]] = {
    # Request shape and transport
    ErrorCode.MISSING_PARAMETER: (BAD_PARAMETER, 400),
    ErrorCode.UNKNOWN_ACTION: (NOT_FOUND, 404),
    ErrorCode.METHOD_NOT_ALLOWED: (BAD_PARAMETER, 405),
    ErrorCode.MALFORMED_JSON: (BAD_PARAMETER, 400),
    ErrorCode.INVALID_PARAM: (BAD_PARAMETER, 400),
    ErrorCode.PAYLOAD_TOO_LARGE: (BAD_PARAMETER, 413),
    ErrorCode.ROUTE_NOT_FOUND: (NOT_FOUND, 404),
    # Authentication and authorisation (the signature codes are Volcengine's: a credential that
    # does not hold is "身份验证无效" here; a refused account or app is "没有权限访问该资源")
    ErrorCode.MISSING_AUTH: (INVALID_TOKEN, 401),
    ErrorCode.INVALID_TIMESTAMP: (INVALID_TOKEN, 401),
    ErrorCode.SERVICE_NOT_FOUND: (INVALID_TOKEN, 401),
    ErrorCode.UNKNOWN_ACCESS_KEY: (INVALID_TOKEN, 401),
    ErrorCode.SIGNATURE_MISMATCH: (INVALID_TOKEN, 401),
    ErrorCode.INVALID_TOKEN: (INVALID_TOKEN, 401),
    ErrorCode.ACCESS_DENIED: (PERMISSION_DENIED, 403),
    ErrorCode.PERMISSION_DENIED: (PERMISSION_DENIED, 403),
    ErrorCode.APP_NOT_FOUND: (INVALID_TOKEN, 401),
    ErrorCode.APP_DISABLED: (PERMISSION_DENIED, 403),
    ErrorCode.APP_OF_OTHER_ACCOUNT: (PERMISSION_DENIED, 403),
    ErrorCode.RATE_LIMITED: (RATE_LIMITED, 429),
    # Conversations: one the caller may not see does not exist for it
    ErrorCode.CONVERSATION_NOT_FOUND: (INVALID_CONVERSATION, 404),
    ErrorCode.PARTICIPANT_NOT_IN_CONVERSATION: (INVALID_CONVERSATION, 404),
    ErrorCode.SINGLE_NEEDS_OTHER_USER: (BAD_PARAMETER, 400),
    ErrorCode.SINGLE_CONVERSATION_NOT_SUPPORTED: (BAD_PARAMETER, 400),
    ErrorCode.INVALID_CONVERSATION_ID_ELEMENT: (BAD_PARAMETER, 400),
    ErrorCode.META_DATA_OVER_LIMIT: (META_DATA_OVER_LIMIT, 400),
    # Messages
    ErrorCode.MESSAGE_NOT_FOUND: (INVALID_MESSAGE, 404),
    ErrorCode.ONLY_OWNER: (PERMISSION_DENIED, 403),
    # Member and setting rules of the Volcengine actions, in Coze's words: a bad request
    ErrorCode.OWNER_SHOULD_BE_EQUAL: (BAD_PARAMETER, 400),
    ErrorCode.TOO_MANY_PARTICIPANTS: (BAD_PARAMETER, 400),
    ErrorCode.TOO_MANY_USER_CONVERSATIONS: (BAD_PARAMETER, 400),
    ErrorCode.ONLY_LIVE_GROUP: (BAD_PARAMETER, 400),
    ErrorCode.TOO_MANY_MARK_TYPES: (BAD_PARAMETER, 400),
    ErrorCode.SETTING_NOT_FOUND: (BAD_PARAMETER, 404),
    # The service: too many writes queued (retry after a pause), or unable to serve right now
    ErrorCode.OVERLOADED: (RATE_LIMITED, 429),
    ErrorCode.UNAVAILABLE: (INTERNAL, 503),
    # Anything unexpected
    ErrorCode.INTERNAL: (INTERNAL, 500),
}

# The msg of an error whose message is empty: the Coze page's wording, so msg is never "".
DEFAULT_MESSAGES: dict[int, str] = {
    BAD_PARAMETER: "invalid request parameter",
    INVALID_CONVERSATION: "invalid conversation",
    META_DATA_OVER_LIMIT: "meta data over limit",
    INVALID_MESSAGE: "invalid message",
    RATE_LIMITED: "rate limited",
    INVALID_TOKEN: "authentication is invalid",
    PERMISSION_DENIED: "no permission to access the resource",
    NOT_FOUND: "resource not found",
    INTERNAL: "internal error",
}
