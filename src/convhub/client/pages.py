"""Walking a paged action to its end: which request comes after which answer.

``GetUserConversations`` and ``ScanConversationParticipantList`` answer ``NextCursor`` (Scan's is
negative once nothing is left), ``GetConversationMessages`` answers ``NewCursor``; all three say
``HasMore``. The next page is the same request with ``Cursor`` set to the answered cursor. A
cursor met twice is the server's mistake and raises, rather than walking in a circle (a reversed
message walk handed cursor 0 would start again from the newest message).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from convhub.client.errors import UnexpectedResponseError

__all__ = ["MESSAGES", "PARTICIPANTS", "USER_CONVERSATIONS", "Pager", "Walk"]


@dataclass(frozen=True, slots=True)
class Walk:
    action: str
    items: str  # the Result field holding the page's items
    cursor: str  # the Result field holding the next page's Cursor
    negative_ends: bool = False  # a negative cursor means there is nothing more


USER_CONVERSATIONS = Walk("GetUserConversations", "ConversationInfos", "NextCursor")
PARTICIPANTS = Walk(
    "ScanConversationParticipantList", "Participants", "NextCursor", negative_ends=True
)
MESSAGES = Walk("GetConversationMessages", "Messages", "NewCursor")


class Pager:
    """The requests of one walk: ``first``, then ``after(result)`` until it returns None."""

    __slots__ = ("_request", "_seen", "first", "walk")

    def __init__(self, walk: Walk, request: Mapping[str, Any]) -> None:
        self.walk = walk
        self.first = dict(request)
        self._request = self.first
        self._seen = {request.get("Cursor")}

    def items(self, result: Mapping[str, Any]) -> list[Any]:
        found = result.get(self.walk.items, [])
        if not isinstance(found, list):
            raise self._unexpected(f"{self.walk.items} that is not a list: {found!r}")
        return found

    def after(self, result: Mapping[str, Any]) -> dict[str, Any] | None:
        if not result.get("HasMore"):
            return None
        cursor = result.get(self.walk.cursor)
        if type(cursor) is not int:
            raise self._unexpected(f"HasMore with {self.walk.cursor} {cursor!r}")
        if self.walk.negative_ends and cursor < 0:
            return None
        if cursor in self._seen:
            raise self._unexpected(
                f"HasMore with {self.walk.cursor} {cursor}, a cursor this walk already sent; "
                "stopped rather than read the same pages again"
            )
        self._seen.add(cursor)
        self._request = {**self._request, "Cursor": cursor}
        return self._request

    def _unexpected(self, what: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(f"{self.walk.action} answered {what}", status=200)
