"""VerneMQ's max_request_line_length and max_header_value_length (Cowboy's limits) for the HTTP and
WebSocket listeners: a longer request line is answered 414, a longer header value 431."""

from __future__ import annotations

REASONS = {414: "Request-URI Too Long", 431: "Request Header Fields Too Large"}


def too_long(request_line: str, headers: list[tuple[str, str]], opts: dict) -> int | None:
    """414 or 431 when the request is over the listener's limits, else None."""
    if len(request_line) > opts.get("max_request_line_length", 8000):
        return 414
    limit = opts.get("max_header_value_length", 4096)
    return 431 if any(len(value) > limit for _, value in headers) else None
