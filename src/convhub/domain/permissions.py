"""What a token may do. The names are Coze's; AK/SK callers hold them all."""

from __future__ import annotations

from enum import StrEnum

from convhub.errors import ConvhubError, ErrorCode


class Permission(StrEnum):
    CREATE_CONVERSATION = "createConversation"
    RETRIEVE_CONVERSATION = "retrieveConversation"
    LIST_CONVERSATION = "listConversation"
    EDIT_CONVERSATION = "editConversation"  # rename, delete and clear, as the Coze pages say
    CREATE_MESSAGE = "createMessage"
    LIST_MESSAGE = "listMessage"
    RETRIEVE_MESSAGE = "retrieveMessage"
    MODIFY_MESSAGE = "modifyMessage"
    DELETE_MESSAGE = "deleteMessage"
    MESSAGE_FEEDBACK = "messageFeedback"  # convhub's name: the Coze pages name none for feedback


ALL_PERMISSIONS: frozenset[str] = frozenset(p.value for p in Permission)


def parse_permissions(names: str) -> frozenset[str]:
    """``"createConversation,listConversation"``; ``*`` or empty means all."""
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    if not wanted or wanted == {"*"}:
        return ALL_PERMISSIONS
    unknown = wanted - ALL_PERMISSIONS
    if unknown:
        raise ValueError(f"unknown permissions: {', '.join(sorted(unknown))}")
    return frozenset(wanted)


def require(permissions: frozenset[str], permission: Permission) -> None:
    if permission.value not in permissions:
        raise ConvhubError(
            ErrorCode.PERMISSION_DENIED, f"the token lacks the {permission.value} permission"
        )
