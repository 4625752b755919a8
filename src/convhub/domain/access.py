"""Who may call: access keys belong to accounts, accounts own apps, a key touches only its apps.

Lookups are cached for ``ttl`` seconds so the hot path does not read the directory on every request;
a key or app disabled from the CLI stops working everywhere within that time. Misses are not cached,
so a new key works at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from convhub.domain.models import AccessKey, Account, App, EntityStatus, Token
from convhub.domain.permissions import ALL_PERMISSIONS
from convhub.domain.ports import Database, Repository
from convhub.errors import ConvhubError, ErrorCode


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: an AK/SK key (every permission, any app of its account) or a token (one
    user of an account, acting in one app, with the token's permissions)."""

    account_id: int
    access_key: str
    user: str | None = None
    app_id: int | None = None
    permissions: frozenset[str] = ALL_PERMISSIONS


_MAX_CACHED = 10_000
K = TypeVar("K")
V = TypeVar("V")


class AccessControl:
    def __init__(self, *, db: Database, clock: Callable[[], float], ttl: float = 5.0) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._keys: dict[str, tuple[float, tuple[AccessKey, Account]]] = {}
        self._apps: dict[int, tuple[float, App]] = {}
        self._tokens: dict[str, tuple[float, tuple[Token, EntityStatus, EntityStatus]]] = {}

    async def _lookup(
        self,
        cache: dict[K, tuple[float, V]],
        key: K,
        read: Callable[[Repository], V | None],
        missing: Callable[[], ConvhubError],
    ) -> V:
        """``read`` through a cache that keeps hits for ``ttl`` seconds and never keeps misses."""
        now = self._clock()
        cached = cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._db.read(read)
        if found is None:
            cache.pop(key, None)
            raise missing()
        if len(cache) > _MAX_CACHED:
            cache.clear()
        cache[key] = (now + self._ttl, found)
        return found

    async def credentials(self, access_key: str) -> tuple[AccessKey, Account]:
        """The key and its account, or the error that refuses them."""
        key, account = await self._lookup(
            self._keys,
            access_key,
            lambda repo: repo.get_credentials(access_key),
            lambda: ConvhubError(ErrorCode.UNKNOWN_ACCESS_KEY, "the access key is not known"),
        )
        if key.status is not EntityStatus.ACTIVE:
            raise ConvhubError(ErrorCode.UNKNOWN_ACCESS_KEY, "the access key is disabled")
        if account.status is not EntityStatus.ACTIVE:
            raise ConvhubError(
                ErrorCode.ACCESS_DENIED, "the account of this access key is disabled"
            )
        return key, account

    async def authorize_app(self, account_id: int, app_id: int) -> App:
        app = await self._lookup(
            self._apps,
            app_id,
            lambda repo: repo.get_app(app_id),
            lambda: ConvhubError(ErrorCode.APP_NOT_FOUND, f"app {app_id} does not exist"),
        )
        if app.account_id != account_id:
            raise ConvhubError(
                ErrorCode.APP_OF_OTHER_ACCOUNT, f"app {app_id} belongs to another account"
            )
        if app.status is not EntityStatus.ACTIVE:
            raise ConvhubError(ErrorCode.APP_DISABLED, f"app {app_id} is disabled")
        return app

    async def token_caller(self, raw_token: str) -> Caller:
        """The caller a bearer token stands for, or INVALID_TOKEN."""
        digest = hashlib.sha256(raw_token.encode()).hexdigest()
        token, account_status, app_status = await self._lookup(
            self._tokens,
            digest,
            lambda repo: repo.get_token(digest),
            lambda: ConvhubError(ErrorCode.INVALID_TOKEN, "the access token is not valid"),
        )
        if token.revoked:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token has been revoked")
        if token.expire_time is not None and token.expire_time <= self._clock():
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token has expired")
        if account_status is not EntityStatus.ACTIVE or app_status is not EntityStatus.ACTIVE:
            raise ConvhubError(
                ErrorCode.INVALID_TOKEN, "the account or app of this token is disabled"
            )
        return Caller(
            account_id=token.account_id,
            access_key="",
            user=token.user,
            app_id=token.app_id,
            permissions=token.permissions,
        )
