"""Who is calling: the account behind an access key, or the user, app and permissions behind a
bearer token. Lookups go through a TTL cache (``cache.py``)."""

from __future__ import annotations

from collections.abc import Callable

from convhub.domain.cache import TtlCache
from convhub.domain.caller import Caller
from convhub.domain.models import AccessKey, Account, EntityStatus, Token
from convhub.domain.ports import Database
from convhub.domain.tokens import token_hash
from convhub.errors import ConvhubError, ErrorCode


class Authenticator:
    def __init__(self, *, db: Database, clock: Callable[[], float], ttl: float = 5.0) -> None:
        self._db = db
        self._clock = clock
        self._keys: TtlCache[str, tuple[AccessKey, Account]] = TtlCache(clock=clock, ttl=ttl)
        self._tokens: TtlCache[str, tuple[Token, EntityStatus, EntityStatus]] = TtlCache(
            clock=clock, ttl=ttl
        )

    async def access_key(self, access_key: str) -> tuple[AccessKey, Account]:
        """The key and its account, whatever their status: that is told only to a caller who
        proved it holds the secret (``key_caller``, after the signature check)."""
        found = await self._keys.get(
            access_key, lambda: self._db.read(lambda uow: uow.access.credentials(access_key))
        )
        if found is None:
            raise ConvhubError(ErrorCode.UNKNOWN_ACCESS_KEY, "the access key is not known")
        return found

    @staticmethod
    def key_caller(key: AccessKey, account: Account) -> Caller:
        if key.status is not EntityStatus.ACTIVE:
            raise ConvhubError(ErrorCode.UNKNOWN_ACCESS_KEY, "the access key is disabled")
        if account.status is not EntityStatus.ACTIVE:
            raise ConvhubError(
                ErrorCode.ACCESS_DENIED, "the account of this access key is disabled"
            )
        return Caller.access_key(account.id)

    async def token_caller(self, raw_token: str) -> Caller:
        """The caller a bearer token stands for, or INVALID_TOKEN."""
        digest = token_hash(raw_token)
        found = await self._tokens.get(
            digest, lambda: self._db.read(lambda uow: uow.access.token(digest))
        )
        if found is None:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token is not valid")
        token, account_status, app_status = found
        if token.revoked:
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token has been revoked")
        if token.expire_time is not None and token.expire_time <= self._clock():
            raise ConvhubError(ErrorCode.INVALID_TOKEN, "the access token has expired")
        if account_status is not EntityStatus.ACTIVE or app_status is not EntityStatus.ACTIVE:
            raise ConvhubError(
                ErrorCode.INVALID_TOKEN, "the account or app of this token is disabled"
            )
        return Caller.token(
            token.account_id, user=token.user, app_id=token.app_id, permissions=token.permissions
        )
