"""Opaque page tokens (AIP-158): the position after the last item served,
bound to the query it came from so it cannot be replayed on another."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from shared.errors import DomainError, Reason


def _query_digest(query: Any) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode_page_token(query: Any, position: Any) -> str:
    body = json.dumps({"q": _query_digest(query), "p": position}, default=str).encode()
    return base64.urlsafe_b64encode(body).decode()


def decode_page_token(token: str, query: Any) -> Any:
    """The position stored in token, or None for the first page."""
    if not token:
        return None
    try:
        body = json.loads(base64.urlsafe_b64decode(token.encode()))
        digest, position = body["q"], body["p"]
    except (ValueError, KeyError, TypeError):
        raise DomainError(
            Reason.INVALID_PAGE_TOKEN, "page_token is not one this service issued", field="page_token"
        ) from None
    if digest != _query_digest(query):
        raise DomainError(
            Reason.INVALID_PAGE_TOKEN, "page_token belongs to a different query; start again", field="page_token"
        )
    return position
