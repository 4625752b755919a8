"""Every action the server declares has a sync and an async method that takes exactly its declared
request and returns exactly its declared result; the page walkers match their actions too."""

from __future__ import annotations

import inspect
import typing
from typing import Any, Unpack, get_args, get_origin

import pytest

from convhub.client import AsyncImClient, ImClient
from convhub.client.pages import MESSAGES, PARTICIPANTS, USER_CONVERSATIONS, Walk
from convhub.dialects.volc.actions import ACTIONS, Action

CLIENTS = [ImClient, AsyncImClient]
WALKERS = {
    "iter_user_conversations": USER_CONVERSATIONS,
    "iter_conversation_participant_list": PARTICIPANTS,
    "iter_conversation_messages": MESSAGES,
}
NOT_ACTIONS = {"call", "close", "aclose", *WALKERS}


def _request_type(method: Any) -> Any:
    hint = typing.get_type_hints(method)["request"]
    assert get_origin(hint) is Unpack, f"{method.__qualname__}: **request is not Unpack[...]"
    (declared,) = get_args(hint)
    return declared


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("action", ACTIONS.values(), ids=lambda a: a.name)
def test_each_action_has_a_method_typed_by_its_declarations(client: type, action: Action) -> None:
    name = action.handler.__name__  # the repo's one verb: CreateConversation -> create_conversation
    method = getattr(client, name, None)
    assert method is not None, f"{client.__name__} has no {name} for {action.name}"
    assert _request_type(method) is action.request
    assert typing.get_type_hints(method)["return"] is action.result
    assert inspect.iscoroutinefunction(method) is (client is AsyncImClient)
    assert [p.kind for p in inspect.signature(method).parameters.values()] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD,  # self
        inspect.Parameter.VAR_KEYWORD,
    ]


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__)
def test_every_public_method_is_an_action_or_a_walker(client: type) -> None:
    methods = {name for name, _ in inspect.getmembers(client, inspect.isfunction)}
    public = {name for name in methods if not name.startswith("_")}
    actions = {action.handler.__name__ for action in ACTIONS.values()}
    assert public - NOT_ACTIONS == actions


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", WALKERS)
def test_each_walker_takes_its_actions_request_and_yields_its_items(
    client: type, name: str
) -> None:
    walk: Walk = WALKERS[name]
    action = ACTIONS[walk.action]
    method = getattr(client, name)
    assert _request_type(method) is action.request
    result_fields = typing.get_type_hints(action.result)
    (item,) = get_args(result_fields[walk.items])
    assert get_origin(result_fields[walk.items]) is list
    returned = typing.get_type_hints(method)["return"]
    expected_origin = typing.AsyncIterator if client is AsyncImClient else typing.Iterator
    assert get_origin(returned) is get_origin(expected_origin)
    assert get_args(returned) == (item,)
    assert {"HasMore", walk.cursor} <= set(result_fields)
    assert "Cursor" in typing.get_type_hints(action.request)
