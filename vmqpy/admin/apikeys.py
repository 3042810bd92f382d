"""API keys of the HTTP interface, kept in the metadata store (prefix 'api_keys').

A key has a scope (which HTTP module it opens; /api/v1 needs `mgmt`) and an
optional expiry (epoch seconds). `vmq-admin api-key create|add|delete|show`
manage them; the HTTP app checks them (basic auth with the key as username,
or an `x-api-key` header), as VerneMQ does.
"""

from __future__ import annotations

import secrets
import string
import time
from datetime import UTC, datetime

PREFIX = "api_keys"
SCOPES = ("mgmt", "status", "metrics", "health", "api2", "httppub")
_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(32))


def parse_expiry(text: str | None) -> float | None:
    """`2030-04-04T12:00:00` (local time, as VerneMQ reads it) -> epoch seconds; None: never."""
    if not text:
        return None
    return datetime.fromisoformat(text).timestamp()


def api_keys(node) -> ApiKeys:
    """The node's API keys: the cluster's when it has a cluster runtime (replicated), else its own."""
    cluster = node.cluster
    return ApiKeys(cluster.meta.view(PREFIX) if cluster is not None else node.metadata)


class ApiKeys:
    def __init__(self, metadata) -> None:
        self.metadata = metadata

    def add(self, key: str, scope: str = "mgmt", expires: float | None = None) -> None:
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r} (one of {', '.join(SCOPES)})")
        self.metadata.put(PREFIX, key, {"scope": scope, "expires": expires})

    def delete(self, key: str) -> bool:
        found = self.metadata.get(PREFIX, key) is not None
        self.metadata.delete(PREFIX, key)
        return found

    def valid(self, key: str, scope: str) -> bool:
        rec = self.metadata.get(PREFIX, key)
        if rec is None or rec["scope"] != scope:
            return False
        return rec["expires"] is None or rec["expires"] > time.time()

    def rows(self) -> list[dict]:
        now = time.time()
        rows = []
        for key, rec in sorted(self.metadata.fold(PREFIX)):
            exp = rec["expires"]
            rows.append({"Key": key, "Scope": rec["scope"],
                         "Expires (UTC)": "never" if exp is None else
                         datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%d %H:%M:%S"),
                         "has expired": exp is not None and exp <= now})
        return rows
