"""Who is calling, whichever dialect authenticated the request."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from convhub.domain.permissions import ALL_PERMISSIONS


@dataclass(frozen=True, slots=True)
class Caller:
    """An account's access key (every permission, any app of its account), or a token: one user
    of an account, acting in one app, with the token's permissions."""

    account_id: int
    user: str | None = None
    app_id: int | None = None
    permissions: frozenset[str] = ALL_PERMISSIONS

    @classmethod
    def access_key(cls, account_id: int) -> Caller:
        return _key_caller(account_id)

    @classmethod
    def token(
        cls, account_id: int, *, user: str, app_id: int, permissions: frozenset[str]
    ) -> Caller:
        return cls(account_id=account_id, user=user, app_id=app_id, permissions=permissions)


@lru_cache(maxsize=4096)
def _key_caller(account_id: int) -> Caller:
    # One per account, shared: it is immutable, and a frozen dataclass costs a microsecond to make.
    return Caller(account_id=account_id)
