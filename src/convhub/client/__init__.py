"""A typed client for the Volcengine IM server API (Version 2020-12-01), for convhub and for the
Volcengine cloud alike. Installs without the server: ``pip install convhub``.

    with ImClient(access_key, secret_key, endpoint="http://127.0.0.1:8000") as im:
        created = im.create_conversation(AppId=app, OwnerUserId=10001,
                                         ConversationCoreInfo={"ConversationType": 2})
        print(created["ConversationShortId"])
"""

from convhub.client.aio import AsyncImClient
from convhub.client.auth import VolcAuth
from convhub.client.errors import ImError, UnexpectedResponseError
from convhub.client.retries import NO_RETRIES, Retries
from convhub.client.sync import ImClient
from convhub.client.wire import DEFAULT_ENDPOINT, DEFAULT_REGION

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGION",
    "NO_RETRIES",
    "AsyncImClient",
    "ImClient",
    "ImError",
    "Retries",
    "UnexpectedResponseError",
    "VolcAuth",
]
