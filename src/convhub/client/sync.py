"""``ImClient``: the Volcengine IM actions over a blocking httpx client."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
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

__all__ = ["ImClient"]


class ImClient:
    """One method per action, named after it (``CreateConversation`` ->
    ``create_conversation``), taking the request's wire fields as keyword arguments and returning
    its ``Result``; a refusal raises ``ImError``, a failure to get any answer raises httpx's
    ``TransportError``. An ``http_client`` passed in is used as it is (its own timeout applies)
    and left open by ``close``."""

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
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._endpoint = Endpoint(endpoint, version)
        self._auth = VolcAuth(access_key, secret_key, region=region, service=service)
        self._retries = retries
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._sleep = sleep

    def call(self, action: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """Any action by name, untyped; the typed methods all come through here."""
        url = self._endpoint.url(action)
        body = encode(request)
        retry = 0
        while True:
            response = self._http.post(url, content=body, headers=HEADERS, auth=self._auth)
            try:
                return read_result(response)
            except ImError as error:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                wait = self._retries.delay(error, retry, retry_after)
                if wait is None:
                    raise
            self._sleep(wait)
            retry += 1

    # --- the actions, one method each (tests/client/test_completeness.py) ---------------------

    def create_conversation(
        self, **request: Unpack[volc.CreateConversationRequest]
    ) -> volc.CreateConversationResult:
        return cast(volc.CreateConversationResult, self.call("CreateConversation", request))

    def modify_conversation(self, **request: Unpack[volc.ModifyConversationRequest]) -> volc.Empty:
        return cast(volc.Empty, self.call("ModifyConversation", request))

    def batch_get_conversations(
        self, **request: Unpack[volc.BatchGetConversationsRequest]
    ) -> volc.BatchGetConversationsResult:
        return cast(volc.BatchGetConversationsResult, self.call("BatchGetConversations", request))

    def destroy_conversation(
        self, **request: Unpack[volc.DestroyConversationRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, self.call("DestroyConversation", request))

    def get_user_conversations(
        self, **request: Unpack[volc.GetUserConversationsRequest]
    ) -> volc.GetUserConversationsResult:
        return cast(volc.GetUserConversationsResult, self.call("GetUserConversations", request))

    def get_conversation_user_count(
        self, **request: Unpack[volc.ConversationRequest]
    ) -> volc.GetConversationUserCountResult:
        return cast(
            volc.GetConversationUserCountResult, self.call("GetConversationUserCount", request)
        )

    def is_user_in_conversation(
        self, **request: Unpack[volc.IsUserInConversationRequest]
    ) -> volc.IsUserInConversationResult:
        return cast(volc.IsUserInConversationResult, self.call("IsUserInConversation", request))

    def batch_add_conversation_participant(
        self, **request: Unpack[volc.BatchAddConversationParticipantRequest]
    ) -> volc.FailedUsers:
        return cast(volc.FailedUsers, self.call("BatchAddConversationParticipant", request))

    def batch_delete_conversation_participant(
        self, **request: Unpack[volc.BatchDeleteConversationParticipantRequest]
    ) -> volc.FailedUsers:
        return cast(volc.FailedUsers, self.call("BatchDeleteConversationParticipant", request))

    def batch_modify_conversation_participant(
        self, **request: Unpack[volc.BatchModifyConversationParticipantRequest]
    ) -> volc.FailedUsers:
        return cast(volc.FailedUsers, self.call("BatchModifyConversationParticipant", request))

    def batch_get_conversation_participant(
        self, **request: Unpack[volc.BatchGetConversationParticipantRequest]
    ) -> volc.Participants:
        return cast(volc.Participants, self.call("BatchGetConversationParticipant", request))

    def scan_conversation_participant_list(
        self, **request: Unpack[volc.ScanConversationParticipantListRequest]
    ) -> volc.ScanConversationParticipantListResult:
        return cast(
            volc.ScanConversationParticipantListResult,
            self.call("ScanConversationParticipantList", request),
        )

    def modify_conversation_setting(
        self, **request: Unpack[volc.ModifyConversationSettingRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, self.call("ModifyConversationSetting", request))

    def get_conversation_setting(
        self, **request: Unpack[volc.GetConversationSettingRequest]
    ) -> volc.GetConversationSettingResult:
        return cast(volc.GetConversationSettingResult, self.call("GetConversationSetting", request))

    def mark_conversation(self, **request: Unpack[volc.MarkConversationRequest]) -> volc.Empty:
        return cast(volc.Empty, self.call("MarkConversation", request))

    def get_conversation_marks(self, **request: Unpack[volc.ConversationRequest]) -> volc.MarkTypes:
        return cast(volc.MarkTypes, self.call("GetConversationMarks", request))

    def send_message(self, **request: Unpack[volc.SendMessageRequest]) -> volc.SendMessageResult:
        return cast(volc.SendMessageResult, self.call("SendMessage", request))

    def get_conversation_messages(
        self, **request: Unpack[volc.GetConversationMessagesRequest]
    ) -> volc.GetConversationMessagesResult:
        return cast(
            volc.GetConversationMessagesResult, self.call("GetConversationMessages", request)
        )

    def get_messages(self, **request: Unpack[volc.GetMessagesRequest]) -> volc.Messages:
        return cast(volc.Messages, self.call("GetMessages", request))

    def recall_message(self, **request: Unpack[volc.RecallMessageRequest]) -> volc.Empty:
        return cast(volc.Empty, self.call("RecallMessage", request))

    def delete_conversation_message(
        self, **request: Unpack[volc.DeleteConversationMessageRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, self.call("DeleteConversationMessage", request))

    def delete_message(self, **request: Unpack[volc.DeleteMessageRequest]) -> volc.Empty:
        return cast(volc.Empty, self.call("DeleteMessage", request))

    def modify_message(self, **request: Unpack[volc.ModifyMessageRequest]) -> volc.Empty:
        return cast(volc.Empty, self.call("ModifyMessage", request))

    def modify_participant_read_index(
        self, **request: Unpack[volc.ModifyParticipantReadIndexRequest]
    ) -> volc.Empty:
        return cast(volc.Empty, self.call("ModifyParticipantReadIndex", request))

    def get_participant_read_index(
        self, **request: Unpack[volc.ConversationRequest]
    ) -> volc.GetParticipantReadIndexResult:
        return cast(
            volc.GetParticipantReadIndexResult, self.call("GetParticipantReadIndex", request)
        )

    # --- pages, walked to the end: the same request, Cursor moved on after each page ------------

    def iter_user_conversations(
        self, **request: Unpack[volc.GetUserConversationsRequest]
    ) -> Iterator[volc.ConversationInfo]:
        """The user's conversations from ``Cursor`` on (0 for the first), ``Limit`` a page."""
        return self._walk(USER_CONVERSATIONS, request)

    def iter_conversation_participant_list(
        self, **request: Unpack[volc.ScanConversationParticipantListRequest]
    ) -> Iterator[volc.Participant]:
        """The members from ``Cursor`` on (0 for the first), ``Limit`` a page."""
        return self._walk(PARTICIPANTS, request)

    def iter_conversation_messages(
        self, **request: Unpack[volc.GetConversationMessagesRequest]
    ) -> Iterator[volc.MessageBody]:
        """The messages from index ``Cursor`` on (with ``Reverse`` 1, down from it; 0 for the
        newest), ``Limit`` a page."""
        return self._walk(MESSAGES, request)

    def _walk(self, walk: Walk, request: Mapping[str, Any]) -> Iterator[Any]:
        pager = Pager(walk, request)
        next_request: dict[str, Any] | None = pager.first
        while next_request is not None:
            result = self.call(walk.action, next_request)
            yield from pager.items(result)
            next_request = pager.after(result)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ImClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
