"""The Volcengine IM actions' requests and results, declared once (Version 2020-12-01).

The server reads each request through its declaration (``convhub.dialects.fields.reader``), its
handlers return the declared result, the OpenAPI document is generated from both, and
``convhub.client`` takes and returns them. Field names are the wire's; every user-ID field that has
a ``*Str`` twin declares both. ``null`` counts as absent in every request field.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from convhub.wire.kinds import Doc, Int32, Int64, Minimum, Width

_64, _32 = Width(64), Width(32)
ConversationRef = Annotated[int, _64, Minimum(1), Doc("a conversation's ConversationShortId")]
MessageRef = Annotated[int, _64, Minimum(1), Doc("a message's MessageId")]


class Empty(TypedDict):
    """An action that answers no ``Result`` (an empty object)."""


# --- shared objects ------------------------------------------------------------------------------


class ConversationInfo(TypedDict):
    """A conversation as every read answers it."""

    ConversationShortId: Int64
    ConversationId: str
    AppId: Int32
    InboxType: Int32
    ConversationType: Int32
    Name: str
    AvatarUrl: str
    Description: str
    Notice: str
    Ext: dict[str, str]
    OwnerUserId: Int64
    OwnerUserIdStr: str
    CreatorUserId: Int64
    CreatorUserIdStr: str
    Status: Int32
    CreateTime: Annotated[int, _64, Doc("seconds")]
    ModifyTime: Annotated[int, _64, Doc("seconds")]
    OnlineCount: Int64
    MemberCount: NotRequired[Int64]
    OtherUserId: NotRequired[Int64]
    OtherUserIdStr: NotRequired[str]


class Participant(TypedDict):
    ConversationShortId: Int64
    ParticipantUserId: Int64
    ParticipantUserIdStr: str
    Role: Int64
    Operator: Int64
    OperatorStr: NotRequired[str]
    NickName: NotRequired[str]
    AvatarUrl: str
    Level: NotRequired[Int32]
    Ext: NotRequired[dict[str, str]]
    Status: NotRequired[Int32]
    CreateTime: NotRequired[Int64]
    BlockTime: NotRequired[Int64]


class RefMsgInfo(TypedDict):
    ReferencedMessageId: Int64
    Hint: str
    ReferencedMessageType: Int32
    Status: Int32


class MessageBody(TypedDict):
    AppId: Int32
    ConversationShortId: Int64
    ConversationType: Int32
    MessageId: Int64
    MsgType: Int32
    Content: str
    Sender: Int64
    SenderStr: str
    CreateTime: Annotated[int, _64, Doc("milliseconds")]
    Status: Int32
    Ext: dict[str, str]
    IndexInConversation: Int64
    RefMsgInfo: NotRequired[RefMsgInfo]
    ClientMsgId: NotRequired[str]


class ConversationSettingInfo(TypedDict):
    AppId: Int32
    ConversationShortId: Int64
    ConversationId: str
    ConversationType: Int32
    InboxType: Int32
    ParticipantUserId: Int64
    ParticipantUserIdStr: str
    ReadIndex: Int64
    StickTopTime: Int64
    IsStickTop: bool
    SetFavoriteTime: Int64
    IsSetFavorite: bool
    IsMute: bool
    Ext: dict[str, str]


class ReadIndex(TypedDict):
    ParticipantUserId: Int64
    ParticipantUserIdStr: str
    ReadIndex: Int64


# --- conversations ----------------------------------------------------------------------------


class NewConversationCoreInfo(TypedDict):
    ConversationType: Annotated[Literal[1, 2, 100], _32, Doc("1 single chat, 2 group, 100 live")]
    Name: NotRequired[str]
    AvatarUrl: NotRequired[str]
    Description: NotRequired[str]
    Notice: NotRequired[str]
    Ext: NotRequired[dict[str, str]]


class CreateConversationRequest(TypedDict):
    AppId: Int32
    OwnerUserId: NotRequired[Int64]
    OwnerUserIdStr: NotRequired[str]
    ConversationCoreInfo: NewConversationCoreInfo
    OtherUserId: NotRequired[Int64]
    OtherUserIdStr: NotRequired[str]
    InboxType: NotRequired[Int32]
    IdempotentId: NotRequired[str]


class CreateConversationResult(TypedDict):
    ConversationShortId: Int64
    ConversationId: str
    Exist: bool
    ConversationInfo: ConversationInfo


class ConversationCoreInfoChange(TypedDict):
    ConversationShortId: ConversationRef
    Name: NotRequired[str]
    AvatarUrl: NotRequired[str]
    Description: NotRequired[str]
    Notice: NotRequired[str]
    Ext: NotRequired[dict[str, str]]
    OwnerUserId: NotRequired[Int64]
    OwnerUserIdStr: NotRequired[str]


class ModifyConversationRequest(TypedDict):
    AppId: Int32
    ConversationCoreInfo: ConversationCoreInfoChange


class BatchGetConversationsRequest(TypedDict):
    AppId: Int32
    ConversationShortId: list[Int64]
    SkipMemberCount: NotRequired[bool]


class BatchGetConversationsResult(TypedDict):
    ConversationCoreInfos: list[ConversationInfo]


class DestroyConversationRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    OwnerUserId: NotRequired[Int64]
    OwnerUserIdStr: NotRequired[str]


class GetUserConversationsRequest(TypedDict):
    AppId: Int32
    ParticipantUserId: NotRequired[Int64]
    ParticipantUserIdStr: NotRequired[str]
    DataType: NotRequired[Annotated[Literal[0, 1, 2], _32, Doc("0 recent, 1 created, 2 live")]]
    Cursor: Int64
    Limit: Int64
    InboxType: NotRequired[Int32]
    SkipMemberCount: NotRequired[bool]


class GetUserConversationsResult(TypedDict):
    ConversationInfos: list[ConversationInfo]
    HasMore: bool
    NextCursor: Int64


class ConversationRequest(TypedDict):
    """One conversation of the app, named by its ID."""

    AppId: Int32
    ConversationShortId: ConversationRef


class GetConversationUserCountResult(TypedDict):
    Count: Int64


class IsUserInConversationRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    ParticipantUserId: Int64


class IsUserInConversationResult(TypedDict):
    IsUserInConversation: bool


# --- participants --------------------------------------------------------------------------------


class NewParticipantInfo(TypedDict):
    ParticipantUserId: Int64
    NickName: NotRequired[str]
    Level: NotRequired[Int32]
    Role: NotRequired[Int64]
    Ext: NotRequired[dict[str, str]]
    ReadIndex: NotRequired[Int64]


class ParticipantInfoChange(TypedDict):
    ParticipantUserId: Int64
    NickName: NotRequired[str]
    Level: NotRequired[Int32]
    Role: NotRequired[Int64]
    Ext: NotRequired[dict[str, str]]
    BlockTime: NotRequired[Annotated[int, _64, Doc("muted until, seconds")]]


class BatchAddConversationParticipantRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    Operator: NotRequired[Int64]
    OperatorStr: NotRequired[str]
    ParticipantInfos: list[NewParticipantInfo]
    Barrier: NotRequired[bool]


class FailedUsers(TypedDict):
    FailedUserIds: list[Int64]


class BatchDeleteConversationParticipantRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    Operator: NotRequired[Int64]
    OperatorStr: NotRequired[str]
    ParticipantUserIds: list[Int64]


class BatchModifyConversationParticipantRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    Operator: NotRequired[Int64]
    OperatorStr: NotRequired[str]
    ParticipantInfos: list[ParticipantInfoChange]


class BatchGetConversationParticipantRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    ParticipantUserIds: list[Int64]


class Participants(TypedDict):
    Participants: list[Participant]


class ScanConversationParticipantListRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    Cursor: Int64
    Limit: Int64
    Reverse: NotRequired[bool]
    OnlyUserIds: NotRequired[bool]
    ScanOnlineParticipant: NotRequired[bool]


class ScanConversationParticipantListResult(TypedDict):
    Participants: list[Participant]
    HasMore: bool
    NextCursor: Int64


# --- settings ------------------------------------------------------------------------------------


class ConversationSettingChange(TypedDict):
    ConversationShortId: ConversationRef
    ParticipantUserId: NotRequired[Int64]
    ParticipantUserIdStr: NotRequired[str]
    IsMute: NotRequired[bool]
    IsStickTop: NotRequired[Annotated[bool, Doc("whether StickTopTime is to be set")]]
    StickTopTime: NotRequired[Annotated[int, _64, Doc("milliseconds")]]
    IsSetFavorite: NotRequired[Annotated[bool, Doc("whether SetFavoriteTime is to be set")]]
    SetFavoriteTime: NotRequired[Annotated[int, _64, Doc("milliseconds")]]
    Ext: NotRequired[dict[str, str]]


class ModifyConversationSettingRequest(TypedDict):
    AppId: Int32
    ConversationSettingInfo: ConversationSettingChange


class GetConversationSettingRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    ParticipantUserId: NotRequired[Int64]
    ParticipantUserIdStr: NotRequired[str]
    NoReadIndex: NotRequired[bool]


class GetConversationSettingResult(TypedDict):
    ConversationSettingInfo: ConversationSettingInfo


class MarkConversationRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    MarkTypes: list[str]
    MarkAction: NotRequired[Annotated[int, _32, Doc("1 add (default), 2 remove")]]


class MarkTypes(TypedDict):
    MarkTypes: list[str]


# --- messages ------------------------------------------------------------------------------------


class NewRefMsgInfo(TypedDict):
    ReferencedMessageId: Int64
    Hint: NotRequired[str]


class SendMessageRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    Sender: NotRequired[Int64]
    SenderStr: NotRequired[str]
    MsgType: Int32
    Content: str
    ClientMsgId: NotRequired[str]
    CreateTime: NotRequired[Annotated[int, _64, Doc("milliseconds")]]
    Ext: NotRequired[dict[str, str]]
    MentionedUsers: NotRequired[list[Int64 | None]]
    MentionedUsersStr: NotRequired[list[str | None]]
    VisibleUsers: NotRequired[list[Int64 | None]]
    VisibleUsersStr: NotRequired[list[str | None]]
    InvisibleUsers: NotRequired[list[Int64 | None]]
    InvisibleUsersStr: NotRequired[list[str | None]]
    Priority: NotRequired[Int32]
    RefMsgInfo: NotRequired[NewRefMsgInfo]


class SendMessageResult(TypedDict):
    MessageId: Int64


class GetConversationMessagesRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    Cursor: Int64
    Limit: Int64
    Reverse: NotRequired[Annotated[int, _32, Doc("0 forward (default), 1 backward: newest first")]]


class GetConversationMessagesResult(TypedDict):
    Messages: list[MessageBody]
    HasMore: bool
    NewCursor: Int64


class GetMessagesRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    MessageIds: list[Int64]


class Messages(TypedDict):
    Messages: list[MessageBody]


class RecallMessageRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    MessageId: MessageRef
    ParticipantUserId: Annotated[int, _64, Minimum(1)]
    RecallRole: NotRequired[Annotated[Literal[0, 1, 2], _32, Doc("0 sender, 1 owner, 2 admin")]]


class DeleteConversationMessageRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    MessageId: MessageRef
    DeleteType: NotRequired[Annotated[Literal[0, 1], _32, Doc("0 all, 1 all but sender")]]


class DeleteMessageRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    MessageId: MessageRef
    ParticipantUserId: Annotated[int, _64, Minimum(1)]


class ModifyMessageRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    MessageId: MessageRef
    Ext: NotRequired[dict[str, str]]
    Content: NotRequired[str]


class ModifyParticipantReadIndexRequest(TypedDict):
    AppId: Int32
    ConversationShortId: ConversationRef
    ParticipantUserId: NotRequired[Int64]
    ParticipantUserIdStr: NotRequired[str]
    ReadIndex: Int64


class GetParticipantReadIndexResult(TypedDict):
    ReadIndexes: list[ReadIndex]
