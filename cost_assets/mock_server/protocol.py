"""Requests and replies as every route sees them: :class:`Reply`, :class:`MockError` (an error answered
with the APIs' ``{"error_code", "message"}`` body), query-string access with the APIs' 400s for malformed
values, and the opaque page tokens the paged endpoints hand out."""

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    fault: str | None = None  # the injected fault, for the request log


class MockError(Exception):
    """An error reply: ``{"error_code", "message"}`` with an HTTP status."""

    def __init__(self, status: int, error_code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message
        self.headers = headers or {}


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(body, separators=(",", ":")).encode(), headers=headers or {})


def _token(**fields: int) -> str:
    """An opaque page token (base64 of a small JSON object)."""
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


def _untoken(token: str, key: str) -> int:
    try:
        return int(json.loads(base64.urlsafe_b64decode(token.encode()))[key])
    except (ValueError, KeyError, TypeError):
        raise MockError(400, "INVALID_PARAMETER_VALUE", f"invalid page_token {token!r}") from None


def _bad(message: str) -> MockError:
    return MockError(400, "INVALID_PARAMETER_VALUE", message)


class _Query:
    """Query-string access with the API's 400s for malformed values."""

    def __init__(self, raw: str):
        self.values = parse_qs(raw, keep_blank_values=True)

    def str(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, [default])[-1]

    def list(self, name: str) -> list[str]:
        return [v for item in self.values.get(name, []) for v in item.split(",") if v]

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.str(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise _bad(f"{name} must be an integer, got {value!r}") from None

    def bool(self, name: str) -> bool:
        value = (self.str(name) or "false").lower()
        if value not in ("true", "false"):
            raise _bad(f"{name} must be true or false, got {value!r}")
        return value == "true"

    def required(self, name: str) -> str:
        value = self.str(name)
        if not value:
            raise _bad(f"Missing required field: {name}")
        return value
