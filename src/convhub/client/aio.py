"""``AsyncImClient``: the Volcengine IM actions over an asyncio httpx client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Unpack, cast

import httpx

from convhub.client.auth import VolcAuth
from convhub.client.errors import ImError
from convhub.client.pages import MESSAGES, PARTICIPANTS, USER_CONVERSATIONS, Pager, Walk
from convhub.client.retries import DEFAULT_RETRIES, Retries, parse_retry_after
from convhub.client.wire import (
    DEFAULT_ENDPOINT,
    DEFAULT_REGION,
    HEADERS,
    SERVICE,
    VERSION,
    Endpoint,
    encode,
    read_result,
)
from convhub.wire import volc

__all__ = ["AsyncImClient"]


class AsyncImClient:
    """One method per action, named after it (``CreateConversation`` ->
    ``create_conversation``), taking the request's wire fields as keyword arguments and returning
    its ``Result``; a refusal raises ``ImError``, a failure to get any answer raises httpx's
    ``TransportError``. An ``http_client`` passed in is used as it is (its own timeout applies)
    and left open by ``aclose``."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        region: str = DEFAULT_REGION,
        service: str = SERVICE,
        version: str = VERSION,
        timeout: float | None = 30.0,
        retries: Retries = DEFAULT_RETRIES,
        http_client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._endpoint = Endpoint(endpoint, version)
        self._auth = VolcAuth(access_key, secret_key, region=region, service=service)
        self._retries = retries
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._sleep = sleep

    async def call(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Any action by name, untyped; the typed methods all come through here."""
        url = self._endpoint.url(action)
        body = encode(request)
        retry = 0
        while True:
            response = await self._http.post(url, content=body, headers=HEADERS, auth=self._auth)
            try:
                return read_result(response)
            except ImError as error:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                wait = self._retries.delay(error, retry, retry_after)
                if wait is None:
                    raise
            await self._sleep(wait)
            retry += 1

    # --- the actions, one method each (tests/client/test_completeness.py) ---------------------

    async def create_conversation(
        self, **request: Unpack[volc.CreateConversationRequest]
    ) -> volc.CreateConversationResult:
        return cast(volc.CreateConversationResult, await self.call("CreateConversation", request))

    async def modify_conversation(
        self, **request: Unpack[volc.ModifyConversationRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, await self.call("ModifyConversation", request))

    async def batch_get_conversations(
        self, **request: Unpack[volc.BatchGetConversationsRequest]
    ) -> volc.BatchGetConversationsResult:
        return cast(
            volc.BatchGetConversationsResult, await self.call("BatchGetConversations", request)
        )

    async def destroy_conversation(
        self, **request: Unpack[volc.DestroyConversationRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, await self.call("DestroyConversation", request))

    async def get_user_conversations(
        self, **request: Unpack[volc.GetUserConversationsRequest]
    ) -> volc.GetUserConversationsResult:
        return cast(
            volc.GetUserConversationsResult, await self.call("GetUserConversations", request)
        )

    async def get_conversation_user_count(
        self, **request: Unpack[volc.ConversationRequest]
    ) -> volc.GetConversationUserCountResult:
        return cast(
            volc.GetConversationUserCountResult,
            await self.call("GetConversationUserCount", request),
        )

    async def is_user_in_conversation(
        self, **request: Unpack[volc.IsUserInConversationRequest]
    ) -> volc.IsUserInConversationResult:
        return cast(
            volc.IsUserInConversationResult, await self.call("IsUserInConversation", request)
        )

    async def batch_add_conversation_participant(
        self, **request: Unpack[volc.BatchAddConversationParticipantRequest]
    ) -> volc.FailedUsers:
        return cast(volc.FailedUsers, await self.call("BatchAddConversationParticipant", request))

    async def batch_delete_conversation_participant(
        self, **request: Unpack[volc.BatchDeleteConversationParticipantRequest]
    ) -> volc.FailedUsers:
        return cast(
            volc.FailedUsers, await self.call("BatchDeleteConversationParticipant", request)
        )

    async def batch_modify_conversation_participant(
        self, **request: Unpack[volc.BatchModifyConversationParticipantRequest]
    ) -> volc.FailedUsers:
        return cast(
            volc.FailedUsers, await self.call("BatchModifyConversationParticipant", request)
        )

    async def batch_get_conversation_participant(
        self, **request: Unpack[volc.BatchGetConversationParticipantRequest]
    ) -> volc.Participants:
        return cast(volc.Participants, await self.call("BatchGetConversationParticipant", request))

    async def scan_conversation_participant_list(
        self, **request: Unpack[volc.ScanConversationParticipantListRequest]
    ) -> volc.ScanConversationParticipantListResult:
        return cast(
            volc.ScanConversationParticipantListResult,
            await self.call("ScanConversationParticipantList", request),
        )

    async def modify_conversation_setting(
        self, **request: Unpack[volc.ModifyConversationSettingRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, await self.call("ModifyConversationSetting", request))

    async def get_conversation_setting(
        self, **request: Unpack[volc.GetConversationSettingRequest]
    ) -> volc.GetConversationSettingResult:
        return cast(
            volc.GetConversationSettingResult, await self.call("GetConversationSetting", request)
        )

    async def mark_conversation(
        self, **request: Unpack[volc.MarkConversationRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, await self.call("MarkConversation", request))

    async def get_conversation_marks(
        self, **request: Unpack[volc.ConversationRequest]
    ) -> volc.MarkTypes:
        return cast(volc.MarkTypes, await self.call("GetConversationMarks", request))

    async def send_message(
        self, **request: Unpack[volc.SendMessageRequest]
    ) -> volc.SendMessageResult:
        return cast(volc.SendMessageResult, await self.call("SendMessage", request))

    async def get_conversation_messages(
        self, **request: Unpack[volc.GetConversationMessagesRequest]
    ) -> volc.GetConversationMessagesResult:
        return cast(
            volc.GetConversationMessagesResult, await self.call("GetConversationMessages", request)
        )

    async def get_messages(self, **request: Unpack[volc.GetMessagesRequest]) -> volc.Messages:
        return cast(volc.Messages, await self.call("GetMessages", request))

    async def recall_message(self, **request: Unpack[volc.RecallMessageRequest]) -> volc.Empty:
        return cast(volc.Empty, await self.call("RecallMessage", request))

    async def delete_conversation_message(
        self, **request: Unpack[volc.DeleteConversationMessageRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, await self.call("DeleteConversationMessage", request))

    async def delete_message(self, **request: Unpack[volc.DeleteMessageRequest]) -> volc.Empty:
        return cast(volc.Empty, await self.call("DeleteMessage", request))

    async def modify_message(self, **request: Unpack[volc.ModifyMessageRequest]) -> volc.Empty:
        return cast(volc.Empty, await self.call("ModifyMessage", request))

    async def modify_participant_read_index(
        self, **request: Unpack[volc.ModifyParticipantReadIndexRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, await self.call("ModifyParticipantReadIndex", request))

    async def get_participant_read_index(
        self, **request: Unpack[volc.ConversationRequest]
    ) -> volc.GetParticipantReadIndexResult:
        return cast(
            volc.GetParticipantReadIndexResult, await self.call("GetParticipantReadIndex", request)
        )

    # --- pages, walked to the end: the same request, Cursor moved on after each page ------------

    def iter_user_conversations(
        self, **request: Unpack[volc.GetUserConversationsRequest]
    ) -> AsyncIterator[volc.ConversationInfo]:
        """The user's conversations from ``Cursor`` on (0 for the first), ``Limit`` a page."""
        return self._walk(USER_CONVERSATIONS, request)

    def iter_conversation_participant_list(
        self, **request: Unpack[volc.ScanConversationParticipantListRequest]
    ) -> AsyncIterator[volc.Participant]:
        """The members from ``Cursor`` on (0 for the first), ``Limit`` a page."""
        return self._walk(PARTICIPANTS, request)

    def iter_conversation_messages(
        self, **request: Unpack[volc.GetConversationMessagesRequest]
    ) -> AsyncIterator[volc.MessageBody]:
        """The messages from index ``Cursor`` on (with ``Reverse`` 1, down from it; 0 for the
        newest), ``Limit`` a page."""
        return self._walk(MESSAGES, request)

    async def _walk(self, walk: Walk, request: Mapping[str, Any]) -> AsyncIterator[Any]:
        pager = Pager(walk, request)
        next_request: dict[str, Any] | None = pager.first
        while next_request is not None:
            result = await self.call(walk.action, next_request)
            for item in pager.items(result):
                yield item
            next_request = pager.after(result)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncImClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
