"""Opaque page tokens (AIP-158): the position after the last item served, bound to the
query it came from, signed so that only a position this service issued is ever used.

The signature is an HMAC under `GONGJI_PAGE_TOKEN_KEY` (give every replica of a service
the same one), or under a key made at start when it is unset: tokens then last as long as
the process, and the processes it starts itself (`serve payment --processes`) are handed that
key (`key_for_processes_started_here`), so a token one of them issued is taken by the others.
A position is also checked for its type and range when it is read back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf.message import Message

from shared.errors import DomainError, Reason

PAGE_TOKEN_KEY_ENV = "GONGJI_PAGE_TOKEN_KEY"
_KEY_TEXT = os.environ.get(PAGE_TOKEN_KEY_ENV, "") or secrets.token_hex(32)
_KEY = _KEY_TEXT.encode()
_MAX_TOKEN_LENGTH = 1024
_MAX_OFFSET = 2**62
_MAX_ID_LENGTH = 64
# The most one page's items may take, whatever page_size asked for: the request limit (1 MiB),
# well under what a server sends (4 MiB) and what gRPC clients take by default (4 MiB).
MAX_PAGE_BYTES = 1 << 20


def key_for_processes_started_here() -> dict[str, str]:
    """The environment that gives a process this one starts the same key (made at start when
    none was given), so the processes serving one address take one another's tokens."""
    return {PAGE_TOKEN_KEY_ENV: _KEY_TEXT}


def _signature(query: Any, position: Any) -> str:
    body = json.dumps([query, position], sort_keys=True, default=str).encode()
    return hmac.new(_KEY, body, hashlib.sha256).hexdigest()[:32]


def encode_page_token(query: Any, position: Any) -> str:
    body = json.dumps({"p": position, "s": _signature(query, position)}, default=str).encode()
    return base64.urlsafe_b64encode(body).decode()


def _invalid(message: str) -> DomainError:
    return DomainError(Reason.INVALID_PAGE_TOKEN, message, field="page_token")


def _position(token: str, query: Any) -> Any:
    if len(token) > _MAX_TOKEN_LENGTH:
        raise _invalid("page_token is not one this service issued")
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        position, signature = body["p"], body["s"]
    except (ValueError, KeyError, TypeError, UnicodeError):
        raise _invalid("page_token is not one this service issued") from None
    if not isinstance(signature, str) or not hmac.compare_digest(signature, _signature(query, position)):
        raise _invalid("page_token belongs to another query or was not issued here; start again")
    return position


def decode_offset(token: str, query: Any) -> int | None:
    """A position that is a count or an id number: None for the first page."""
    if not token:
        return None
    position = _position(token, query)
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position < _MAX_OFFSET:
        raise _invalid("page_token holds no position")
    return position


def decode_time_and_id(token: str, query: Any) -> tuple[datetime, str] | None:
    """A position that is a time and an id: None for the first page."""
    if not token:
        return None
    position = _position(token, query)
    try:
        moment, identifier = position
        when = datetime.fromisoformat(moment)
    except (TypeError, ValueError):
        raise _invalid("page_token holds no position") from None
    if when.tzinfo is None or not isinstance(identifier, str) or len(identifier) > _MAX_ID_LENGTH:
        raise _invalid("page_token holds no position")
    return when, identifier


def fitting(items: Sequence[Message], max_bytes: int | None = None) -> int:
    """How many of a page's items, from the first, fit in max_bytes (MAX_PAGE_BYTES unless
    given; one at least, so a page always moves on); the page ends after them and its token
    points past the last."""
    max_bytes = MAX_PAGE_BYTES if max_bytes is None else max_bytes
    total = 0
    for count, item in enumerate(items):
        total += item.ByteSize() + 8  # the repeated field's tag and the item's length
        if total > max_bytes and count:
            return count
    return len(items)
