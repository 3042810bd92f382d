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


def new_key(length: int = 32) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(max(32, length)))


def parse_expiry(text: str | None) -> float | None:
    """`2030-04-04T12:00:00` (local time, as VerneMQ reads it) -> epoch seconds; None: never."""
    if not text:
        return None
    return datetime.fromisoformat(text).timestamp()


def api_keys(node) -> ApiKeys:
    """The node's API keys: the cluster's when it has a cluster runtime (replicated), else its own."""
    cluster = node.cluster
    return ApiKeys(cluster.meta.view(PREFIX) if cluster is not None else node.metadata,
                   node.config["min_apikey_length"], node.config.get("max_apikey_expiry_days"))


class ApiKeys:
    def __init__(self, metadata, min_length: int = 0, max_days: int | None = None) -> None:
        self.metadata = metadata
        self.min_length = min_length  # min_apikey_length
        self.max_days = max_days      # max_apikey_expiry_days: every key expires within so many days

    def add(self, key: str, scope: str = "mgmt", expires: float | None = None) -> None:
        """Errors as VerneMQ's vmq_auth_apikey:add_api_key names them."""
        if len(key) < self.min_length:
            raise ValueError(f"invalid_key_length (min_apikey_length is {self.min_length})")
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r} (one of {', '.join(SCOPES)})")
        if expires is not None and expires <= time.time():
            raise ValueError("invalid_expiry_date (in the past)")
        if self.max_days is not None and (expires is None or expires > time.time() + self.max_days * 86400):
            raise ValueError(f"invalid_expiry_date (max_apikey_expiry_days is {self.max_days}: give expires= "
                             "within that many days)")
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
