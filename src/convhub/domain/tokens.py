"""Bearer tokens: shown once, kept only as a SHA-256 digest; permissions kept as one text."""

from __future__ import annotations

import hashlib


def token_hash(raw_token: str) -> str:
    return hashlib.sha256(raw_token.encode()).hexdigest()


def permissions_text(permissions: frozenset[str]) -> str:
    return ",".join(sorted(permissions))


def parse_permissions_text(text: str) -> frozenset[str]:
    """The stored form back (the CLI reads `*` and lists with `permissions.parse_permissions`)."""
    return frozenset(p for p in text.split(",") if p)
